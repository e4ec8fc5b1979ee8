"""The clusters file (`nncli cluster --save`): centroids and what turns a row into the space
they live in, so that `nncli predict clusters.npz new.csv` assigns new rows.

The same safe ``.npz`` + JSON ``meta`` format as model files (files/npz.py: no pickles, every
size checked before it is allocated). Arrays: ``centroids`` ``(k, dimensions)`` float64.
Meta: the format, the feature columns read from the data, the scaler applied before the
centroids (to the features, or to the model's codes), and for clusters of a model's codes the
model file's path, SHA-256 and layer: the model is not copied, and a changed model is refused
rather than silently giving other codes.

Clusters refined by deep embedded clustering (`nncli cluster --refine`) also carry the refined
encoder: the model's layers up to the code layer, retrained, as arrays ``encoder.W1``,
``encoder.b1``, … (the model's dtype) described by the meta's ``encoder`` (``sizes``, ``bias``,
``dtype``; the activations are the referenced model's). Such a file is format version 2, so an
nncli that would ignore the encoder (and assign with the unrefined codes) refuses it instead;
files without an encoder stay version 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nncli import __version__
from nncli.budgets import DTYPE_BYTES, MAX_LAYERS, human_bytes, network_bytes
from nncli.core.preprocess import Scaler
from nncli.errors import ModelFileError
from nncli.files.model import MAX_NAME_CHARS
from nncli.files.npz import read_archive, write_archive

FORMAT = "nncli-clusters"
FORMAT_VERSION = 2  # 2: may carry a refined encoder; 1: never does (both read)
ENCODER_VERSION = 2  # the first version that may carry one (a file without is written as 1: older nncli reads it)
# k: beyond a million centroids, nearest-centroid assignment is no longer a clustering anyone
# reads; the centroid matrix itself is bounded by npz.MAX_ARRAY_ELEMENTS.
MAX_CLUSTERS = 1_000_000


@dataclass
class ModelSource:
    """The model whose codes were clustered."""

    path: str
    sha256: str
    layer: int


@dataclass
class Clusters:
    centroids: np.ndarray  # (k, dimensions): in scaled feature space, or scaled code space
    features: list[str]  # the data's columns read, in order
    scaler: Scaler  # applied to the features (no model) or to the codes (with a model)
    model: ModelSource | None = None
    record: dict | None = None  # inertia, rows, seed …: shown by inspect-like readers, not used
    # With --refine: the model's layers 1..model.layer as refined, (W, b or None) per layer.
    encoder: list[tuple[np.ndarray, np.ndarray | None]] | None = None

    def encoder_arrays(self) -> dict[str, np.ndarray]:
        named = {}
        for i, (W, b) in enumerate(self.encoder or [], start=1):
            named[f"encoder.W{i}"] = W
            if b is not None:
                named[f"encoder.b{i}"] = b
        return named


class _ScalerMeta(BaseModel):
    model_config = ConfigDict(strict=True)
    method: Literal["standard", "minmax", "none"]
    offset: list[float]
    scale: list[float]


class _ModelMeta(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    path: str = Field(max_length=MAX_NAME_CHARS)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    layer: int = Field(ge=1)


class _EncoderMeta(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    sizes: list[int] = Field(min_length=2, max_length=MAX_LAYERS + 1)  # input width, then each layer's
    bias: bool
    dtype: Literal["float32", "float64"]


class ClustersMeta(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    format: Literal["nncli-clusters"]
    format_version: int
    nncli_version: str
    k: int = Field(ge=1, le=MAX_CLUSTERS)
    dimensions: int = Field(ge=1)
    features: list[str] = Field(min_length=1)
    scaler: _ScalerMeta
    model: _ModelMeta | None = None
    record: dict = Field(default_factory=dict)
    encoder: _EncoderMeta | None = None


def save_clusters(path: Path, clusters: Clusters) -> None:
    k, dimensions = clusters.centroids.shape
    encoder = clusters.encoder
    meta = {
        "format": FORMAT,
        "format_version": ENCODER_VERSION if encoder else 1,
        "nncli_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "k": k,
        "dimensions": dimensions,
        "features": clusters.features,
        "scaler": clusters.scaler.to_json(),
        "model": None if clusters.model is None else vars(clusters.model),
        "record": clusters.record or {},
    }
    if encoder:
        meta["encoder"] = {"sizes": [encoder[0][0].shape[0], *(W.shape[1] for W, _ in encoder)],
                           "bias": encoder[0][1] is not None, "dtype": encoder[0][0].dtype.name}
    write_archive(path, meta, {"centroids": np.ascontiguousarray(clusters.centroids, dtype=np.float64),
                               **clusters.encoder_arrays()})


def is_clusters_file(path: Path) -> bool:
    """Whether ``path`` is a clusters file (read safely; any other file, or none, is not)."""
    try:
        is_ours, _ = read_archive(Path(path), kind="clusters file", error=ModelFileError,
                                  parse_meta=lambda data: data.get("format") == FORMAT, expected=lambda meta: {})
    except ModelFileError:
        return False
    return is_ours  # (the meta of a model file or a checkpoint reads too: its format says whose it is)


def load_clusters(path: Path) -> Clusters:
    path = Path(path)
    meta, arrays = read_archive(path, kind="clusters file", error=ModelFileError,
                                parse_meta=lambda data: _parse_meta(path, data),
                                expected=_expected_arrays)
    if not all(np.isfinite(array).all() for array in arrays.values()):
        raise ModelFileError(f"{path}: the centroids or the refined encoder hold NaN or infinite values; "
                             "nncli cluster never writes those")
    scaler = Scaler.from_json(meta.scaler.model_dump())
    model = None if meta.model is None else ModelSource(**meta.model.model_dump())
    encoder = None
    if meta.encoder is not None:
        layers = len(meta.encoder.sizes) - 1
        encoder = [(arrays[f"encoder.W{i}"], arrays.get(f"encoder.b{i}")) for i in range(1, layers + 1)]
    return Clusters(arrays["centroids"], list(meta.features), scaler, model, meta.record, encoder)


def _expected_arrays(meta: ClustersMeta) -> dict[str, tuple[tuple, str]]:
    expected = {"centroids": ((meta.k, meta.dimensions), "float64")}
    if meta.encoder is not None:
        sizes, dtype = meta.encoder.sizes, meta.encoder.dtype
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            expected[f"encoder.W{i}"] = ((fan_in, fan_out), dtype)
            if meta.encoder.bias:
                expected[f"encoder.b{i}"] = ((fan_out,), dtype)
    return expected


def _parse_meta(path: Path, data: dict) -> ClustersMeta:
    if data.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an nncli clusters file (metadata 'format' is not {FORMAT!r})")
    version = data.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{path}: clusters format version {version!r} is not supported by nncli {__version__} "
                             f"(it reads version {FORMAT_VERSION}); upgrade nncli or cluster again")
    try:
        meta = ClustersMeta.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise ModelFileError(f"{path}: metadata field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if any(len(name) > MAX_NAME_CHARS for name in meta.features):
        raise ModelFileError(f"{path}: a feature name is longer than {MAX_NAME_CHARS:,} characters")
    if meta.model is None and len(meta.features) != meta.dimensions:
        raise ModelFileError(f"{path}: {len(meta.features)} features but centroids of {meta.dimensions} dimensions")
    if meta.encoder is not None:
        _check_encoder(path, meta)
    scaler = meta.scaler
    if len(scaler.offset) != meta.dimensions or len(scaler.scale) != meta.dimensions:
        raise ModelFileError(f"{path}: the scaler has {len(scaler.offset)} offsets and {len(scaler.scale)} scales "
                             f"for {meta.dimensions} dimensions")
    if not all(np.isfinite(scaler.offset)) or not all(np.isfinite(scaler.scale)) or 0.0 in scaler.scale:
        raise ModelFileError(f"{path}: the scaler holds a zero scale or a value that is not finite")
    return meta


def _check_encoder(path: Path, meta: ClustersMeta) -> None:
    """The refined encoder's declared sizes, before anything is sized by them: a version 2 file,
    of a model's codes, ending at the centroids' width, within the budget a model file has."""
    encoder = meta.encoder
    if meta.format_version < ENCODER_VERSION or meta.model is None:
        raise ModelFileError(f"{path}: a refined encoder needs format version 2 and the model it was refined from; "
                             "not written by nncli cluster")
    sizes = encoder.sizes
    if any(size < 1 for size in sizes) or len(sizes) - 1 != meta.model.layer or sizes[-1] != meta.dimensions:
        raise ModelFileError(f"{path}: the refined encoder's sizes {sizes[:12]} do not lead to the {meta.dimensions} "
                             f"codes of layer {meta.model.layer}")
    parameters = sum(fan_in * fan_out + fan_out * encoder.bias for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))
    size, limit = parameters * DTYPE_BYTES[encoder.dtype], network_bytes()
    if size > limit:
        raise ModelFileError(f"{path}: the refined encoder declares {parameters:,} weights and biases "
                             f"({human_bytes(size)}), more than the {human_bytes(limit)} nncli loads "
                             "(NNCLI_MAX_NETWORK_BYTES raises the limit)")
