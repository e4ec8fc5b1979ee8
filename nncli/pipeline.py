"""The `train` service: config -> data -> network -> fit -> TrainedModel.

``prepare_training`` does everything that can fail on bad input (reading and checking the
data against the config, building the network) before any training starts, so a mistake is
reported in milliseconds, not after an hour of epochs.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.atomic import check_writable
from nncli.config import Config, resolve_path
from nncli.core.losses import get_loss
from nncli.core.network import MLP
from nncli.core.optimizers import get_optimizer
from nncli.data import (
    CsvColumns,
    Scaler,
    class_order,
    encode_labels,
    find_line,
    lines_after_header,
    one_hot,
    read_csv,
    read_header,
    split_indices,
)
from nncli.errors import DataError, TrainingError
from nncli.model import TrainedModel
from nncli.training import EpochRecord, Reporter, fit


@dataclass
class TrainingRun:
    """A run ready to train: data loaded and checked, network initialised."""

    config: Config
    seed: int
    features: list[str]
    targets: list[str]
    classes: list[str] | None
    network: MLP
    X_train: np.ndarray
    Y_train: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    feature_scaler: Scaler
    target_scaler: Scaler | None
    shuffle_rng: np.random.Generator
    output: Path | None = None  # where the model will be saved, recorded in the resolved config

    @property
    def metric_name(self) -> str:
        return "accuracy" if self.classes is not None else "r2"

    def resolved_config(self) -> dict:
        """The config as actually used: seed drawn, `auto` sizes filled in, paths resolved."""
        resolved = self.config.model_dump(mode="json")
        resolved["seed"] = self.seed
        resolved["model"]["layers"] = self.network.sizes
        resolved["model"]["output_activation"] = self.network.activation_names[-1]
        data = resolved["data"]
        data["target"] = self.targets[0] if len(self.targets) == 1 else self.targets
        for key in ("train", "validation"):
            if data[key] is not None:
                data[key] = os.path.abspath(resolve_path(self.config, f"data.{key}", data[key]))
        resolved["output"] = None if self.output is None else os.path.abspath(self.output)
        return resolved

    def fit(self, reporter: Reporter | None = None) -> TrainedModel:
        training = self.config.training
        try:
            history = fit(
                self.network,
                get_loss(training.loss),
                build_optimizer(self.config),
                self.X_train,
                self.Y_train,
                epochs=training.epochs,
                batch_size=training.batch_size,
                rng=self.shuffle_rng,
                shuffle=self.config.data.shuffle,
                validation=self.validation,
                metric=self.metric_name,
                reporter=reporter,
            )
        except TrainingError as exc:
            if self.config.data.normalize == "none":
                raise TrainingError(f"{exc} Unnormalised inputs often cause this: try data.normalize: standard.") from None
            raise
        return TrainedModel(
            network=self.network,
            loss=training.loss,
            features=self.features,
            targets=self.targets,
            classes=self.classes,
            feature_scaler=self.feature_scaler,
            target_scaler=self.target_scaler,
            config=self.resolved_config(),
            history=[record.to_json(self.metric_name) for record in history],
            metrics=self._final_metrics(history),
        )

    def _final_metrics(self, history: list[EpochRecord]) -> dict:
        last = history[-1]
        metrics = {key: value for key, value in last.to_json(self.metric_name).items() if key != "seconds"}
        metrics["epochs"] = metrics.pop("epoch")
        metrics["train_rows"] = len(self.X_train)
        metrics["val_rows"] = 0 if self.validation is None else len(self.validation[0])
        return metrics


def build_network(config: Config, sizes: list[int], rng: np.random.Generator) -> MLP:
    """The one place where the model section of a config becomes core objects."""
    model = config.model
    init = model.init.model_dump()
    hidden = [model.activation] * (len(sizes) - 2)
    return MLP.initialise(
        sizes,
        hidden + [config.output_activation],
        rng,
        init=init.pop("name"),
        init_params=init,
        bias=model.bias,
        dtype=np.dtype(model.dtype),
    )


def build_optimizer(config: Config):
    params = config.training.optimizer.model_dump()
    return get_optimizer(params.pop("name"), learning_rate=config.training.learning_rate, **params)


def prepare_training(config: Config, output: Path | None = None) -> TrainingRun:
    seed = config.seed if config.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    # Independent streams: changing the split or the epoch count never changes the initial weights.
    split_rng, init_rng, shuffle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))

    train_path = _data_path(config, "data.train")
    header = read_header(train_path)
    targets = _target_columns(config, train_path, header)
    features = [name for name in header if name not in targets]
    if not features:
        raise DataError(f"{train_path}: no feature columns left after taking the target column(s) {targets}")

    table = _read_table(config, train_path, targets)
    X = table.columns(features)
    classes = None
    if config.is_classification:
        classes = _classes(config, table, targets[0])
        codes = _label_codes(table, targets[0], classes)
    else:
        Y = table.columns(targets)

    if config.data.validation is not None:
        val_path = _data_path(config, "data.validation")
        val_header = read_header(val_path)
        missing = [name for name in features + targets if name not in val_header]
        if missing:
            raise DataError(f"{val_path}:1: validation file lacks column(s) {', '.join(map(repr, missing))} of {train_path}")
        val_table = _read_table(config, val_path, targets)
        X_val = val_table.columns(features)
        if classes is not None:
            val_codes = _label_codes(val_table, targets[0], classes)
        else:
            Y_val = val_table.columns(targets)
        train_rows = np.arange(len(X))
    else:
        train_rows, val_rows = split_indices(len(X), config.data.validation_split, split_rng, config.data.shuffle)
        if len(train_rows) == 0:
            raise config.error("data.validation_split", f"leaves no training rows of the {len(X)} in {train_path}")
        X_val = X[val_rows]
        if classes is not None:
            val_codes = codes[val_rows]
        else:
            Y_val = Y[val_rows]

    dtype = np.dtype(config.model.dtype)
    n_outputs = len(classes) if classes is not None else len(targets)
    sizes = _layer_sizes(config, len(features), n_outputs, train_path, features, targets, classes)
    feature_scaler = _scaler(X[train_rows], config.data.normalize, features, train_path)
    target_scaler = None
    if classes is not None:
        Y_train = one_hot(codes[train_rows], n_outputs, dtype)
        Y_val = one_hot(val_codes, n_outputs, dtype)
    else:
        if config.data.normalize_target != "none":
            target_scaler = _scaler(Y[train_rows], config.data.normalize_target, targets, train_path)
        Y_train = _scaled(Y[train_rows], target_scaler, dtype, targets, train_path)
        Y_val = _scaled(Y_val, target_scaler, dtype, targets, train_path)
    X_train = _scaled(X[train_rows], feature_scaler, dtype, features, train_path)
    X_val = _scaled(X_val, feature_scaler, dtype, features, train_path)
    validation = (X_val, Y_val) if len(X_val) else None

    return TrainingRun(
        config=config,
        seed=seed,
        features=features,
        targets=targets,
        classes=classes,
        network=build_network(config, sizes, init_rng),
        X_train=X_train,
        Y_train=Y_train,
        validation=validation,
        feature_scaler=feature_scaler,
        target_scaler=target_scaler,
        shuffle_rng=shuffle_rng,
        output=output,
    )


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


def _data_path(config: Config, key: str) -> Path:
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
            hint = f"; did you mean {close[0]!r}?" if close else f"; columns are: {_preview(header)}"
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
    labels = table.text_values[target]
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


def _layer_sizes(config, n_features, n_outputs, path, features, targets, classes) -> list[int]:
    layers = list(config.model.layers)
    if layers[0] == "auto":
        layers[0] = n_features
    elif layers[0] != n_features:
        raise config.error(
            "model.layers.0",
            f"declares {layers[0]} input{'s' * (layers[0] != 1)} but {path} has {n_features} feature column{'s' * (n_features != 1)} "
            f"({_preview(features)}: every column except the target {', '.join(map(repr, targets))}); "
            "use 'auto' or the right number",
        )
    if layers[-1] == "auto":
        layers[-1] = n_outputs
    elif layers[-1] != n_outputs:
        what = (
            f"{n_outputs} classes in {targets[0]!r} ({_preview(classes)})"
            if classes is not None
            else f"{n_outputs} target column(s) ({', '.join(map(repr, targets))})"
        )
        raise config.error(
            f"model.layers.{len(layers) - 1}",
            f"declares {layers[-1]} output{'s' * (layers[-1] != 1)} but {path} has {what}; use 'auto' or the right number",
        )
    return layers


def _preview(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def output_path(config: Config, cli_output: str | None, config_path: Path) -> Path:
    """--output (relative to the working directory), else the config's `output`, else runs/<name>.npz."""
    if cli_output:
        path = Path(cli_output).expanduser()
    elif config.output:
        path = resolve_path(config, "output", config.output)
    else:
        path = Path("runs") / f"{config_path.stem}.npz"
    check_writable(path)
    return path
