"""Central-difference gradient checking shared by the core tests."""

from __future__ import annotations

import numpy as np


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, perturbing ``x`` in place (float64 only)."""
    assert x.dtype == np.float64, "gradient checks run in float64"
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = f()
        x[index] = original - eps
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def assert_gradients_close(analytic: np.ndarray, numeric: np.ndarray, rtol: float = 1e-6) -> None:
    scale = max(np.abs(numeric).max(), np.abs(analytic).max(), 1e-8)
    error = np.abs(analytic - numeric).max() / scale
    assert error < rtol, f"relative gradient error {error:.2e} (analytic {analytic.ravel()[:4]}, numeric {numeric.ravel()[:4]})"
