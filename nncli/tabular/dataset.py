"""The training data a config asks for: read, checked against the config, encoded, split and scaled.

Everything here can fail on bad input, and does so before any training starts, with the
file, the place and what was expected.  Which columns are read, and how text and missing cells
are read, is :mod:`nncli.tabular.selection`'s; the features become the network's inputs through
an :class:`~nncli.core.encoding.Encoding` (categories one-hot, missing cells filled) fitted on
the training rows. A reference model (``model.init_from``) fixes the feature order, the
encoding, the classes and the normalisation, so its weights keep their meaning.

A table whose features are all numbers, with no missing cell, takes the path it took before
encodings: its feature columns are the inputs, with no copy beyond the split's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nncli.config import Config, resolve_path
from nncli.core.encoding import UNKNOWN, Encoding, NothingToFill, category_codes
from nncli.core.model import TrainedModel
from nncli.core.preprocess import Scaler, class_targets, split_indices
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import DataError
from nncli.tabular.labels import check_class_count, class_order, encode_labels
from nncli.tabular.parse import at_line, find_line, lines_after_header, listed, python_number, quoted, quoted_list
from nncli.tabular.selection import (
    ColumnChoice,
    TableReader,
    TextFeature,
    categories_of,
    missing_cells,
    missing_columns,
    read_columns,
    select_columns,
    table_header,
)
from nncli.tabular.source import CsvColumns
from nncli.tabular.tables import header_place, read_table


@dataclass
class TrainingData:
    features: list[str]  # the feature columns (a categorical one makes several inputs: see encoding)
    targets: list[str]
    classes: list[str] | None  # None for regression
    X_train: np.ndarray  # the network's inputs: encoded, scaled, in the model dtype
    Y_train: np.ndarray  # one-hot (cross_entropy), one 0/1 column (binary), or targets
    train_codes: np.ndarray | None  # class index per training row (for class weights)
    validation: tuple[np.ndarray, np.ndarray] | None
    feature_scaler: Scaler
    target_scaler: Scaler | None
    files: list[Path] = field(default_factory=list)  # the CSV files read
    encoding: Encoding | None = None  # how the feature columns became X's inputs
    rows_dropped: int = 0  # rows left out by data.missing: drop_rows (training and validation files)
    classes_lost: list[str] = field(default_factory=list)  # classes drop_rows left no training row of

    @property
    def validation_rows(self) -> int:
        return 0 if self.validation is None else len(self.validation[0])

    @property
    def n_inputs(self) -> int:
        return self.X_train.shape[1]  # one column per input neuron

    @property
    def n_outputs(self) -> int:
        return self.Y_train.shape[1]  # one column per output neuron, encoded for the loss


@dataclass
class _Rows:
    """Some rows' feature and target columns as read (unscaled: float64, or float32 when the
    model is float32 and the file's numbers are all exactly float32): the features as the
    encoding's raw matrix (numbers, category indices, NaN for a missing cell), or as its inputs
    once encoded."""

    X: np.ndarray
    Y: np.ndarray | None  # regression targets
    codes: np.ndarray | None  # classification: the class index of each row
    owned: bool = False  # X is a copy of its own (taken rows), not a view of the whole table: scaled in place

    def take(self, rows: np.ndarray) -> "_Rows":
        return _Rows(self.X[rows], None if self.Y is None else self.Y[rows], None if self.codes is None else self.codes[rows], True)

    def keep(self, rows: np.ndarray) -> "_Rows":
        """:meth:`take` of sorted ``rows``, written over the table X is a view of when the
        table is ours to write: the training rows need no second copy of the table. (Row i
        goes where the table's row ``rows[i] ≥ i`` began, so a block is read before anything
        it holds is overwritten.) The targets are taken first; the table is spent after."""
        table = self.X if self.X.base is None else self.X.base
        itemsize = self.X.itemsize
        in_place = (isinstance(table, np.ndarray) and table.ndim == 2 and table.flags.c_contiguous and table.flags.writeable
                    and table.dtype == self.X.dtype and self.X.strides == (table.strides[0], itemsize))
        if not in_place:
            return self.take(rows)
        Y, codes = None if self.Y is None else self.Y[rows], None if self.codes is None else self.codes[rows]
        width = self.X.shape[1]
        out = table.reshape(-1)[: len(rows) * width].reshape(len(rows), width)
        step = max(1, KEEP_BLOCK_BYTES // max(1, width * itemsize))
        for start in range(0, len(rows), step):
            out[start : start + step] = self.X[rows[start : start + step]]
        return _Rows(out, Y, codes, True)


KEEP_BLOCK_BYTES = 1 << 20
AUTOENCODER_NUMBERS = "data.target: inputs reconstructs the features, so each must be a number; add the column to data.drop"

Categories = list[tuple[str, ...] | None]  # per feature column: its categories, or None for a number


def load_training_data(config: Config, split_rng: np.random.Generator, reference: TrainedModel | None = None,
                       read: TableReader = read_table) -> TrainingData:
    """``read``: how a CSV or Parquet file becomes a table (the commands pass one that goes
    through the parse cache)."""
    # Memory: the table is read once in the model's dtype where that is exact, the training and
    # validation rows are taken from it once each (then it goes), and both are scaled in place.
    # Categories and missing cells cost a copy of the feature columns (the raw matrix) and the
    # encoded inputs; the all-numeric path makes neither.
    train_path = data_path(config, "data.train")
    choice = select_columns(config, train_path, reference)
    plan = None if reference is None else warm_start_plan(config, reference)
    table = _read(config, train_path, choice, read, f"the model.init_from model {reference.source} reads it as a number" if plan
                  else AUTOENCODER_NUMBERS if config.data.autoencoder else None)
    kept = missing_cells(config, table, choice, plan)
    table = kept.table
    features, targets = choice.features, choice.targets
    classes = None
    if config.is_classification:
        classes = reference.classes if reference is not None and reference.classes else class_list(config, table, targets[0])
    if plan is not None:
        categories = [column.categories for column in plan.columns]
        known = f"the model.init_from model {reference.source}"
    else:
        categorical = set(choice.categorical)
        categories = [categories_of(config, table, name, choice.detected.get(name)) if name in categorical else None
                      for name in features]
        known = None
    rows = _rows(table, choice, classes, categories, kept.where, plan.unknown_category if plan else "error", known)
    dropped, lost = kept.dropped, kept.lost
    del table, kept  # (the rows' views keep what they need)
    files = [train_path]
    if config.data.validation is not None:
        files.append(data_path(config, "data.validation"))
        validation, dropped_there = _validation_file(config, files[1], train_path, choice, classes, categories, plan, read)
        train, dropped = rows, dropped + dropped_there
    else:
        train, validation = _split(config, rows, split_rng, train_path)
    del rows  # the whole table, once the split has taken its rows
    encoding = plan if plan is not None else fit_encoding(config, features, categories, train.X, train_path)
    train, validation = _inputs(encoding, train), _inputs(encoding, validation)
    inputs = encoding.input_names
    if reference is not None:
        feature_scaler, target_scaler = reference.feature_scaler, reference.target_scaler
    else:
        feature_scaler = checked_scaler(train.X, config.data.normalize, inputs, train_path).leaving_alone(encoding.one_hot_inputs())
        target_scaler = None
        if config.data.autoencoder:  # the targets are the inputs, scaled as the network sees them
            target_scaler = feature_scaler
        elif classes is None and config.data.normalize_target != "none":
            target_scaler = checked_scaler(train.Y, config.data.normalize_target, targets, train_path)
    X_train, Y_train = _encoded(config, train, classes, feature_scaler, target_scaler, inputs, targets, train_path)
    X_val, Y_val = _encoded(config, validation, classes, feature_scaler, target_scaler, inputs, targets, train_path)
    return TrainingData(
        features=features,
        targets=targets,
        classes=classes,
        X_train=X_train,
        Y_train=Y_train,
        train_codes=train.codes,
        validation=(X_val, Y_val) if len(X_val) else None,
        feature_scaler=feature_scaler,
        target_scaler=target_scaler,
        files=files,
        encoding=encoding,
        rows_dropped=dropped,
        classes_lost=lost,
    )


def warm_start_plan(config: Config, reference: TrainedModel) -> Encoding:
    """The encoding a run warm-started from ``reference`` (model.init_from) trains with: the
    reference's columns, categories and fill values (what its weights were learned on), and
    this config's policies, which nothing was learned from: the missing-value tokens the data
    is read with (so the model reads its own training file as training did) and
    data.unknown_category."""
    return dataclasses.replace(reference.plan, unknown_category=config.data.unknown_category,
                               missing_values=tuple(config.data.missing_values))


def _read(config: Config, path: Path, choice: ColumnChoice, read: TableReader, fixed: str | None) -> CsvColumns:
    """:func:`~nncli.tabular.selection.read_columns`; ``fixed``: why a feature cannot become
    categorical now (None: it can)."""
    try:
        return read_columns(config, path, choice, read, grow=fixed is None)
    except TextFeature as exc:
        raise DataError(f"{exc.why} ({fixed})") from None


def fit_encoding(config: Config, features: list[str], categories: Categories, train_raw: np.ndarray, path: Path) -> Encoding:
    """The encoding of the features, its fill values taken from the training rows."""
    data = config.data
    try:
        return Encoding.fit(features, categories, train_raw, data.missing, data.unknown_category, data.missing_values)
    except NothingToFill as exc:
        raise DataError(f"{path}: column {quoted(features[exc.column])}: every training row's value is missing (the rows left "
                        f"after the validation split), so data.missing: {data.missing} has nothing to fill it with; "
                        "add the column to data.drop") from None


def _inputs(encoding: Encoding, rows: _Rows) -> _Rows:
    """Rows with their features as the network's inputs (unscaled). The raw matrix already is
    that when every feature is a number and none is missing: no copy then."""
    if encoding.is_plain or (not encoding.categorical and not missing_columns(rows.X).any()):
        return rows
    # A numeric fill is a float64 statistic: a float32 table's columns are encoded in float64 so
    # that a filled cell gets the value predict gives it (which encodes in float64), rounded once.
    numeric_fill = any(column.fill is not None and column.categories is None for column in encoding.columns)
    dtype = np.float64 if numeric_fill else rows.X.dtype
    return _Rows(encoding.encode(rows.X, dtype), rows.Y, rows.codes, True)


def _rows(table: CsvColumns, choice: ColumnChoice, classes: list[str] | None, categories: Categories,
          where: Callable[[int], str], unknown: str, known: str | None) -> _Rows:
    """The features as the encoding's raw matrix (the table's own columns when all are numbers),
    and the targets. An unknown category (only a validation file, or a reference model, can
    have one) under ``unknown`` error is an error naming its place; ``known``: whose categories
    the values were compared with (default: the training file's)."""
    X = table.columns(choice.features)
    if any(values is not None for values in categories):
        X = _category_indices(table, X, choice.features, categories, where, unknown, known)
    targets = choice.targets
    if classes is not None:
        return _Rows(X, None, _label_codes(table, targets[0], classes))
    return _Rows(X, table.columns(targets), None)


def _category_indices(table: CsvColumns, X: np.ndarray, features: list[str], categories: Categories,
                      where: Callable[[int], str], unknown: str, known: str | None) -> np.ndarray:
    """The feature columns with each categorical one's codes (into the table's distinct values)
    turned into indices into its categories: a copy of its own (owned, so scaled in place)."""
    raw = np.array(X, dtype=X.dtype) if np.may_share_memory(X, table.values) else X
    first: tuple[int, str, str] | None = None  # the first unknown category: row, column, value
    for j, (name, values) in enumerate(zip(features, categories)):
        if values is None:
            continue
        mapped = category_codes(values, table.text_values[name], raw[:, j])
        unseen = mapped == UNKNOWN
        if unknown == "error" and unseen.any():
            row = int(np.argmax(unseen))
            if first is None or row < first[0]:
                first = (row, name, table.text_values[name][int(raw[row, j])])
        raw[:, j] = mapped
    if first is not None:
        row, name, value = first
        raise DataError(f"{where(row)}: column {quoted(name)}: category {quoted(value.strip())} does not occur in "
                        f"{known or 'the training data'}; set data.unknown_category: ignore to give unseen values all-zero inputs")
    return raw


def _validation_file(config: Config, path: Path, train_path: Path, choice: ColumnChoice, classes: list[str] | None,
                     categories: Categories, plan: Encoding | None, read: TableReader) -> tuple[_Rows, int]:
    """The validation file's rows (its features as the raw matrix), and how many drop_rows left out."""
    header = table_header(path)
    present = set(header)
    missing = [name for name in choice.features + choice.targets if name not in present]
    if missing:
        raise DataError(f"{header_place(path)}: validation file lacks column(s) {quoted_list(missing)} of {train_path}")
    here = choice.in_file(header)
    table = _read(config, path, here, read, f"a numeric feature in the training file {train_path}")
    kept = missing_cells(config, table, here, plan)
    unknown = plan.unknown_category if plan is not None else config.data.unknown_category
    rows = _rows(kept.table, here, classes, categories, kept.where, unknown, None if plan is not None else f"the training file {train_path}")
    return rows, kept.dropped


def _split(config: Config, rows: _Rows, rng: np.random.Generator, path: Path) -> tuple[_Rows, _Rows]:
    train_rows, val_rows = split_rows(config, len(rows.X), rows.codes, rng, path)
    validation = rows.take(val_rows)
    # The training rows in file order (the epochs shuffle them anyway), over the table itself.
    return rows.keep(np.sort(train_rows)), validation


def split_rows(config: Config, n: int, codes: np.ndarray | None, rng: np.random.Generator, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`data.validation_split`: a shuffled share of the rows, stratified by class for
    classification (every class with two or more rows on both sides); row numbers of each part."""
    try:
        train_rows, val_rows = split_indices(n, config.data.validation_split, rng, config.data.shuffle, codes)
    except ValueError as exc:
        raise config.error("data.validation_split", f"{exc} ({path}); change the split or give data.validation") from None
    if len(train_rows) == 0:
        raise config.error("data.validation_split", f"leaves no training rows of the {n} in {path}")
    return train_rows, val_rows


def _encoded(config: Config, rows: _Rows, classes: list[str] | None, feature_scaler: Scaler, target_scaler: Scaler | None,
             features: list[str], targets: list[str], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows as the network sees them: features scaled, targets scaled or encoded for the loss,
    in the model's dtype."""
    dtype = np.dtype(config.model.dtype)
    X = _scaled_features(rows, feature_scaler, dtype, features, path)
    if classes is not None:
        return X, class_targets(rows.codes, len(classes), LOSS_KINDS[config.training.loss], dtype)
    return X, scaled_values(rows.Y, target_scaler, dtype, targets, path)


def checked_scaler(values: np.ndarray, method: str, names: list[str], path: Path) -> Scaler:
    with np.errstate(over="ignore", invalid="ignore"):
        scaler = Scaler.fit(values, method)
    bad = ~(np.isfinite(scaler.offset) & np.isfinite(scaler.scale))
    if bad.any():
        column = int(np.argmax(bad))
        raise too_large_to_normalise(path, names[column], np.abs(values[:, column]).max())
    return scaler


def too_large_to_normalise(path: Path, name: str, largest: float) -> DataError:
    return DataError(f"{path}: column {quoted(name)} holds values too large to normalise (largest magnitude {largest:.3g}); "
                     "rescale the column")


def too_large_for(path: Path, name: str, dtype, largest: float) -> DataError:
    advice = "normalise it" + ("" if np.dtype(dtype) == np.float64 else " or use model.dtype: float64")
    return DataError(f"{path}: column {quoted(name)} holds values too large for {np.dtype(dtype).name} "
                     f"(largest magnitude {largest:.3g}); {advice}")


def scaled_values(values: np.ndarray, scaler: Scaler | None, dtype, names: list[str], path: Path) -> np.ndarray:
    """Values normalised and cast to the training dtype, which must keep them finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = values.astype(dtype) if scaler is None else scaler.transform(values, dtype)
    if not np.isfinite(result).all():
        column = int(np.argmax(~np.isfinite(result).all(axis=0)))
        raise too_large_for(path, names[column], dtype, np.abs(values[:, column]).max())
    return result


def _scaled_features(rows: _Rows, scaler: Scaler, dtype, names: list[str], path: Path) -> np.ndarray:
    """:func:`_scaled` for the feature matrix, without its full-size temporaries: scaled in place
    when the rows are a copy of their own in the training dtype, else into one new array.

    Scaling is increasing in each column, so the result is finite everywhere if it is at each
    column's smallest and largest value: those are checked first, and a column that would
    overflow is reported as before, while the values are still as read."""
    values = rows.X
    if len(values):
        low, high = values.min(axis=0), values.max(axis=0)
        with np.errstate(over="ignore", invalid="ignore"):
            ends = scaler.transform(np.stack([low, high]), dtype)
        bad = ~np.isfinite(ends).all(axis=0)
        if bad.any():
            column = int(np.argmax(bad))
            raise too_large_for(path, names[column], dtype, max(abs(float(low[column])), abs(float(high[column]))))
    in_place = rows.owned and values.dtype == dtype and values.flags.c_contiguous and values.flags.writeable
    out = values if in_place else np.empty(values.shape, dtype=dtype)
    scaler.transform_into(values, out)
    return out


def data_path(config: Config, key: str) -> Path:
    """A data file named in the config, checked to exist, with the rule for where it was looked for."""
    written = getattr(config.data, key.split(".")[1])
    path = resolve_path(config, key, written)
    if not path.exists():
        if config.source.from_command_line(key) or Path(written).is_absolute():
            rule = ""
        else:
            rule = f" (paths in a config are relative to its folder, {config.source.folder})"
        raise config.error(key, f"{path}: file not found{rule}")
    return path


def class_list(config: Config, table: CsvColumns, target: str) -> list[str]:
    labels = list(dict.fromkeys(label.strip() for label in table.text_values[target]))
    check_class_count(len(labels), target, str(table.path))
    for label in labels:
        problem = None
        if not label:
            problem = "empty label; every row needs a class"
        elif python_number(label) and not np.isfinite(float(label)):
            problem = f"label {quoted(label)} is not a class (a missing or overflowing value?)"
        if problem:
            line = find_line(lines_after_header(table.path), table.header, target, label, name=str(table.path))
            raise DataError(f"{at_line(str(table.path), line)}: column {quoted(target)}: {problem}")
    numbers: dict[float, str] = {}
    for label in labels:
        if python_number(label):
            other = numbers.setdefault(float(label), label)
            if other != label:
                raise DataError(
                    f"{table.path}: column {quoted(target)}: labels {quoted(other)} and {quoted(label)} are the same number spelt "
                    "differently and would become two classes; spell them one way"
                )
    classes = class_order(labels)
    if LOSS_KINDS[config.training.loss].targets == "binary" and len(classes) != 2:
        raise config.error(
            "training.loss",
            f"binary_cross_entropy needs exactly two classes; {quoted(target)} in {table.path} has {len(classes):,} "
            f"({preview(classes)}); use cross_entropy",
        )
    if len(classes) < 2:
        raise DataError(
            f"{table.path}: column {quoted(target)} has a single class ({quoted(classes[0])}); classification needs at least two"
        )
    fractional = [label for label in classes if _is_fractional_number(label)]
    if fractional:
        raise config.error(
            "training.loss",
            f"cross_entropy needs class labels, but {quoted(target)} in {table.path} holds fractional numbers "
            f"(e.g. {quoted(fractional[0])}); use loss mse or quadratic for a regression target",
        )
    return classes


def _is_fractional_number(label: str) -> bool:
    return python_number(label) and np.isfinite(float(label)) and float(label) != int(float(label))


def _label_codes(table: CsvColumns, target: str, classes: list[str]) -> np.ndarray:
    """Map the file's own label codes (order of first appearance) onto the model's class order."""
    return encode_labels(
        table.column(target),
        table.text_values[target],
        classes,
        column=target,
        name=str(table.path),
        lines=lines_after_header(table.path),
        header=table.header,
    )


def preview(names: list[str], limit: int = 6) -> str:
    """Names from a file or model for a message: the first few, escaped and shortened."""
    return listed(names, limit)


