"""Loss functions: the value (mean over the batch) and its gradient w.r.t. the network output.

All gradients are of the *batch mean*, so the learning rate does not depend on the batch size.
``y`` is always 2-D ``(n, outputs)``: one-hot rows for classification, targets for regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from nncli.core.activations import Activation

Array = np.ndarray


@dataclass(frozen=True)
class Loss:
    name: str
    value: Callable[[Array, Array], float]  # (prediction, target) -> mean loss
    gradient: Callable[[Array, Array], Array]  # (prediction, target) -> dL/dprediction
    classification: bool


def _quadratic(p: Array, y: Array) -> float:
    # The guide's loss: ½ Σ (y − ŷ)² per sample, summed over outputs, averaged over samples.
    diff = p - y
    return float(0.5 * np.einsum("ij,ij->", diff, diff) / len(p))


def _quadratic_gradient(p: Array, y: Array) -> Array:
    return (p - y) / len(p)


def _mse(p: Array, y: Array) -> float:
    diff = p - y
    return float(np.einsum("ij,ij->", diff, diff) / diff.size)


def _mse_gradient(p: Array, y: Array) -> Array:
    return (p - y) * (2 / (p.size))


def _clipped_log(p: Array) -> Array:
    # A probability that underflowed to 0 would give log 0 = -inf; the smallest normal number
    # of the dtype bounds the loss instead (its gradient is computed without the log).
    return np.log(np.maximum(p, np.finfo(p.dtype).tiny))


def _cross_entropy(p: Array, y: Array) -> float:
    return float(-np.einsum("ij,ij->", y, _clipped_log(p)) / len(p))


def _cross_entropy_gradient(p: Array, y: Array) -> Array:
    return -y / np.maximum(p, np.finfo(p.dtype).tiny) / len(p)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("cross_entropy", _cross_entropy, _cross_entropy_gradient, classification=True),
        Loss("mse", _mse, _mse_gradient, classification=False),
        Loss("quadratic", _quadratic, _quadratic_gradient, classification=False),
    )
}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}. Expected one of: {', '.join(LOSSES)}") from None


def output_delta(loss: Loss, activation: Activation, output: Array, y: Array) -> Array:
    """dL/dz of the output layer, given its activation output.

    Softmax followed by cross-entropy is fused: the two Jacobians multiply out to
    ``(p - y) / n``, which is exact, cheap, and stays finite even when a probability
    underflows to zero (where the separate cross-entropy gradient ``-y/p`` would blow up).
    """
    if loss.name == "cross_entropy" and activation.name == "softmax":
        return (output - y) / len(output)
    return activation.backward(loss.gradient(output, y), output)
