"""The config's Pydantic models: every key, its type, default and bounds.

A key in the YAML file, its attribute here and its ``--set`` path share one name.  Names of
activations, losses, initialisers and optimizers are spelt out as ``Literal``s (tests check
they equal the core's registries) so that loading a config does not import the core.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from nncli.budgets import (
    MAX_BATCH_SIZE,
    MAX_CATEGORIES,
    MAX_CLASS_WEIGHT,
    MAX_EPOCHS,
    MAX_INIT_SCALE,
    MAX_LAYER_SIZE,
    MAX_LAYERS,
    MAX_MISSING_TOKENS,
    MAX_PATH_CHARS,
    MAX_TOKEN_CHARS,
)
from nncli.config.source import ConfigSource
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import ConfigError, quoted

HiddenActivation = Literal["identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus"]
OutputActivation = Literal[
    "auto", "identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "softmax"
]
LossName = Literal["cross_entropy", "binary_cross_entropy", "mse", "quadratic", "mae", "huber"]
Normalization = Literal["standard", "minmax", "none"]
Dtype = Literal["float32", "float64"]
Monitor = Literal["val_loss", "val_accuracy", "val_r2", "train_loss", "train_accuracy", "train_r2"]
Mode = Literal["auto", "min", "max"]



class Section(BaseModel):
    # strict: `epochs: 5.0`, `epochs: true` or `epochs: "5"` are mistakes, not integers.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _name_shorthand(value: Any) -> Any:
    """`init: he` means `init: {name: he}` (likewise for optimizer and schedule)."""
    return {"name": value} if isinstance(value, str) else value


def _layer_size(value: Any) -> Any:
    if value == "auto" or (type(value) is int and 1 <= value <= MAX_LAYER_SIZE):
        return value
    raise PydanticCustomError(
        "layer_size", "expected a whole number of neurons >= 1 (below 2**63), or 'auto' (first/last layer only)"
    )


# Layer sizes are bounded only by what an array dimension can hold: the network's size in bytes
# is checked against its budget (config/__init__.py, check_network_budget), with a message that
# says what it would take.
LayerSize = Annotated[Union[int, str], BeforeValidator(_layer_size)]


def _class_weights(value: Any) -> Any:
    """`balanced`, or {label: weight > 0}; labels may be written as numbers (`3: 2.0`)."""
    if value is None or value == "balanced":
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("class_weights", "expected 'balanced' or a mapping {class label: weight}")
    weights = {}
    for label, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_CLASS_WEIGHT:
            raise PydanticCustomError(
                "class_weights", "the weight of class {label} must be a number > 0 and at most 1e6 (got {weight})",
                {"label": quoted(label, 40), "weight": _number(weight)},
            )
        weights[str(label)] = float(weight)
    return weights


def _path_text(value: str) -> str:
    if "\0" in value:  # the system cannot open such a name; Python would raise ValueError
        raise PydanticCustomError("path", "a path cannot contain a NUL character (\\0)")
    return value


PathText = Annotated[str, Field(max_length=MAX_PATH_CHARS), AfterValidator(_path_text)]
NonEmptyPath = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS), AfterValidator(_path_text)]


def _number(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length():,} bits"  # str() of a huge int is slow, or refused
    return repr(value)[:40]


Probability = Annotated[float, Field(ge=0, lt=1)]


def _tagged(*members):
    return Annotated[Union[members], Field(discriminator="name"), BeforeValidator(_name_shorthand)]


# --- model.init ------------------------------------------------------------------------------
class HeInit(Section):
    name: Literal["he"]


class XavierInit(Section):
    name: Literal["xavier"]


class LecunInit(Section):
    name: Literal["lecun"]


class NormalInit(Section):
    name: Literal["normal"]
    std: float = Field(0.05, gt=0, le=MAX_INIT_SCALE)  # the bound keeps initial weights finite


class UniformInit(Section):
    name: Literal["uniform"]
    limit: float = Field(0.05, gt=0, le=MAX_INIT_SCALE)


class ConstantInit(Section):
    name: Literal["constant"]
    value: float = Field(ge=-MAX_INIT_SCALE, le=MAX_INIT_SCALE)


InitConfig = _tagged(HeInit, XavierInit, LecunInit, NormalInit, UniformInit, ConstantInit)


# --- training.optimizer: one constrained section per optimizer -------------------------------
class SGDConfig(Section):
    name: Literal["sgd"]
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class AdamConfig(Section):
    name: Literal["adam"]
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)


class AdamWConfig(Section):
    name: Literal["adamw"]
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)


class RMSpropConfig(Section):
    name: Literal["rmsprop"]
    rho: float = Field(0.9, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)


OptimizerConfig = _tagged(SGDConfig, AdamConfig, AdamWConfig, RMSpropConfig)


# --- training.schedule: the learning rate epoch by epoch --------------------------------------
class ConstantSchedule(Section):
    name: Literal["constant"]


class StepSchedule(Section):
    name: Literal["step"]
    step_size: int = Field(10, ge=1, le=MAX_EPOCHS)  # epochs between drops
    gamma: float = Field(0.5, gt=0, le=1)


class ExponentialSchedule(Section):
    name: Literal["exponential"]
    gamma: float = Field(0.95, gt=0, le=1)


class CosineSchedule(Section):
    name: Literal["cosine"]
    min_lr: float = Field(0.0, ge=0)


class PlateauSchedule(Section):
    name: Literal["reduce_on_plateau"]
    monitor: Monitor = "val_loss"
    mode: Mode = "auto"
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(5, ge=0, le=MAX_EPOCHS)
    min_delta: float = Field(0.0, ge=0)
    min_lr: float = Field(0.0, ge=0)


ScheduleConfig = _tagged(ConstantSchedule, StepSchedule, ExponentialSchedule, CosineSchedule, PlateauSchedule)


class EarlyStoppingConfig(Section):
    monitor: Monitor = "val_loss"
    patience: int = Field(10, ge=0, le=MAX_EPOCHS)
    min_delta: float = Field(0.0, ge=0)
    mode: Mode = "auto"


# --- data: which columns, and how text and gaps become inputs ---------------------------------
MissingStrategy = Literal["error", "mean", "median", "most_frequent", "drop_rows"]  # = core.encoding.MISSING_STRATEGIES
UnknownCategory = Literal["error", "ignore"]  # = core.encoding.UNKNOWN_POLICIES


def _column_names(names: list[str] | None) -> list[str] | None:
    """A list of column names: each a non-empty string, none twice."""
    if names is None:
        return None
    seen = set()
    for name in names:
        if not name.strip():
            raise PydanticCustomError("column_name", "an empty column name; name each column as its header does")
        if name in seen:
            raise PydanticCustomError("column_name", "names {name} twice", {"name": quoted(name, 40)})
        seen.add(name)
    return names


def _overlap(names: list[str] | None, others: list[str] | None, message: str) -> None:
    """The first of ``names`` also in ``others``: an error (``message`` gets it as {name})."""
    both = [name for name in names or () if name in set(others or ())]
    if both:
        raise PydanticCustomError("column_name", message, {"name": quoted(both[0], 40)})


# --- sections --------------------------------------------------------------------------------
# `data.target: inputs` makes an autoencoder: the targets are the (scaled) feature columns
# themselves. A column that is really named "inputs" is still a target as a list: [inputs].
RECONSTRUCT_INPUTS = "inputs"


class DataConfig(Section):
    train: NonEmptyPath
    target: Union[str, list[str], None] = None
    validation: Union[PathText, None] = None
    validation_split: float = Field(0.2, ge=0, lt=1)
    shuffle: bool = True
    normalize: Normalization = "standard"
    normalize_target: Normalization = "none"
    # The parse cache (docs/performance.md, "The parse cache"): auto = CSV files of 32 MiB or
    # more, cached in $XDG_CACHE_HOME/nncli; off; or a folder, for every file whatever its size.
    cache: Union[Literal["auto", "off"], NonEmptyPath] = "auto"
    # Training data held in memory, or read from the parse cache a window at a time (data bigger
    # than memory); auto: from disk when the CSV would not fit (docs/performance.md).
    in_memory: Union[Literal["auto"], bool] = "auto"
    # Which columns are inputs (docs/config.md, "Columns, categories and missing cells"):
    # null = every column but the target(s) and `drop`, in the file's order; or these, in this order.
    features: Union[list[str], None] = None
    drop: list[str] = Field(default_factory=list)  # columns never read (IDs, free text)
    categorical: list[str] = Field(default_factory=list)  # one-hot, read as text even when numeric codes
    max_categories: int = Field(100, ge=1, le=MAX_CATEGORIES)
    unknown_category: UnknownCategory = "error"  # at predict/evaluate: ignore = all-zero one-hot
    missing: MissingStrategy = "error"
    missing_values: list[Annotated[str, Field(max_length=MAX_TOKEN_CHARS)]] = Field(
        default_factory=lambda: ["", "NA", "NaN", "null"], max_length=MAX_MISSING_TOKENS)

    # (Fields are validated in the order they are declared: each check below sees the ones above.)
    @field_validator("features")
    @classmethod
    def _features(cls, names, info: ValidationInfo):
        _column_names(names)
        if names is not None and not names:
            raise PydanticCustomError("column_name", "is empty; list the input columns, or leave it out (null) for every column")
        _overlap(names, _targets(info), "names {name}, a target; targets are never features")
        return names

    @field_validator("drop")
    @classmethod
    def _drop(cls, names, info: ValidationInfo):
        _column_names(names)
        _overlap(names, info.data.get("features"), "names {name}, which data.features lists too; keep it in one of them")
        _overlap(names, _targets(info), "names {name}, a target; the target cannot be dropped")
        return names

    @field_validator("categorical")
    @classmethod
    def _categorical(cls, names, info: ValidationInfo):
        _column_names(names)
        _overlap(names, info.data.get("drop"), "names {name}, which data.drop drops; keep it in one of them")
        _overlap(names, _targets(info), "names {name}, a target; categorical applies to feature columns "
                 "(a classification loss reads the target as labels already)")
        features = info.data.get("features")
        if features is not None:
            outside = [name for name in names if name not in set(features)]
            if outside:
                raise PydanticCustomError("column_name", "names {name}, which is not in data.features",
                                          {"name": quoted(outside[0], 40)})
        return names

    @field_validator("missing_values")
    @classmethod
    def _missing_values(cls, tokens):
        if len(set(tokens)) != len(tokens):
            raise PydanticCustomError("missing_values", "lists a value twice")
        return tokens

    @property
    def autoencoder(self) -> bool:
        """`target: inputs`: the network learns to reproduce its own features."""
        return self.target == RECONSTRUCT_INPUTS

    @property
    def target_columns(self) -> list[str] | None:
        """The target columns named (None: the last column, or the features of an autoencoder)."""
        if self.autoencoder:
            return None
        return [self.target] if isinstance(self.target, str) else self.target


def _targets(info: ValidationInfo) -> list[str]:
    target = info.data.get("target")
    if target == RECONSTRUCT_INPUTS:  # the features themselves: no column set apart
        return []
    return [target] if isinstance(target, str) else list(target or ())


class ModelConfig(Section):
    layers: list[LayerSize] = Field(default_factory=lambda: ["auto", 32, "auto"], min_length=2, max_length=MAX_LAYERS)
    activation: Union[HiddenActivation, list[HiddenActivation]] = "relu"
    output_activation: OutputActivation = "auto"
    leaky_relu_slope: float = Field(0.01, gt=0, lt=1)  # leaky_relu's slope below zero
    dropout: Union[Probability, list[Probability]] = 0.0
    bias: bool = True
    init: InitConfig = Field(default_factory=lambda: HeInit(name="he"))
    init_from: Union[NonEmptyPath, None] = None
    dtype: Dtype = "float32"

    def per_hidden_layer(self, key: str) -> list:
        """`activation`/`dropout` as one value per hidden layer (a single value applies to all)."""
        value = getattr(self, key)
        hidden = len(self.layers) - 2
        return list(value) if isinstance(value, list) else [value] * hidden


class TrainingConfig(Section):
    loss: LossName = "cross_entropy"
    huber_delta: float = Field(1.0, gt=0)  # huber: quadratic within ±delta, linear beyond
    class_weights: Annotated[Union[str, dict[str, float], None], BeforeValidator(_class_weights)] = None
    optimizer: OptimizerConfig = Field(default_factory=lambda: SGDConfig(name="sgd"))
    learning_rate: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    clip_norm: Union[Annotated[float, Field(gt=0)], None] = None
    schedule: ScheduleConfig = Field(default_factory=lambda: ConstantSchedule(name="constant"))
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS)
    epochs: int = Field(30, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(32, ge=1, le=MAX_BATCH_SIZE)  # and the batch budget: check_network_budget
    early_stopping: Union[EarlyStoppingConfig, None] = None
    checkpoint_every: int = Field(0, ge=0, le=MAX_EPOCHS)  # epochs; 0: only when interrupted

    def watched_monitors(self) -> list[tuple[str, str]]:
        """(config key, metric) of every metric watched while training: early stopping's and
        reduce-on-plateau's."""
        watched = []
        if self.early_stopping is not None:
            watched.append(("training.early_stopping.monitor", self.early_stopping.monitor))
        if self.schedule.name == "reduce_on_plateau":
            watched.append(("training.schedule.monitor", self.schedule.monitor))
        return watched


class Config(Section):
    seed: Union[int, None] = Field(None, ge=0, lt=2**63)
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: Union[NonEmptyPath, None] = None

    _source: ConfigSource = PrivateAttr(default=None)

    @property
    def source(self) -> ConfigSource:
        return self._source

    def error(self, path: str, message: str) -> ConfigError:
        """A ConfigError about the field at dotted ``path``, located in the file or --set."""
        key_path = tuple(int(part) if part.isdigit() else part for part in path.split("."))
        return ConfigError(f"{self._source.where(key_path)}: {path}: {message}")

    @property
    def output_activation(self) -> str:
        if self.model.output_activation != "auto":
            return self.model.output_activation
        return LOSS_KINDS[self.training.loss].output

    @property
    def is_classification(self) -> bool:
        return LOSS_KINDS[self.training.loss].classification
