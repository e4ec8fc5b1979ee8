"""Evaluation metrics on arrays (predictions and targets of the same shape)."""

from __future__ import annotations

import numpy as np


def accuracy(probabilities: np.ndarray, one_hot: np.ndarray) -> float:
    """Fraction of rows whose most probable class is the labelled one."""
    return float(np.mean(probabilities.argmax(axis=1) == one_hot.argmax(axis=1)))


def r2_score(prediction: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination, averaged over target columns (as scikit-learn does).

    A constant target column has no variance to explain: it scores 1 when predicted exactly
    and 0 otherwise, as in scikit-learn.
    """
    residual = ((target - prediction) ** 2).sum(axis=0)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual == 0, 1.0, 0.0))
    return float(scores.mean())
