"""Optimizers update parameters in place from their gradients."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class SGD:
    """Plain (mini-batch) gradient descent, the guide's rule: ``w <- w - lr * dL/dw``."""

    name = "sgd"

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def step(self, parameters: Sequence[np.ndarray], gradients: Sequence[np.ndarray]) -> None:
        for param, grad in zip(parameters, gradients):
            # Scaling the gradient buffer in place avoids a temporary per parameter;
            # the buffer is rewritten by the next backward pass anyway.
            grad *= self.learning_rate
            param -= grad


OPTIMIZERS = {cls.name: cls for cls in (SGD,)}


def get_optimizer(name: str, **params) -> SGD:
    try:
        return OPTIMIZERS[name](**params)
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}. Expected one of: {', '.join(OPTIMIZERS)}") from None
