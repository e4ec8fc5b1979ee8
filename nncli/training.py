"""The epoch/batch loop.  Reports progress through a reporter object; never prints."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from nncli.core.losses import Loss
from nncli.core.metrics import METRICS
from nncli.core.network import MLP
from nncli.errors import TrainingError


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float  # mean over the epoch's samples of the loss each batch had
    train_metric: Optional[float]  # accuracy (classification) or R² (regression), running over the epoch
    val_loss: Optional[float]
    val_metric: Optional[float]
    seconds: float

    def to_json(self, metric_name: str) -> dict:
        """Plain dict with the metric named, e.g. ``val_accuracy``."""
        record = asdict(self)
        record[f"train_{metric_name}"] = record.pop("train_metric")
        record[f"val_{metric_name}"] = record.pop("val_metric")
        return record


class Reporter:
    """Receives progress; the command-line layer subclasses it to draw tables and bars."""

    def on_epoch_start(self, epoch: int, batches: int) -> None: ...

    def on_batch(self, epoch: int, batch: int) -> None: ...

    def on_epoch_end(self, record: EpochRecord) -> None: ...


def evaluate(network: MLP, loss: Loss, metric: str, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    output = network.forward(X)
    return loss.value(output, Y), METRICS[metric][0](output, Y)


def fit(
    network: MLP,
    loss: Loss,
    optimizer,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    shuffle: bool = True,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    metric: str,
    reporter: Reporter | None = None,
) -> list[EpochRecord]:
    """Mini-batch gradient descent for ``epochs`` passes over ``(X, Y)``.

    Raises :class:`TrainingError` as soon as the loss or a weight stops being finite, so a
    diverged network is never handed back (or saved).
    """
    # Overflow while diverging is detected below and reported as one clear error; NumPy's
    # RuntimeWarnings would only add noise on stderr.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _fit(network, loss, optimizer, X, Y, epochs, batch_size, rng, shuffle, validation, metric, reporter or Reporter())


def _fit(network, loss, optimizer, X, Y, epochs, batch_size, rng, shuffle, validation, metric, reporter) -> list[EpochRecord]:
    n = len(X)
    batches = -(-n // batch_size)
    history: list[EpochRecord] = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        reporter.on_epoch_start(epoch, batches)
        if shuffle:
            # One gather per epoch; the batches below are then cheap contiguous views.
            order = rng.permutation(n)
            X_epoch, Y_epoch = X[order], Y[order]
        else:
            X_epoch, Y_epoch = X, Y
        weighted_loss = 0.0
        running = METRICS[metric][1](Y)
        for batch, start in enumerate(range(0, n, batch_size), start=1):
            X_batch = X_epoch[start : start + batch_size]
            Y_batch = Y_epoch[start : start + batch_size]
            value, output = network.loss_and_gradients(X_batch, Y_batch, loss)
            if not np.isfinite(value):
                raise TrainingError(
                    f"training diverged: the loss became {value} in epoch {epoch}, batch {batch}; "
                    f"try a lower learning rate (now {getattr(optimizer, 'learning_rate', '?')}). No model was written."
                )
            optimizer.step(network.parameters(), network.gradients())
            weighted_loss += value * len(X_batch)
            running.update(output, Y_batch)
            reporter.on_batch(epoch, batch)
        if not all(np.isfinite(p).all() for p in network.parameters()):
            raise TrainingError(
                f"training diverged: weights became non-finite in epoch {epoch}; "
                "try a lower learning rate. No model was written."
            )
        val_loss = val_metric = None
        if validation is not None and len(validation[0]):
            val_loss, val_metric = evaluate(network, loss, metric, *validation)
        record = EpochRecord(
            epoch, weighted_loss / n, running.result(), val_loss, val_metric, time.perf_counter() - started
        )
        history.append(record)
        reporter.on_epoch_end(record)
    return history
