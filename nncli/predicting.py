"""The `predict` service: a trained model applied to CSV rows, CSV rows out, chunk by chunk."""

from __future__ import annotations

from typing import TextIO

import numpy as np

from nncli.chunks import Chunk, CsvStream
from nncli.data import column_index
from nncli.errors import DataError, UsageError
from nncli.model import FeatureOverflow, TrainedModel


def csv_field(text: str) -> str:
    """Quote a field the way the csv module would (only when it has to)."""
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def float_format(dtype: np.dtype) -> str:
    # Enough significant digits that every value reads back as exactly the same number.
    return "%.9g" if np.dtype(dtype) == np.float32 else "%.17g"


def output_columns(model: TrainedModel, keep: list[str], proba: bool) -> list[str]:
    columns = list(keep)
    if model.is_classification or len(model.targets) == 1:
        columns.append("prediction")
    else:
        columns += [f"prediction_{target}" for target in model.targets]
    if proba:
        columns += [f"proba_{label}" for label in model.classes]
    return columns


def check_columns(model: TrainedModel, stream: CsvStream, keep: list[str]) -> None:
    missing = [name for name in model.features if name not in stream.header]
    if missing:
        shown = ", ".join(map(repr, missing[:8])) + (f", … ({len(missing)} in all)" if len(missing) > 8 else "")
        raise DataError(f"{stream.name}:1: missing feature column(s) {shown}; the model needs all {len(model.features)} features it was trained on")
    unknown = [name for name in keep if name not in stream.header]
    if unknown:
        raise DataError(f"{stream.name}:1: --keep column(s) {', '.join(map(repr, unknown))} not in the file (columns: {', '.join(stream.header[:10])}{', …' if len(stream.header) > 10 else ''})")


def chunk_features(model: TrainedModel, stream: CsvStream, chunk: Chunk, text_columns: list[str]) -> np.ndarray:
    """The model's features, in the model's order, as float64."""
    header = stream.header
    position = {name: i for i, name in enumerate(header)}  # header.index per feature is quadratic
    columns = [position[name] for name in model.features]
    as_text = [(j, name) for j, name in enumerate(model.features) if name in text_columns]
    if not as_text:
        return chunk.values[:, column_index(columns)]  # features in file order: a view, no copy
    X = chunk.values[:, columns]
    for j, name in as_text:  # a feature also passed through with --keep was read as text
        X[:, j] = chunk.numbers(header, name, stream.name, text_columns)
    return X


def chunk_outputs(model: TrainedModel, stream: CsvStream, chunk: Chunk, text_columns: list[str]) -> np.ndarray:
    """The model's outputs for a chunk's rows; a value the model cannot represent is a DataError."""
    X = chunk_features(model, stream, chunk, text_columns)
    try:
        return model.outputs(X)
    except FeatureOverflow as exc:
        name = model.features[exc.column]
        raise DataError(
            f"{stream.name}:{chunk.line_of_row(exc.row)}: column {name!r}: {X[exc.row, exc.column]:g} is too large "
            f"for this {model.network.dtype.name} model (after normalisation)"
        ) from None


def text_columns_for(model: TrainedModel, header: list[str], keep: list[str]) -> list[str]:
    """Columns read as text: anything that is not a feature, and the kept ones."""
    return [name for name in header if name not in model.features or name in keep]


def predict_csv(model: TrainedModel, stream: CsvStream, out: TextIO, keep: list[str] = (), proba: bool = False) -> int:
    """Write predictions for every row of ``stream`` to ``out``; returns the number of rows."""
    keep = list(dict.fromkeys(keep))  # a column asked for twice is copied once
    if proba and not model.is_classification:
        raise UsageError(f"--proba needs a classification model; this one predicts {', '.join(model.targets)}")
    clash = set(keep) & set(output_columns(model, [], proba))
    if clash:
        raise UsageError(f"--keep {sorted(clash)[0]}: the output already has a column of that name")
    check_columns(model, stream, keep)
    text_columns = text_columns_for(model, stream.header, keep)
    out.write(",".join(csv_field(name) for name in output_columns(model, keep, proba)) + "\n")
    fmt = float_format(model.network.dtype)
    labels = None if model.classes is None else np.array([csv_field(c) for c in model.classes], dtype=object)
    rows = 0
    for chunk in stream.chunks(text_columns):
        if not len(chunk.values):
            continue
        outputs = chunk_outputs(model, stream, chunk, text_columns)
        columns: list[list[str]] = [[csv_field(cell) for cell in chunk.text_column(stream.header, name)] for name in keep]
        if labels is not None:
            columns.append(labels[outputs.argmax(axis=1)].tolist())
        else:
            columns.append(_format_rows(outputs, fmt))
        if proba:
            columns.append(_format_rows(outputs, fmt))
        out.write("".join(",".join(parts) + "\n" for parts in zip(*columns)))
        rows += len(outputs)
    out.flush()
    return rows


def _format_rows(matrix: np.ndarray, fmt: str) -> list[str]:
    row_format = ",".join([fmt] * matrix.shape[1])
    return [row_format % tuple(row) for row in matrix.tolist()]
