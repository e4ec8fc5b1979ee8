"""The training data a config asks for: read, checked against the config, split and scaled.

Everything here can fail on bad input, and does so before any training starts, with the
file, the place and what was expected.  A reference model (``model.init_from``) fixes the
feature order, the classes and the normalisation, so its weights keep their meaning.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.config import Config, resolve_path
from nncli.core.model import TrainedModel
from nncli.core.preprocess import Scaler, one_hot, split_indices
from nncli.errors import DataError
from nncli.tabular.labels import class_order, encode_labels
from nncli.tabular.parse import find_line, lines_after_header, read_header
from nncli.tabular.source import CsvColumns, read_csv


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
    def n_outputs(self) -> int:
        if self.classes is None:
            return len(self.targets)
        return 1 if self.Y_train.shape[1] == 1 else len(self.classes)


def load_training_data(config: Config, split_rng: np.random.Generator, reference: TrainedModel | None = None) -> TrainingData:
    train_path = data_path(config, "data.train")
    header = read_header(train_path)
    targets = _target_columns(config, train_path, header)
    if reference is not None:
        features = _reference_features(config, train_path, header, targets, reference)
    else:
        features = [name for name in header if name not in targets]
    if not features:
        raise DataError(f"{train_path}: no feature columns left after taking the target column(s) {targets}")

    table = _read_table(config, train_path, targets)
    X = table.columns(features)
    classes = codes = Y = None
    if config.is_classification:
        classes = reference.classes if reference is not None and reference.classes else _classes(config, table, targets[0])
        codes = _label_codes(table, targets[0], classes)
    else:
        Y = table.columns(targets)

    files = [train_path]
    if config.data.validation is not None:
        val_path = data_path(config, "data.validation")
        files.append(val_path)
        val_header = read_header(val_path)
        missing = [name for name in features + targets if name not in val_header]
        if missing:
            raise DataError(f"{val_path}:1: validation file lacks column(s) {', '.join(map(repr, missing))} of {train_path}")
        val_table = _read_table(config, val_path, targets)
        X_val = val_table.columns(features)
        val_codes = _label_codes(val_table, targets[0], classes) if classes is not None else None
        Y_val = None if classes is not None else val_table.columns(targets)
        train_rows = np.arange(len(X))
    else:
        train_rows, val_rows = split_indices(len(X), config.data.validation_split, split_rng, config.data.shuffle)
        if len(train_rows) == 0:
            raise config.error("data.validation_split", f"leaves no training rows of the {len(X)} in {train_path}")
        X_val = X[val_rows]
        val_codes = codes[val_rows] if classes is not None else None
        Y_val = None if classes is not None else Y[val_rows]

    dtype = np.dtype(config.model.dtype)
    if reference is not None:
        feature_scaler, target_scaler = reference.feature_scaler, reference.target_scaler
    else:
        feature_scaler = _scaler(X[train_rows], config.data.normalize, features, train_path)
        target_scaler = None
        if classes is None and config.data.normalize_target != "none":
            target_scaler = _scaler(Y[train_rows], config.data.normalize_target, targets, train_path)
    if classes is not None:
        Y_train, Y_val = _class_targets(config, codes[train_rows], classes, dtype), _class_targets(config, val_codes, classes, dtype)
    else:
        Y_train = _scaled(Y[train_rows], target_scaler, dtype, targets, train_path)
        Y_val = _scaled(Y_val, target_scaler, dtype, targets, train_path)
    X_train = _scaled(X[train_rows], feature_scaler, dtype, features, train_path)
    X_val = _scaled(X_val, feature_scaler, dtype, features, train_path)
    return TrainingData(
        features=features,
        targets=targets,
        classes=classes,
        X_train=X_train,
        Y_train=Y_train,
        train_codes=None if codes is None else codes[train_rows],
        validation=(X_val, Y_val) if len(X_val) else None,
        feature_scaler=feature_scaler,
        target_scaler=target_scaler,
        files=files,
    )


def _class_targets(config: Config, codes: np.ndarray, classes: list[str], dtype) -> np.ndarray:
    """One-hot rows for cross_entropy; one column, 1 for the second class, for binary cross-entropy."""
    if config.training.loss == "binary_cross_entropy":
        return (codes == 1).astype(dtype)[:, None]
    return one_hot(codes, len(classes), dtype)


def _reference_features(config: Config, path: Path, header: list[str], targets: list[str], reference: TrainedModel) -> list[str]:
    """With `init_from`, the features are the reference model's, in its order."""
    missing = [name for name in reference.features if name not in header]
    if missing:
        raise config.error("model.init_from", f"{path} lacks the model's feature column(s) {preview(missing)}")
    extra = [name for name in header if name not in reference.features and name not in targets]
    if extra:
        raise config.error("model.init_from", f"{path} has column(s) the model was not trained on: {preview(extra)}")
    if targets != reference.targets:
        raise config.error("model.init_from", f"the model predicts {preview(reference.targets)}, the config's target is {preview(targets)}")
    return list(reference.features)


