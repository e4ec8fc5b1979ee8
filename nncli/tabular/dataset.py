"""The training data a config asks for: read, checked against the config, split and scaled.

Everything here can fail on bad input, and does so before any training starts, with the
file, the place and what was expected.  A reference model (``model.init_from``) fixes the
feature order, the classes and the normalisation, so its weights keep their meaning.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nncli.config import Config, resolve_path
from nncli.core.model import TrainedModel
from nncli.core.preprocess import Scaler, class_targets, split_indices
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import DataError
from nncli.tabular.labels import check_class_count, class_order, encode_labels
from nncli.tabular.parse import at_line, find_line, lines_after_header, listed, quoted, quoted_list, read_header
from nncli.tabular.source import CsvColumns, read_csv

CLOSE_MATCH_COLUMNS = 10_000  # "did you mean" hints compare with every column name: up to this many


@dataclass
class TrainingData:
    features: list[str]
    targets: list[str]
    classes: list[str] | None  # None for regression
    X_train: np.ndarray  # scaled, in the model dtype
    Y_train: np.ndarray  # one-hot (cross_entropy), one 0/1 column (binary), or targets
    train_codes: np.ndarray | None  # class index per training row (for class weights)
    validation: tuple[np.ndarray, np.ndarray] | None
    feature_scaler: Scaler
    target_scaler: Scaler | None
    files: list[Path] = field(default_factory=list)  # the CSV files read

    @property
    def validation_rows(self) -> int:
        return 0 if self.validation is None else len(self.validation[0])

    @property
    def n_outputs(self) -> int:
        return self.Y_train.shape[1]  # one column per output neuron, encoded for the loss


@dataclass
class _Rows:
    """Some rows' feature and target columns as read (unscaled: float64, or float32 when the
    model is float32 and the file's numbers are all exactly float32)."""

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


TableReader = Callable[..., CsvColumns]  # read_csv's signature: (path, text_columns, dtype)


def load_training_data(config: Config, split_rng: np.random.Generator, reference: TrainedModel | None = None,
                       read: TableReader = read_csv) -> TrainingData:
    """``read``: how a CSV file becomes a table (the commands pass one that goes through the
    parse cache)."""
    # Memory: the table is read once in the model's dtype where that is exact, the training and
    # validation rows are taken from it once each (then it goes), and both are scaled in place.
    train_path = data_path(config, "data.train")
    features, targets = feature_target_columns(config, train_path, reference)
    table = _read_table(config, train_path, targets, read)
    classes = None
    if config.is_classification:
        classes = reference.classes if reference is not None and reference.classes else class_list(config, table, targets[0])
    rows = _rows(table, features, targets, classes)
    del table  # (the rows' views keep what they need)
    files = [train_path]
    if config.data.validation is not None:
        files.append(data_path(config, "data.validation"))
        train, validation = rows, _validation_file(config, files[1], train_path, features, targets, classes, read)
    else:
        train, validation = _split(config, rows, split_rng, train_path)
    del rows  # the whole table, once the split has taken its rows
    if reference is not None:
        feature_scaler, target_scaler = reference.feature_scaler, reference.target_scaler
    else:
        feature_scaler = checked_scaler(train.X, config.data.normalize, features, train_path)
        target_scaler = None
        if classes is None and config.data.normalize_target != "none":
            target_scaler = checked_scaler(train.Y, config.data.normalize_target, targets, train_path)
    X_train, Y_train = _encoded(config, train, classes, feature_scaler, target_scaler, features, targets, train_path)
    X_val, Y_val = _encoded(config, validation, classes, feature_scaler, target_scaler, features, targets, train_path)
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
    )


