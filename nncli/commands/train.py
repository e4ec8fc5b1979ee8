"""The `train` service: config -> data -> network -> trainer -> TrainedModel.

``prepare_training`` does everything that can fail on bad input (reading and checking the
data against the config, building the network) before any training starts, so a mistake is
reported in milliseconds, not after an hour of epochs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.budgets import available_memory, human_bytes
from nncli.commands.parse_cache import CacheUse, ParseCache
from nncli.commands.table_memo import TableMemo
from nncli.config import Config, check_network_budget, resolve_path
from nncli.core.activations import get_activation
from nncli.core.losses import Loss, get_loss
from nncli.core.model import TrainedModel, layer_table
from nncli.core.monitor import minimizes
from nncli.core.network import MLP
from nncli.core.optimizers import Optimizer, get_optimizer
from nncli.core.rows import in_memory
from nncli.core.schedules import Schedule, get_schedule
from nncli.core.trainer import EarlyStopping, EpochRecord, Trainer, TrainingPlan
from nncli.errors import TrainingError
from nncli.files.model import load_model
from nncli.files.paths import check_writable
from nncli.files.runfiles import config_yaml, finite_record, settled
from nncli.tabular.dataset import TrainingData, data_path, load_training_data, preview
from nncli.tabular.outofcore import NeedsMemory, load_training_data_on_disk, memory_only
from nncli.tabular.parquet_layout import parquet_layout
from nncli.tabular.parse import quoted_list
from nncli.tabular.selection import table_header
from nncli.tabular.tables import is_parquet


@dataclass
class NetworkPreview:
    """The network a run would train and the rows it would use (`inspect CONFIG`, `train --dry-run`)."""

    layers: list[dict]
    dtype: str
    seed: int
    features: list[str]
    targets: list[str]
    classes: list[str] | None
    rows: dict[str, int]
    config: dict  # resolved
    warnings: list[str] = field(default_factory=list)  # e.g. a parse cache ignored
    encoding: dict | None = None  # how the features become the inputs (Encoding.to_json)

    def to_json(self) -> dict:
        return {"config": self.config, "architecture": self.layers, "features": self.features,
                "targets": self.targets, "classes": self.classes, "rows": self.rows, "encoding": self.encoding}

    @property
    def config_yaml(self) -> str:
        return config_yaml(self.config)


# Independent random streams drawn from the seed, by purpose: changing the split never changes
# the initial weights, and neither changes the shuffling or dropout.
SPLIT, INIT, SHUFFLE, DROPOUT = range(4)


@dataclass
class TrainingRun:
    """A run ready to train: data loaded and checked, network initialised."""

    config: Config
    seed: int
    data: TrainingData
    network: MLP
    rngs: list[np.random.Generator]
    output: Path | None = None  # where the model will be saved, recorded in the resolved config
    init_from: Path | None = None
    cache_uses: list[CacheUse] = field(default_factory=list)  # what the parse cache did, file by file

    @property
    def warnings(self) -> list[str]:
        """Things the user should know that did not stop the run (a parse cache ignored, rows
        with a missing cell left out…)."""
        found = [use.warning for use in self.cache_uses if use.warning]
        dropped = self.data.rows_dropped
        if dropped:
            found.append(f"data.missing: drop_rows left out {dropped:,} row{'s' * (dropped != 1)} with a missing cell "
                         f"(of {', '.join(str(path) for path in self.data.files)})")
        lost = self.data.classes_lost
        if lost:
            found.append(f"data.missing: drop_rows left out every row of class{'es' * (len(lost) != 1)} {quoted_list(lost)} "
                         f"in {self.data.files[0]} (each has a missing cell): the model never learns "
                         f"{'them' if len(lost) != 1 else 'it'}; fill the cells instead (data.missing: mean, median or most_frequent)")
        return found

    @property
    def features(self) -> list[str]:
        return self.data.features

    @property
    def targets(self) -> list[str]:
        return self.data.targets

    @property
    def classes(self) -> list[str] | None:
        return self.data.classes

    @property
    def metric_name(self) -> str:
        return "accuracy" if self.classes is not None else "r2"

    def resolved_config(self) -> dict:
        """The config as actually used: seed drawn, `auto` sizes filled in, absolute paths."""
        resolved = self.config.model_dump(mode="json")
        resolved["seed"] = self.seed
        resolved["model"]["layers"] = self.network.sizes
        resolved["model"]["output_activation"] = self.network.activation_names[-1]
        data = resolved["data"]
        if not self.config.data.autoencoder:  # (`inputs` stays: the features, whatever their names)
            data["target"] = self.targets[0] if len(self.targets) == 1 else self.targets
        data["in_memory"] = in_memory(self.data.X_train)  # as decided (auto), so a resume reads the same way
        for key in ("train", "validation"):
            if data[key] is not None:
                data[key] = os.path.abspath(resolve_path(self.config, f"data.{key}", data[key]))
        if self.init_from is not None:
            resolved["model"]["init_from"] = os.path.abspath(self.init_from)
        resolved["output"] = None if self.output is None else os.path.abspath(self.output)
        return settled(resolved)

    def preview(self) -> NetworkPreview:
        rows = {"train": len(self.data.X_train), "validation": self.data.validation_rows}
        if self.config.data.missing == "drop_rows":
            rows["dropped"] = self.data.rows_dropped
        encoding = None if self.data.encoding is None else self.data.encoding.to_json()
        return NetworkPreview(layer_table(self.network), self.network.dtype.name, self.seed, self.features, self.targets,
                              self.classes, rows, self.resolved_config(), self.warnings, encoding)

    def trainer(self) -> Trainer:
        """A trainer at epoch 1 for this run (restore a checkpoint into it to resume)."""
        training = self.config.training
        early = training.early_stopping
        schedule_monitor = training.schedule.monitor if training.schedule.name == "reduce_on_plateau" else None
        plan = TrainingPlan(
            network=self.network,
            loss=build_loss(self.config),
            optimizer=build_optimizer(self.config, self.network),
            schedule=build_schedule(self.config),
            X=self.data.X_train,
            Y=self.data.Y_train,
            epochs=training.epochs,
            batch_size=training.batch_size,
            metric=self.metric_name,
            shuffle=self.config.data.shuffle,
            sample_weights=self._sample_weights(),
            validation=self.data.validation,
            clip_norm=training.clip_norm,
            early_stopping=None if early is None else EarlyStopping(**early.model_dump()),
            schedule_monitor=schedule_monitor,
            checkpoint_every=training.checkpoint_every,
        )
        return Trainer(plan, self.rngs[SHUFFLE], self.rngs[DROPOUT])

    def fit(self, reporter=None) -> TrainedModel:
        """Train from scratch to the end (what tests and simple callers want)."""
        trainer = self.trainer()
        self.run(trainer, reporter)
        return self.model(trainer)

    def run(self, trainer: Trainer, reporter=None) -> None:
        try:
            trainer.run(reporter)
        except TrainingError as exc:
            if self.config.data.normalize == "none":
                raise TrainingError(f"{exc} Unnormalised inputs often cause this: try data.normalize: standard.") from None
            raise

    def model(self, trainer: Trainer) -> TrainedModel:
        """The trained model (with the best weights, when early stopping watched a metric)."""
        history = trainer.history
        loss = trainer.plan.loss
        return TrainedModel(
            network=self.network,
            loss=loss.name,
            loss_params=dict(loss.params),
            features=self.features,
            targets=self.targets,
            classes=self.classes,
            feature_scaler=self.data.feature_scaler,
            target_scaler=self.data.target_scaler,
            config=self.resolved_config(),
            # A NaN or infinite metric (a validation loss that overflowed, say) is stored as
            # null, flagged under `non_finite`: the model is still saved, and JSON can hold it.
            history=[finite_record(record.to_json(self.metric_name)) for record in history],
            metrics=finite_record(self._final_metrics(trainer)),
            encoding=self.data.encoding,
            autoencoder=self.config.data.autoencoder,
        )

    def _final_metrics(self, trainer: Trainer) -> dict:
        history: list[EpochRecord] = trainer.history
        chosen = history[-1]
        if trainer.best_epoch is not None:
            chosen = history[trainer.best_epoch - 1]
        metrics = {k: v for k, v in chosen.to_json(self.metric_name).items() if k not in ("seconds", "best", "learning_rate")}
        metrics["epoch"] = chosen.epoch  # the epoch whose weights the model holds
        metrics["epochs"] = history[-1].epoch  # epochs run
        metrics["stopped_early"] = trainer.stopped_early
        metrics["train_rows"] = len(self.data.X_train)
        metrics["val_rows"] = self.data.validation_rows
        if self.config.data.missing == "drop_rows":
            metrics["rows_dropped"] = self.data.rows_dropped  # (as evaluate's --json names the rows it leaves out)
        return metrics

    def _sample_weights(self) -> np.ndarray | None:
        """Per-row weights from `training.class_weights` (`balanced`: n / (classes × count))."""
        wanted = self.config.training.class_weights
        if wanted is None:
            return None
        codes, classes = self.data.train_codes, self.classes
        if wanted == "balanced":
            counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
            per_class = np.where(counts > 0, len(codes) / (len(classes) * np.maximum(counts, 1)), 1.0)
        else:
            unknown = [label for label in wanted if label not in classes]
            if unknown:
                raise self.config.error(
                    "training.class_weights", f"{unknown[0]!r} is not a class (classes: {preview(classes)})"
                )
            per_class = np.array([wanted.get(label, 1.0) for label in classes])
        return per_class[codes].astype(self.network.dtype)


def build_network(config: Config, sizes: list[int], rng: np.random.Generator) -> MLP:
    """The one place where the model section of a config becomes core objects."""
    model = config.model
    init = model.init.model_dump()
    params = {"leaky_relu": {"slope": model.leaky_relu_slope}}  # the config keys of activations' parameters
    names = model.per_hidden_layer("activation") + [config.output_activation]
    return MLP.initialise(
        sizes,
        [get_activation(name, **params.get(name, {})) for name in names],
        rng,
        init=init.pop("name"),
        init_params=init,
        bias=model.bias,
        dropout=model.per_hidden_layer("dropout"),
        dtype=np.dtype(model.dtype),
    )


def build_loss(config: Config) -> Loss:
    training = config.training
    params = {"huber": {"delta": training.huber_delta}}  # the config keys of losses' parameters
    return get_loss(training.loss, **params.get(training.loss, {}))


def build_optimizer(config: Config, network: MLP) -> Optimizer:
    training = config.training
    params = training.optimizer.model_dump()
    return get_optimizer(
        params.pop("name"),
        learning_rate=training.learning_rate,
        weight_decay=training.weight_decay,
        decay_mask=network.decay_mask(),
        **params,
    )


def build_schedule(config: Config) -> Schedule:
    training = config.training
    params = training.schedule.model_dump()
    name = params.pop("name")
    if name == "reduce_on_plateau":
        params["minimize"] = minimizes(params.pop("monitor"), params.pop("mode"))
    return get_schedule(name, training.learning_rate, training.epochs, training.warmup_epochs, **params)


def prepare_training(config: Config, output: Path | None = None, writes: bool = True, memo: TableMemo | None = None) -> TrainingRun:
    """``writes``: False for a dry run or inspect, which read a parse cache but write none;
    ``memo``: tables this process parsed before (a sweep's trials: commands/table_memo.py)."""
    seed = config.seed if config.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    reference = init_from = None
    if config.model.init_from is not None:
        init_from = resolve_path(config, "model.init_from", config.model.init_from)
        if not init_from.exists():
            raise config.error("model.init_from", f"{init_from}: model file not found (the model this run starts from)")
        reference = load_model(init_from)
        if reference.is_classification != config.is_classification:
            raise config.error("model.init_from", f"{init_from} is a {'classification' if reference.is_classification else 'regression'} model; the config's loss is {config.training.loss}")
    cache = ParseCache(config, writes, memo=memo)
    data = None
    if not _in_memory(config, cache, reference):
        try:
            data = load_training_data_on_disk(config, rngs[SPLIT], reference, open_table=cache.on_disk)
        except NeedsMemory:
            if config.data.in_memory != "auto":
                raise
            # (auto chose the disk for its size, but a feature turned out to hold text: memory it is)
    if data is None:
        data = load_training_data(config, rngs[SPLIT], reference, read=cache.read)
    _check_validation_rows(config, data)
    sizes = _layer_sizes(config, data)
    network = build_network(config, sizes, rngs[INIT])
    if reference is not None:
        _copy_weights(config, init_from, reference.network, network)
    return TrainingRun(config=config, seed=seed, data=data, network=network, rngs=rngs, output=output, init_from=init_from,
                       cache_uses=cache.uses)


# A CSV parsed whole peaks at up to this many times its size in memory (polars' frame, the
# table, the training copies); `data.in_memory: auto` reads from disk when that would not fit.
PARSE_MEMORY_PER_CSV_BYTE = 5
CACHED_MEMORY_PER_CACHE_BYTE = 2  # a cached table: mapped, plus the training rows taken from it
# A Parquet file is read into one float64 table, rows × columns × 8 bytes, known from its footer
# before anything is decoded (the figure read_parquet itself checks); its size on disk says
# little (compressed, a column of zeros takes nothing).
PARQUET_MEMORY_PER_VALUE = 8


def _in_memory(config: Config, cache: ParseCache, reference: TrainedModel | None = None) -> bool:
    """`data.in_memory`; auto: in memory unless the data would not fit in the memory this
    process may take (the machine's, its container's, its ulimit), or must be in memory
    (categorical features, missing cells filled or dropped: outofcore.memory_only). A Parquet
    file is only ever read into memory: data that would not fit with one is a ConfigError."""
    setting = config.data.in_memory
    if setting != "auto":
        return setting
    if config.data.cache == "off" or memory_only(config, reference) is not None:
        return True
    need, parquet = 0, None
    for key in ("data.train", "data.validation"):
        if getattr(config.data, key.split(".")[1]) is None:
            continue
        path = data_path(config, key)
        if is_parquet(path):
            layout = parquet_layout(path)
            need += PARQUET_MEMORY_PER_VALUE * layout.rows * len(layout.header)
            parquet = parquet or path
            continue
        targets = config.data.target_columns or table_header(path)[-1:]
        cached = cache.cached_bytes(path, targets if config.is_classification else (), np.dtype(config.model.dtype))
        need += CACHED_MEMORY_PER_CACHE_BYTE * cached if cached else PARSE_MEMORY_PER_CSV_BYTE * path.stat().st_size
    room = available_memory()
    if need > room and parquet is not None:
        raise config.error("data.in_memory", f"is auto, and the data (about {human_bytes(need)} in memory) would not fit in the "
                           f"{human_bytes(room)} this process may take; training from disk reads CSV files only, and {parquet} "
                           "is a Parquet file: give the process more memory, or convert the file to CSV")
    return need <= room


def _check_validation_rows(config: Config, data: TrainingData) -> None:
    """A metric watched on validation data needs validation rows (R² needs two)."""
    rows = data.validation_rows
    for key, monitor in config.training.watched_monitors():
        needed = 2 if monitor == "val_r2" else 1 if monitor.startswith("val_") else 0
        if rows < needed:
            raise config.error(
                key, f"{monitor} needs validation data, but the split leaves {rows} validation row{'s' * (rows != 1)}; "
                "raise data.validation_split or give data.validation",
            )


def _copy_weights(config: Config, path: Path, source: MLP, target: MLP) -> None:
    if source.sizes != target.sizes:
        raise config.error("model.init_from", f"{path} has layers {source.sizes}; the config builds {target.sizes}")
    if (source.biases[0] is None) != (target.biases[0] is None):
        raise config.error("model.init_from", f"{path} {'has no' if source.biases[0] is None else 'has'} biases; model.bias is {str(target.biases[0] is not None).lower()}")
    for mine, theirs in zip(target.parameters(), source.parameters()):
        mine[...] = theirs.astype(mine.dtype)


def _layer_sizes(config: Config, data: TrainingData) -> list[int]:
    layers = list(config.model.layers)
    n_inputs, n_outputs = data.n_inputs, data.n_outputs
    n_features = len(data.features)
    path = resolve_path(config, "data.train", config.data.train)
    if layers[0] == "auto":
        layers[0] = n_inputs
    elif layers[0] != n_inputs:
        if config.data.features is not None:
            which = "data.features"
        elif config.data.drop:
            which = "every column except the target and data.drop"
        else:
            which = f"every column except the target {', '.join(map(repr, data.targets))}"
        categorical = data.encoding.categorical if data.encoding is not None else []
        one_hot = f", which make {n_inputs} inputs (one per category of {preview(categorical)})" if categorical else ""
        raise config.error(
            "model.layers.0",
            f"declares {layers[0]} input{'s' * (layers[0] != 1)} but {path} has {n_features} feature column{'s' * (n_features != 1)} "
            f"({preview(data.features)}: {which}){one_hot}; use 'auto' or the right number",
        )
    if layers[-1] == "auto":
        layers[-1] = n_outputs
    elif layers[-1] != n_outputs:
        if data.classes is not None:
            what = f"{len(data.classes)} classes in {data.targets[0]!r} ({preview(data.classes)})"
        else:
            what = f"{n_outputs} target column(s) ({', '.join(map(repr, data.targets))})"
        raise config.error(
            f"model.layers.{len(layers) - 1}",
            f"declares {layers[-1]} output{'s' * (layers[-1] != 1)} but {path} has {what}; use 'auto' or the right number",
        )
    check_network_budget(config, layers, rows=len(data.X_train))
    return layers


def output_path(config: Config, cli_output: str | None, name: str) -> Path:
    """--output (relative to the working directory), else the config's `output`, else runs/<name>.npz."""
    if cli_output is not None:
        path = Path(cli_output).expanduser()
    elif config.output:
        path = resolve_path(config, "output", config.output)
    else:
        path = Path("runs") / f"{name}.npz"
    check_writable(path)
    return path
