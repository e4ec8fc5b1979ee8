"""One step of gradient descent, traced for a learner to read (`nncli explain`).

Nothing here computes the network's numbers a second way. The forward and backward pass are
the network's own (:meth:`MLP.loss_and_gradients`, watched through ``MLP.observer``), and the
step is the optimizer's own :meth:`Optimizer.minimize`, called exactly as the trainer calls it
for a batch, so the weights after the step are, to the last bit, the ones `train` gets.

Two passes are made over the rows: the first, watched, is the plain route (gradients written
to their buffers) and gives the numbers of the trace; the second is the trainer's route, which
for plain gradient descent folds ε into δ and adds the product into W in one GEMM (see
core/optimizers.py) and so never forms ∂L/∂W: its δ would be ε·δ. Backpropagation is linear
in δ, so both routes compute the same gradients up to that factor's rounding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from nncli.core.losses import Loss
from nncli.core.network import MLP
from nncli.core.optimizers import Optimizer, clip_by_global_norm
from nncli.errors import TrainingError

Array = np.ndarray


@dataclass
class LayerTrace:
    """One weight layer's part of the step (the guide's notation: layer k maps x to h)."""

    activation: str
    x: Array  # the layer's input: the network's inputs, or the layer below's h (after its dropout)
    W: Array  # before the step
    b: Array | None
    z: Array  # x·W + b
    h: Array  # σ(z), before dropout; the output layer's is ŷ
    delta: Array  # ∂L/∂z
    grad_W: Array  # ∂L/∂W = xᵀ·δ
    grad_b: Array | None  # ∂L/∂b = Σ δ over the rows
    grad_h: Array | None = None  # ∂L/∂h = δ·Wᵀ of the layer above (hidden layers)
    derivative: Array | None = None  # σ′(z) (hidden layers), so that δ = ∂L/∂h ⊙ σ′(z)
    W_after: Array | None = None
    b_after: Array | None = None
    state: dict[str, dict[str, Array]] = field(default_factory=dict)  # optimizer slot -> {"W": …, "b": …} after the step


@dataclass
class StepTrace:
    X: Array
    Y: Array
    sample_weights: Array | None
    layers: list[LayerTrace]
    losses: Array  # each row's loss
    loss: float  # their (weighted) mean: what the step descends
    loss_gradient: Array | None  # ∂L/∂ŷ; None when the output layer's δ is fused (softmax + CE, sigmoid + BCE)
    optimizer: Optimizer  # after the step (its state, step count and rate)
    gradient_norm: float | None = None  # with clip_norm: the global norm before clipping
    output_after: Array | None = None  # ŷ on the same rows after the step
    losses_after: Array | None = None
    loss_after: float | None = None

    @property
    def output(self) -> Array:
        return self.layers[-1].h


def figure(value: float) -> str:
    """A number as the explanation writes it: four significant digits, a true minus sign."""
    text = f"{float(value):.4g}"
    return "0" if text in ("0", "-0") else text.replace("-", "−")


class _Watcher:
    """MLP.observer for the trace: copies every array it is shown."""

    def __init__(self, layers: int):
        self.x: list = [None] * layers
        self.z: list = [None] * layers
        self.delta: list = [None] * layers
        self.passed_down: list = [None] * layers  # δ·Wᵀ of layer k, the ∂L/∂h of layer k − 1

    def forward(self, layer: int, x: Array, z: Array) -> None:
        self.x[layer], self.z[layer] = x.copy(), z.copy()

    def backward(self, layer: int, delta: Array, upstream: Array | None) -> None:
        self.delta[layer] = delta.copy()
        self.passed_down[layer] = None if upstream is None else upstream.copy()


def trace_step(
    network: MLP,
    loss: Loss,
    optimizer: Optimizer,
    X: Array,
    Y: Array,
    weights: Array | None = None,
    dropout_rng: np.random.Generator | None = None,
    clip_norm: float | None = None,
) -> StepTrace:
    """Take one training step on ``X, Y`` (updating ``network`` and ``optimizer`` as the trainer
    would, ``dropout_rng`` included) and return everything it computed. A loss or weights that
    stop being finite raise TrainingError, as they stop the trainer."""
    # Overflow is reported as one clear error below, as the trainer reports it; NumPy's warnings would be noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        before = [(W.copy(), None if b is None else b.copy()) for W, b in zip(network.weights, network.biases)]
        watcher = _Watcher(len(network.weights))
        network.observer = watcher
        try:  # the watched pass draws the same dropout masks as the step's, from a copy of the stream
            value, output = network.loss_and_gradients(X, Y, loss, weights, copy.deepcopy(dropout_rng))
        finally:
            network.observer = None
        if not np.isfinite(value):
            raise TrainingError(f"the loss on these rows is {value}: there is no step to explain (try data.normalize: standard)")
        output = output.copy()
        gradients = [g.copy() for g in network.gradients()]
        fused = loss.kind.output_required and network.activations[-1].name == loss.kind.output
        trace = StepTrace(
            X=X, Y=Y, sample_weights=weights, layers=_layers(network, watcher, before, output, gradients),
            losses=loss.per_sample(output, Y, **loss.params), loss=value,
            loss_gradient=None if fused else loss.gradient(output, Y, weights), optimizer=optimizer,
            gradient_norm=None if clip_norm is None else clip_by_global_norm([g.copy() for g in gradients], clip_norm),
        )
        optimizer.minimize(network, loss, X, Y, weights, dropout_rng, clip_norm)  # the trainer's call, as it makes it
        _record_update(network, optimizer, trace.layers)
        after = network.forward(X)
        trace.output_after, trace.losses_after = after, loss.per_sample(after, Y, **loss.params)
        trace.loss_after = loss.value(after, Y, weights)
    if not (np.isfinite(trace.loss_after) and all(np.isfinite(p).all() for p in network.parameters())):
        raise TrainingError(f"the step diverged: the loss after it is {trace.loss_after}; "
                            f"try a lower learning rate (now {optimizer.learning_rate:g})")
    return trace


def _layers(network: MLP, watcher: _Watcher, before: list, output: Array, gradients: list[Array]) -> list[LayerTrace]:
    grads = iter(gradients)  # W1, b1, W2, b2, … as MLP.gradients() lists them
    layers = []
    last = len(network.weights) - 1
    for k, ((W, b), activation) in enumerate(zip(before, network.activations)):
        grad_W, grad_b = next(grads), None if b is None else next(grads)
        if k == last:
            h = output
        elif network.dropout[k] == 0:
            h = watcher.x[k + 1]  # what the layer above was given
        else:  # the layer above saw h after dropout; σ(z) itself, from the same function and z
            h = activation.forward(watcher.z[k].copy())
        layer = LayerTrace(activation.name, watcher.x[k], W, b, watcher.z[k], h, watcher.delta[k], grad_W, grad_b)
        if k < last:
            layer.grad_h = watcher.passed_down[k + 1]
            layer.derivative = activation.backward(np.ones_like(h), h)  # σ′(z), written from h as backward does
        layers.append(layer)
    return layers


def _record_update(network: MLP, optimizer: Optimizer, layers: list[LayerTrace]) -> None:
    """The weights after the step and the optimizer's state for each (slots follow the order of
    MLP.parameters(): W1, b1, W2, …)."""
    owners = [(k, name) for k, b in enumerate(network.biases) for name in ("W", "b") if name == "W" or b is not None]
    for k, layer in enumerate(layers):
        layer.W_after = network.weights[k].copy()
        b = network.biases[k]
        layer.b_after = None if b is None else b.copy()
    for slot, arrays in optimizer.slots.items():
        for (k, name), array in zip(owners, arrays):
            layers[k].state.setdefault(slot, {})[name] = array.copy()
