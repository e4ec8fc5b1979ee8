"""Optimizers update parameters in place from their gradients; each owns its update, taken
once per batch by :meth:`Optimizer.minimize` (the trainer's one update path).

All follow PyTorch's formulations (so their steps can be checked against it, or by hand):
``weight_decay`` is an L2 term ``wd·w`` added to the gradient (decoupled, ``w ← w − lr·wd·w``,
for AdamW) and applies to weight matrices only, never to biases.  Each optimizer's state
(momenta, moments, step count) can be saved and restored, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from nncli.core import threads
from nncli.core.blas import gemm_into
from nncli.core.losses import Loss
from nncli.core.network import MLP, LayerStep

Arrays = Sequence[np.ndarray]


class Optimizer:
    name = ""

    def __init__(self, learning_rate: float, weight_decay: float = 0.0, decay_mask: Sequence[bool] | None = None):
        self.learning_rate = learning_rate  # the schedule rewrites this every epoch
        self.weight_decay = weight_decay
        self.decay_mask = decay_mask
        self.slots: dict[str, list[np.ndarray]] = {}  # per-parameter state arrays
        self.steps = 0

    def minimize(
        self,
        network: MLP,
        loss: Loss,
        X: np.ndarray,
        Y: np.ndarray,
        weights: Optional[np.ndarray] = None,
        dropout_rng: Optional[np.random.Generator] = None,
        clip_norm: Optional[float] = None,
    ) -> tuple[float, np.ndarray]:
        """One batch of training: forward, backward and this optimizer's update. Returns the
        batch's mean loss (before the update) and the network's output; a loss that is not
        finite changes nothing (the caller reports the divergence)."""
        in_backprop = self.layer_step() if clip_norm is None else None  # clipping needs every gradient first
        value, output = network.loss_and_gradients(X, Y, loss, weights, dropout_rng, layer_step=in_backprop)
        if not np.isfinite(value):
            return value, output
        if in_backprop is not None:
            self.steps += 1
            return value, output
        gradients = network.gradients()
        if clip_norm is not None:
            clip_by_global_norm(gradients, clip_norm)
        self.step(network.parameters(), gradients)
        return value, output

    def layer_step(self) -> Optional[LayerStep]:
        """This optimizer's update as a step backpropagation can take layer by layer, when it
        has one (it then needs no gradient buffers, and saves passes over every weight)."""
        return None

    def step(self, parameters: Arrays, gradients: Arrays) -> None:
        if not self.slots:
            self._create_slots(parameters)
        self.steps += 1
        for index, (param, grad) in enumerate(zip(parameters, gradients)):
            decays = self.weight_decay > 0 and (self.decay_mask is None or self.decay_mask[index])
            self._update(index, param, grad, decays)

    def _create_slots(self, parameters: Arrays) -> None: ...

    def _update(self, index: int, param: np.ndarray, grad: np.ndarray, decays: bool) -> None:
        raise NotImplementedError

    def _slot_zeros(self, parameters: Arrays, *names: str) -> None:
        for name in names:
            self.slots[name] = [np.zeros_like(p) for p in parameters]

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) that :meth:`load_state` turns back into this state."""
        arrays = {f"{name}.{i}": a for name, slot in self.slots.items() for i, a in enumerate(slot)}
        return {"name": self.name, "steps": self.steps, "learning_rate": self.learning_rate, "slots": sorted(self.slots)}, arrays

    def load_state(self, scalars: dict, arrays: dict[str, np.ndarray], parameters: Arrays) -> None:
        self.steps = int(scalars["steps"])
        self.learning_rate = float(scalars["learning_rate"])
        self.slots = {name: [arrays[f"{name}.{i}"] for i in range(len(parameters))] for name in scalars["slots"]}


