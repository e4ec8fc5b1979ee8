"""The epoch/batch loop as a resumable state machine.  Reports progress through a reporter
object and never prints.

Everything that changes while training (weights, optimizer moments, the random streams, the
position inside an epoch, the history, early-stopping and schedule state) lives in a
:class:`Trainer` and can be saved with :meth:`Trainer.state` and restored with
:meth:`Trainer.load_state`, so an interrupted run resumes with bit-identical results.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from nncli.core.losses import Loss
from nncli.core.metrics import METRICS
from nncli.core.monitor import Improvement, minimizes
from nncli.core.network import MLP
from nncli.core.optimizers import Optimizer
from nncli.core.preprocess import chunked_permutation
from nncli.core.rows import RowSource, in_memory
from nncli.core.schedules import Schedule
from nncli.errors import TrainingError


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float  # mean over the epoch's samples of the loss their batch had (before its update)
    train_metric: Optional[float]  # accuracy (classification) or R² (regression), running over the epoch
    val_loss: Optional[float]
    val_metric: Optional[float]
    seconds: float
    learning_rate: float
    best: bool = False  # a new best of the early-stopping monitor

    def to_json(self, metric_name: str) -> dict:
        """Plain dict with the metric named, e.g. ``val_accuracy``."""
        record = asdict(self)
        record[f"train_{metric_name}"] = record.pop("train_metric")
        record[f"val_{metric_name}"] = record.pop("val_metric")
        return record

    @classmethod
    def from_json(cls, record: dict, metric_name: str) -> "EpochRecord":
        record = dict(record)
        record["train_metric"] = record.pop(f"train_{metric_name}")
        record["val_metric"] = record.pop(f"val_{metric_name}")
        return cls(**record)


class Reporter:
    """Receives progress; the command-line layer subclasses it to draw tables and bars."""

    def on_epoch_start(self, epoch: int, batches: int) -> None: ...

    def on_batch(self, epoch: int, batch: int) -> None: ...

    def on_epoch_end(self, record: EpochRecord) -> None: ...


class StopRequested(Exception):
    """Training stopped after a batch because it was asked to (Ctrl-C, SIGTERM)."""


@dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    mode: str = "auto"


@dataclass
class TrainingPlan:
    """What a run trains and how: fixed for the whole run (and checked again on resume)."""

    network: MLP
    loss: Loss
    optimizer: Optimizer
    schedule: Schedule
    X: np.ndarray | RowSource  # a RowSource: data bigger than memory, read from disk a window at a time
    Y: np.ndarray
    epochs: int
    batch_size: int
    metric: str  # "accuracy" or "r2"
    shuffle: bool = True
    sample_weights: Optional[np.ndarray] = None  # class weights, one per training row
    validation: Optional[tuple[np.ndarray | RowSource, np.ndarray]] = None
    clip_norm: Optional[float] = None
    early_stopping: Optional[EarlyStopping] = None
    schedule_monitor: Optional[str] = None  # reduce-on-plateau watches this
    checkpoint_every: int = 0


def evaluate(network: MLP, loss: Loss, metric: str, X: np.ndarray | RowSource, Y: np.ndarray) -> tuple[float, Optional[float]]:
    if in_memory(X):
        output = network.forward(X)
        return loss.value(output, Y), METRICS[metric][0](output, Y)
    # Rows read a block at a time: the loss is the mean of the blocks' means weighted by their
    # rows; the metric is accumulated as during an epoch.
    total, running = 0.0, METRICS[metric][1](Y)
    for first, rows in X.blocks():
        output, targets = network.forward(rows), Y[first : first + len(rows)]
        total += loss.value(output, targets) * len(rows)
        running.update(output, targets)
    return total / len(X), running.result()


class EarlyStopper:
    """Early stopping: watches a metric epoch by epoch, keeps a copy of the best epoch's
    weights, and says when patience has run out."""

    def __init__(self, settings: EarlyStopping):
        self.monitor = settings.monitor
        self.tracker = Improvement(settings.patience, settings.min_delta, minimizes(settings.monitor, settings.mode))
        self.best_epoch: Optional[int] = None
        self.best_parameters: Optional[list[np.ndarray]] = None

    def observe(self, epoch: int, values: dict, parameters: list[np.ndarray]) -> bool:
        """Record an epoch's metrics; True when it is the best epoch so far (whatever
        min_delta is: min_delta only decides patience, so the weights kept are the best's)."""
        value = values[self.monitor]
        if value is None or not self.tracker.update(value):
            return False
        self.best_epoch = epoch
        self.best_parameters = [p.copy() for p in parameters]
        return True

    @property
    def exhausted(self) -> bool:
        return self.tracker.exhausted

    def restore_best(self, parameters: list[np.ndarray]) -> None:
        if self.best_parameters is not None:
            for param, best in zip(parameters, self.best_parameters):
                param[...] = best

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {} if self.best_parameters is None else {f"best.{i}": p for i, p in enumerate(self.best_parameters)}
        return {**self.tracker.state(), "best_epoch": self.best_epoch}, arrays

    def load_state(self, scalars: dict, arrays: dict[str, np.ndarray], count: int) -> None:
        self.tracker.load_state(scalars)
        self.best_epoch = scalars["best_epoch"]
        if "best.0" in arrays:
            self.best_parameters = [arrays[f"best.{i}"].copy() for i in range(count)]


