"""Loss functions: per-sample losses, their mean over a batch, and the gradient of that mean.

Each loss is written per sample (``(n, outputs) -> (n,)``) with its per-sample gradient; the
batch value is the (optionally weighted) mean, and the gradient is that of the mean, so the
learning rate does not depend on the batch size.  ``y`` is always 2-D ``(n, outputs)``:
one-hot rows for classification, 0/1 for binary cross-entropy, targets for regression.
Sample weights (class weights, for imbalanced classes) scale each sample's share of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from nncli.core.activations import Activation
from nncli.core.tasks import LOSS_KINDS, LossKind

Array = np.ndarray


def _safe(p: Array) -> Array:
    # A probability that underflowed to 0 would give log 0 = -inf; the smallest normal number of
    # the dtype bounds the loss instead (the fused gradients below never take this log).
    return np.maximum(p, np.finfo(p.dtype).tiny)


def _quadratic(p: Array, y: Array, **_) -> Array:
    # The guide's loss: ½ Σ (y − ŷ)² over a sample's outputs.
    diff = p - y
    return 0.5 * np.einsum("ij,ij->i", diff, diff)


def _quadratic_gradient(p: Array, y: Array, **_) -> Array:
    return p - y


def _mse(p: Array, y: Array, **_) -> Array:
    diff = p - y
    return np.einsum("ij,ij->i", diff, diff) / p.shape[1]


def _mse_gradient(p: Array, y: Array, **_) -> Array:
    return (p - y) * (2 / p.shape[1])


def _mae(p: Array, y: Array, **_) -> Array:
    return np.abs(p - y).mean(axis=1)


def _mae_gradient(p: Array, y: Array, **_) -> Array:
    return np.sign(p - y) / p.shape[1]


def _huber(p: Array, y: Array, delta: float = 1.0, **_) -> Array:
    # Quadratic near zero, linear beyond ±delta: squared error that large outliers cannot dominate.
    error = np.abs(p - y)
    quadratic = np.minimum(error, delta)
    return (0.5 * quadratic * quadratic + delta * (error - quadratic)).mean(axis=1)


def _huber_gradient(p: Array, y: Array, delta: float = 1.0, **_) -> Array:
    return np.clip(p - y, -delta, delta) / p.shape[1]


def _cross_entropy(p: Array, y: Array, **_) -> Array:
    return -np.einsum("ij,ij->i", y, np.log(_safe(p)))


def _cross_entropy_gradient(p: Array, y: Array, **_) -> Array:
    return -y / _safe(p)


def _binary_cross_entropy(p: Array, y: Array, **_) -> Array:
    return -(y * np.log(_safe(p)) + (1 - y) * np.log(_safe(1 - p))).mean(axis=1)


def _binary_cross_entropy_gradient(p: Array, y: Array, **_) -> Array:
    return (-y / _safe(p) + (1 - y) / _safe(1 - p)) / p.shape[1]


@dataclass(frozen=True)
class Loss:
    name: str
    per_sample: Callable[..., Array]  # (prediction, target) -> (n,) losses
    per_sample_gradient: Callable[..., Array]  # (prediction, target) -> d loss_i / d prediction_i
    params: dict = field(default_factory=dict)  # e.g. Huber's delta; stored in the model file

    @property
    def kind(self) -> LossKind:
        """Task, paired output activation and target encoding (the one table, core/tasks.py)."""
        return LOSS_KINDS[self.name]

    @property
    def classification(self) -> bool:
        return self.kind.classification

    def value(self, p: Array, y: Array, weights: Optional[Array] = None) -> float:
        """Mean loss over the batch (weighted by ``weights`` when given)."""
        losses = self.per_sample(p, y, **self.params)
        if weights is not None:
            losses = losses * weights
        return float(np.add.reduce(losses)) / len(losses)

    def gradient(self, p: Array, y: Array, weights: Optional[Array] = None) -> Array:
        """Gradient of :meth:`value` with respect to the prediction ``p``."""
        return _mean_gradient(self.per_sample_gradient(p, y, **self.params), weights)


def _mean_gradient(per_sample: Array, weights: Optional[Array]) -> Array:
    if weights is not None:
        per_sample = per_sample * weights[:, None]
    return per_sample / len(per_sample)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("cross_entropy", _cross_entropy, _cross_entropy_gradient),
        Loss("binary_cross_entropy", _binary_cross_entropy, _binary_cross_entropy_gradient),
        Loss("mse", _mse, _mse_gradient),
        Loss("quadratic", _quadratic, _quadratic_gradient),
        Loss("mae", _mae, _mae_gradient),
        Loss("huber", _huber, _huber_gradient, {"delta": 1.0}),
    )
}


def get_loss(name: str, **params) -> Loss:
    """The loss ``name`` with its parameters (defaults for those not given)."""
    try:
        loss = LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}. Expected one of: {', '.join(LOSSES)}") from None
    unknown = set(params) - set(loss.params)
    if unknown:
        raise ValueError(f"Loss {name!r} takes no parameter {sorted(unknown)[0]!r}. Expected: {', '.join(loss.params) or 'none'}")
    return Loss(loss.name, loss.per_sample, loss.per_sample_gradient, {**loss.params, **params})


def output_delta(
    loss: Loss, activation: Activation, output: Array, y: Array, weights: Optional[Array] = None
) -> Array:
    """dL/dz of the output layer, given its activation output.

    Softmax followed by cross-entropy, and sigmoid followed by binary cross-entropy, are fused:
    their Jacobians multiply out to ``(p − y)`` per sample, which is exact, cheap, and stays
    finite even when a probability underflows to zero (where ``−y/p`` would blow up).
    """
    kind = loss.kind
    if kind.output_required and activation.name == kind.output:  # softmax + CE, sigmoid + BCE
        per_sample = output - y
        if kind.targets == "binary":  # binary cross-entropy averages its columns; cross-entropy sums
            per_sample = per_sample / output.shape[1]
        return _mean_gradient(per_sample, weights)
    return activation.backward(loss.gradient(output, y, weights), output)