class SGD(Optimizer):
    """Gradient descent, the guide's rule ``w ← w − lr·∂L/∂w``; with momentum (and Nesterov's
    variant) as in PyTorch: ``v ← μ·v + g``, ``w ← w − lr·v`` (Nesterov: ``w ← w − lr·(g + μ·v)``)."""

    name = "sgd"

    def __init__(self, learning_rate: float, momentum: float = 0.0, nesterov: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = momentum
        self.nesterov = nesterov

    def layer_step(self) -> Optional[LayerStep]:
        # The plain rule needs nothing but the gradient, so it is taken inside backpropagation.
        if self.momentum or self.weight_decay:
            return None
        return _DescendInBackprop(self.learning_rate)

    def _create_slots(self, parameters: Arrays) -> None:
        if self.momentum:
            self._slot_zeros(parameters, "velocity")

    def _update(self, index, param, grad, decays):
        if decays:
            grad += self.weight_decay * param  # the buffer is rewritten by the next backward pass
        if self.momentum:
            velocity = self.slots["velocity"][index]
            velocity *= self.momentum
            velocity += grad
            if self.nesterov:
                grad += self.momentum * velocity
            else:
                grad = velocity
            param -= self.learning_rate * grad
        else:
            # Scaling the gradient buffer in place avoids a temporary per parameter.
            grad *= self.learning_rate
            param -= grad


class _DescendInBackprop:
    """``W ← W − ε·Aᵀ·δ`` and ``b ← b − ε·Σδ`` for each layer as backpropagation reaches it,
    with ε already in δ: the weight gradient is added into ``W`` by the matrix product itself
    (see core/blas.py), while it is still in cache, instead of being written out and read back."""

    def __init__(self, learning_rate: float):
        self.delta_scale = learning_rate

    def __call__(self, W, b, A, delta, bias_gradient) -> None:
        threads.for_product(W.shape[0], len(delta), W.shape[1], W.dtype)  # Aᵀ·δ: (fan_in × batch)·(batch × fan_out)
        gemm_into(W, A.T, delta, alpha=-1.0, beta=1)
        if b is not None:
            b -= bias_gradient


class Adam(Optimizer):
    """Kingma & Ba (2015), with bias correction."""

    name = "adam"
    decoupled = False

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def _create_slots(self, parameters: Arrays) -> None:
        self._slot_zeros(parameters, "m", "v")

    def _update(self, index, param, grad, decays):
        if decays and self.decoupled:
            param -= (self.learning_rate * self.weight_decay) * param
        elif decays:
            grad += self.weight_decay * param
        m, v = self.slots["m"][index], self.slots["v"][index]
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        m_hat_scale = 1 / (1 - self.beta1**self.steps)
        v_hat_scale = 1 / (1 - self.beta2**self.steps)
        param -= (self.learning_rate * m_hat_scale) * m / (np.sqrt(v * v_hat_scale) + self.epsilon)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""

    name = "adamw"
    decoupled = True


class RMSprop(Optimizer):
    """Hinton's RMSprop as in PyTorch: ``s ← ρ·s + (1−ρ)·g²``, ``w ← w − lr·g/(√s + ε)``."""

    name = "rmsprop"

    def __init__(self, learning_rate: float, rho: float = 0.9, epsilon: float = 1e-8, momentum: float = 0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon, self.momentum = rho, epsilon, momentum

    def _create_slots(self, parameters: Arrays) -> None:
        self._slot_zeros(parameters, "square", *(["velocity"] if self.momentum else []))

    def _update(self, index, param, grad, decays):
        if decays:
            grad += self.weight_decay * param
        square = self.slots["square"][index]
        square *= self.rho
        square += (1 - self.rho) * grad * grad
        step = grad / (np.sqrt(square) + self.epsilon)
        if self.momentum:
            velocity = self.slots["velocity"][index]
            velocity *= self.momentum
            velocity += step
            step = velocity
        param -= self.learning_rate * step


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSprop)}


def get_optimizer(name: str, **params) -> Optimizer:
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}. Expected one of: {', '.join(OPTIMIZERS)}") from None
    return cls(**params)


def clip_by_global_norm(gradients: Arrays, max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``; returns the
    norm before clipping. The direction of the step is kept, only its length is capped."""
    # einsum, not np.vdot: BLAS's dot splits a long float64 vector between threads, which
    # rounds the sum differently on 1 and 2 (and the same config must give the same weights).
    norm = float(np.sqrt(sum(float(np.einsum("i,i->", g.ravel(), g.ravel())) for g in gradients)))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for grad in gradients:
            grad *= scale
    return norm
