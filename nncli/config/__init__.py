"""The YAML config: load it, check it, and resolve the paths written in it.

All user mistakes become a :class:`~nncli.errors.ConfigError` naming the file, the line (or
the ``--set`` flag) and the field path.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from nncli.budgets import DTYPE_BYTES, batch_bytes, human_bytes, network_bytes
from nncli.config.messages import validation_error
from nncli.config.schema import (  # noqa: F401  (the public names of the config package)
    Config,
    HiddenActivation,
    InitConfig,
    LossName,
    OptimizerConfig,
    OutputActivation,
    ScheduleConfig,
)
from nncli.config.source import ConfigSource
from nncli.config.yamlfile import apply_override, parse_yaml, read_text
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import ConfigError


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, check and validate a YAML config; apply ``--set key=value`` overrides."""
    path = Path(path)
    source = ConfigSource(path)
    raw = parse_yaml(read_text(path), source)
    return config_from_dict(raw, source, overrides)


def config_from_dict(raw: dict, source: ConfigSource, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate an already-parsed config (from a file, or stored in a checkpoint)."""
    if not isinstance(raw, dict):  # a checkpoint's stored config is whatever its JSON says
        raise ConfigError(f"{source.path}: the config is {type(raw).__name__}, expected a mapping of settings")
    for override in overrides:
        apply_override(raw, override, source)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, raw, source) from None
    config._source = source
    check_consistency(config)
    return config


def json_schema() -> dict:
    """The config's JSON Schema, including the `init: he` shorthand for named sections."""
    document = Config.model_json_schema()
    for definition in document.get("$defs", {}).values():
        for name, prop in definition.get("properties", {}).items():
            if "discriminator" in prop:
                names = sorted(prop["discriminator"]["mapping"])
                shorthand = {"type": "string", "enum": names, "description": "shorthand for {name: ...}"}
                definition["properties"][name] = {"anyOf": [shorthand, {k: v for k, v in prop.items() if k != "title"}], "title": prop.get("title", name)}
                if "default" in prop:
                    definition["properties"][name]["default"] = prop["default"]
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "nncli training config"
    return document


def resolve_path(config: Config, key: str, value: str) -> Path:
    """Config paths are relative to the config file's folder; --set paths to the working dir."""
    path = Path(value).expanduser()
    if path.is_absolute() or config.source.from_command_line(key):
        return path
    return Path(os.path.normpath(config.source.folder / path))


def check_consistency(config: Config) -> None:
    """Checks that span several fields (the data-dependent ones come when the data is read)."""
    _check_layers(config)
    _check_loss(config)
    _check_schedule(config)
    _check_monitors(config)


def _check_layers(config: Config) -> None:
    model = config.model
    hidden = len(model.layers) - 2
    for index, size in enumerate(model.layers[1:-1], start=1):
        if size == "auto":
            raise config.error(
                f"model.layers.{index}",
                "only the first (input) and last (output) layer can be 'auto'; give hidden layer sizes as numbers",
            )
    for key in ("activation", "dropout"):
        value = getattr(model, key)
        if isinstance(value, list) and len(value) != hidden:
            raise config.error(
                f"model.{key}",
                f"lists {len(value)} value(s) but the network has {hidden} hidden layer(s); give one per hidden "
                "layer, or a single value for all",
            )
    check_network_budget(config)


def check_network_budget(config: Config, sizes: list | None = None, rows: int | None = None) -> None:
    """The network a config builds, and one batch of its training, against their budgets
    (config/budgets.py), before anything is allocated.

    Checked twice: with the config, where an `auto` layer counts as one neuron (so the sizes are
    a lower bound, and the batch is ``batch_size`` rows × the widest layer); and by `train` once
    the data has given the `auto` sizes (``sizes``) and the number of training rows (``rows``).
    """
    model = config.model
    sizes = list(model.layers if sizes is None else sizes)
    widths = [1 if size == "auto" else int(size) for size in sizes]
    itemsize, dtype = DTYPE_BYTES[model.dtype], model.dtype
    at_least = "at least " if "auto" in sizes else ""
    matrices = [(fan_in * fan_out, i, fan_in, fan_out) for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]), start=1)]
    count = sum(m[0] for m in matrices) + (sum(widths[1:]) if model.bias else 0)
    limit = network_bytes()
    if count * itemsize > limit:
        _, i, fan_in, fan_out = max(matrices)
        raise config.error(
            "model.layers",
            f"{fan_in:,} × {fan_out:,} weights (layer {i}; {count:,} parameters in all) need {at_least}"
            f"{human_bytes(count * itemsize)} as {dtype}; the budget is {human_bytes(limit)} "
            "(NNCLI_MAX_NETWORK_BYTES raises it)",
        )
    batch_size = config.training.batch_size
    if rows is None:  # before the data: one buffer of the widest layer, batch_size rows
        batch_rows, neurons, buffers, what = batch_size, max(widths), 1, "the widest layer"
    else:  # pre-activations and the gradients flowing back, for every layer
        batch_rows, neurons, buffers, what = min(batch_size, rows), sum(widths), 2, "every layer's width added up"
    need = batch_rows * neurons * buffers * itemsize
    limit = batch_bytes()
    if need > limit:
        raise config.error(
            "training.batch_size",
            f"{batch_rows:,} rows × {neurons:,} neurons ({what}){' × 2 buffers' * (buffers == 2)} need {at_least}"
            f"{human_bytes(need)} as {dtype} per batch; the budget is {human_bytes(limit)} "
            "(NNCLI_MAX_BATCH_BYTES raises it); use a smaller batch_size",
        )


