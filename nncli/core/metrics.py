"""Evaluation metrics: whole-array functions and running (per-batch) versions of them."""

from __future__ import annotations

import numpy as np


def accuracy(probabilities: np.ndarray, one_hot: np.ndarray) -> float:
    """Fraction of rows whose most probable class is the labelled one."""
    return float(np.mean(probabilities.argmax(axis=1) == one_hot.argmax(axis=1)))


def _r2(residual: np.ndarray, total: np.ndarray) -> float | None:
    """R² per target column from its sums of squares, averaged (as scikit-learn does).

    A constant target column has no variance to explain: it scores 1 when predicted exactly
    and 0 otherwise, as in scikit-learn.  When no column varies at all (a single row, say)
    R² means nothing and is None.
    """
    if not (total > 0).any():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual == 0, 1.0, 0.0))
    return float(scores.mean())


def r2_score(prediction: np.ndarray, target: np.ndarray) -> float | None:
    return _r2(((target - prediction) ** 2).sum(axis=0), ((target - target.mean(axis=0)) ** 2).sum(axis=0))


class RunningAccuracy:
    """Accuracy accumulated over the batches of an epoch, from outputs already computed."""

    def __init__(self, targets: np.ndarray) -> None:
        self.correct = 0
        self.count = 0

    def update(self, probabilities: np.ndarray, one_hot: np.ndarray) -> None:
        self.correct += int(np.count_nonzero(probabilities.argmax(axis=1) == one_hot.argmax(axis=1)))
        self.count += len(probabilities)

    def result(self) -> float:
        return self.correct / self.count


class RunningR2:
    """R² over an epoch's batches: squared errors accumulate, the total variance is fixed."""

    def __init__(self, targets: np.ndarray) -> None:
        self.total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0).astype(np.float64)
        self.residual = np.zeros_like(self.total)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        diff = prediction - target
        self.residual += np.einsum("ij,ij->j", diff, diff)

    def result(self) -> float | None:
        return _r2(self.residual, self.total)


# name -> (whole-array function, running accumulator)
METRICS = {"accuracy": (accuracy, RunningAccuracy), "r2": (r2_score, RunningR2)}
