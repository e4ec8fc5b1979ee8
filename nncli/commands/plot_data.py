"""A model applied to labelled data for `nncli plot MODEL DATA`: its confusion counts, its most
confident mistakes, its predictions against the true values, or (--codes) its rows' codes.

The rows are read exactly as `evaluate` reads them (its chunks, encoding, row filter for
``data.missing: drop_rows``, label lookup and sums), so a plot's confusion matrix is the one
`nncli evaluate` prints, and its R² the one evaluate reports. Memory stays bounded whatever the
file's size: counts, the N best mistakes so far, and an evenly spaced sample of points. The
codes are read as `nncli embed` reads them (nncli/tabular/embedding.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
from nncli.core.pca import pca
from nncli.errors import DataError, UsageError, quoted
from nncli.plots.pictures import Codes, Confusion, Mistakes, Scatter
from nncli.tabular.columns import check_columns, text_columns_for
from nncli.tabular.embedding import code_columns, stream_codes
from nncli.tabular.parse import listed
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
    rows (:class:`EvenSample`), R² over all."""
    _check_targets(model, stream)
    check_columns(model, stream, [])
    text_columns = text_columns_for(model, stream.header, [])
    selection = _RowFilter(model)
    sums = _RegressionSums(len(model.targets))
    sample = EvenSample(MAX_SCATTER_POINTS)
    for chunk, Y, outputs in regressed_chunks(model, stream, text_columns, selection):
        with np.errstate(over="raise", invalid="raise"):
            try:
                sums.add(Y, outputs)
            except FloatingPointError:
                raise DataError(f"{chunk.where(0)}: errors of the predictions overflow float64; R² cannot be computed") from None
        sample.add(Y, outputs)
    truth, predicted = sample.columns if sample.columns else (np.zeros((0, len(model.targets))),) * 2
    r2 = [row["r2"] for row in sums.evaluation(model.targets, 0.0).per_target]
    return Scatter(list(model.targets), truth, predicted, r2, sums.rows, stream.name)


class EvenSample:
    """Rows of a stream read chunk by chunk, thinned to at most ``most``: every ``stride``-th row
    of the file, the stride doubling whenever more would be kept, so the sample stays evenly
    spread over the whole file and the same file always gives the same points."""

    def __init__(self, most: int):
        self.most, self.stride, self.rows = most, 1, 0
        self.numbers = np.zeros(0, dtype=np.int64)
        self.columns: list = []  # per column given to add: the kept rows' values (arrays, or object arrays of text)

    def add(self, *columns) -> None:
        """The next rows: columns of equal length (arrays or lists)."""
        n = len(columns[0])
        numbers = self.rows + np.arange(n)
        self.rows += n
        if not self.columns:
            self.columns = [np.asarray(c)[:0] for c in columns]
        wanted = numbers % self.stride == 0  # (rows the present stride drops are never copied)
        self.numbers = np.concatenate([self.numbers, numbers[wanted]])
        self.columns = [np.concatenate([old, np.asarray(new)[wanted]]) for old, new in zip(self.columns, columns)]
        while (self.numbers % self.stride == 0).sum() > self.most:
            self.stride *= 2
        keep = self.numbers % self.stride == 0
        self.numbers, self.columns = self.numbers[keep], [c[keep] for c in self.columns]


def codes(model: TrainedModel, stream: CsvStream, layer: int, labels: str | None, name: str,
          clusters: Callable[[np.ndarray], np.ndarray] | None = None) -> Codes:
    """``--codes``: each row's code at hidden ``layer`` (of an evenly spaced sample of at most
    MAX_SCATTER_POINTS rows), in 2-D by PCA when the layer is wider than two; each row's class
    from the column ``labels`` when given, or else its cluster from ``clusters`` (codes → cluster
    numbers; a clusters file's). ``name``: the model's, for the title."""
    if labels is not None and labels not in stream.positions:
        raise DataError(f"{header_place(stream.name)}: --labels column {quoted(labels)} is not in the file (columns: {listed(stream.header)})")
    keep = [labels] if labels is not None else []
    check_columns(model, stream, keep)
    sample = EvenSample(MAX_SCATTER_POINTS)
    for chunk, block in stream_codes(model, stream, text_columns_for(model, stream.header, keep), layer, keep):
        block, colours = block.astype(np.float64), []
        if labels:
            colours = [np.array(["" if c is None else c for c in chunk.text_column(stream.header, labels)], dtype=object)]
        elif clusters is not None:
            colours = [clusters(block).astype(str).astype(object) if len(block) else np.zeros(0, dtype=object)]
        sample.add(block, *colours)
    if not sample.rows:
        raise DataError(f"{stream.name}: no rows; there are no codes to draw")
    points, *classes = sample.columns
    broken = ~np.isfinite(points).all(axis=1)
    if broken.any():
        raise DataError(f"{stream.name}: data row {int(sample.numbers[broken.argmax()]) + 1:,}: its code at hidden layer {layer} "
                        "is not a finite number (the layer's values overflow); it cannot be drawn")
    names = code_columns(model, layer)
    if len(names) > 2:
        projection = pca(points, 2)
        points = projection.transform(points)
        axes = tuple(f"PC{i + 1} ({100 * share:.1f} % of variance)" for i, share in enumerate(projection.explained))
    elif len(names) == 2:
        axes = (names[0], names[1])
    else:  # one neuron: its value across, every point on one line
        points, axes = np.column_stack([points[:, 0], np.zeros(len(points))]), (names[0], "")
    coloured = labels or clusters is not None
    return Codes(points, axes, layer, len(names), name, stream.name, sample.rows, labels or ("cluster" if coloured else None),
                 [str(c) for c in classes[0]] if coloured else None)


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