def _check_loss(config: Config) -> None:
    """The loss against the output layer, the targets and the class weights (the loss table, core/tasks.py)."""
    model, training, data = config.model, config.training, config.data
    loss, output, kind = training.loss, model.output_activation, LOSS_KINDS[training.loss]
    layers = model.layers
    if kind.output_required and output not in ("auto", kind.output):
        regression = ", ".join(name for name, other in LOSS_KINDS.items() if not other.classification)
        raise config.error(
            "model.output_activation",
            f"{loss} needs a {kind.output} output (or 'auto'); got {output!r}. Use a regression loss ({regression}) for other outputs",
        )
    if kind.targets == "binary" and layers[-1] not in ("auto", 1):
        raise config.error(f"model.layers.{len(layers) - 1}", f"{loss} has one output neuron (the probability of the second class); use 1 or 'auto'")
    targets = data.target_columns
    if data.autoencoder:
        _check_autoencoder(config)
    if kind.classification and targets is not None and len(targets) != 1:
        raise config.error("data.target", f"{loss} (classification) needs exactly one target column")
    if targets is not None and len(set(targets)) != len(targets):
        raise config.error("data.target", "lists a column twice")
    if kind.classification and data.normalize_target != "none":
        raise config.error("data.normalize_target", f"applies to regression targets only; {loss} predicts classes")
    if training.class_weights is not None and not kind.classification:
        raise config.error("training.class_weights", f"apply to classification only; {loss} is a regression loss")
    if data.validation is not None and "validation_split" in data.model_fields_set and data.validation_split > 0:
        raise config.error("data.validation_split", "give either a validation file or a validation_split, not both")


def _check_autoencoder(config: Config) -> None:
    """`data.target: inputs`: a regression of the features' scaled values onto themselves."""
    data, loss = config.data, config.training.loss
    if LOSS_KINDS[loss].classification:
        regression = ", ".join(name for name, other in LOSS_KINDS.items() if not other.classification)
        raise config.error("training.loss", f"{loss} predicts classes; data.target: inputs reconstructs the features, "
                           f"which needs a regression loss ({regression})")
    if data.normalize_target != "none":
        raise config.error("data.normalize_target", "does not apply to data.target: inputs: the targets are the features "
                           "scaled as data.normalize says; leave it out")
    if data.categorical:
        raise config.error("data.categorical", "data.target: inputs reconstructs numeric features only; "
                           "drop the categorical columns (data.drop)")


def _check_schedule(config: Config) -> None:
    training = config.training
    schedule = training.schedule
    if schedule.name in ("cosine", "reduce_on_plateau") and schedule.min_lr > training.learning_rate:
        rises = "; the rate would rise" if schedule.name == "cosine" else ""
        raise config.error("training.schedule.min_lr", f"is above training.learning_rate ({training.learning_rate}){rises}")
    if training.warmup_epochs >= training.epochs:
        raise config.error("training.warmup_epochs", f"must be fewer than training.epochs ({training.epochs}), or the full rate is never reached")


def _check_monitors(config: Config) -> None:
    """A watched metric must exist for the task (whether there are validation rows to watch is
    checked with the data)."""
    for key, monitor in config.training.watched_monitors():
        if monitor.endswith("_accuracy") and not config.is_classification:
            raise config.error(key, f"{monitor} is for classification; regression reports {monitor.replace('accuracy', 'r2')}")
        if monitor.endswith("_r2") and config.is_classification:
            raise config.error(key, f"{monitor} is for regression; classification reports {monitor.replace('r2', 'accuracy')}")
