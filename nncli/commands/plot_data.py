"""A model applied to labelled data for `nncli plot MODEL DATA`: its confusion counts, its most
confident mistakes, or its predictions against the true values.

The rows are read exactly as `evaluate` reads them (its chunks, encoding, row filter for
``data.missing: drop_rows``, label lookup and sums), so a plot's confusion matrix is the one
`nncli evaluate` prints, and its R² the one evaluate reports. Memory stays bounded whatever the
file's size: counts, the N best mistakes so far, and an evenly spaced sample of points.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# evaluate's own helpers, so that the rows and labels are the ones it counts (see the module's docstring)
from nncli.commands.evaluate import (
    MAX_CONFUSION_CLASSES,
    _ClassCounts,
    _RegressionSums,
    _RowFilter,
    classified_chunks,
    regressed_chunks,
)
from nncli.core.model import TrainedModel
from nncli.errors import DataError, UsageError
from nncli.plots.pictures import Confusion, Mistakes, Scatter
from nncli.tabular.columns import check_columns, text_columns_for
from nncli.tabular.stream import Chunk, CsvStream
from nncli.tabular.tables import header_place

MAX_SCATTER_POINTS = 20_000  # more points only blot the picture (and make an SVG heavy)


def confusion(model: TrainedModel, stream: CsvStream, normalize: bool) -> Confusion:
    counts = _ClassCounts(len(model.classes))
    if counts.confusion is None:
        raise UsageError(f"{model.source}: {len(model.classes):,} classes; a confusion matrix is drawn for at most {MAX_CONFUSION_CLASSES:,}")
    for _, _, _, truth, probabilities in _classified(model, stream):
        counts.add(truth, probabilities.argmax(axis=1))
    return Confusion(counts.confusion, list(model.classes), stream.name, normalize)


def mistakes(model: TrainedModel, stream: CsvStream, count: int, shape: tuple[int, int]) -> Mistakes:
    """The ``count`` wrong predictions with the highest probability for the class predicted
    (ties: the earlier row first), their inputs as images of ``shape``."""
    kept = _Kept(count, len(model.features))
    rows = wrong = 0
    for chunk, X, chosen, truth, probabilities in _classified(model, stream):
        predicted = probabilities.argmax(axis=1)
        missed = np.flatnonzero(predicted != truth)
        confidence = probabilities[missed, predicted[missed]].astype(np.float64)
        best = missed[np.lexsort((missed, -confidence))[:count]]  # this chunk's best candidates
        where = [chunk.where(int(i if chosen is None else chosen[i])) for i in best]
        kept.merge(rows + best, probabilities[best, predicted[best]], X[best], truth[best], predicted[best], where)
        rows, wrong = rows + len(truth), wrong + len(missed)
    classes = model.classes
    return Mistakes(kept.X.reshape(-1, *shape), [classes[i] for i in kept.truth], [classes[i] for i in kept.predicted],
                    kept.confidence, kept.where, rows, wrong, stream.name)


class _Kept:
    """The best ``count`` mistakes so far, by confidence then row order."""

    def __init__(self, count: int, features: int):
        self.count = count
        self.order, self.confidence = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.X = np.zeros((0, features))
        self.truth, self.predicted = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        self.where: list[str] = []

    def merge(self, order, confidence, X, truth, predicted, where) -> None:
        order = np.concatenate([self.order, order])
        confidence = np.concatenate([self.confidence, confidence.astype(np.float64)])
        chosen = np.lexsort((order, -confidence))[: self.count]
        where = self.where + where
        self.order, self.confidence = order[chosen], confidence[chosen]
        self.X = np.concatenate([self.X, X.astype(np.float64)])[chosen]
        self.truth = np.concatenate([self.truth, truth])[chosen]
        self.predicted = np.concatenate([self.predicted, predicted])[chosen]
        self.where = [where[i] for i in chosen]


def scatter(model: TrainedModel, stream: CsvStream) -> Scatter:
    """Predicted against true values of an evenly spaced sample of at most MAX_SCATTER_POINTS
    rows (every ``stride``-th row, the stride doubling as the file goes on), R² over all."""
    _check_targets(model, stream)
    check_columns(model, stream, [])
    text_columns = text_columns_for(model, stream.header, [])
    selection = _RowFilter(model)
    sums = _RegressionSums(len(model.targets))
    stride, truth, predicted = 1, np.zeros((0, len(model.targets))), np.zeros((0, len(model.targets)))
    numbers = np.zeros(0, dtype=np.int64)
    for chunk, Y, outputs in regressed_chunks(model, stream, text_columns, selection):
        with np.errstate(over="raise", invalid="raise"):
            try:
                sums.add(Y, outputs)
            except FloatingPointError:
                raise DataError(f"{chunk.where(0)}: errors of the predictions overflow float64; R² cannot be computed") from None
        row_numbers = sums.rows - len(Y) + np.arange(len(Y))
        numbers, truth, predicted = np.concatenate([numbers, row_numbers]), np.concatenate([truth, Y]), np.concatenate([predicted, outputs])
        while True:
            keep = numbers % stride == 0
            if keep.sum() <= MAX_SCATTER_POINTS:
                break
            stride *= 2
        numbers, truth, predicted = numbers[keep], truth[keep], predicted[keep]
    r2 = [row["r2"] for row in sums.evaluation(model.targets, 0.0).per_target]
    return Scatter(list(model.targets), truth, predicted, r2, sums.rows, stream.name)


def _classified(model: TrainedModel, stream: CsvStream) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]]:
    """Each chunk's rows as evaluate counts them: (chunk, their raw features, which of the
    chunk's rows they are (None: all), true class indices, class probabilities)."""
    _check_targets(model, stream)
    check_columns(model, stream, [])
    yield from classified_chunks(model, stream, text_columns_for(model, stream.header, []), _RowFilter(model))


def _check_targets(model: TrainedModel, stream: CsvStream) -> None:
    missing = [t for t in model.targets if t not in stream.header]
    if missing:
        raise DataError(f"{header_place(stream.name)}: no target column {', '.join(map(repr, missing))}; the plot needs the labels")
