"""Principal component analysis: the directions along which rows vary most, to draw many-
dimensional points (a layer's codes) on a page.

A centred SVD (as scikit-learn's PCA, without its randomised solvers): the rows minus their
mean, ``U S Vᵀ``; the first ``k`` rows of ``Vᵀ`` are the components, ``S²`` over its sum the
share of the variance each explains. An SVD's signs are arbitrary (−v is as good a direction
as v, and LAPACK may pick either), so each component is turned to have its largest entry
positive: the same rows then give the same picture on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Projection:
    mean: np.ndarray  # (d,): subtracted before projecting
    components: np.ndarray  # (k, d): unit directions, the most varying first
    explained: np.ndarray  # (k,): the share of the total variance along each (0 when the rows do not vary)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Rows (n, d) as their coordinates along the components (n, k)."""
        return (X - self.mean) @ self.components.T


def pca(X: np.ndarray, k: int = 2) -> Projection:
    """The first ``k`` principal components of the rows of ``X`` (n, d), in float64; k ≤ d."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0 or not 1 <= k <= X.shape[1]:
        raise ValueError(f"pca of {X.shape} rows into {k} components: need at least one row and 1 ≤ k ≤ the columns")
    mean = X.mean(axis=0)
    _, singular, Vt = np.linalg.svd(X - mean, full_matrices=False)
    components = Vt[:k]
    # Sign fix: each component's entry of largest magnitude is positive (the first of equals).
    largest = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
    components = components * np.where(largest < 0, -1.0, 1.0)[:, None]
    variance = singular**2
    total = variance.sum()
    explained = variance[:k] / total if total > 0 else np.zeros(k)
    if len(components) < k:  # fewer rows than components: the missing directions explain nothing
        extra = np.zeros((k - len(components), X.shape[1]))
        components, explained = np.vstack([components, extra]), np.concatenate([explained, np.zeros(k - len(explained))])
    return Projection(mean, components, explained)
