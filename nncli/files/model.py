"""The model file: a NumPy ``.npz`` archive, readable without nncli and safe to open.

Arrays ``W1…Wn`` (``(fan_in, fan_out)``) and ``b1…bn``, plus ``meta``: a JSON string with
the format version, architecture, feature/target names, classes, the features' encoding
(categories, fill values), normalisation and the training record.  Loading never unpickles: the zip members are checked (names, dtypes,
declared shapes, sizes) before any array is read, and arrays are read with
``allow_pickle=False``.  Every field of the metadata is checked for its type and size before
anything is sized by it or shows it: the network against the same budget a config has
(config/budgets.py), names against MAX_NAME_CHARS, the training record's numbers as numbers.
"""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from nncli import __version__
from nncli.budgets import (
    DTYPE_BYTES,
    MAX_CATEGORIES,
    MAX_LAYERS,
    MAX_MISSING_TOKENS,
    MAX_TOKEN_CHARS,
    class_budget,
    human_bytes,
    network_bytes,
)
from nncli.core.activations import ACTIVATIONS, get_activation
from nncli.core.blas import fused_available
from nncli.core.encoding import Encoding
from nncli.core.losses import LOSSES, get_loss
from nncli.core.model import TrainedModel
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import ModelFileError, quoted
from nncli.files.npz import MAX_ARRAY_ELEMENTS, read_archive, write_archive
from nncli.files.runfiles import RunFiles, finite_record

FORMAT = "nncli-model"
# 2: the loss's and the activations' parameters are stored (loss_params, activation_params);
# version 1 files are read with Huber's delta from their stored config and default slopes.
# 3: the features' encoding (`encoding`: categories one-hot, fill values for missing cells).
# A model whose every feature is a plain number with no fill is still written as version 2, with
# its encoding: nncli from before encodings reads and applies it exactly as this one does.
FORMAT_VERSION = 3
PLAIN_FORMAT_VERSION = 2

# A feature, target or class name: a CSV header cell or label, shown in tables and quoted in
# messages. 64 Ki characters is far beyond any name (a page of text is ~3,000); the metadata's
# own budget (files/npz.py) bounds their number.
MAX_NAME_CHARS = 1 << 16


class _ScalerMeta(BaseModel):
    model_config = ConfigDict(strict=True)  # "1.5" is not a number, true is not 1

    method: Literal["standard", "minmax", "none"]
    offset: list[float]
    scale: list[float]


class ModelMeta(BaseModel):
    """The JSON ``meta`` entry, validated so that a foreign or edited file fails clearly."""

    # strict: a number written as a string, or true for 1, is an edited file, not a value.
    model_config = ConfigDict(extra="allow", strict=True)

    format: Literal["nncli-model"]
    format_version: int
    nncli_version: str
    numpy_version: Optional[str] = None
    created: Optional[str] = None
    layers: list[int] = Field(min_length=2)
    activations: list[str]
    activation_params: list[dict] = Field(default_factory=list)  # one per layer; [] in version 1
    bias: bool
    dtype: Literal["float32", "float64"]
    loss: str
    loss_params: dict = Field(default_factory=dict)
    features: list[str]
    targets: list[str] = Field(min_length=1)
    classes: Optional[list[str]] = None
    feature_scaler: _ScalerMeta
    target_scaler: Optional[_ScalerMeta] = None
    encoding: Optional[dict] = None  # Encoding.to_json(); absent in models from before encodings
    autoencoder: bool = False  # targets are the features (data.target: inputs); absent before autoencoders
    _plan: Optional[Encoding] = PrivateAttr(None)  # the encoding, parsed and checked
    config: dict = Field(default_factory=dict)
    history: list[dict] = Field(default_factory=list)
    metrics: dict = Field(default_factory=dict)


