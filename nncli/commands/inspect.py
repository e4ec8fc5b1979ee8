"""The `inspect` service: what a model file (or a config, before training) contains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nncli.core.model import TrainedModel, layer_table
from nncli.files.atomic import atomic_write
from nncli.files.model import ModelMeta
from nncli.tabular.write import float_format

NEAR_ZERO = 1e-3  # |w| below this counts as "near zero" in the weight statistics


def weight_statistics(W: np.ndarray) -> dict:
    W64 = W.astype(np.float64)
    return {
        "mean": float(W64.mean()),
        "std": float(W64.std()),
        "min": float(W64.min()),
        "max": float(W64.max()),
        "near_zero": float(np.mean(np.abs(W64) < NEAR_ZERO)),
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
        "loss": model.loss,
        "dtype": model.network.dtype.name,
        "layers": layers_with_statistics(model),
        "parameters": model.network.parameter_count(),
        "features": model.features,
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


def neuron_names(model: TrainedModel, layer: int) -> tuple[list[str], list[str]]:
    """Names for the rows (neurons the connections come from) and columns (neurons they lead to)
    of weight matrix ``layer``: feature names at the input, classes or targets at the output."""
    sizes = model.network.sizes
    rows = model.features if layer == 1 else [f"h{layer - 1}.{i}" for i in range(1, sizes[layer - 1] + 1)]
    if layer == len(sizes) - 1:
        columns = list(model.classes) if model.is_classification else list(model.targets)
    else:
        columns = [f"h{layer}.{j}" for j in range(1, sizes[layer] + 1)]
    return rows, columns


def export_arrays(model: TrainedModel, folder: Path, fmt: str, layers: list[int] | None = None) -> list[Path]:
    """One file per array in ``folder``: CSV (W as rows × columns, b as one row) or .npy."""
    written = []
    number = float_format(model.network.dtype)
    for name, array in arrays(model, layers).items():
        path = folder / f"{name}.{fmt}"
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
