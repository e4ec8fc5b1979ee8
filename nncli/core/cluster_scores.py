"""How good a clustering is: on its own (inertia, silhouette) and against known labels
(adjusted Rand index, normalised mutual information, purity).

Each is a few lines over a contingency table or a distance matrix; the tests check them
against scikit-learn's functions of the same names (which nncli itself does not need).
"""

from __future__ import annotations

import numpy as np

from nncli.core.kmeans import assign

# Silhouette compares every sampled row with every other: an (m, m) distance matrix. 2,000
# rows (32 MB) estimate the score to about ±0.01 and take well under a second.
SILHOUETTE_SAMPLE = 2000


def inertia(X: np.ndarray, centroids: np.ndarray) -> float:
    """Σ squared distance of each row to its nearest centroid."""
    return float(assign(X, centroids)[1].sum())


def sample_rows(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of the silhouette sample, in file order (all rows when there are few)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean over rows of (b − a) / max(a, b), where a is the row's mean distance to the rest
    of its cluster and b its mean distance to the nearest other cluster; 0 for a row alone in
    its cluster (as scikit-learn defines it). Give it a sample for big data
    (:func:`sample_rows`): the cost is quadratic."""
    codes, labels = np.unique(labels, return_inverse=True)
    if not 2 <= len(codes) <= len(X) - 1:
        raise ValueError("the silhouette needs between 2 and rows − 1 clusters")
    norms = np.einsum("ij,ij->i", X, X)
    distances = np.sqrt(np.maximum(norms[:, None] - 2 * (X @ X.T) + norms[None, :], 0.0))
    np.fill_diagonal(distances, 0.0)
    one_hot = np.zeros((len(X), len(codes)))
    one_hot[np.arange(len(X)), labels] = 1.0
    totals = distances @ one_hot  # (rows, clusters): summed distance of each row to each cluster
    sizes = one_hot.sum(axis=0)
    own = sizes[labels]
    a = totals[np.arange(len(X)), labels] / np.maximum(own - 1, 1)
    means = totals / sizes
    means[np.arange(len(X)), labels] = np.inf
    b = means.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), np.finfo(float).tiny), 0.0)
    return float(s.mean())


def contingency(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(classes, clusters) counts of rows with each pair of true label and cluster."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def adjusted_rand_index(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Agreement on pairs of rows (same group or not), corrected so that a random labelling
    scores 0 and a perfect one 1 (Hubert & Arabie 1985)."""
    table = contingency(truth, predicted)
    both, rows, columns = _pairs(table), _pairs(table.sum(axis=1)), _pairs(table.sum(axis=0))
    total = table.sum() * (table.sum() - 1) / 2
    expected = rows * columns / total if total else 0.0
    maximum = (rows + columns) / 2
    if maximum == expected:  # both labellings trivial (one group, or every row alone): they agree
        return 1.0
    return (both - expected) / (maximum - expected)


def _pairs(counts: np.ndarray) -> float:
    """Pairs of rows within each count, summed: Σ C(n, 2)."""
    return float((counts * (counts - 1) // 2).sum())


def _entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mutual information over the arithmetic mean of the two entropies (scikit-learn's
    default normalisation): 1 when each labelling determines the other, near 0 when
    independent."""
    table = contingency(truth, predicted).astype(np.float64)
    n = table.sum()
    p_true, p_pred = table.sum(axis=1) / n, table.sum(axis=0) / n
    if len(p_true) == 1 and len(p_pred) == 1:
        return 1.0
    joint = table / n
    nonzero = joint > 0
    mutual = float((joint[nonzero] * np.log(joint[nonzero] / np.outer(p_true, p_pred)[nonzero])).sum())
    mean_entropy = (_entropy(p_true) + _entropy(p_pred)) / 2
    return mutual / mean_entropy if mean_entropy > 0 else 0.0


def purity(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The share of rows whose cluster's most common true label is their own."""
    table = contingency(truth, predicted)
    return float(table.max(axis=0).sum() / table.sum())