def feature_target_columns(config: Config, path: Path, reference: TrainedModel | None) -> tuple[list[str], list[str]]:
    """The feature and target columns: the target(s) the config names (else the last column),
    every other column as a feature (with `init_from`, the reference model's features)."""
    header = read_header(path)
    targets = _target_columns(config, path, header)
    if reference is not None:
        features = _reference_features(config, path, header, targets, reference)
    else:
        taken = set(targets)  # (sets, not lists: a file may have 100,000 columns)
        features = [name for name in header if name not in taken]
    if not features:
        raise DataError(f"{path}: no feature columns left after taking the target column(s) {quoted_list(targets)}")
    return features, targets


def _rows(table: CsvColumns, features: list[str], targets: list[str], classes: list[str] | None) -> _Rows:
    if classes is not None:
        return _Rows(table.columns(features), None, _label_codes(table, targets[0], classes))
    return _Rows(table.columns(features), table.columns(targets), None)


def _validation_file(config: Config, path: Path, train_path: Path, features: list[str], targets: list[str],
                     classes: list[str] | None, read: TableReader) -> _Rows:
    header = set(read_header(path))
    missing = [name for name in features + targets if name not in header]
    if missing:
        raise DataError(f"{path}:1: validation file lacks column(s) {quoted_list(missing)} of {train_path}")
    return _rows(_read_table(config, path, targets, read), features, targets, classes)


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


def _reference_features(config: Config, path: Path, header: list[str], targets: list[str], reference: TrainedModel) -> list[str]:
    """With `init_from`, the features are the reference model's, in its order."""
    present, known = set(header), set(reference.features) | set(targets)
    missing = [name for name in reference.features if name not in present]
    if missing:
        raise config.error("model.init_from", f"{path} lacks the model's feature column(s) {preview(missing)}")
    extra = [name for name in header if name not in known]
    if extra:
        raise config.error("model.init_from", f"{path} has column(s) the model was not trained on: {preview(extra)}")
    if targets != reference.targets:
        raise config.error("model.init_from", f"the model predicts {preview(reference.targets)}, the config's target is {preview(targets)}")
    return list(reference.features)


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


def _target_columns(config: Config, path: Path, header: list[str]) -> list[str]:
    targets = config.data.target_columns or [header[-1]]
    present = set(header)
    for name in targets:
        if name not in present:
            # (difflib compares with every name: only for headers a person could read through)
            close = difflib.get_close_matches(name, header, n=1) if len(header) <= CLOSE_MATCH_COLUMNS else []
            hint = f"; did you mean {quoted(close[0])}?" if close else f"; columns are: {preview(header)}"
            raise config.error("data.target", f"column {quoted(name)} is not in {path}{hint}")
    if len(targets) == len(header):
        raise config.error("data.target", f"takes every column of {path}; nothing is left as a feature")
    return targets


def _read_table(config: Config, path: Path, targets: list[str], read: TableReader) -> CsvColumns:
    try:
        return read(path, text_columns=targets if config.is_classification else (), dtype=np.dtype(config.model.dtype))
    except DataError as exc:
        for name in targets:
            if f"column {quoted(name)}:" in str(exc) and not config.is_classification:
                raise DataError(
                    f"{exc} (loss {config.training.loss} makes {quoted(name)} a regression target; "
                    "class labels need loss cross_entropy)"
                ) from None
        raise


def class_list(config: Config, table: CsvColumns, target: str) -> list[str]:
    labels = list(dict.fromkeys(label.strip() for label in table.text_values[target]))
    check_class_count(len(labels), target, str(table.path))
    for label in labels:
        problem = None
        if not label:
            problem = "empty label; every row needs a class"
        elif _is_number(label) and not np.isfinite(float(label)):
            problem = f"label {quoted(label)} is not a class (a missing or overflowing value?)"
        if problem:
            line = find_line(lines_after_header(table.path), table.header, target, label, name=str(table.path))
            raise DataError(f"{at_line(str(table.path), line)}: column {quoted(target)}: {problem}")
    numbers: dict[float, str] = {}
    for label in labels:
        if _is_number(label):
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


def _is_number(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return False
    return True


def _is_fractional_number(label: str) -> bool:
    return _is_number(label) and np.isfinite(float(label)) and float(label) != int(float(label))


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


