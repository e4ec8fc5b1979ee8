"""Evaluation metrics: whole-array functions and running (per-batch) versions of them."""

from __future__ import annotations

import numpy as np


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """Class index per row: the most probable class, or for a single sigmoid column p ≥ ½."""
    if probabilities.shape[1] == 1:
        return (probabilities[:, 0] >= 0.5).astype(np.intp)
    return probabilities.argmax(axis=1)


def accuracy(probabilities: np.ndarray, one_hot: np.ndarray) -> float:
    """Fraction of rows whose most probable class is the labelled one."""
    return float(np.mean(predicted_classes(probabilities) == predicted_classes(one_hot)))


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
    # In float64, as RunningR2: a float32 column of one repeated value (a pixel always blank in
    # the validation rows) has a float32 mean a rounding away from it, a variance of ~1e-15
    # instead of 0, and an R² of -1e11 that swamps the average.
    target = target.astype(np.float64)
    return _r2(((target - prediction) ** 2).sum(axis=0), ((target - target.mean(axis=0)) ** 2).sum(axis=0))


class RunningAccuracy:
    """Accuracy accumulated over the batches of an epoch, from outputs already computed."""

    def __init__(self, targets: np.ndarray) -> None:
        self.correct = 0
        self.count = 0

    def update(self, probabilities: np.ndarray, one_hot: np.ndarray) -> None:
        self.correct += int(np.count_nonzero(predicted_classes(probabilities) == predicted_classes(one_hot)))
        self.count += len(probabilities)

    def result(self) -> float:
        return self.correct / self.count

    def state(self) -> dict:
        return {"correct": self.correct, "count": self.count}

    def load_state(self, state: dict) -> None:
        self.correct, self.count = int(state["correct"]), int(state["count"])


class RunningR2:
    """R² over an epoch's batches: squared errors accumulate, the total variance is fixed."""

    def __init__(self, targets: np.ndarray) -> None:
        targets = targets.astype(np.float64)  # float32 targets near 1e20 would overflow when squared
        self.total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
        self.residual = np.zeros_like(self.total)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        diff = prediction - target
        self.residual += np.einsum("ij,ij->j", diff, diff)

    def result(self) -> float | None:
        return _r2(self.residual, self.total)

    def state(self) -> dict:
        return {"residual": self.residual.tolist()}  # exact: JSON keeps float64 digits

    def load_state(self, state: dict) -> None:
        self.residual = np.asarray(state["residual"], dtype=np.float64)


# name -> (whole-array function, running accumulator)
METRICS = {"accuracy": (accuracy, RunningAccuracy), "r2": (r2_score, RunningR2)}
