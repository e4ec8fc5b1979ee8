"""A fully-connected network (multi-layer perceptron) with backpropagation.

Shapes follow the guide: one sample per row, ``X (n, fan_in)``, ``W (fan_in, fan_out)``
(one row per neuron the connections come from, one column per neuron they lead to),
``b (fan_out,)``, ``z = x·W + b``, ``a = σ(z)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nncli.core.activations import Activation, get_activation
from nncli.core.init import get_initialiser
from nncli.core.losses import Loss, output_delta

Array = np.ndarray


class MLP:
    def __init__(
        self,
        weights: Sequence[Array],
        biases: Sequence[Array | None],
        activations: Sequence[str],
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
        self.activations: list[Activation] = [get_activation(name) for name in activations]
        # Gradient buffers are allocated once and overwritten by every backward pass.
        self.weight_grads = [np.zeros_like(W) for W in self.weights]
        self.bias_grads = [None if b is None else np.zeros_like(b) for b in self.biases]
        self._layer_outputs: list[Array] = []

    @classmethod
    def initialise(
        cls,
        sizes: Sequence[int],
        activations: Sequence[str],
        rng: np.random.Generator,
        *,
        init: str = "he",
        init_params: dict | None = None,
        bias: bool = True,
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
        return cls(weights, biases, activations)

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[0]] + [W.shape[1] for W in self.weights]

    @property
    def dtype(self) -> np.dtype:
        return self.weights[0].dtype

    @property
    def activation_names(self) -> list[str]:
        return [act.name for act in self.activations]

    def parameters(self) -> list[Array]:
        """Every trainable array, in a fixed order matching :meth:`gradients`."""
        return [p for W, b in zip(self.weights, self.biases) for p in (W, b) if p is not None]

    def gradients(self) -> list[Array]:
        return [g for gW, gb in zip(self.weight_grads, self.bias_grads) for g in (gW, gb) if g is not None]

    def parameter_count(self) -> int:
        return sum(p.size for p in self.parameters())

    def forward(self, X: Array, *, keep: bool = False) -> Array:
        """The network's output for ``X``; ``keep=True`` caches what backward needs."""
        outputs = [X]
        a = X
        for W, b, activation in zip(self.weights, self.biases, self.activations):
            z = a @ W
            if b is not None:
                z += b
            a = activation.forward(z)  # may reuse z's memory: z is ours
            outputs.append(a)
        self._layer_outputs = outputs if keep else []
        return a

    def backward(self, output_delta: Array) -> None:
        """Fill the gradient buffers from dL/dz of the output layer (after ``forward(keep=True)``)."""
        if not self._layer_outputs:
            raise RuntimeError("backward() needs a preceding forward(X, keep=True)")
        delta = output_delta
        for layer in range(len(self.weights) - 1, -1, -1):
            layer_input = self._layer_outputs[layer]
            np.matmul(layer_input.T, delta, out=self.weight_grads[layer])
            if self.bias_grads[layer] is not None:
                np.sum(delta, axis=0, out=self.bias_grads[layer])
            if layer > 0:  # the input layer needs no gradient
                upstream = delta @ self.weights[layer].T
                delta = self.activations[layer - 1].backward(upstream, layer_input)
        self._layer_outputs = []

    def loss_and_gradients(self, X: Array, Y: Array, loss: Loss) -> tuple[float, Array]:
        """Mean loss on the batch and the network's output; leaves dL/dθ in the gradient buffers."""
        output = self.forward(X, keep=True)
        value = loss.value(output, Y)
        self.backward(output_delta(loss, self.activations[-1], output, Y))
        return value, output
