"""Activation functions and their derivatives, kept together in one registry.

Every derivative is written from the layer's *output* ``a = f(z)`` (as scikit-learn does),
so the forward pass needs to cache only one array per layer.  Both directions may work in
place: ``forward`` may overwrite ``z`` and ``backward`` may overwrite ``da``; callers pass
arrays they own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    name: str
    forward: Callable[[Array], Array]  # z -> a
    backward: Callable[[Array, Array], Array]  # (dL/da, a) -> dL/dz
    hidden: bool = True  # usable on hidden layers (softmax is for output layers only)
    params: dict = field(default_factory=dict)  # e.g. leaky ReLU's slope; stored in the model file


def _identity(z: Array) -> Array:
    return z


def _identity_backward(da: Array, a: Array) -> Array:
    return da


def _relu(z: Array) -> Array:
    # Against a row of zeros, not the scalar 0: NumPy's vectorised maximum wants two arrays
    # and runs 3× faster than its loop with a scalar (broadcasting the row costs nothing;
    # a zeros array the size of z would cost page faults on large prediction batches).
    return np.maximum(z, np.zeros(z.shape[-1:], z.dtype), out=z)


def _relu_backward(da: Array, a: Array) -> Array:
    np.multiply(da, a > 0, out=da)
    return da


def _leaky_relu(z: Array, slope: float = 0.01) -> Array:
    return np.where(z > 0, z, z * slope)


def _leaky_relu_backward(da: Array, a: Array, slope: float = 0.01) -> Array:
    # a > 0 exactly where z > 0, because the slope is positive.
    da *= np.where(a > 0, 1, slope).astype(da.dtype, copy=False)
    return da


def _sigmoid(z: Array) -> Array:
    # 0.5 * (1 + tanh(z / 2)) equals 1 / (1 + exp(-z)) but never overflows.
    z *= 0.5
    np.tanh(z, out=z)
    z += 1
    z *= 0.5
    return z


def _sigmoid_backward(da: Array, a: Array) -> Array:
    da *= a * (1 - a)
    return da


def _tanh(z: Array) -> Array:
    return np.tanh(z, out=z)


def _tanh_backward(da: Array, a: Array) -> Array:
    da *= 1 - a * a
    return da


def _softplus(z: Array) -> Array:
    return np.logaddexp(0, z, out=z)


def _softplus_backward(da: Array, a: Array) -> Array:
    # d/dz log(1 + e^z) = sigmoid(z) = 1 - e^(-a); expm1 keeps precision when a is tiny.
    da *= -np.expm1(-a)
    return da


def _elu(z: Array) -> Array:
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def _elu_backward(da: Array, a: Array) -> Array:
    # For z <= 0, a = e^z - 1, so the derivative e^z is a + 1.
    negative = a <= 0
    da[negative] *= a[negative] + 1
    return da


def _softmax(z: Array) -> Array:
    # Shifting by the row maximum leaves softmax unchanged and keeps exp() from overflowing.
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _softmax_backward(da: Array, a: Array) -> Array:
    # Jacobian-vector product of softmax: a * (da - <da, a>) row by row.
    return a * (da - (da * a).sum(axis=1, keepdims=True))


ACTIVATIONS: dict[str, Activation] = {
    activation.name: activation
    for activation in (
        Activation("identity", _identity, _identity_backward),
        Activation("relu", _relu, _relu_backward),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_backward, params={"slope": 0.01}),
        Activation("elu", _elu, _elu_backward),
        Activation("sigmoid", _sigmoid, _sigmoid_backward),
        Activation("tanh", _tanh, _tanh_backward),
        Activation("softplus", _softplus, _softplus_backward),
        Activation("softmax", _softmax, _softmax_backward, hidden=False),
    )
}

HIDDEN_ACTIVATIONS = tuple(name for name, act in ACTIVATIONS.items() if act.hidden)


def get_activation(name: str, **params) -> Activation:
    """The activation ``name`` with its parameters bound (defaults for those not given)."""
    try:
        activation = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}. Expected one of: {', '.join(ACTIVATIONS)}"
        ) from None
    unknown = set(params) - set(activation.params)
    if unknown:
        raise ValueError(f"Activation {name!r} takes no parameter {sorted(unknown)[0]!r}. Expected: {', '.join(activation.params) or 'none'}")
    if not activation.params:
        return activation
    bound = {**activation.params, **params}
    return Activation(name, partial(activation.forward, **bound), partial(activation.backward, **bound), activation.hidden, bound)
