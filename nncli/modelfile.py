"""The model file: a NumPy ``.npz`` archive, readable without nncli and safe to open.

Arrays ``W1…Wn`` (``(fan_in, fan_out)``) and ``b1…bn``, plus ``meta``: a JSON string with
the format version, architecture, feature/target names, classes, normalisation and the
training record.  Loading never unpickles: the zip members are checked (names, dtypes,
declared shapes, sizes) before any array is read, and arrays are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import json
import platform
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nncli import __version__
from nncli.atomic import atomic_write
from nncli.core.activations import ACTIVATIONS
from nncli.core.losses import LOSSES
from nncli.core.network import MLP
from nncli.data import Scaler
from nncli.errors import ModelFileError
from nncli.model import TrainedModel

FORMAT = "nncli-model"
FORMAT_VERSION = 1
MAX_META_BYTES = 64 << 20
MAX_ARRAY_ELEMENTS = 1 << 30  # 4 GiB of float32: far beyond any network nncli trains


class _ScalerMeta(BaseModel):
    method: Literal["standard", "minmax", "none"]
    offset: list[float]
    scale: list[float]


class ModelMeta(BaseModel):
    """The JSON ``meta`` entry, validated so that a foreign or edited file fails clearly."""

    model_config = ConfigDict(extra="allow")

    format: Literal["nncli-model"]
    format_version: int
    nncli_version: str
    layers: list[int] = Field(min_length=2)
    activations: list[str]
    bias: bool
    dtype: Literal["float32", "float64"]
    loss: str
    features: list[str]
    targets: list[str] = Field(min_length=1)
    classes: Optional[list[str]] = None
    feature_scaler: _ScalerMeta
    target_scaler: Optional[_ScalerMeta] = None
    config: dict = Field(default_factory=dict)
    history: list[dict] = Field(default_factory=list)
    metrics: dict = Field(default_factory=dict)


def save_model(path: Path, model: TrainedModel) -> None:
    network = model.network
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nncli_version": __version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "layers": network.sizes,
        "activations": network.activation_names,
        "bias": network.biases[0] is not None,
        "dtype": network.dtype.name,
        "loss": model.loss,
        "features": model.features,
        "targets": model.targets,
        "classes": model.classes,
        "feature_scaler": model.feature_scaler.to_json(),
        "target_scaler": None if model.target_scaler is None else model.target_scaler.to_json(),
        "config": model.config,
        "history": model.history,
        "metrics": model.metrics,
    }
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, allow_nan=False))}
    for i, (W, b) in enumerate(zip(network.weights, network.biases), start=1):
        arrays[f"W{i}"] = W
        if b is not None:
            arrays[f"b{i}"] = b
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_model(path: Path) -> TrainedModel:
    path = Path(path)
    meta, arrays = _read_archive(path)
    sizes = meta.layers
    weights = [arrays[f"W{i}"] for i in range(1, len(sizes))]
    biases = [arrays[f"b{i}"] if meta.bias else None for i in range(1, len(sizes))]
    try:
        network = MLP(weights, biases, meta.activations)
    except ValueError as exc:
        raise ModelFileError(f"{path}: inconsistent network: {exc}") from None
    return TrainedModel(
        network=network,
        loss=meta.loss,
        features=meta.features,
        targets=meta.targets,
        classes=meta.classes,
        feature_scaler=Scaler.from_json(meta.feature_scaler.model_dump()),
        target_scaler=None if meta.target_scaler is None else Scaler.from_json(meta.target_scaler.model_dump()),
        config=meta.config,
        history=meta.history,
        metrics=meta.metrics,
    )


def read_meta(path: Path) -> ModelMeta:
    return _read_archive(Path(path))[0]


def _read_archive(path: Path) -> tuple[ModelMeta, dict[str, np.ndarray]]:
    _check_signature(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if "meta.npy" not in members:
                raise ModelFileError(f"{path}: a .npz archive without nncli metadata ('meta'); not an nncli model")
            meta = _parse_meta(path, _read_member(path, archive, members["meta.npy"], "meta", None, None))
            arrays = {}
            for name, shape in _expected_arrays(path, meta).items():
                if f"{name}.npy" not in members:
                    raise ModelFileError(f"{path}: array {name!r} is missing from the model file")
                arrays[name] = _read_member(path, archive, members[f"{name}.npy"], name, shape, meta.dtype)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{path}: damaged or truncated model file ({exc})") from None
    except (EOFError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"{path}: damaged or truncated model file ({exc})") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file: {exc.strerror or exc}") from None
    return meta, arrays


def _check_signature(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder; expected an .npz model file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file: {exc.strerror}") from None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return
    if not head:
        raise ModelFileError(f"{path}: empty file; expected an .npz model file written by nncli train")
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        what = "a Python pickle (nncli never loads pickles: they can run code)"
    elif head.startswith(b"\x93NUMPY"):
        what = "a single .npy array, not an .npz model archive"
    else:
        what = "not a zip/.npz archive"
    raise ModelFileError(f"{path}: {what}; expected an .npz model file written by nncli train")


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, shape, dtype):
    limit = MAX_META_BYTES if name == "meta" else MAX_ARRAY_ELEMENTS * 8 + 4096
    if info.file_size > limit:
        raise ModelFileError(f"{path}: array {name!r} is implausibly large ({info.file_size:,} bytes)")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise ModelFileError(f"{path}: array {name!r} has a malformed header ({exc})") from None
        declared_shape, _fortran, declared_dtype = header
        if declared_dtype.hasobject:
            raise ModelFileError(f"{path}: array {name!r} holds Python objects; refusing to load it (pickle)")
        if name == "meta":
            if declared_dtype.kind != "U" or declared_shape != ():
                raise ModelFileError(f"{path}: 'meta' is not a JSON string; not an nncli model")
        else:
            if declared_dtype != np.dtype(dtype):
                raise ModelFileError(f"{path}: array {name!r} has dtype {declared_dtype}, expected {dtype}")
            if tuple(declared_shape) != shape:
                raise ModelFileError(
                    f"{path}: array {name!r} has shape {tuple(declared_shape)}, expected {shape} from the layer sizes"
                )
    with archive.open(info) as fresh:  # read again from the start, header included
        try:
            return np.lib.format.read_array(fresh, allow_pickle=False)
        except ValueError as exc:
            raise ModelFileError(f"{path}: array {name!r} is damaged ({exc})") from None


def _parse_meta(path: Path, array: np.ndarray) -> ModelMeta:
    try:
        data = json.loads(str(array))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an nncli model file (metadata 'format' is not {FORMAT!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelFileError(
            f"{path}: model format version {version!r} is not supported by nncli {__version__} "
            f"(it reads version {FORMAT_VERSION}); upgrade nncli or retrain"
        )
    try:
        meta = ModelMeta.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(map(str, first["loc"]))
        raise ModelFileError(f"{path}: metadata field {where}: {first['msg']}") from None
    if len(meta.activations) != len(meta.layers) - 1:
        raise ModelFileError(f"{path}: metadata lists {len(meta.activations)} activations for {len(meta.layers) - 1} layers")
    for name in meta.activations:
        if name not in ACTIVATIONS:
            raise ModelFileError(f"{path}: unknown activation {name!r} in metadata")
    if meta.loss not in LOSSES:
        raise ModelFileError(f"{path}: unknown loss {meta.loss!r} in metadata")
    if any(size < 1 for size in meta.layers):
        raise ModelFileError(f"{path}: metadata layer sizes must be >= 1, got {meta.layers}")
    if len(meta.features) != meta.layers[0]:
        raise ModelFileError(f"{path}: metadata names {len(meta.features)} features for {meta.layers[0]} inputs")
    outputs = len(meta.classes) if meta.classes is not None else len(meta.targets)
    if outputs != meta.layers[-1]:
        raise ModelFileError(f"{path}: metadata implies {outputs} outputs but the last layer has {meta.layers[-1]}")
    for scaler, width in ((meta.feature_scaler, meta.layers[0]), (meta.target_scaler, len(meta.targets))):
        if scaler is not None and (len(scaler.offset) != width or len(scaler.scale) != width):
            raise ModelFileError(f"{path}: normalisation statistics have the wrong length (expected {width})")
    return meta


def _expected_arrays(path: Path, meta: ModelMeta) -> dict[str, tuple]:
    expected: dict[str, tuple] = {}
    for i, (fan_in, fan_out) in enumerate(zip(meta.layers[:-1], meta.layers[1:]), start=1):
        if fan_in * fan_out > MAX_ARRAY_ELEMENTS:
            raise ModelFileError(f"{path}: layer {i} declares {fan_in}x{fan_out} weights; implausibly large")
        expected[f"W{i}"] = (fan_in, fan_out)
        if meta.bias:
            expected[f"b{i}"] = (fan_out,)
    return expected