class Trainer:
    def __init__(self, plan: TrainingPlan, shuffle_rng: np.random.Generator, dropout_rng: np.random.Generator):
        self.plan = plan
        self.shuffle_rng = shuffle_rng
        self.dropout_rng = dropout_rng
        self.epoch = 1  # the epoch in progress, or the next to start
        self.batch = 0  # batches of that epoch already done
        self.order: Optional[np.ndarray] = None  # that epoch's row order
        self.loss_sum = 0.0
        self.running = METRICS[plan.metric][1](plan.Y)
        self.epoch_seconds = 0.0
        self.history: list[EpochRecord] = []
        self.early_stopper = EarlyStopper(plan.early_stopping) if plan.early_stopping else None
        self.stopped_early = False
        self.stop_requested = False  # set from a signal handler; honoured after the current batch
        self.on_checkpoint: Optional[Callable[["Trainer"], None]] = None
        self._batch_buffers: Optional[tuple] = None

    @property
    def batches(self) -> int:
        return -(-len(self.plan.X) // self.plan.batch_size)

    @property
    def best_epoch(self) -> Optional[int]:
        """The epoch whose weights the model gets (None without early stopping)."""
        return None if self.early_stopper is None else self.early_stopper.best_epoch

    @property
    def tracker(self) -> Optional[Improvement]:
        return None if self.early_stopper is None else self.early_stopper.tracker

    @property
    def finished(self) -> bool:
        return self.stopped_early or self.epoch > self.plan.epochs

    def run(self, reporter: Reporter | None = None) -> list[EpochRecord]:
        """Train to the end (or until early stopping); then restore the best weights if watched.

        Raises :class:`TrainingError` as soon as the loss or a weight stops being finite, so a
        diverged network is never handed back (or saved), and :class:`StopRequested` after the
        batch during which ``stop_requested`` was set.
        """
        reporter = reporter or Reporter()
        # Overflow while diverging is detected below and reported as one clear error; NumPy's
        # RuntimeWarnings would only add noise on stderr.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            while not self.finished:
                self._run_epoch(reporter)
        if self.on_checkpoint is not None and self.plan.checkpoint_every:
            self.on_checkpoint(self)  # the final state, so `--resume` can extend the run
        if self.early_stopper is not None:
            self.early_stopper.restore_best(self.plan.network.parameters())
        return self.history

    def _start_epoch(self) -> None:
        plan = self.plan
        plan.optimizer.learning_rate = plan.schedule.rate(self.epoch)
        n = len(plan.X)
        if not plan.shuffle:
            self.order = np.arange(n)
        elif in_memory(plan.X):
            self.order = self.shuffle_rng.permutation(n)
        else:  # rows read from disk: blocks in a random order, rows shuffled within windows of blocks
            self.order = chunked_permutation(n, *plan.X.shuffle_blocks, self.shuffle_rng)
        self.loss_sum = 0.0
        self.running = METRICS[plan.metric][1](plan.Y)
        self.epoch_seconds = 0.0

    def _run_epoch(self, reporter: Reporter) -> None:
        plan = self.plan
        network, optimizer = plan.network, plan.optimizer
        if self.order is None:  # a new epoch (a restored one keeps its order and sums)
            self._start_epoch()
        started = time.perf_counter()
        reporter.on_epoch_start(self.epoch, self.batches)
        dropout_rng = self.dropout_rng if any(network.dropout) else None
        size = plan.batch_size
        while self.batch < self.batches:
            if self.stop_requested:  # asked during the last batch: stop at this clean boundary
                self.epoch_seconds += time.perf_counter() - started
                raise StopRequested()
            X_batch, Y_batch, w_batch = self._gather(self.batch * size, min(len(self.order), (self.batch + 1) * size))
            value, output = optimizer.minimize(network, plan.loss, X_batch, Y_batch, w_batch, dropout_rng, plan.clip_norm)
            if not np.isfinite(value):
                raise TrainingError(
                    f"training diverged: the loss became {value} in epoch {self.epoch}, batch {self.batch + 1}; "
                    f"try a lower learning rate (now {optimizer.learning_rate:g}). No model was written."
                )
            self.loss_sum += value * len(X_batch)
            self.running.update(output, Y_batch)
            self.batch += 1
            reporter.on_batch(self.epoch, self.batch)
        self.epoch_seconds += time.perf_counter() - started
        self._end_epoch(reporter)

    def _gather(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """The rows ``order[start:stop]``, copied into buffers reused for every batch (no
        allocation, and the copy is still in cache when the first matrix product reads it)."""
        plan = self.plan
        if self._batch_buffers is None:
            size = min(plan.batch_size, len(plan.X))  # a batch never holds more rows than the data
            self._batch_buffers = (
                np.empty((size, plan.X.shape[1]), plan.X.dtype),
                np.empty((size, plan.Y.shape[1]), plan.Y.dtype),
                None if plan.sample_weights is None else np.empty(size, plan.sample_weights.dtype),
            )
        X_buffer, Y_buffer, w_buffer = self._batch_buffers
        rows, m = self.order[start:stop], stop - start
        # The rows come from a permutation of range(n), so no index can be out of range; with
        # mode="clip" NumPy also skips the temporary it otherwise fills before copying to `out`.
        if in_memory(plan.X):
            X = plan.X.take(rows, axis=0, out=X_buffer[:m], mode="clip")
        else:
            X = plan.X.gather(self.order, start, stop, X_buffer[:m])
        Y = plan.Y.take(rows, axis=0, out=Y_buffer[:m], mode="clip")
        w = None if w_buffer is None else plan.sample_weights.take(rows, out=w_buffer[:m], mode="clip")
        return X, Y, w

    def _end_epoch(self, reporter: Reporter) -> None:
        plan = self.plan
        parameters = plan.network.parameters()
        if not all(np.isfinite(p).all() for p in parameters):
            raise TrainingError(
                f"training diverged: weights became non-finite in epoch {self.epoch}; "
                "try a lower learning rate. No model was written."
            )
        val_loss = val_metric = None
        if plan.validation is not None and len(plan.validation[0]):
            val_loss, val_metric = evaluate(plan.network, plan.loss, plan.metric, *plan.validation)
        record = EpochRecord(
            self.epoch,
            self.loss_sum / len(plan.X),
            self.running.result(),
            val_loss,
            val_metric,
            self.epoch_seconds,
            plan.optimizer.learning_rate,
        )
        values = record.to_json(plan.metric)
        if self.early_stopper is not None:
            record.best = self.early_stopper.observe(self.epoch, values, parameters)
            self.stopped_early = self.early_stopper.exhausted
        if plan.schedule_monitor is not None:
            plan.schedule.observe(values[plan.schedule_monitor])
        self.history.append(record)
        reporter.on_epoch_end(record)
        self.epoch += 1
        self.batch = 0
        self.order = None
        due = plan.checkpoint_every and (record.epoch % plan.checkpoint_every == 0)
        if self.on_checkpoint is not None and due and not self.finished:
            self.on_checkpoint(self)

    # --- saving and restoring ----------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) holding everything needed to continue exactly."""
        plan = self.plan
        optimizer_scalars, optimizer_arrays = plan.optimizer.state()
        arrays = {f"param.{i}": p for i, p in enumerate(plan.network.parameters())}
        arrays.update({f"optimizer.{name}": a for name, a in optimizer_arrays.items()})
        early_scalars, early_arrays = self.early_stopper.state() if self.early_stopper else (None, {})
        arrays.update(early_arrays)
        if self.order is not None:
            arrays["order"] = self.order.astype(np.int64)
        scalars = {
            "epoch": self.epoch,
            "batch": self.batch,
            "loss_sum": self.loss_sum,
            "epoch_seconds": self.epoch_seconds,
            "running": self.running.state(),
            "history": [asdict(r) for r in self.history],
            "early_stopping": early_scalars,
            "stopped_early": self.stopped_early,
            "schedule": plan.schedule.state(),
            "optimizer": optimizer_scalars,
            "shuffle_rng": self.shuffle_rng.bit_generator.state,
            "dropout_rng": self.dropout_rng.bit_generator.state,
        }
        return scalars, arrays

    def load_state(self, scalars: dict, arrays: dict[str, np.ndarray]) -> None:
        plan = self.plan
        parameters = plan.network.parameters()
        for i, param in enumerate(parameters):
            param[...] = arrays[f"param.{i}"]
        plan.optimizer.load_state(
            scalars["optimizer"],
            {name[len("optimizer."):]: a for name, a in arrays.items() if name.startswith("optimizer.")},
            parameters,
        )
        self.epoch, self.batch = int(scalars["epoch"]), int(scalars["batch"])
        self.loss_sum, self.epoch_seconds = float(scalars["loss_sum"]), float(scalars["epoch_seconds"])
        self.running.load_state(scalars["running"])
        self.history = [EpochRecord(**r) for r in scalars["history"]]
        self.order = arrays["order"].astype(np.intp) if "order" in arrays else None
        early = scalars["early_stopping"]
        if self.early_stopper is not None and early is not None:
            self.early_stopper.load_state(early, arrays, len(parameters))
        self.stopped_early = bool(scalars["stopped_early"])
        plan.schedule.load_state(scalars["schedule"])
        self.shuffle_rng.bit_generator.state = scalars["shuffle_rng"]
        self.dropout_rng.bit_generator.state = scalars["dropout_rng"]
