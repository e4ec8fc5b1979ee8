"""Training data bigger than memory: rows read from the parse cache a window at a time.

The parsed table lies on disk (:mod:`nncli.files.datacache`, mapped as a ``np.memmap``). The
map itself is never read through: a mapped page that has been read stays counted in the
process's memory until the kernel needs it back, so the rows are read with plain positional
reads into buffers of a fixed size instead. Memory then stays bounded whatever the row count:
a window of scaled rows (``WINDOW_BYTES``), the blocks being read, and per training row only
its target and its place in the epoch's order.

An epoch's order comes from :func:`nncli.core.preprocess.chunked_permutation`: blocks of
consecutive rows in a random order, rows shuffled within a window of blocks. A window is thus
read as a few sequential reads, and a batch is a slice of the window.

From disk, every feature is a number and no used cell is missing: a missing cell is an error
naming its line, found before training starts, and a categorical feature (declared, or a
column holding text) is refused with the advice to train in memory (:func:`memory_only`;
`data.in_memory: auto` then chooses memory). The table is read with the config's missing-value
tokens all the same (a cell such as `NA` is NaN in the cache), so that a run in memory and one
from disk share the parse cache; a NaN is taken for a missing cell only where the CSV says so.
"""

from __future__ import annotations

import itertools
import weakref
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from nncli.config import Config
from nncli.core.encoding import Encoding
from nncli.core.model import TrainedModel
from nncli.core.preprocess import Scaler, ScalerFit, class_targets, parsed_codes
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import ConfigError, DataError
from nncli.tabular.dataset import (
    TrainingData,
    checked_scaler,
    class_list,
    data_path,
    scaled_values,
    split_rows,
    too_large_for,
    too_large_to_normalise,
    warm_start_plan,
)
from nncli.tabular.labels import encode_labels
from nncli.tabular.parse import lines_after_header, listed, numbered_rows, quoted, quoted_list
from nncli.tabular.selection import (
    ColumnChoice,
    TableReader,
    TextFeature,
    read_columns,
    select_columns,
    table_header,
)
from nncli.tabular.source import CsvColumns

BLOCK_BYTES = 1 << 20  # rows read at a time (of the table as stored)
WINDOW_BYTES = 32 << 20  # scaled rows held at a time (of the model's features)
SPAN_BLOCKS = 4  # a read covers at most this many blocks' worth of rows, used or not