def _scaler(values: np.ndarray, method: str, names: list[str], path: Path) -> Scaler:
    with np.errstate(over="ignore", invalid="ignore"):
        scaler = Scaler.fit(values, method)
    bad = ~(np.isfinite(scaler.offset) & np.isfinite(scaler.scale))
    if bad.any():
        column = int(np.argmax(bad))
        raise DataError(
            f"{path}: column {names[column]!r} holds values too large to normalise "
            f"(largest magnitude {np.abs(values[:, column]).max():.3g}); rescale the column"
        )
    return scaler


def _scaled(values: np.ndarray, scaler: Scaler | None, dtype, names: list[str], path: Path) -> np.ndarray:
    """Values normalised and cast to the training dtype, which must keep them finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = values.astype(dtype) if scaler is None else scaler.transform(values, dtype)
    if not np.isfinite(result).all():
        column = int(np.argmax(~np.isfinite(result).all(axis=0)))
        raise DataError(
            f"{path}: column {names[column]!r} holds values too large for {np.dtype(dtype).name} "
            f"(largest magnitude {np.abs(values[:, column]).max():.3g}); normalise it or use model.dtype: float64"
        )
    return result


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
    for name in targets:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; columns are: {preview(header)}"
            raise config.error("data.target", f"column {name!r} is not in {path}{hint}")
    if len(targets) == len(header):
        raise config.error("data.target", f"takes every column of {path}; nothing is left as a feature")
    return targets


def _read_table(config: Config, path: Path, targets: list[str]) -> CsvColumns:
    try:
        return read_csv(path, text_columns=targets if config.is_classification else ())
    except DataError as exc:
        for name in targets:
            if f"column {name!r}:" in str(exc) and not config.is_classification:
                raise DataError(
                    f"{exc} (loss {config.training.loss} makes {name!r} a regression target; "
                    "class labels need loss cross_entropy)"
                ) from None
        raise


def _classes(config: Config, table: CsvColumns, target: str) -> list[str]:
    labels = list(dict.fromkeys(label.strip() for label in table.text_values[target]))
    for label in labels:
        problem = None
        if not label:
            problem = "empty label; every row needs a class"
        elif _is_number(label) and not np.isfinite(float(label)):
            problem = f"label {label!r} is not a class (a missing or overflowing value?)"
        if problem:
            line = find_line(lines_after_header(table.path), table.header, target, label)
            raise DataError(f"{table.path}:{line}: column {target!r}: {problem}")
    numbers: dict[float, str] = {}
    for label in labels:
        if _is_number(label):
            other = numbers.setdefault(float(label), label)
            if other != label:
                raise DataError(
                    f"{table.path}: column {target!r}: labels {other!r} and {label!r} are the same number spelt "
                    "differently and would become two classes; spell them one way"
                )
    classes = class_order(labels)
    if config.training.loss == "binary_cross_entropy" and len(classes) != 2:
        raise config.error(
            "training.loss",
            f"binary_cross_entropy needs exactly two classes; {target!r} in {table.path} has {len(classes)} "
            f"({preview(classes)}); use cross_entropy",
        )
    if len(classes) < 2:
        raise DataError(
            f"{table.path}: column {target!r} has a single class ({classes[0]!r}); classification needs at least two"
        )
    fractional = [label for label in classes if _is_fractional_number(label)]
    if fractional:
        raise config.error(
            "training.loss",
            f"cross_entropy needs class labels, but {target!r} in {table.path} holds fractional numbers "
            f"(e.g. {fractional[0]!r}); use loss mse or quadratic for a regression target",
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
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


