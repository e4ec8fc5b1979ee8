"""The `inspect` service: what a model file (or a config, before training) contains."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from nncli.commands.train import NetworkPreview, prepare_training
from nncli.config import load_config
from nncli.core.model import TrainedModel, layer_table
from nncli.errors import UsageError
from nncli.files.atomic import atomic_write
from nncli.files.model import ModelMeta, read_model
from nncli.files.paths import check_writable
from nncli.tabular.write import float_format

NEAR_ZERO = 1e-3  # |w| below this counts as "near zero" in the weight statistics
# --json prints every array value: as Python floats and then JSON text each costs ~150 bytes
# and ~1.4 µs, so 1 Mi values (a 1,024 × 1,024 layer) are ~170 MB and 1.5 s. A bigger model is
# refused, not half-printed: --layer N picks fewer values, --export writes them all as files.
MAX_JSON_VALUES = 1 << 20
# --weights --full lays out every value as a table cell, ~0.1 ms each: 65,536 values (a
# 256 × 256 matrix) take ~7 s. Beyond that, --export writes the values; the corners still show.
MAX_FULL_VALUES = 1 << 16
# Weight statistics are computed this many values at a time (float64 copies of a block, not of
# the whole matrix: a 4 GiB float32 matrix would otherwise need 8 GiB more).
STATISTICS_BLOCK = 1 << 20


@dataclass
class Matrix:
    """One array to show, with names for its rows (neurons the connections come from) and
    columns (neurons they lead to)."""

    title: str
    values: np.ndarray
    row_names: Sequence[str]
    column_names: Sequence[str]


@dataclass
class ModelReport:
    path: str
    info: dict  # summary(): everything but the arrays
    curves: dict[str, str]  # name -> sparkline
    matrices: list[Matrix] = field(default_factory=list)  # with --weights
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # the selected layers' arrays (views, no copies)

    def to_json(self) -> dict:
        return {"model": self.path, **self.info, "arrays": {name: a.tolist() for name, a in self.arrays.items()}}


@dataclass
class Exported:
    folder: Path
    files: list[Path]


def inspect(target: Path, *, weights: bool = False, layer: int | None = None, full: bool = False, as_json: bool = False,
            export: str | None = None, fmt: str | None = None, overrides: list[str] = (),
            force: bool = False) -> NetworkPreview | Exported | ModelReport:
    """`nncli inspect`: a model file's contents, its arrays exported, or the network a config would build.

    ``force`` lets --export replace existing files (never through a symbolic link)."""
    _check_flags(target, weights, layer, full, as_json, export, fmt, overrides, force)
    if looks_like_config(target):
        return prepare_training(load_config(target, list(overrides)), writes=False).preview()
    trained, meta = read_model(target, "inspect takes a model file or a YAML config")
    n_layers = len(trained.network.weights)
    if layer is not None and layer > n_layers:
        raise UsageError(f"--layer {layer}: {target} has {n_layers} layer{'s' * (n_layers != 1)}")
    selected = [layer] if layer else list(range(1, n_layers + 1))
    if export is not None:
        folder = export_folder(export)
        return Exported(folder, export_arrays(trained, folder, fmt or "csv", selected, force=force))
    chosen = arrays(trained, selected)
    values = sum(array.size for array in chosen.values())
    if as_json and values > MAX_JSON_VALUES:
        which = f"layer {layer} has" if layer else f"{target} has"
        raise UsageError(f"--json: {which} {values:,} weights and biases; --json prints at most {MAX_JSON_VALUES:,} "
                         "(pick one layer with --layer N, or write them all with --export FOLDER --format npy)")
    if weights and full:
        for name, array in chosen.items():
            if array.size > MAX_FULL_VALUES:
                raise UsageError(f"--full: {name} has {array.size:,} values; --full prints at most {MAX_FULL_VALUES:,} "
                                 "(without --full the corners are shown; --export FOLDER writes every value)")
    info = summary(trained, meta)
    if layer:
        info["layers"] = [info["layers"][layer - 1]]
    curves = {name: sparkline([r.get(key) for r in trained.history]) for name, key in (("train loss", "train_loss"), ("val loss", "val_loss"))}
    report = ModelReport(str(target), info, curves, arrays=chosen)
    if weights:
        report.matrices = [matrix for index in selected for matrix in _layer_matrices(trained, index)]
    return report


def _check_flags(target, weights, layer, full, as_json, export, fmt, overrides, force=False) -> None:
    if fmt is not None and fmt not in ("csv", "npy"):
        raise UsageError(f"--format {fmt}: expected csv or npy")
    if fmt is not None and export is None:
        raise UsageError("--format applies to --export")
    if force and export is None:
        raise UsageError("--force applies to --export")
    if full and not weights:
        raise UsageError("--full applies to --weights")
    if export is not None and (weights or as_json):
        raise UsageError("--export writes files; it does not combine with --weights or --json")
    if looks_like_config(target):
        for flag, given in (("--weights", weights), ("--layer", layer is not None), ("--export", export is not None)):
            if given:
                raise UsageError(f"{flag} needs a model file; {target} is a config (train it first)")
    elif overrides:
        raise UsageError("--set applies to a config, not to a model file")


def looks_like_config(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def export_folder(text: str) -> Path:
    if not text.strip():
        raise UsageError("--export: the folder name is empty")
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--export {text}: is a file; give a folder to write W1.csv, b1.csv, … into")
    check_writable(folder / "W1.csv")
    return folder


def _layer_matrices(model: TrainedModel, index: int) -> list[Matrix]:
    rows, columns = neuron_names(model, index)
    W, b = model.network.weights[index - 1], model.network.biases[index - 1]
    matrices = [Matrix(f"W{index}  ({W.shape[0]} × {W.shape[1]})", W, rows, columns)]
    if b is not None:
        matrices.append(Matrix(f"b{index}  ({b.shape[0]},)", b, ["b"], columns))
    return matrices


def weight_statistics(W: np.ndarray) -> dict:
    """Mean, standard deviation (two passes, as NumPy computes it), range and the share of
    near-zero weights, in float64, a block of STATISTICS_BLOCK values at a time."""
    flat = W.reshape(-1)
    blocks = [slice(start, start + STATISTICS_BLOCK) for start in range(0, flat.size, STATISTICS_BLOCK)]
    total = sum(float(flat[block].astype(np.float64).sum()) for block in blocks)
    mean = total / flat.size
    squares = sum(float(np.square(flat[block].astype(np.float64) - mean).sum()) for block in blocks)
    return {
        "mean": mean,
        "std": (squares / flat.size) ** 0.5,
        "min": float(W.min()),
        "max": float(W.max()),
        "near_zero": sum(int(np.count_nonzero(np.abs(flat[block]) < NEAR_ZERO)) for block in blocks) / flat.size,
    }


def layers_with_statistics(model: TrainedModel) -> list[dict]:
    rows = layer_table(model.network)
    for row, W in zip(rows, model.network.weights):
        row["statistics"] = weight_statistics(W)
    return rows


def summary(model: TrainedModel, meta: ModelMeta) -> dict:
    """Everything about a model except the arrays themselves, as plain JSON-ready values."""
    record = meta.model_dump()
    return {
        "format_version": meta.format_version,
        "nncli_version": meta.nncli_version,
        "created": record.get("created"),
        "numpy_version": record.get("numpy_version"),
        "task": "classification" if model.is_classification else "regression",
        "autoencoder": model.autoencoder,  # a regression of its own (scaled) features: targets == features
        "loss": model.loss,
        "loss_params": model.loss_params,
        "dtype": model.network.dtype.name,
        "layers": layers_with_statistics(model),
        "parameters": model.network.parameter_count(),
        "features": model.features,
        "encoding": encoding_summary(model),
        "targets": model.targets,
        "classes": model.classes,
        "normalization": {
            "features": model.feature_scaler.to_json(),
            "targets": None if model.target_scaler is None else model.target_scaler.to_json(),
        },
        "seed": model.config.get("seed"),
        "metrics": model.metrics,
        "history": model.history,
        "config": model.config,
    }


def encoding_summary(model: TrainedModel) -> dict:
    """How the feature columns become the network's inputs: per column its kind, categories,
    inputs and the value a missing cell gets (a category by name), and the policies. A model
    from before encodings reads every feature as a number, with no missing-value tokens."""
    plan = model.plan
    columns = []
    for column in plan.columns:
        categories = None if column.categories is None else list(column.categories)
        fill = column.fill if categories is None or column.fill is None else categories[int(column.fill)]
        columns.append({"name": column.name, "kind": "number" if categories is None else "categorical",
                        "inputs": column.width, "categories": categories, "fill": fill})
    return {"missing": plan.missing, "unknown_category": plan.unknown_category, "missing_values": list(plan.missing_values),
            "inputs": plan.width, "columns": columns}


def arrays(model: TrainedModel, layers: list[int] | None = None) -> dict[str, np.ndarray]:
    """The model's arrays by their names in the file: W1, b1, W2, b2, … (``layers`` 1-based)."""
    named = {}
    for i, (W, b) in enumerate(zip(model.network.weights, model.network.biases), start=1):
        if layers is not None and i not in layers:
            continue
        named[f"W{i}"] = W
        if b is not None:
            named[f"b{i}"] = b
    return named