class TableOnDisk:
    """A parsed table in a cache file, read a few rows at a time through the file that was
    checked (``file``, kept open: never reopened by name, which another run may replace)."""

    def __init__(self, file: BinaryIO, offset: int, shape: tuple[int, int], dtype, name: str):
        self.name = name  # the CSV file, for messages
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.row_bytes = shape[1] * self.dtype.itemsize
        self.block_rows = max(1, BLOCK_BYTES // max(1, self.row_bytes))
        self._file, self._offset = file, offset
        self._span: np.ndarray | None = None  # the read buffer, reused
        weakref.finalize(self, file.close)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, first: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``first … first + count - 1``, every column, as stored."""
        out = np.empty((count, self.shape[1]), self.dtype) if out is None else out[:count]
        self._file.seek(self._offset + first * self.row_bytes)
        if self._file.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise DataError(f"{self._file.name}: the parse cache of {self.name} ended early (truncated while training?); "
                            "delete it and run again")
        return out

    def damaged(self) -> DataError:
        return DataError(f"{self._file.name}: the parse cache of {self.name} holds values that are not finite "
                         "(damaged); delete it and run again")

    def rows(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(position in ``rows``, the rows there) for sorted ``rows``: read in spans of at most
        ``SPAN_BLOCKS`` blocks, a span's unused rows skipped over."""
        span_rows = SPAN_BLOCKS * self.block_rows
        if self._span is None:
            self._span = np.empty((min(span_rows, len(self)), self.shape[1]), self.dtype)
        buffer, position = self._span, 0
        while position < len(rows):
            first = int(rows[position])
            end = int(np.searchsorted(rows, first + span_rows, side="left"))
            span = self.read(first, int(rows[end - 1]) - first + 1, buffer)
            if np.isinf(span).any():  # (a cache is checked as it is read, never trusted; NaN: see missing_on_disk)
                raise self.damaged()
            yield position, span[rows[position:end] - first]
            position = end

    def columns(self, columns: list[int], rows: np.ndarray | None = None) -> np.ndarray:
        """Some columns of some (sorted) rows, or of every row: the targets, for instance."""
        rows = np.arange(len(self)) if rows is None else rows
        out = np.empty((len(rows), len(columns)), self.dtype)
        for position, block in self.rows(rows):
            out[position : position + len(block)] = block[:, columns]
        return out


class MappedRows:
    """Some rows of a :class:`TableOnDisk` (sorted row numbers), their feature columns scaled
    into the model's dtype as they are read: the trainer's :class:`nncli.core.rows.RowSource`."""

    def __init__(self, table: TableOnDisk, rows: np.ndarray, columns: list[int], names: list[str],
                 scaler: Scaler, dtype, batch_size: int):
        self.table, self.rows, self.columns, self.names, self.scaler = table, rows, columns, names, scaler
        self.dtype = np.dtype(dtype)
        self.shape = (len(rows), len(columns))
        self.block_rows = table.block_rows
        row_bytes = max(1, len(columns) * self.dtype.itemsize)
        window_blocks = max(1, WINDOW_BYTES // row_bytes // self.block_rows, -(-batch_size // self.block_rows))
        self.shuffle_blocks = (self.block_rows, window_blocks)
        self.window_rows = self.block_rows * window_blocks
        self._window = np.empty((min(self.window_rows, len(rows)), len(columns)), self.dtype)
        self._window_at: int | None = None  # the window held, and the order it was loaded for
        self._order: np.ndarray | None = None  # (held, so that a new epoch's order is never mistaken for it)

    def __len__(self) -> int:
        return self.shape[0]

    def gather(self, order: np.ndarray, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        filled = 0
        while start < stop:
            window = start // self.window_rows
            if window != self._window_at or order is not self._order:
                self._load(order, window)
            first = window * self.window_rows
            end = min(stop, first + self.window_rows)
            out[filled : filled + end - start] = self._window[start - first : end - first]
            filled += end - start
            start = end
        return out[:filled]

    def _load(self, order: np.ndarray, window: int) -> None:
        """The window's rows, in the order's sequence: each block of rows it draws from is read
        once (a window of a chunked permutation draws from `window_blocks` blocks)."""
        positions = order[window * self.window_rows : (window + 1) * self.window_rows]
        blocks = positions // self.block_rows
        by_block = np.argsort(blocks, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(blocks[by_block]) != 0])
        for begin, end in zip(starts, np.r_[starts[1:], len(by_block)]):
            slots = by_block[begin:end]
            block = int(blocks[slots[0]])
            scaled = self._scaled(block * self.block_rows, min(len(self), (block + 1) * self.block_rows))
            self._window[slots] = scaled[positions[slots] - block * self.block_rows]
        self._window_at, self._order = window, order

    def _scaled(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start … stop - 1`` (of this subset), feature columns, scaled and checked."""
        out = np.empty((stop - start, len(self.columns)), self.dtype)
        for position, block in self.table.rows(self.rows[start:stop]):
            values = block[:, self.columns]
            part = out[position : position + len(values)]
            with np.errstate(over="ignore", invalid="ignore"):
                self.scaler.transform_into(values, part)
            if np.isnan(values).any():  # (every used cell was checked before training: the cache changed since)
                raise self.table.damaged()
            if not np.isfinite(part).all():  # (a validation row beyond the training rows' range)
                column = int(np.argmax(~np.isfinite(part).all(axis=0)))
                raise too_large_for(Path(self.table.name), self.names[column], self.dtype, float(np.abs(values[:, column]).max()))
        return out

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        step = len(self._window) or 1
        for start in range(0, len(self), step):
            yield start, self._scaled(start, min(len(self), start + step))


class NeedsMemory(ConfigError):
    """Data that training from disk cannot take (a categorical feature, say): an error naming
    `data.in_memory`, or, when that is `auto`, the reason to read them into memory instead."""


def memory_only(config: Config, reference: TrainedModel | None = None) -> str | None:
    """Why the config's data must be trained in memory, known before reading them (None: it need not)."""
    data = config.data
    if data.autoencoder:  # (its targets are the feature columns: the disk path holds targets apart)
        return "data.target: inputs (an autoencoder) needs the data in memory"
    if data.missing != "error":
        return f"data.missing: {data.missing} needs the data in memory"
    if data.categorical:
        return f"data.categorical ({listed(data.categorical, 4)}) needs the data in memory"
    if reference is not None and not reference.plan.is_plain:
        return f"the model.init_from model {reference.source} has categorical features or fill values, which need the data in memory"
    return None


def needs_memory(config: Config, why: str) -> NeedsMemory:
    return NeedsMemory(str(config.error("data.in_memory", f"training from disk reads numeric features only: {why}; "
                                        "set data.in_memory: true (or auto)")))


def load_training_data_on_disk(config: Config, split_rng: np.random.Generator, reference: TrainedModel | None,
                               open_table: TableReader) -> TrainingData:
    """:func:`nncli.tabular.dataset.load_training_data` for data bigger than memory: the same
    checks, split and scaling (statistics gathered a block at a time), but the features stay
    on disk (:class:`MappedRows`); only the targets are held, one row per training row.
    ``open_table(path, text_columns, dtype, missing_values)`` gives the CSV's table as a parse
    cache mapped. Every feature must be a number and every cell present (:class:`NeedsMemory`)."""
    why = memory_only(config, reference)
    if why is not None:
        raise needs_memory(config, why)
    train_path = data_path(config, "data.train")
    choice = select_columns(config, train_path, reference)
    features, targets = choice.features, choice.targets
    dtype = np.dtype(config.model.dtype)
    table = _open(config, train_path, choice, open_table)
    classes = None
    if config.is_classification:
        classes = reference.classes if reference is not None and reference.classes else class_list(config, table, targets[0])
    on_disk: TableOnDisk = table.values  # (open_table gives the values as a TableOnDisk)
    target_values = _targets(config, table, targets)
    codes = _codes(table, target_values[:, 0], targets[0], classes) if classes is not None else None
    files = [train_path]
    if config.data.validation is not None:
        files.append(data_path(config, "data.validation"))
        header = table_header(files[1])
        missing = [name for name in features + targets if name not in set(header)]
        if missing:
            raise DataError(f"{files[1]}:1: validation file lacks column(s) {quoted_list(missing)} of {train_path}")
        validation = _open(config, files[1], choice.in_file(header), open_table)
        val_disk: TableOnDisk = validation.values
        val_targets = _targets(config, validation, targets)
        val_codes = _codes(validation, val_targets[:, 0], targets[0], classes) if classes is not None else None
        train_rows, val_rows = np.arange(len(on_disk)), np.arange(len(val_disk))
    else:
        train_rows, val_rows = (np.sort(part) for part in split_rows(config, len(on_disk), codes, split_rng, train_path))
        val_disk, val_targets, val_codes, validation = on_disk, target_values[val_rows], None if codes is None else codes[val_rows], table
        target_values, codes = target_values[train_rows], None if codes is None else codes[train_rows]
    feature_columns = [table.positions[name] for name in features]
    if reference is not None:
        feature_scaler, target_scaler = reference.feature_scaler, reference.target_scaler
        missing_on_disk(config, table, train_rows, features)
    else:
        try:
            feature_scaler = fit_scaler(on_disk, train_rows, feature_columns, config.data.normalize, features, dtype)
        except _Gap:
            raise missing_on_disk(config, table, train_rows, features) from None
        target_scaler = None
        if classes is None and config.data.normalize_target != "none":
            target_scaler = checked_scaler(target_values, config.data.normalize_target, targets, train_path)
    missing_on_disk(config, validation, val_rows, features)  # (a second read of these rows: one epoch's worth)
    batch = config.training.batch_size
    X_train = MappedRows(on_disk, train_rows, feature_columns, features, feature_scaler, dtype, batch)
    X_val = MappedRows(val_disk, val_rows, [validation.positions[name] for name in features], features, feature_scaler, dtype, batch)
    if classes is not None:
        kind = LOSS_KINDS[config.training.loss]
        Y_train, Y_val = (class_targets(c, len(classes), kind, dtype) for c in (codes, val_codes))
    else:
        Y_train, Y_val = (scaled_values(values, target_scaler, dtype, targets, train_path) for values in (target_values, val_targets))
    data = config.data
    encoding = warm_start_plan(config, reference) if reference is not None else Encoding.numeric(features)
    if reference is None:  # (numbers only, no fill: the policies are recorded for predict)
        encoding = Encoding(encoding.columns, "error", data.unknown_category, tuple(data.missing_values))
    return TrainingData(
        features=features, targets=targets, classes=classes, X_train=X_train, Y_train=Y_train, train_codes=codes,
        validation=(X_val, Y_val) if len(X_val) else None, feature_scaler=feature_scaler, target_scaler=target_scaler,
        files=files, encoding=encoding,
    )


def _open(config: Config, path: Path, choice: ColumnChoice, open_table: TableReader) -> CsvColumns:
    """The file's table on disk: its features numbers, every cell present (columns nobody uses
    may hold anything)."""
    try:
        return read_columns(config, path, choice, open_table, grow=False)
    except TextFeature as exc:
        raise needs_memory(config, f"{exc.why}, a categorical feature") from None


def _targets(config: Config, table: CsvColumns, targets: list[str]) -> np.ndarray:
    """The target columns of every row, none missing."""
    values = table.values.columns([table.positions[name] for name in targets])
    gaps = np.isnan(values)
    if gaps.any():
        row, column = (int(i) for i in np.argwhere(gaps)[0])
        raise _missing_or_damaged(config, table, row, targets[column])
    return values


def missing_on_disk(config: Config, table: CsvColumns, rows: np.ndarray, names: list[str]) -> DataError | None:
    """Refuse the first missing cell of columns ``names`` in (sorted) ``rows`` of a table on
    disk; returns the error when there was none to raise (a caller that knew of one: a damaged
    cache then)."""
    on_disk: TableOnDisk = table.values
    columns = [table.positions[name] for name in names]
    for position, block in on_disk.rows(rows):
        gaps = np.isnan(block[:, columns])
        if gaps.any():
            row, column = (int(i) for i in np.argwhere(gaps)[0])
            raise _missing_or_damaged(config, table, int(rows[position + row]), names[column])
    return on_disk.damaged()


def _missing_or_damaged(config: Config, table: CsvColumns, row: int, name: str) -> DataError:
    """A NaN in a used column of the cache: a missing cell if the CSV holds a missing-value
    token there, else a damaged cache (never trusted: it is checked against the CSV)."""
    cell = _csv_cell(table.path, row, table.positions[name])
    if cell is None or cell.strip() not in {token.strip() for token in config.data.missing_values}:
        return table.values.damaged()
    return DataError(f"{table.where(row)}: column {quoted(name)}: missing value; training from disk (data.in_memory: false) "
                     "takes none: set data.in_memory: true (or auto) and data.missing to mean, median, most_frequent or drop_rows")


def _csv_cell(path: Path, row: int, column: int) -> str | None:
    """The text of data row ``row``'s cell ``column`` (for an error message: reads the file)."""
    try:
        rows = (cells for _, cells in numbered_rows(lines_after_header(path), str(path)) if cells)  # (blank lines are no rows)
        cells = next(itertools.islice(rows, row, None), None)
    except (DataError, OSError):
        return None
    return None if cells is None or column >= len(cells) else cells[column]


class _Gap(Exception):
    """A NaN among the values a scaler was fitted on: a missing cell, or a damaged cache."""


def _codes(table: CsvColumns, column: np.ndarray, target: str, classes: list[str]) -> np.ndarray:
    """The class index of every row, from the label codes read off the table (checked: the
    table is a cache, which is never trusted)."""
    if not parsed_codes(column, len(table.text_values[target])):
        raise DataError(f"{table.path}: its parse cache holds label codes that are not a parse's (damaged); "
                        "delete the cache and run again")
    return encode_labels(column, table.text_values[target], classes, column=target, name=str(table.path),
                         lines=lines_after_header(table.path), header=table.header)


def fit_scaler(table: TableOnDisk, rows: np.ndarray, columns: list[int], method: str, names: list[str], dtype) -> Scaler:
    """:meth:`Scaler.fit` of some columns over some (sorted) rows, a block at a time, checked as
    in memory: statistics that overflow, or a column whose scaled extremes the model's dtype
    cannot hold, stop the run before it trains (:mod:`nncli.tabular.dataset`'s messages)."""
    fit = ScalerFit(method, len(columns))
    low, high = np.full(len(columns), np.inf), np.full(len(columns), -np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        for _, block in table.rows(rows):
            values = block[:, columns]
            fit.add(values)
            np.minimum(low, values.min(axis=0), out=low)
            np.maximum(high, values.max(axis=0), out=high)
        scaler = fit.scaler()
        ends = scaler.transform(np.stack([low, high]), dtype)
    if np.isnan(low).any() or np.isnan(high).any():  # (the minimum and maximum propagate NaN)
        raise _Gap()
    largest = np.maximum(np.abs(low), np.abs(high))
    bad = ~(np.isfinite(scaler.offset) & np.isfinite(scaler.scale))
    if bad.any():
        raise too_large_to_normalise(Path(table.name), names[int(np.argmax(bad))], float(largest[int(np.argmax(bad))]))
    bad = ~np.isfinite(ends).all(axis=0)
    if bad.any():
        raise too_large_for(Path(table.name), names[int(np.argmax(bad))], dtype, float(largest[int(np.argmax(bad))]))
    return scaler