def blas_info(dtype=np.float32) -> dict:
    """The BLAS NumPy uses and the thread settings in force: results are bit-identical for the
    same machine and BLAS (and, with another BLAS than NumPy's bundled OpenBLAS, thread count),
    so the model file records them."""
    info: dict = {"threads": {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS") or k.startswith("OPENBLAS_")}}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(name=blas.get("name"), version=blas.get("version"), configuration=blas.get("openblas configuration"))
    except Exception:  # older NumPy (< 1.26) has no dict form; the versions above still identify it
        pass
    # Whether plain SGD could update weights inside the GEMM (core/blas.py) — it does for
    # matrices of FUSE_FROM_ELEMENTS weights and more; beyond one GEMM k-block of rows per batch
    # that rounds differently from the NumPy route (NNCLI_BLAS=numpy).
    info["fused_update_available"] = fused_available(dtype)
    return info


def save_model(path: Path, model: TrainedModel) -> None:
    network = model.network
    plain = model.encoding is None or model.encoding.is_plain
    meta = {
        "format": FORMAT,
        "format_version": PLAIN_FORMAT_VERSION if plain else FORMAT_VERSION,
        "nncli_version": __version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "blas": blas_info(network.dtype),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "layers": network.sizes,
        "activations": network.activation_names,
        "activation_params": network.activation_params,
        "bias": network.biases[0] is not None,
        "dtype": network.dtype.name,
        "loss": model.loss,
        "loss_params": model.loss_params,
        "features": model.features,
        "targets": model.targets,
        "classes": model.classes,
        "feature_scaler": model.feature_scaler.to_json(),
        "target_scaler": None if model.target_scaler is None else model.target_scaler.to_json(),
        "config": model.config,
        # NaN and infinities become null, flagged under `non_finite` (JSON cannot hold them).
        "history": [finite_record(record) for record in model.history],
        "metrics": finite_record(model.metrics),
    }
    if model.encoding is not None:
        meta["encoding"] = model.encoding.to_json()
    if model.autoencoder:  # (only then: older nncli reads every other model file as before)
        meta["autoencoder"] = True
    arrays: dict[str, np.ndarray] = {}
    for i, (W, b) in enumerate(zip(network.weights, network.biases), start=1):
        arrays[f"W{i}"] = W
        if b is not None:
            arrays[f"b{i}"] = b
    write_archive(path, meta, arrays)


# What a command taking MODEL then DATA says when its MODEL is a data file or a config.
MODEL_THEN_DATA = "the arguments are MODEL then DATA"


def load_model(path: Path, misplaced: str = "") -> TrainedModel:
    return read_model(path, misplaced)[0]


def read_model(path: Path, misplaced: str = "") -> tuple[TrainedModel, ModelMeta]:
    """The model and its validated metadata (versions, date), from one read of the file.
    ``misplaced``: what to say when the file is data or a config (see npz.read_archive)."""
    path = Path(path)
    meta, arrays = _read_archive(path, misplaced)
    sizes = meta.layers
    for name, array in arrays.items():
        if not _all_finite(array):
            raise ModelFileError(f"{path}: array {name!r} holds NaN or infinite values; training never writes those")
    weights = [arrays[f"W{i}"] for i in range(1, len(sizes))]
    biases = [arrays[f"b{i}"] if meta.bias else None for i in range(1, len(sizes))]
    try:
        activations = [get_activation(name, **params) for name, params in zip(meta.activations, meta.activation_params)]
        network = MLP(weights, biases, activations)
    except ValueError as exc:
        raise ModelFileError(f"{path}: inconsistent network: {exc}") from None
    model = TrainedModel(
        network=network,
        loss=meta.loss,
        loss_params=meta.loss_params,
        features=meta.features,
        targets=meta.targets,
        classes=meta.classes,
        feature_scaler=Scaler.from_json(meta.feature_scaler.model_dump()),
        target_scaler=None if meta.target_scaler is None else Scaler.from_json(meta.target_scaler.model_dump()),
        config=meta.config,
        history=meta.history,
        metrics=meta.metrics,
        source=str(path),
        encoding=meta._plan,
        autoencoder=meta.autoencoder,
    )
    return model, meta


def _all_finite(array: np.ndarray, block: int = 1 << 22) -> bool:
    """``np.isfinite(array).all()`` a block at a time: no mask the size of a 4 GiB array."""
    flat = array.reshape(-1)
    return all(np.isfinite(flat[start : start + block]).all() for start in range(0, flat.size, block))


def _read_archive(path: Path, misplaced: str = "") -> tuple[ModelMeta, dict[str, np.ndarray]]:
    return read_archive(
        path,
        misplaced=misplaced,
        kind="model file",
        error=ModelFileError,
        parse_meta=lambda data: _parse_meta(path, data),
        expected=lambda meta: _expected_arrays(path, meta),
    )


def _parse_meta(path: Path, data: dict) -> ModelMeta:
    if data.get("format") != FORMAT:
        _refuse_a_checkpoint(path, data)
        _refuse_clusters(path, data)
        raise ModelFileError(f"{path}: not an nncli model file (metadata 'format' is not {FORMAT!r})")
    version = data.get("format_version")
    if type(version) is not int or version > FORMAT_VERSION or version < 1:
        raise ModelFileError(
            f"{path}: model format version {version!r} is not supported by nncli {__version__} "
            f"(it reads versions 1 to {FORMAT_VERSION}); upgrade nncli or retrain"
        )
    try:
        meta = ModelMeta.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(map(str, first["loc"]))
        raise ModelFileError(f"{path}: metadata field {where}: {first['msg']}") from None
    if version == 1:
        _upgrade_from_version_1(meta)
    else:
        for key in ("activation_params", "loss_params"):
            if key not in data:
                raise ModelFileError(f"{path}: metadata lacks {key!r} (format version {version} stores it)")
    _check_sizes(path, meta)
    _check_functions(path, meta)
    _check_names(path, meta)
    _check_encoding(path, meta)
    _check_scalers(path, meta)
    _check_fills(path, meta)
    _check_record(path, "metrics", meta.metrics)
    for epoch, record in enumerate(meta.history):
        _check_record(path, f"history.{epoch}", record)
    return meta


def _refuse_a_checkpoint(path: Path, data: dict) -> None:
    """A checkpoint given where a model belongs (predict, evaluate, inspect): say what it is
    for, and which model file its run writes."""
    from nncli.files.checkpoint import FORMAT as CHECKPOINT  # imported here: only this error needs it

    if data.get("format") != CHECKPOINT:
        return
    try:
        model = RunFiles.from_layout(path, data["files"]).model
        instead = f"give its run's model file instead ({model}{'' if model.is_file() else ', written when the run finishes'})"
    except (KeyError, TypeError, ValueError):  # an older or edited checkpoint: its run's files are not known
        instead = "give the model file its run wrote instead"
    raise ModelFileError(f"{path}: this is a checkpoint; use `nncli train --resume {path}` to continue its run, or {instead}")


def _refuse_clusters(path: Path, data: dict) -> None:
    """A clusters file (files/clusters.py, which imports this module: its format is spelled out
    here) given where a model belongs (inspect, embed, evaluate): say what it holds and the
    command that uses it. The meta is read as it comes, unvalidated: it only names the file."""
    if data.get("format") != "nncli-clusters":
        return

    def count(value) -> str:
        return f"{value:,}" if type(value) is int else "?"

    source = data.get("model")
    space = f"{count(data.get('dimensions'))} features"
    if isinstance(source, dict):
        space = (f"{count(data.get('dimensions'))} codes at layer {count(source.get('layer'))} of {str(source.get('path'))[:300]}"
                 + ", refined" * bool(data.get("encoder")))
    raise ModelFileError(f"{path} is a clusters file (nncli cluster --save): {count(data.get('k'))} centroids over {space}; "
                         f"`nncli predict {path} DATA` assigns rows to them")


def _upgrade_from_version_1(meta: ModelMeta) -> None:
    """Version 1 stored no parameters: Huber's delta is in the stored config, slopes were the defaults."""
    meta.activation_params = [{} for _ in meta.activations]
    delta = meta.config.get("training", {}).get("huber_delta") if isinstance(meta.config.get("training"), dict) else None
    if meta.loss == "huber" and isinstance(delta, (int, float)) and not isinstance(delta, bool):
        meta.loss_params = {"delta": float(delta)}


def _check_sizes(path: Path, meta: ModelMeta) -> None:
    """Layer sizes, before anything is sized by them: the whole network against the budget a
    config has (so a model train can write, predict can read; NNCLI_MAX_NETWORK_BYTES)."""
    layers = meta.layers
    if len(layers) > MAX_LAYERS:
        raise ModelFileError(f"{path}: metadata declares {len(layers):,} layers; nncli builds at most {MAX_LAYERS:,}")
    if any(size < 1 for size in layers):
        raise ModelFileError(f"{path}: metadata layer sizes must be >= 1, got {_short(layers)}")
    for i, (fan_in, fan_out) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        if fan_in * fan_out > MAX_ARRAY_ELEMENTS:
            raise ModelFileError(f"{path}: layer {i} declares {fan_in:,}x{fan_out:,} weights; implausibly large")
    parameters = sum(fan_in * fan_out + (fan_out if meta.bias else 0) for fan_in, fan_out in zip(layers[:-1], layers[1:]))
    size, limit = parameters * DTYPE_BYTES[meta.dtype], network_bytes()
    if size > limit:
        raise ModelFileError(
            f"{path}: the network declares {parameters:,} weights and biases ({human_bytes(size)} of {meta.dtype}), "
            f"more than the {human_bytes(limit)} nncli loads (NNCLI_MAX_NETWORK_BYTES raises the limit)"
        )


def _short(values: list) -> str:
    return str(values) if len(values) <= 10 else f"[{', '.join(map(str, values[:10]))}, … ({len(values):,} in all)]"


# The training record (metrics, and each epoch of history): the values nncli shows as numbers
# must be numbers. Other keys (e.g. `non_finite`, which names the values stored as null) are
# kept as written: shown only in --json.
_COUNTS = ("epoch", "epochs")  # and every key ending in _rows
_FLAGS = ("best", "stopped_early")
_NUMBERS = ("seconds", "learning_rate")  # and every key starting train_ or val_


def _check_record(path: Path, where: str, record: dict) -> None:
    for key, value in record.items():
        if key in _COUNTS or key.endswith("_rows"):
            ok, expected = type(value) is int and value >= 0, "a whole number >= 0"
        elif key in _FLAGS:
            ok, expected = type(value) is bool, "true or false"
        elif key in _NUMBERS or key.startswith(("train_", "val_")):
            ok, expected = value is None or type(value) in (int, float), "a number or null"
        else:
            continue
        if not ok:
            raise ModelFileError(
                f"{path}: metadata field {where}.{key}: expected {expected}, got {_json_type(value)} {quoted(json.dumps(value)[:200])}"
            )


def _json_type(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _check_functions(path: Path, meta: ModelMeta) -> None:
    """Activations, the loss and their parameters: known, finite, and fitting together."""
    if len(meta.activations) != len(meta.layers) - 1:
        raise ModelFileError(f"{path}: metadata lists {len(meta.activations)} activations for {len(meta.layers) - 1} layers")
    if len(meta.activation_params) != len(meta.activations):
        raise ModelFileError(
            f"{path}: metadata lists {len(meta.activation_params)} activation_params for {len(meta.activations)} activations"
        )
    for name in meta.activations:
        if name not in ACTIVATIONS:
            raise ModelFileError(f"{path}: unknown activation {name!r} in metadata")
    if meta.loss not in LOSSES:
        raise ModelFileError(f"{path}: unknown loss {meta.loss!r} in metadata")
    for what, name, params in [("loss", meta.loss, meta.loss_params),
                               *(("activation", a, p) for a, p in zip(meta.activations, meta.activation_params))]:
        if not all(type(v) in (int, float) and _finite(v) and v > 0 for v in params.values()):
            raise ModelFileError(f"{path}: the {what} {name!r} has parameters that are not positive finite numbers: {params}")
        try:
            (get_loss if what == "loss" else get_activation)(name, **params)
        except ValueError as exc:
            raise ModelFileError(f"{path}: metadata: {exc}") from None
    kind = LOSS_KINDS[meta.loss]
    if kind.classification != (meta.classes is not None):
        raise ModelFileError(f"{path}: metadata pairs loss {meta.loss!r} with {'no ' if meta.classes is None else ''}class list")
    if kind.output_required and meta.activations[-1] != kind.output:
        raise ModelFileError(f"{path}: loss {meta.loss!r} needs a {kind.output} output layer, but metadata says {meta.activations[-1]!r}")
    if kind.targets == "binary" and len(meta.classes) != 2:
        raise ModelFileError(f"{path}: loss {meta.loss!r} is for two classes, but metadata lists {len(meta.classes)}")
    outputs = kind.output_width(None if meta.classes is None else len(meta.classes), len(meta.targets))
    if outputs != meta.layers[-1]:
        raise ModelFileError(f"{path}: metadata implies {outputs} outputs but the last layer has {meta.layers[-1]}")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _check_names(path: Path, meta: ModelMeta) -> None:
    if meta.classes is not None and len(meta.classes) > class_budget():
        raise ModelFileError(f"{path}: metadata lists {len(meta.classes):,} classes; nncli reads at most "
                             f"{class_budget():,}, as many as it trains (NNCLI_MAX_CLASSES raises the limit)")
    for field, names in (("features", meta.features), ("targets", meta.targets), ("classes", meta.classes or [])):
        for i, name in enumerate(names):
            if len(name) > MAX_NAME_CHARS:
                raise ModelFileError(
                    f"{path}: metadata field {field}.{i}: a name of {len(name):,} characters; nncli reads names "
                    f"of at most {MAX_NAME_CHARS:,}"
                )
        if len(set(names)) != len(names):
            raise ModelFileError(f"{path}: metadata lists a name twice in {field!r}")
    if meta.autoencoder and (meta.targets != meta.features or meta.classes is not None):
        raise ModelFileError(f"{path}: metadata marks an autoencoder whose targets are not its features; training never does")
    both = set(meta.features) & set(meta.targets)
    if both and not meta.autoencoder:
        raise ModelFileError(f"{path}: metadata names {quoted(sorted(both)[0])} both a feature and a target; training never does")
    if meta.encoding is None and len(meta.features) != meta.layers[0]:
        raise ModelFileError(f"{path}: metadata names {len(meta.features)} features for {meta.layers[0]} inputs")


def _check_encoding(path: Path, meta: ModelMeta) -> None:
    """The encoding, when stored, parsed into ``meta._plan``, and checked to fit the rest: one
    column per feature, by name and in order, and as many inputs as the first layer has (a
    categorical column makes one per category)."""
    if meta.encoding is None:
        return
    tokens = meta.encoding.get("missing_values") if isinstance(meta.encoding, dict) else None
    if isinstance(tokens, list):  # (what a config may list: train never writes more)
        if len(tokens) > MAX_MISSING_TOKENS:
            raise ModelFileError(f"{path}: metadata field encoding.missing_values lists {len(tokens):,} tokens; a config "
                                 f"lists at most {MAX_MISSING_TOKENS:,} (data.missing_values), so training never writes more")
        longest = max((len(token) for token in tokens if isinstance(token, str)), default=0)
        if longest > MAX_TOKEN_CHARS:
            raise ModelFileError(f"{path}: metadata field encoding.missing_values has a token of {longest:,} characters; "
                                 f"a config's are at most {MAX_TOKEN_CHARS:,} (data.missing_values)")
    try:
        encoding = Encoding.from_json(meta.encoding)
    except ValueError as exc:
        raise ModelFileError(f"{path}: metadata field encoding: {exc}") from None
    if encoding.names != meta.features:
        raise ModelFileError(f"{path}: metadata field encoding: its {len(encoding.names):,} columns are not the model's "
                             f"{len(meta.features):,} features, in order")
    for column in encoding.columns:
        if len(column.categories or ()) > MAX_CATEGORIES:
            raise ModelFileError(f"{path}: metadata field encoding: column {quoted(column.name)} has "
                                 f"{len(column.categories):,} categories; a config allows at most {MAX_CATEGORIES:,} "
                                 "(data.max_categories), so training never writes more")
        for value in column.categories or ():
            if len(value) > MAX_NAME_CHARS:
                raise ModelFileError(f"{path}: metadata field encoding: column {quoted(column.name)} has a category of "
                                     f"{len(value):,} characters; nncli reads names of at most {MAX_NAME_CHARS:,}")
    if encoding.width != meta.layers[0]:
        raise ModelFileError(f"{path}: metadata field encoding makes {encoding.width:,} inputs of the features "
                             f"for the {meta.layers[0]:,} of the first layer")
    meta._plan = encoding


def _check_scalers(path: Path, meta: ModelMeta) -> None:
    for scaler, width in ((meta.feature_scaler, meta.layers[0]), (meta.target_scaler, len(meta.targets))):
        if scaler is not None and (len(scaler.offset) != width or len(scaler.scale) != width):
            raise ModelFileError(f"{path}: normalisation statistics have the wrong length (expected {width})")
        if scaler is not None and not all(math.isfinite(v) for v in scaler.offset + scaler.scale):
            raise ModelFileError(f"{path}: normalisation statistics are not finite numbers")
        if scaler is not None and not all(v > 0 for v in scaler.scale):
            raise ModelFileError(f"{path}: normalisation scales must be positive")


def _check_fills(path: Path, meta: ModelMeta) -> None:
    """A numeric column's fill value, normalised as its cells are, must be a number the model's
    dtype holds (training fills with a statistic of the column's values, which always is): else
    every missing cell would fail, blamed on the data."""
    if meta._plan is None:
        return
    scaler, dtype, position = meta.feature_scaler, np.dtype(meta.dtype), 0
    for column in meta._plan.columns:
        if column.categories is None and column.fill is not None:
            value = column.fill
            if scaler.method != "none":
                value = (column.fill - scaler.offset[position]) / scaler.scale[position]
            with np.errstate(over="ignore"):
                held = np.isfinite(np.asarray(value, dtype=np.float64).astype(dtype))
            if not held:
                raise ModelFileError(
                    f"{path}: metadata field encoding: column {quoted(column.name)}: its fill value {column.fill:g} "
                    f"(a missing cell's value) is {value:g} after normalisation, more than a {dtype.name} model holds; "
                    "training never writes such a value (retrain the model)"
                )
        position += column.width


def _expected_arrays(path: Path, meta: ModelMeta) -> dict[str, tuple[tuple, str]]:
    expected: dict[str, tuple] = {}
    for i, (fan_in, fan_out) in enumerate(zip(meta.layers[:-1], meta.layers[1:]), start=1):
        expected[f"W{i}"] = ((fan_in, fan_out), meta.dtype)
        if meta.bias:
            expected[f"b{i}"] = ((fan_out,), meta.dtype)
    return expected
