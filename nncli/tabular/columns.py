"""A model's columns in a table: check they are there, select them in the model's order, and
apply the model to a chunk's rows."""

from __future__ import annotations

import numpy as np

from nncli.core.model import FeatureOverflow, TrainedModel
from nncli.errors import DataError
from nncli.tabular.parse import column_index
from nncli.tabular.stream import Chunk, CsvStream


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
