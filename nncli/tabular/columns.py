"""A model's columns in a table: check they are there, select them in the model's order, and
apply the model to a chunk's rows."""

from __future__ import annotations

import numpy as np

from nncli.core.model import FeatureOverflow, TrainedModel
from nncli.errors import DataError
from nncli.tabular.parse import column_index, listed, quoted, quoted_list
from nncli.tabular.stream import CHUNK_BYTES, Chunk, CsvStream


def check_columns(model: TrainedModel, stream: CsvStream, keep: list[str]) -> None:
    present = stream.positions  # (a dict: `in header` per name is quadratic in a wide file)
    missing = [name for name in model.features if name not in present]
    if missing:
        raise DataError(
            f"{stream.name}:1: missing feature column(s) {quoted_list(missing, 8)}; the model needs all "
            f"{len(model.features):,} features it was trained on"
        )
    unknown = [name for name in keep if name not in present]
    if unknown:
        raise DataError(f"{stream.name}:1: --keep column(s) {quoted_list(unknown)} not in the file (columns: {listed(stream.header)})")


def chunk_features(model: TrainedModel, stream: CsvStream, chunk: Chunk, text_columns: list[str]) -> np.ndarray:
    """The model's features, in the model's order, as float64."""
    header = stream.header
    position = stream.positions  # header.index per feature is quadratic
    columns = [position[name] for name in model.features]
    read_as_text = set(text_columns)
    as_text = [(j, name) for j, name in enumerate(model.features) if name in read_as_text]
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
            f"{stream.name}:{chunk.line_of_row(exc.row)}: column {quoted(name)}: {X[exc.row, exc.column]:g} is too large "
            f"for this {model.network.dtype.name} model (after normalisation)"
        ) from None


def text_columns_for(model: TrainedModel, header: list[str], keep: list[str]) -> list[str]:
    """Columns read as text: anything that is not a feature, and the kept ones."""
    features, kept = set(model.features), set(keep)  # (sets: a file may have 100,000 columns)
    return [name for name in header if name not in features or name in kept]


def skipped_columns(model: TrainedModel, header: list[str], keep: list[str]) -> set[str]:
    """Columns nobody reads (not a feature, target or kept one): they may hold anything, and
    are not parsed, so that a file with a million extra columns costs no more than its bytes."""
    used = {*model.features, *model.targets, *keep}
    return {name for name in header if name not in used}


def chunk_bytes_for(model: TrainedModel) -> int:
    """CSV bytes to read at a time so that a chunk's outputs (rows × classes, or targets) fit
    one block: a row takes at least two bytes per feature (`1,`), so this many bytes hold at
    most ``model.rows_per_output_block`` rows. The usual 2 MiB unless there are thousands of
    outputs; the network itself runs in blocks whatever the chunk (TrainedModel.outputs)."""
    return max(1, min(CHUNK_BYTES, model.rows_per_output_block * 2 * len(model.features)))
