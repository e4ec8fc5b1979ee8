"""Preparing arrays for a network: one-hot targets, column scaling, the validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def one_hot(codes: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    out = np.zeros((len(codes), n_classes), dtype=dtype)
    out[np.arange(len(codes)), codes] = 1
    return out


@dataclass
class Scaler:
    """``(x - offset) / scale`` per column; statistics come from the training split only."""

    method: str  # standard | minmax | none
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, method: str) -> "Scaler":
        columns = X.shape[1]
        if method == "standard":
            offset, scale = X.mean(axis=0), X.std(axis=0)
        elif method == "minmax":
            offset, scale = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        elif method == "none":
            offset, scale = np.zeros(columns), np.ones(columns)
        else:
            raise ValueError(f"unknown normalisation {method!r}")
        # A constant column carries no information; scaling it by 1 keeps it finite (0).
        scale = np.where(scale > 0, scale, 1.0)
        return cls(method, offset.astype(np.float64), scale.astype(np.float64))

    def transform(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        if self.method == "none":
            return X.astype(dtype, copy=False)
        return ((X - self.offset) / self.scale).astype(dtype, copy=False)

    def inverse(self, Y: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return Y
        return Y * self.scale.astype(Y.dtype) + self.offset.astype(Y.dtype)

    def to_json(self) -> dict:
        return {"method": self.method, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "Scaler":
        return cls(data["method"], np.asarray(data["offset"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64))


def split_indices(n: int, fraction: float, rng: np.random.Generator, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices; the validation part is ``round(n * fraction)`` rows."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    n_validation = int(round(n * fraction))
    return order[n_validation:], order[:n_validation]