def neuron_names(model: TrainedModel, layer: int) -> tuple[Sequence[str], Sequence[str]]:
    """Names for the rows (neurons the connections come from) and columns (neurons they lead to)
    of weight matrix ``layer``: feature names at the input, classes or targets at the output,
    ``column=category`` for a category's one-hot input, ``h<layer>.<i>`` for hidden neurons (made when asked for: a layer may be millions wide)."""
    sizes = model.network.sizes
    rows = model.plan.input_names if layer == 1 else HiddenNeurons(layer - 1, sizes[layer - 1])
    if layer == len(sizes) - 1:
        columns = list(model.classes) if model.is_classification else list(model.targets)
    else:
        columns = HiddenNeurons(layer, sizes[layer])
    return rows, columns


class HiddenNeurons(Sequence[str]):
    """``h2.1 … h2.n``: the names of hidden layer 2's ``n`` neurons, one made per lookup."""

    def __init__(self, layer: int, size: int):
        self.layer, self.size = layer, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(index)
        return f"h{self.layer}.{index + 1}"


def export_arrays(model: TrainedModel, folder: Path, fmt: str, layers: list[int] | None = None, *, force: bool = False) -> list[Path]:
    """One file per array in ``folder``: CSV (W as rows × columns, b as one row) or .npy.

    Before anything is written: an existing file is refused unless ``force``, and a symbolic
    link always (the folder is the user's; what a link in it points to need not be).
    """
    named = arrays(model, layers)
    paths = {name: folder / f"{name}.{fmt}" for name in named}
    for path in paths.values():
        if path.is_symlink():
            raise UsageError(f"--export: {path} is a symbolic link; nncli does not write through links (remove it, or export elsewhere)")
    existing = [path for path in paths.values() if path.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"--export: {existing[0]} exists{more}; use --force to overwrite")
    for path in existing:
        if not path.is_file():
            raise UsageError(f"--export: {path} exists and is not a file; nncli replaces only files")
    written = []
    number = float_format(model.network.dtype)
    for name, array in named.items():
        path = paths[name]
        if fmt == "npy":
            with atomic_write(path) as f:
                np.save(f, array, allow_pickle=False)
        else:
            with atomic_write(path, "w") as f:
                np.savetxt(f, np.atleast_2d(array), delimiter=",", fmt=number)
        written.append(path)
    return written


def sparkline(values: list, width: int = 60) -> str:
    """A loss curve in one line of block characters (resampled to at most ``width`` points).

    Tolerates what a hand-edited history may hold: missing, non-numeric or huge values.
    """
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not numbers:
        return ""
    data = np.asarray(numbers, dtype=np.float64)
    if len(data) > width:
        edges = np.linspace(0, len(data), width + 1).astype(int)
        data = np.array([data[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    blocks = "▁▂▃▄▅▆▇█"
    low, high = data.min(), data.max()
    with np.errstate(over="ignore", invalid="ignore"):
        span = high - low
        levels = (data - low) / span if np.isfinite(span) and span > 0 else np.zeros_like(data)
    levels = np.clip(np.nan_to_num(levels), 0, 1)
    return "".join(blocks[int(round(level * (len(blocks) - 1)))] for level in levels)
