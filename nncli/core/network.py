"""A fully-connected network (multi-layer perceptron) with backpropagation.

Shapes follow the guide: one sample per row, ``X (n, fan_in)``, ``W (fan_in, fan_out)``
(one row per neuron the connections come from, one column per neuron they lead to),
``b (fan_out,)``, ``z = x·W + b``, ``a = σ(z)``.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from nncli.core import threads
from nncli.core.activations import Activation, get_activation
from nncli.core.blas import gemm_into
from nncli.core.init import get_initialiser
from nncli.core.losses import Loss, output_delta

Array = np.ndarray


class MLP:
    def __init__(
        self,
        weights: Sequence[Array],
        biases: Sequence[Array | None],
        activations: Sequence[str | Activation],
        dropout: Sequence[float] | None = None,
    ):
        if not (len(weights) == len(biases) == len(activations)) or not weights:
            raise ValueError("weights, biases and activations need one entry per layer")
        for i, (W, b) in enumerate(zip(weights, biases), start=1):
            if W.ndim != 2 or (b is not None and b.shape != (W.shape[1],)):
                raise ValueError(f"layer {i}: W must be 2-D and b must have W.shape[1] entries")
            if i > 1 and W.shape[0] != weights[i - 2].shape[1]:
                raise ValueError(f"layer {i}: W has {W.shape[0]} rows, expected {weights[i - 2].shape[1]}")
        self.weights = list(weights)
        self.biases = list(biases)
        # By name (default parameters), or an Activation with its parameters bound (get_activation).
        self.activations: list[Activation] = [a if isinstance(a, Activation) else get_activation(a) for a in activations]
        # Dropout rate after each hidden layer (the output layer never drops).
        self.dropout = list(dropout) if dropout is not None else [0.0] * (len(weights) - 1)
        if len(self.dropout) != len(weights) - 1 or not all(0 <= rate < 1 for rate in self.dropout):
            raise ValueError("dropout needs one rate in [0, 1) per hidden layer")
        self._cache: tuple | None = None  # what the last forward(keep=True) left for backward
        self._workspace: dict[int, _Buffers] = {}
        self._gradients: tuple[list, list] | None = None  # see _gradient_buffers
        self.observer: Observer | None = None  # sees each pass as it is computed (nncli explain); training sets none

    @classmethod
    def initialise(
        cls,
        sizes: Sequence[int],
        activations: Sequence[str | Activation],
        rng: np.random.Generator,
        *,
        init: str = "he",
        init_params: dict | None = None,
        bias: bool = True,
        dropout: Sequence[float] | None = None,
        dtype=np.float32,
    ) -> "MLP":
        """A new network with layer ``sizes`` from input to output (the guide's notation)."""
        if len(sizes) < 2 or len(activations) != len(sizes) - 1:
            raise ValueError("need at least two layer sizes and one activation per weight layer")
        initialiser = get_initialiser(init)
        weights = [
            initialiser(rng, fan_in, fan_out, dtype, **(init_params or {}))
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
        ]
        biases = [np.zeros(W.shape[1], dtype=dtype) if bias else None for W in weights]
        return cls(weights, biases, activations, dropout)

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[0]] + [W.shape[1] for W in self.weights]

    @property
    def dtype(self) -> np.dtype:
        return self.weights[0].dtype

    @property
    def activation_names(self) -> list[str]:
        return [act.name for act in self.activations]

    @property
    def activation_params(self) -> list[dict]:
        return [dict(act.params) for act in self.activations]

    def parameters(self) -> list[Array]:
        """Every trainable array, in a fixed order matching :meth:`gradients`."""
        return [p for W, b in zip(self.weights, self.biases) for p in (W, b) if p is not None]

    @property
    def weight_grads(self) -> list[Array]:
        return self._gradient_buffers()[0]

    @property
    def bias_grads(self) -> list[Array | None]:
        return self._gradient_buffers()[1]

    def _gradient_buffers(self) -> tuple[list, list]:
        """Gradient buffers, allocated once and overwritten by every backward pass — only when
        one runs: a network loaded to predict never needs them (they are as big as the weights)."""
        if self._gradients is None:
            self._gradients = ([np.zeros_like(W) for W in self.weights],
                               [None if b is None else np.zeros_like(b) for b in self.biases])
        return self._gradients

    def gradients(self) -> list[Array]:
        return [g for gW, gb in zip(self.weight_grads, self.bias_grads) for g in (gW, gb) if g is not None]

    def parameter_count(self) -> int:
        return sum(p.size for p in self.parameters())

    def _buffers(self, rows: int) -> "_Buffers":
        if rows not in self._workspace:
            if len(self._workspace) >= 2:  # keep two: full batches and an epoch's last, shorter one
                self._workspace.clear()
            self._workspace[rows] = _Buffers(rows, self.sizes, self.dtype)
        return self._workspace[rows]

    def decay_mask(self) -> list[bool]:
        """For each array of :meth:`parameters`: is it a weight matrix (True) or a bias?"""
        return [flag for b in self.biases for flag in ((True, False) if b is not None else (True,))]

    def forward(self, X: Array, *, keep: bool = False, dropout_rng: np.random.Generator | None = None) -> Array:
        """The network's output for ``X``; ``keep=True`` caches what backward needs.

        With ``dropout_rng`` (training only) each hidden neuron is zeroed with its layer's
        dropout rate and the survivors are scaled by 1/(1 − rate) ("inverted dropout"), so
        nothing changes at prediction time.
        """
        inputs = [X]  # what each layer saw (after dropout); the last entry is the output
        activations = []  # each layer's activation output (before dropout), for its derivative
        masks = []
        a = X
        last = len(self.weights) - 1
        # Training reuses one set of buffers per batch size: no allocation (and no page
        # faults for large layers) per batch. Predictions get fresh arrays the caller may keep.
        buffers = self._buffers(len(X)) if keep else None
        for layer, (W, b, activation) in enumerate(zip(self.weights, self.biases, self.activations)):
            out = buffers.z[layer] if buffers else np.empty((len(a), W.shape[1]), np.result_type(a, W))
            threads.for_product(len(a), *W.shape, out.dtype)  # each product gets the BLAS threads its size pays for
            z = gemm_into(out, a, W)  # rounded the same on any thread count (core/blas.py)
            if b is not None:
                z += b
            if self.observer is not None:
                self.observer.forward(layer, a, z)  # before σ, which may overwrite z
            a = activation.forward(z)  # may reuse z's memory: z is ours
            activations.append(a)
            mask = None
            if dropout_rng is not None and layer < last and self.dropout[layer] > 0:
                rate = self.dropout[layer]
                mask = (dropout_rng.random(a.shape, dtype=a.dtype) >= rate) * a.dtype.type(1 / (1 - rate))
                a = a * mask
            masks.append(mask)
            inputs.append(a)
        if keep:
            self._cache = (inputs, activations, masks)
        return a

    def layer_outputs(self, X: Array) -> list[Array]:
        """Each layer's activation output for ``X``, first hidden layer to output (the last is
        ``forward(X)``), without dropout: the values backward differentiates through. Copies:
        a training forward pass reuses its buffers. (gradcheck reads which side of a ReLU's
        kink each unit is on.)"""
        self.forward(X, keep=True)
        _, activations, _ = self._cache
        self._cache = None
        return [a.copy() for a in activations]

    def backward(self, output_delta: Array, *, layer_step: LayerStep | None = None) -> None:
        """Fill the gradient buffers from dL/dz of the output layer (after ``forward(keep=True)``).

        With ``layer_step`` (an optimizer's step taken inside backpropagation, see
        :meth:`nncli.core.optimizers.Optimizer.minimize`) each layer is handed to it as soon as
        its gradient can be formed, instead of the weight gradient being written to its buffer;
        the layer's upstream gradient is computed first, from the weights as they were.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a preceding forward(X, keep=True)")
        inputs, activations, masks = self._cache
        weight_grads, bias_grads = self._gradient_buffers()
        delta = output_delta
        for layer in range(len(self.weights) - 1, -1, -1):
            W, b = self.weights[layer], self.biases[layer]
            gW, gb = weight_grads[layer], bias_grads[layer]
            if gb is not None:
                np.add.reduce(delta, axis=0, out=gb)  # the ufunc itself: no Python wrapper per batch
            upstream = None
            if layer > 0:  # the input layer needs no gradient
                threads.for_product(len(delta), W.shape[1], W.shape[0], W.dtype)
                upstream = gemm_into(self._buffers(len(delta)).upstream[layer - 1], delta, W.T)
            if layer_step is not None:
                layer_step(W, b, inputs[layer], delta, gb)
            else:
                threads.for_product(W.shape[0], len(delta), W.shape[1], W.dtype)
                gemm_into(gW, inputs[layer].T, delta)
            if self.observer is not None:
                self.observer.backward(layer, delta, upstream)  # before σ′ turns upstream into the next delta
            if upstream is not None:
                if masks[layer - 1] is not None:
                    upstream *= masks[layer - 1]
                delta = self.activations[layer - 1].backward(upstream, activations[layer - 1])
        self._cache = None

    def loss_and_gradients(
        self,
        X: Array,
        Y: Array,
        loss: Loss,
        weights: Array | None = None,
        dropout_rng: np.random.Generator | None = None,
        layer_step: LayerStep | None = None,
    ) -> tuple[float, Array]:
        """Mean loss on the batch and the network's output; leaves dL/dθ in the gradient buffers
        (or, with ``layer_step``, hands each layer's gradient to that step, see :meth:`backward`).
        A loss that is not finite (a diverged network) is returned at once: no gradient, no step.

        Backpropagation is linear in the output delta, so a step that scales every gradient by
        the same factor (plain gradient descent's rate) is folded into the delta: a few numbers
        scaled instead of every gradient.
        """
        output = self.forward(X, keep=True, dropout_rng=dropout_rng)
        value = loss.value(output, Y, weights)
        if not np.isfinite(value):
            self._cache = None
            return value, output
        delta = output_delta(loss, self.activations[-1], output, Y, weights)
        if layer_step is not None:
            delta *= layer_step.delta_scale
        self.backward(delta, layer_step=layer_step)
        return value, output


class LayerStep(Protocol):
    """An update taken inside backpropagation, one layer at a time (see Optimizer.minimize).

    Called with the layer's weights and bias (updated in place), the layer's input ``A``
    and its delta (already scaled by ``delta_scale``), and the bias gradient ``Σ delta``
    (``None`` without a bias); the weight gradient is ``Aᵀ·delta``.
    """

    delta_scale: float

    def __call__(self, W: Array, b: Array | None, A: Array, delta: Array, bias_gradient: Array | None) -> None: ...


class Observer(Protocol):
    """Watches a forward and backward pass of the real code (``MLP.observer``; nncli explain
    shows what it sees). It is handed views of buffers that the next pass overwrites: it copies
    what it keeps and changes nothing. ``layer`` counts from 0."""

    def forward(self, layer: int, x: Array, z: Array) -> None:
        """The layer's input (after the layer below's dropout) and ``z = x·W + b``."""

    def backward(self, layer: int, delta: Array, upstream: Array | None) -> None:
        """The layer's ``δ = ∂L/∂z`` and ``δ·Wᵀ`` (None for the first layer), before the
        layer below's dropout mask and σ′ are applied to it."""


class _Buffers:
    """Training scratch space for one batch size: each layer's pre-activation and each hidden
    layer's upstream gradient."""

    def __init__(self, rows: int, sizes: list[int], dtype):
        self.rows = rows
        self.z = [np.empty((rows, width), dtype=dtype) for width in sizes[1:]]
        self.upstream = [np.empty((rows, width), dtype=dtype) for width in sizes[1:-1]]
