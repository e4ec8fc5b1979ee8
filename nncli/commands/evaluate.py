"""The `evaluate` service: a model's metrics on labelled CSV or Parquet data, and quality gates for CI.

Rows are streamed chunk by chunk; only sums (counts per class, sums of errors) are kept,
so a file of any size is evaluated in bounded memory, and a model of any width too: a chunk's
outputs (rows × classes) fit one block (``chunk_bytes_for``), and the confusion matrix
(classes × classes) is kept only up to MAX_CONFUSION_CLASSES.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.core.model import TrainedModel
from nncli.core.preprocess import class_targets, network_output
from nncli.errors import DataError, UsageError
from nncli.files.model import MODEL_THEN_DATA, load_model
from nncli.tabular.columns import (
    check_columns,
    chunk_bytes_for,
    chunk_features,
    model_chunks,
    outputs_for,
    text_columns_for,
)
from nncli.tabular.parse import listed, quoted
from nncli.tabular.stream import Chunk, CsvStream
from nncli.tabular.tables import header_place, open_table

HIGHER_IS_BETTER = {"accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "r2"}
FRACTIONS = HIGHER_IS_BETTER - {"r2"}
LOWER_IS_BETTER = {"loss", "mse", "mae"}
# The confusion matrix is classes × classes counts: 1,000 classes are 8 MB of int64 and a
# million numbers of JSON. Beyond that (a model file may list 30,000 classes: 7 GB) every score
# is still computed, from per-class counts, and the matrix is left out (null in --json).
MAX_CONFUSION_CLASSES = 1_000


@dataclass
class Evaluation:
    rows: int  # the rows evaluated
    metrics: dict[str, float]  # the gate-able numbers, by name
    per_class: list[dict] = field(default_factory=list)  # classification: one dict per class
    confusion: list[list[int]] | None = None  # rows = true class, columns = predicted class (None beyond MAX_CONFUSION_CLASSES)
    per_target: list[dict] = field(default_factory=list)  # regression: one dict per target
    rows_dropped: int = 0  # rows left out for a missing cell (a model trained with data.missing: drop_rows)
    reconstruction: bool = False  # an autoencoder's: per_target is the error per feature column

    @property
    def is_classification(self) -> bool:
        return bool(self.per_class)

    def to_json(self) -> dict:
        document = {"rows": self.rows, "rows_dropped": self.rows_dropped, "metrics": self.metrics}
        if self.is_classification:
            document["per_class"] = self.per_class
            document["confusion_matrix"] = self.confusion
        else:
            document["per_target"] = self.per_target
        if self.reconstruction:
            document["reconstruction"] = True
        return document


@dataclass
class EvaluateResult:
    model: str
    data: str
    evaluation: Evaluation
    gates: list["Gate"]
    failures: list[str]  # descriptions of the gates that failed

    def to_json(self) -> dict:
        metrics = self.evaluation.metrics
        gates = [
            {"metric": g.metric, "bound": g.bound, "direction": "min" if g.higher_is_better else "max",
             "value": metrics[g.metric], "passed": metrics[g.metric] is not None and g.passes(metrics[g.metric])}
            for g in self.gates
        ]
        return {"model": self.model, "data": self.data, **self.evaluation.to_json(), "gates": gates, "passed": not self.failures}

    @property
    def failure_message(self) -> str:
        return f"quality gate failed: {'; '.join(self.failures)} ({self.model} on {self.data})"


def evaluate(model_path: Path, data: str, fail_under: list[str] = (), fail_over: list[str] = ()) -> EvaluateResult:
    """`nncli evaluate`: the model's metrics on labelled data (a CSV or Parquet file, or - for CSV on stdin), and
    which of the gates (``METRIC=VALUE`` bounds) fail."""
    gates = [parse_gate(g, True) for g in fail_under] + [parse_gate(g, False) for g in fail_over]
    trained = load_model(model_path, MODEL_THEN_DATA)
    check_gate_metrics(trained, gates)
    with open_table(data, chunk_bytes_for(trained)) as stream:
        evaluation = evaluate_csv(trained, stream)
    return EvaluateResult(str(model_path), stream.name, evaluation, gates, failed_gates(evaluation, gates))


def evaluate_csv(model: TrainedModel, stream: CsvStream) -> Evaluation:
    missing_targets = [t for t in model.targets if t not in stream.header]
    if missing_targets:
        raise DataError(
            f"{header_place(stream.name)}: no target column {', '.join(map(repr, missing_targets))}; evaluation needs the labels"
        )
    check_columns(model, stream, [])
    text_columns = text_columns_for(model, stream.header, [])
    selection = _RowFilter(model)
    if model.is_classification:
        evaluation = _evaluate_classifier(model, stream, text_columns, selection)
    else:
        evaluation = _evaluate_regressor(model, stream, text_columns, selection)
    evaluation.rows_dropped = selection.dropped
    evaluation.reconstruction = model.autoencoder
    return evaluation


class _RowFilter:
    """Which of a chunk's rows are evaluated: all of them, except that a model trained with
    ``data.missing: drop_rows`` leaves out (and counts) the rows with a missing feature or
    target cell, as its training did. Any other model refuses a missing target."""

    def __init__(self, model: TrainedModel):
        self.model, self.drop = model, model.plan.missing == "drop_rows"
        self.dropped = 0

    def complete(self, chunk: Chunk, X: np.ndarray, missing_targets: np.ndarray) -> np.ndarray | None:
        """The rows to evaluate (None: every one), given the chunk's raw features ``X`` and
        which of its target cells are missing (rows × targets)."""
        if self.drop:
            complete = ~(np.isnan(X).any(axis=1) | missing_targets.any(axis=1))
            if complete.all():
                return None
            self.dropped += len(complete) - int(complete.sum())
            return np.flatnonzero(complete)
        if missing_targets.any():
            row, column = (int(i) for i in np.argwhere(missing_targets)[0])
            raise DataError(
                f"{chunk.where(row)}: column {quoted(self.model.targets[column])}: missing target value; evaluate needs "
                "every row's target (only a model trained with data.missing: drop_rows leaves such rows out)"
            )
        return None

    def require_some(self, stream: CsvStream, rows: int) -> None:
        if rows == 0 and self.dropped:
            raise DataError(
                f"{stream.name}: every one of its {self.dropped:,} rows has a missing cell and was dropped (the model "
                "was trained with data.missing: drop_rows); nothing to evaluate"
            )
        if rows == 0:
            raise DataError(f"{stream.name}: has a header but no data rows; nothing to evaluate")


def _evaluate_classifier(model: TrainedModel, stream: CsvStream, text_columns: list[str], selection: _RowFilter) -> Evaluation:
    loss, kind = model.loss_function, model.loss_function.kind
    k = len(model.classes)
    counts = _ClassCounts(k)
    loss_sum, rows = 0.0, 0
    for _, _, _, truth, probabilities in classified_chunks(model, stream, text_columns, selection):
        # The loss as training measured it: on the network's own output and target encoding.
        targets = class_targets(truth, k, kind, probabilities.dtype)
        loss_sum += loss.value(network_output(probabilities, kind), targets) * len(truth)
        counts.add(truth, probabilities.argmax(axis=1))
        rows += len(truth)
    return _classification_scores(model.classes, counts, loss_sum / rows)


def classified_chunks(model: TrainedModel, stream: CsvStream, text_columns: list[str], selection: _RowFilter
                      ) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]]:
    """Each chunk's rows as evaluate counts them (also what `nncli plot` draws): (chunk, their raw
    features, which of the chunk's rows they are (None: all), true class indices, class
    probabilities); at the end, an error if no row was left to count."""
    target, rows = model.targets[0], 0
    for chunk in model_chunks(model, stream, text_columns):
        codes = chunk.column(stream.header, target)  # NaN: a missing label
        X = chunk_features(model, stream, chunk, text_columns)
        chosen = selection.complete(chunk, X, np.isnan(codes)[:, None])
        if chosen is not None:
            X, codes = X[chosen], codes[chosen]
            if not len(chosen):
                continue
        truth = _true_classes(model, chunk, codes, chosen)
        probabilities = outputs_for(model, stream, chunk, X, chosen)
        rows += len(truth)
        yield chunk, X, chosen, truth, probabilities
    selection.require_some(stream, rows)


def _true_classes(model: TrainedModel, chunk: Chunk, codes: np.ndarray, chosen: np.ndarray | None) -> np.ndarray:
    """The class index of each label (``codes`` into the chunk's text values, of its rows
    ``chosen``: None for all); a label training never saw is an error naming its row."""
    target = model.targets[0]
    index = {label: i for i, label in enumerate(model.classes)}
    distinct = [label.strip() for label in chunk.text[target]]  # " cat" in a file is the class "cat"
    remap = np.array([index.get(label, -1) for label in distinct] or [-1], dtype=np.intp)
    truth = remap[codes.astype(np.intp)]
    unseen = np.flatnonzero(truth < 0)
    if len(unseen):
        row = int(unseen[0])
        label = distinct[int(codes[row])]
        raise DataError(
            f"{chunk.where(row if chosen is None else int(chosen[row]))}: column {quoted(target)}: label {quoted(label)} "
            f"does not occur in the training data (classes: {listed(model.classes)})"
        )
    return truth


class _ClassCounts:
    """What the scores need, per class: right predictions, true and predicted counts (memory
    linear in the classes), and the full confusion matrix when there are few enough classes."""

    def __init__(self, k: int):
        self.k = k
        self.true_positive, self.support, self.predicted = (np.zeros(k, dtype=np.int64) for _ in range(3))
        self.confusion = np.zeros((k, k), dtype=np.int64) if k <= MAX_CONFUSION_CLASSES else None

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        k = self.k
        self.true_positive += np.bincount(truth[truth == predicted], minlength=k)
        self.support += np.bincount(truth, minlength=k)
        self.predicted += np.bincount(predicted, minlength=k)
        if self.confusion is not None:
            self.confusion += np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)


def _classification_scores(classes: list[str], counts: _ClassCounts, loss: float) -> Evaluation:
    """Accuracy, per-class precision/recall/F1 and their averages, from the per-class counts."""
    rows = int(counts.support.sum())
    true_positive = counts.true_positive.astype(np.float64)
    support = counts.support
    predicted = counts.predicted
    with np.errstate(divide="ignore", invalid="ignore"):
        # A class never predicted (or never present) has precision (recall) 0, as scikit-learn reports.
        precision = np.where(predicted > 0, true_positive / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, true_positive / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.where(precision + recall > 0, precision + recall, 1), 0.0)
    # Macro averages over the classes that occur in the data or the predictions, as
    # scikit-learn does: a class absent from both says nothing about this data.
    present = (support > 0) | (predicted > 0)
    metrics = {
        "loss": loss,
        "accuracy": float(true_positive.sum() / rows),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float((f1 * support).sum() / rows),
    }
    per_class = [
        {"class": label, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(classes, precision, recall, f1, support)
    ]
    confusion = None if counts.confusion is None else counts.confusion.tolist()
    return Evaluation(rows, metrics, per_class=per_class, confusion=confusion)


def _evaluate_regressor(model: TrainedModel, stream: CsvStream, text_columns: list[str], selection: _RowFilter) -> Evaluation:
    loss = model.loss_function
    sums = _RegressionSums(len(model.targets))
    loss_sum = 0.0
    for chunk, Y, prediction in regressed_chunks(model, stream, text_columns, selection):
        # The loss is measured as in training (normalised units when the target was normalised),
        # so it compares with the training run's val_loss; MSE/MAE/R² are in the target's units.
        scaler = model.target_scaler
        try:
            # Finite predictions and targets can still have errors (or squares, or sums of
            # them) beyond float64: 1e200 squared. A score of inf is no score.
            with np.errstate(over="raise", invalid="raise"):
                scaled_truth = Y if scaler is None else scaler.transform(Y)
                scaled_prediction = prediction if scaler is None else scaler.transform(prediction)
                loss_sum += loss.value(scaled_prediction, scaled_truth) * len(Y)
                sums.add(Y, prediction)
        except FloatingPointError:
            raise DataError(
                f"{chunk.where(0)}: in the {len(chunk.values):,} rows from here, the errors of {model.source}'s predictions "
                f"(up to {np.abs(prediction).max():.3g}) against the targets (up to {np.abs(Y).max():.3g}) overflow "
                "float64: the loss and MSE cannot be computed"
            ) from None
    return sums.evaluation(model.targets, loss_sum / sums.rows)


def regressed_chunks(model: TrainedModel, stream: CsvStream, text_columns: list[str], selection: _RowFilter
                     ) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray]]:
    """Each chunk's rows as evaluate scores them (also what `nncli plot` draws): (chunk, their
    true values, the model's predictions), both float64 in the targets' units; at the end, an
    error if no row was left to score."""
    rows = 0
    for chunk in model_chunks(model, stream, text_columns):
        X = chunk_features(model, stream, chunk, text_columns)
        if model.autoencoder:  # the targets are the (numeric) features themselves: the reconstruction error
            Y = np.array(X, dtype=np.float64)
        else:
            Y = np.stack([chunk.numbers(stream.header, name, stream.name, text_columns) for name in model.targets], axis=1)  # NaN: missing
        chosen = selection.complete(chunk, X, np.isnan(Y))
        if chosen is not None:
            X, Y = X[chosen], Y[chosen]
            if not len(chosen):
                continue
        rows += len(Y)
        yield chunk, Y, outputs_for(model, stream, chunk, X, chosen).astype(np.float64)
    selection.require_some(stream, rows)


class _RegressionSums:
    """What MSE, MAE and R² need, accumulated chunk by chunk in bounded memory."""

    def __init__(self, targets: int):
        self.rows = 0
        self.mean, self.m2 = np.zeros(targets), np.zeros(targets)
        self.squared_error, self.absolute_error = np.zeros(targets), np.zeros(targets)

    def add(self, Y: np.ndarray, prediction: np.ndarray) -> None:
        error = prediction - Y
        # Mean and Σ(y − ȳ)² merged chunk by chunk (Chan et al.): exact even when the target's
        # mean dwarfs its spread, where Σy² − (Σy)²/n would cancel to nothing.
        n, k = self.rows, len(Y)
        chunk_mean = Y.mean(axis=0)
        delta = chunk_mean - self.mean
        self.m2 += ((Y - chunk_mean) ** 2).sum(axis=0) + delta**2 * (n * k / (n + k))
        self.mean += delta * (k / (n + k))
        self.squared_error += (error * error).sum(axis=0)
        self.absolute_error += np.abs(error).sum(axis=0)
        self.rows += k

    def evaluation(self, targets: list[str], loss: float) -> Evaluation:
        mse = self.squared_error / self.rows
        mae = self.absolute_error / self.rows
        # A target that does not vary has no R² here (None), where training's running R²
        # follows scikit-learn (1 if predicted exactly, else 0): a CI gate must not pass or
        # fail on that technicality.
        r2 = [(1 - se / t) if t > 0 else None for se, t in zip(self.squared_error, self.m2)]
        per_target = [
            {"target": name, "mse": float(a), "mae": float(b), "r2": None if c is None else float(c)}
            for name, a, b, c in zip(targets, mse, mae, r2)
        ]
        defined = [value for value in r2 if value is not None]
        metrics = {
            "loss": loss,
            "mse": float(mse.mean()),
            "mae": float(mae.mean()),
            "r2": float(np.mean(defined)) if defined else None,
        }
        if len(targets) > 1:
            for row in per_target:
                for key in ("mse", "mae", "r2"):
                    metrics[f"{key}_{row['target']}"] = row[key]
        return Evaluation(self.rows, metrics, per_target=per_target)


# --- quality gates ---------------------------------------------------------------------------
@dataclass
class Gate:
    metric: str
    bound: float
    higher_is_better: bool
    text: str = ""  # as given on the command line, for messages

    @property
    def flag(self) -> str:
        return "--fail-under" if self.higher_is_better else "--fail-over"

    def passes(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound

    def describe(self, value: float) -> str:
        relation = "<" if self.higher_is_better else ">"
        return f"{self.metric} {value:.4f} {relation} {self.bound:g}"


def parse_gate(text: str, higher_is_better: bool) -> Gate:
    flag = "--fail-under" if higher_is_better else "--fail-over"
    match = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*=\s*(\S+)\s*", text)
    if not match:
        raise UsageError(f"{flag} {text}: expected METRIC=VALUE, e.g. {flag} accuracy=0.95")
    metric, number = match.groups()
    try:
        bound = float(number)
    except ValueError:
        raise UsageError(f"{flag} {text}: {number!r} is not a number") from None
    if not np.isfinite(bound):
        raise UsageError(f"{flag} {text}: the bound must be a finite number")
    base = metric.split("_")[0] if metric.split("_")[0] in ("mse", "mae", "r2") else metric
    if higher_is_better and base in LOWER_IS_BETTER:
        raise UsageError(f"{flag} {text}: lower {metric} is better; use --fail-over {metric}={number}")
    if not higher_is_better and base in HIGHER_IS_BETTER:
        raise UsageError(f"{flag} {text}: higher {metric} is better; use --fail-under {metric}={number}")
    if base in FRACTIONS and not 0 <= bound <= 1:
        raise UsageError(f"{flag} {text}: {metric} is a fraction from 0 to 1 (95% is 0.95)")
    return Gate(metric, bound, higher_is_better, text)


def metric_names(model: TrainedModel) -> list[str]:
    """The metrics `evaluate` reports for this model (and so the ones a gate can name)."""
    if model.is_classification:
        return ["loss", "accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1"]
    names = ["loss", "mse", "mae", "r2"]
    if len(model.targets) > 1:
        names += [f"{key}_{target}" for target in model.targets for key in ("mse", "mae", "r2")]
    return names


def check_gate_metrics(model: TrainedModel, gates: list[Gate]) -> None:
    """Refuse a gate on a metric this model does not have, before reading any data."""
    available = metric_names(model)
    for gate in gates:
        if gate.metric not in available:
            close = difflib.get_close_matches(gate.metric, available, n=1) or [
                name for name in available if name.lower() == gate.metric.lower()]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"{gate.flag} {gate.text.strip()}: no metric {gate.metric!r} for this model; "
                             f"available: {', '.join(available)}{hint}")


def failed_gates(evaluation: Evaluation, gates: list[Gate]) -> list[str]:
    """Descriptions of the gates the evaluation fails (an undefined metric fails its gate)."""
    failures = []
    for gate in gates:
        value = evaluation.metrics[gate.metric]
        if value is None:
            failures.append(f"{gate.metric} is undefined for this data (the target does not vary)")
        elif not gate.passes(value):
            failures.append(gate.describe(value))
    return failures
