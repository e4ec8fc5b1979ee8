"""Weight initialisers: ``init(rng, fan_in, fan_out, dtype, **params) -> W (fan_in, fan_out)``.

Biases always start at zero, as in Keras (scikit-learn and PyTorch draw them at random too);
only weights are drawn.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Initialiser = Callable[..., np.ndarray]


def he(rng: np.random.Generator, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """He et al. (2015): normal with std sqrt(2 / fan_in), suited to ReLU layers."""
    return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(dtype)


def xavier(rng: np.random.Generator, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """Glorot & Bengio (2010), uniform: limit sqrt(6 / (fan_in + fan_out)), suited to tanh."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


def lecun(rng: np.random.Generator, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """LeCun (1998): normal with std sqrt(1 / fan_in)."""
    return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)).astype(dtype)


def normal(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype, std: float = 0.05
) -> np.ndarray:
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype)


def uniform(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype, limit: float = 0.05
) -> np.ndarray:
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


def constant(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype, value: float = 0.0
) -> np.ndarray:
    return np.full((fan_in, fan_out), value, dtype=dtype)


INITIALISERS: dict[str, Initialiser] = {
    fn.__name__: fn for fn in (he, xavier, lecun, normal, uniform, constant)
}


def get_initialiser(name: str) -> Initialiser:
    try:
        return INITIALISERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown initialiser {name!r}. Expected one of: {', '.join(INITIALISERS)}"
        ) from None
