"""The YAML config: Pydantic models, loading with line numbers, and ``--set`` overrides.

A key in the YAML file, its attribute here and its ``--set`` path share one name.  All
user mistakes become a :class:`ConfigError` naming the file, the line and the field path.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from nncli.errors import ConfigError

# The names below are the registries' keys (tests check they stay the same sets); they are
# spelt out here so that loading a config does not import the numerical core.
HiddenActivation = Literal["identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus"]
OutputActivation = Literal[
    "auto", "identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "softmax"
]
LossName = Literal["cross_entropy", "mse", "quadratic"]
Normalization = Literal["standard", "minmax", "none"]
Dtype = Literal["float32", "float64"]

MAX_CONFIG_BYTES = 1 << 20
NAME_SHORTHANDS = {("model", "init"), ("training", "optimizer")}  # `init: he` = `init: {name: he}`
MAX_CONFIG_NODES = 100_000  # after expanding YAML aliases: stops "billion laughs" files


class Section(BaseModel):
    # strict: `epochs: 5.0`, `epochs: true` or `epochs: "5"` are mistakes, not integers.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _name_shorthand(value: Any) -> Any:
    """`init: he` means `init: {name: he}` (likewise for optimizer)."""
    return {"name": value} if isinstance(value, str) else value


def _layer_size(value: Any) -> Any:
    if value == "auto" or (type(value) is int and value >= 1):
        return value
    raise PydanticCustomError(
        "layer_size", "expected a whole number of neurons >= 1, or 'auto' (first/last layer only)"
    )


LayerSize = Annotated[Union[int, str], BeforeValidator(_layer_size)]


# --- model.init ------------------------------------------------------------------------------
class HeInit(Section):
    name: Literal["he"]


class XavierInit(Section):
    name: Literal["xavier"]


class LecunInit(Section):
    name: Literal["lecun"]


class NormalInit(Section):
    name: Literal["normal"]
    std: float = Field(0.05, gt=0)


class UniformInit(Section):
    name: Literal["uniform"]
    limit: float = Field(0.05, gt=0)


class ConstantInit(Section):
    name: Literal["constant"]
    value: float


InitConfig = Annotated[
    Union[HeInit, XavierInit, LecunInit, NormalInit, UniformInit, ConstantInit],
    Field(discriminator="name"),
    BeforeValidator(_name_shorthand),
]


# --- training.optimizer ----------------------------------------------------------------------
class SGDConfig(Section):
    name: Literal["sgd"]


OptimizerConfig = Annotated[
    Union[SGDConfig], Field(discriminator="name"), BeforeValidator(_name_shorthand)
]


# --- sections --------------------------------------------------------------------------------
class DataConfig(Section):
    train: str = Field(min_length=1)
    target: Union[str, list[str], None] = None
    validation: Union[str, None] = None
    validation_split: float = Field(0.2, ge=0, lt=1)
    shuffle: bool = True
    normalize: Normalization = "standard"
    normalize_target: Normalization = "none"

    @property
    def target_columns(self) -> list[str] | None:
        return [self.target] if isinstance(self.target, str) else self.target


class ModelConfig(Section):
    layers: list[LayerSize] = Field(default_factory=lambda: ["auto", 32, "auto"], min_length=2)
    activation: HiddenActivation = "relu"
    output_activation: OutputActivation = "auto"
    bias: bool = True
    init: InitConfig = Field(default_factory=lambda: HeInit(name="he"))
    dtype: Dtype = "float32"


class TrainingConfig(Section):
    loss: LossName = "cross_entropy"
    optimizer: OptimizerConfig = Field(default_factory=lambda: SGDConfig(name="sgd"))
    learning_rate: float = Field(0.01, gt=0)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)


class Config(Section):
    seed: Union[int, None] = Field(None, ge=0, lt=2**63)
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: Union[str, None] = Field(None, min_length=1)

    _source: "ConfigSource" = PrivateAttr(default=None)

    @property
    def source(self) -> "ConfigSource":
        return self._source

    def error(self, path: str, message: str) -> ConfigError:
        """A ConfigError about the field at dotted ``path``, located in the file or --set."""
        key_path = tuple(int(part) if part.isdigit() else part for part in path.split("."))
        return ConfigError(f"{self._source.where(key_path)}: {path}: {message}")

    @property
    def output_activation(self) -> str:
        if self.model.output_activation != "auto":
            return self.model.output_activation
        return "softmax" if self.training.loss == "cross_entropy" else "identity"

    @property
    def is_classification(self) -> bool:
        return self.training.loss == "cross_entropy"


# --- where a value came from -----------------------------------------------------------------
@dataclass
class ConfigSource:
    """Where each setting was written: a line of the file or a --set override."""

    path: Path
    lines: dict[tuple, int] = field(default_factory=dict)  # key path -> 1-based line
    overrides: dict[tuple, str] = field(default_factory=dict)  # key path -> "--set a.b=v"

    @property
    def folder(self) -> Path:
        return self.path.parent

    def where(self, key_path: tuple) -> str:
        for n in range(len(key_path), 0, -1):
            if key_path[:n] in self.overrides:
                return self.overrides[key_path[:n]]
        for overridden, flag in self.overrides.items():
            if key_path and overridden[: len(key_path)] == key_path:
                return flag
        for n in range(len(key_path), 0, -1):
            if key_path[:n] in self.lines:
                return f"{self.path}:{self.lines[key_path[:n]]}"
        return str(self.path)

    def from_command_line(self, key: str) -> bool:
        """Was this key (or a section containing it) given with --set?"""
        parts = tuple(key.split("."))
        return any(parts[:n] in self.overrides for n in range(1, len(parts) + 1))


# --- loading ---------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, check and validate a YAML config; apply ``--set key=value`` overrides."""
    path = Path(path)
    text = _read_text(path)
    source = ConfigSource(path)
    raw = _parse_yaml(text, source)
    for override in overrides:
        _apply_override(raw, override, source)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, raw, source) from None
    config._source = source
    _check_consistency(config)
    return config


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config file is larger than {MAX_CONFIG_BYTES >> 20} MiB")
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; expected a YAML config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected YAML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags, nothing executed) with YAML 1.2's core schema.

    YAML 1.1, PyYAML's default, reads `1e-3` as a string, `010` as 8, `1:30` as 90 and
    `on`/`no` as booleans: traps for `learning_rate: 1e-3`, `epochs: 010` or `target: no`.
    Only the 1.2 spellings are plain scalars here: null ~, true/false, decimal, 0o and 0x
    integers, and floats with a dot or an exponent (plus .inf/.nan, which validation rejects).
    """


_ConfigLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        list("-+0123456789."),
    ),
):
    _ConfigLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), _first)


def _construct_int(loader: _ConfigLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith(("0o", "0x")):
        return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
    return sign * int(digits, 10)  # `010` is ten, as in YAML 1.2


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _yaml_value(text: str, source: ConfigSource | None = None) -> Any:
    """One YAML document, parsed safely; with ``source``, key lines are recorded and checked."""
    loader = _ConfigLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if source is not None:
            _check_nodes(root, source)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _parse_yaml(text: str, source: ConfigSource) -> dict:
    try:
        data = _yaml_value(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(source.path)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source.path}: YAML error: {exc}") from None
    if data is None:
        raise ConfigError(f"{source.path}: config is empty; expected a mapping with at least data.train")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source.path}:1: expected a mapping of settings (seed, data, model, training, "
            f"output) at the top level, got a {type(data).__name__}"
        )
    return data


def _check_nodes(root: yaml.Node, source: ConfigSource) -> None:
    """Record each key's line, refuse duplicate keys and refuse alias bombs.

    Aliases make the YAML tree a graph; sizes are memoised per node so the check itself
    stays linear in the text however deep the aliases nest.
    """
    expanded_size: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in expanded_size:
            expanded_size[id(node)] = 0  # guards against (impossible in safe YAML) cycles
            if isinstance(node, yaml.MappingNode):
                total = 1 + sum(size(k) + size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size(item) for item in node.value)
            else:
                total = 1
            expanded_size[id(node)] = min(total, MAX_CONFIG_NODES + 1)
        return expanded_size[id(node)]

    if size(root) > MAX_CONFIG_NODES:
        raise ConfigError(
            f"{source.path}: config expands to more than {MAX_CONFIG_NODES:,} values "
            "(nested YAML aliases?); refusing to load it"
        )

    seen: set[int] = set()

    def walk(node: yaml.Node, key_path: tuple) -> None:
        if id(node) in seen:  # an alias: already checked where it was defined
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise ConfigError(
                        f"{source.path}:{line}: {'.'.join(map(str, key_path + (key,)))}: "
                        f"duplicate key (first set on line {first_line[key]})"
                    )
                first_line[key] = line
                source.lines[key_path + (key,)] = line
                walk(value_node, key_path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                source.lines[key_path + (index,)] = item.start_mark.line + 1
                walk(item, key_path + (index,))

    walk(root, ())


def _apply_override(raw: dict, override: str, source: ConfigSource) -> None:
    flag = f"--set {override}"
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag}: expected KEY=VALUE, e.g. --set training.epochs=5")
    parts = key.strip().split(".")
    try:
        value = _yaml_value(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag}: value is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else None
        if nxt is None:
            nxt = node[part] = {}
        elif isinstance(nxt, str) and tuple(parts[: depth + 1]) in NAME_SHORTHANDS:
            nxt = node[part] = {"name": nxt}  # `init: constant` + --set model.init.value=3
        if not isinstance(nxt, (dict, list)):
            raise ConfigError(f"{flag}: {'.'.join(parts[:depth + 1])} is a single value, not a section")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{flag}: {'.'.join(parts[:-1])} has {len(node)} entries; {last!r} is not an index of it")
        node[int(last)] = value
    else:
        node[last] = value
    source.overrides[tuple(int(p) if p.isdigit() else p for p in parts)] = flag


# --- turning Pydantic's errors into one readable line ---------------------------------------
def _validation_error(exc: ValidationError, raw: dict, source: ConfigSource) -> ConfigError:
    # include_input=False: echoing the input of a huge or alias-expanded value can take minutes.
    errors = exc.errors(include_input=False, include_url=False)
    # A misspelt key usually explains the "missing" error next to it, so it goes first.
    first = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    key_path = _display_path(first["loc"])
    dotted = ".".join(map(str, key_path)) or "(top level)"
    if first["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(first["loc"])
    elif first["type"] == "missing":
        message = "required setting is missing"
    elif first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        found, value = _lookup(raw, key_path)
        got = "nothing" if value is None else f"{_kind(value)} ({_short_repr(value)})"
        message = f"expected a section (a mapping of keys), got {got}"
    elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        names = ", ".join(_tags_at(first["loc"]))
        found, value = _lookup(raw, key_path)
        if isinstance(value, dict):
            got = f" (got {_short_repr(value['name'])})" if "name" in value else " (the mapping has no `name:`)"
        else:
            got = f" (got {_short_repr(value)})" if found else ""
        message = f"expected one of: {names}, or a mapping with `name:` one of them{got}"
    else:
        message = first["msg"].replace(" after validation", "")
        message = message[0].lower() + message[1:]
        found, value = _lookup(raw, key_path)
        if found and not isinstance(value, (dict, list)):
            message += f" (got {_short_repr(value)})"
    more = len({tuple(_display_path(e["loc"])) for e in errors}) - 1
    if more > 0:
        message += f" [and {more} more problem{'s' if more > 1 else ''}]"
    return ConfigError(f"{source.where(tuple(key_path))}: {dotted}: {message}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", str: "a string", list: "a list"}.get(type(value), type(value).__name__)


def _short_repr(value: Any) -> str:
    if value is None or isinstance(value, bool):
        text = "null" if value is None else str(value).lower()  # as YAML spells them
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _lookup(raw: Any, key_path: list) -> tuple[bool, Any]:
    node = raw
    for part in key_path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes an annotation can hold (through Annotated, Union, list, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _walk_models(loc: tuple) -> tuple[list, type[BaseModel] | None]:
    """Split Pydantic's error location into the user's key path and the model it ends in.

    Pydantic inserts union member tags (``'constant'``, ``'str'``, ``'list[str]'``) into
    locations; a user never wrote those, so they are dropped from the path.
    """
    path: list = []
    model: type[BaseModel] | None = Config
    pending_union: list[type[BaseModel]] = []
    for part in loc:
        if isinstance(part, int):
            path.append(part)
            continue
        if pending_union:
            tagged = [m for m in pending_union if typing.get_args(m.model_fields["name"].annotation) == (part,)]
            pending_union = []
            if tagged:
                model = tagged[0]
                continue
        if model is not None and part in model.model_fields:
            path.append(part)
            info = model.model_fields[part]
            members = _models_in(info.annotation)
            if _is_tagged_union(info):
                model, pending_union = None, members
            elif len(members) == 1:
                model = members[0]
            elif members:
                model, pending_union = None, members
            else:
                model = None
        elif model is None and not pending_union:
            continue  # a scalar union tag such as 'str' or 'list[str]'
        else:
            path.append(part)  # an unknown key: keep it so the message can name it
    return path, model


def _tags_at(loc: tuple) -> list[str]:
    """The names a tagged union (model.init, training.optimizer) accepts at ``loc``."""
    _, parent = _walk_models(tuple(loc[:-1]))
    if parent is None or loc[-1] not in parent.model_fields:
        return []
    return [typing.get_args(m.model_fields["name"].annotation)[0] for m in _models_in(parent.model_fields[loc[-1]].annotation)]


def _is_tagged_union(info) -> bool:
    return any(getattr(m, "discriminator", None) for m in [info, *info.metadata])


def _display_path(loc: tuple) -> list:
    return _walk_models(loc)[0]


def _suggestion(loc: tuple) -> str:
    _, parent = _walk_models(loc[:-1])
    if parent is None or not loc:
        return ""
    valid = list(parent.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(valid)}"


# --- checks that span several fields ---------------------------------------------------------
def _check_consistency(config: Config) -> None:
    layers = config.model.layers
    for index, size in enumerate(layers[1:-1], start=1):
        if size == "auto":
            raise config.error(
                f"model.layers.{index}",
                "only the first (input) and last (output) layer can be 'auto'; give hidden layer sizes as numbers",
            )
    loss, output = config.training.loss, config.model.output_activation
    if loss == "cross_entropy" and output not in ("auto", "softmax"):
        raise config.error(
            "model.output_activation",
            f"cross_entropy needs a softmax output (or 'auto'); got {output!r}. "
            "Use loss mse or quadratic for other outputs",
        )
    targets = config.data.target_columns
    if loss == "cross_entropy" and targets is not None and len(targets) != 1:
        raise config.error("data.target", "cross_entropy (classification) needs exactly one target column")
    if targets is not None and len(set(targets)) != len(targets):
        raise config.error("data.target", "lists a column twice")
    if loss == "cross_entropy" and config.data.normalize_target != "none":
        raise config.error("data.normalize_target", "applies to regression targets only; cross_entropy predicts classes")
    if config.data.validation is not None and "validation_split" in config.data.model_fields_set:
        if config.data.validation_split > 0:
            raise config.error(
                "data.validation_split", "give either a validation file or a validation_split, not both"
            )


def resolve_path(config: Config, key: str, value: str) -> Path:
    """Config paths are relative to the config file's folder; --set paths to the working dir."""
    path = Path(value).expanduser()
    if path.is_absolute() or config.source.from_command_line(key):
        return path
    return Path(os.path.normpath(config.source.folder / path))
