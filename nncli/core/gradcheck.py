"""Backpropagation against central finite differences, parameter by parameter.

For every entry of every weight matrix and bias vector (or a seeded sample of each array's
entries) the objective is evaluated at ``θ + ε`` and ``θ − ε`` in float64, and
``(L₊ − L₋) / 2ε`` is compared with the gradient the network's own ``backward`` computed —
the code `train` runs. The objective is everything training differentiates: the (class-)
weighted mean loss and the L2 weight-decay term ``½·λ·‖W‖²`` that the optimizers add to weight
gradients as ``λ·W``. Dropout is off: a random mask is no function of the weights.

A kink (ReLU or leaky ReLU at 0, MAE where a prediction equals its target, Huber at ±δ) has no
derivative: an entry whose two evaluations fall on different sides of one is counted as
skipped, never as a pass or a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nncli.core.losses import Loss
from nncli.core.network import MLP

# Activations whose derivative jumps (at 0), by registry name; the losses' kinks (MAE, Huber)
# are in Objective._kink_sides. ELU (α = 1) and softplus have continuous derivatives: nothing to skip.
KINKED_ACTIVATIONS = ("relu", "leaky_relu")

# A central difference cannot resolve a gradient finer than the rounding error of the two loss
# values it subtracts: its "resolution", machine-ε·S / ε, where S (Objective.rounding_scale) is
# how far rounding can move the loss, in units of machine-ε. Measured differences from
# backpropagation stay within about one resolution. Each entry's error is taken relative to its
# own size, but never to less than RESOLUTION_MARGIN resolutions: errors of a few resolutions
# then read as relative errors of about 1e-7, ten times below the default tolerance, where
# relative to a tiny gradient (a trained model's) they would look like mistakes. A wrong
# derivative is wrong by about the gradients' own size, far above either.
RESOLUTION_MARGIN = 1e7


@dataclass
class Objective:
    """What training minimises on some rows: ``network``'s loss on ``X`` against ``Y``,
    weighted per row by ``weights`` (class weights), plus ½·λ·‖W‖² over the weight matrices."""

    network: MLP
    loss: Loss
    X: np.ndarray
    Y: np.ndarray
    weights: np.ndarray | None = None
    weight_decay: float = 0.0

    def value_and_sides(self) -> tuple[float, list[np.ndarray]]:
        """The objective, and on which side of each kink every unit and output sits."""
        outputs = self.network.layer_outputs(self.X)
        value = self.loss.value(outputs[-1], self.Y, self.weights)
        if self.weight_decay:
            value += 0.5 * self.weight_decay * sum(float(np.vdot(W, W)) for W in self.network.weights)
        return value, self._kink_sides(outputs)

    def rounding_scale(self) -> float:
        """How far rounding can move the objective, in units of machine-ε: by its own size, and
        by Σ|p·∂L/∂p| over the outputs p, what rounding each output (relatively, by machine-ε)
        does to the loss. (About 1 for cross-entropy, however small the loss; large for a
        regression fitting large targets closely: large outputs, small loss.)"""
        value, _ = self.value_and_sides()
        output = self.network.forward(self.X)
        return max(abs(value), float(np.abs(output * self.loss.gradient(output, self.Y, self.weights)).sum()))

    def backprop_gradients(self) -> list[np.ndarray]:
        """Every parameter's gradient as training forms it (copies, in parameters() order): the
        network's backward pass, then the optimizers' ``λ·W`` for weight matrices."""
        self.network.loss_and_gradients(self.X, self.Y, self.loss, self.weights)
        gradients = [g.copy() for g in self.network.gradients()]
        if self.weight_decay:
            for gradient, param, is_weight in zip(gradients, self.network.parameters(), self.network.decay_mask()):
                if is_weight:
                    gradient += self.weight_decay * param
        return gradients

    def _kink_sides(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        # ReLU and leaky ReLU: a unit's output is > 0 exactly where its input is.
        sides = [a > 0 for a, act in zip(outputs, self.network.activations) if act.name in KINKED_ACTIVATIONS]
        residual = outputs[-1] - self.Y
        if self.loss.name == "mae":
            sides.append(np.sign(residual))
        elif self.loss.name == "huber":
            sides.append(np.sign(residual) * (np.abs(residual) > self.loss.params["delta"]))
        return sides


@dataclass
class ParameterCheck:
    """One weight matrix or bias vector, checked."""

    layer: int  # 1-based, as in the model file (W1, b1, …)
    name: str  # "W" or "b"
    shape: tuple[int, ...]
    checked: int  # entries compared
    skipped: int  # entries whose ±ε evaluations straddle a kink
    max_abs_error: float
    max_rel_error: float
    worst: tuple[int, ...] | None  # the entry with the largest relative error (None: nothing compared)
    analytic: float | None  # backpropagation's gradient at that entry
    numeric: float | None  # the central difference there

    @property
    def label(self) -> str:
        return f"{self.name}{self.layer}"

    def passes(self, tolerance: float) -> bool:
        return self.max_rel_error <= tolerance

    def to_json(self) -> dict:
        return {"layer": self.layer, "parameter": self.label, "shape": list(self.shape), "checked": self.checked,
                "skipped_at_kinks": self.skipped, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "worst": None if self.worst is None else list(self.worst),
                "analytic": self.analytic, "numeric": self.numeric}


def check_gradients(
    objective: Objective,
    eps: float = 1e-6,
    samples: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[ParameterCheck]:
    """Compare backpropagation with central differences for every parameter of the objective's
    network (which must be float64), or for ``samples`` entries of each array drawn with ``rng``.
    The parameters are perturbed in place and restored exactly."""
    network = objective.network
    if network.dtype != np.float64:
        raise ValueError("gradient checks run in float64")
    analytic = objective.backprop_gradients()
    resolution = np.finfo(np.float64).eps * objective.rounding_scale() / eps
    labels = [(layer, name) for layer, b in enumerate(network.biases, start=1) for name in ("W", "b")
              if name == "W" or b is not None]
    results = []
    for param, gradient, (layer, name) in zip(network.parameters(), analytic, labels):
        entries = _entries(param.shape, samples, rng)
        numeric = np.empty(len(entries))
        kinked = np.zeros(len(entries), dtype=bool)
        for i, index in enumerate(entries):
            original = param[index]
            param[index] = original + eps
            plus, plus_sides = objective.value_and_sides()
            param[index] = original - eps
            minus, minus_sides = objective.value_and_sides()
            param[index] = original
            kinked[i] = not all(np.array_equal(p, m) for p, m in zip(plus_sides, minus_sides))
            numeric[i] = (plus - minus) / (2 * eps)
        chosen = np.array([gradient[index] for index in entries], dtype=np.float64)
        results.append(_compare(layer, name, param.shape, entries, chosen, numeric, resolution, kinked))
    return results


def _entries(shape: tuple[int, ...], samples: int | None, rng: np.random.Generator | None) -> list[tuple[int, ...]]:
    size = int(np.prod(shape))
    if samples is None or samples >= size:
        return list(np.ndindex(shape))
    rng = rng if rng is not None else np.random.default_rng(0)
    flat = np.sort(rng.choice(size, size=samples, replace=False))  # in memory order: reads as a scan
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def _compare(layer, name, shape, entries, analytic, numeric, resolution, kinked) -> ParameterCheck:
    keep = ~kinked
    skipped = int(kinked.sum())
    a, n = analytic[keep], numeric[keep]
    if not len(a):
        return ParameterCheck(layer, name, shape, 0, skipped, 0.0, 0.0, None, None, None)
    error = np.abs(a - n)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(n)), max(RESOLUTION_MARGIN * resolution, 1e-300))
    relative = error / scale
    worst = int(np.argmax(relative))
    kept = [index for index, k in zip(entries, keep) if k]
    return ParameterCheck(layer, name, tuple(shape), int(keep.sum()), skipped, float(error.max()), float(relative.max()),
                          tuple(int(i) for i in kept[worst]), float(a[worst]), float(n[worst]))
