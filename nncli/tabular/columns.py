"""A model's columns in a table: check they are there, select them in the model's order, and
apply the model to a chunk's rows.

A chunk becomes the model's raw matrix (:mod:`nncli.core.encoding`): numeric features as read,
categorical ones (read as text) as indices into the categories the model was trained on, NaN
for a missing cell (the stream is read with the model's ``missing_values``). The model encodes
and scales it; a cell it cannot take comes back as the row and column, placed here in the file.
"""

from __future__ import annotations

import csv
from typing import Callable, Iterator

import numpy as np

from nncli.core.encoding import MissingCell, UnknownCategory, category_codes
from nncli.core.model import FeatureOverflow, TrainedModel
from nncli.errors import DataError
from nncli.tabular.fast import ROW_BLOCK_BYTES_PER_COLUMN
from nncli.tabular.parquet import ParquetChunk
from nncli.tabular.parse import column_index, listed, quoted, quoted_list
from nncli.tabular.stream import CHUNK_BYTES, Chunk, CsvStream
from nncli.tabular.tables import header_place
from nncli.tabular.write import csv_field

FILLS = "mean, median or most_frequent"  # the data.missing strategies that give a model fill values


def check_columns(model: TrainedModel, stream: CsvStream, keep: list[str]) -> None:
    """The model's features and the kept columns are in the file (messages name a CSV file's header line,
    a Parquet file itself: it has no lines)."""
    present = stream.positions  # (a dict: `in header` per name is quadratic in a wide file)
    missing = [name for name in model.features if name not in present]
    if missing:
        raise DataError(
            f"{header_place(stream.name)}: missing feature column(s) {quoted_list(missing, 8)}; the model needs all "
            f"{len(model.features):,} features it was trained on"
        )
    unknown = [name for name in keep if name not in present]
    if unknown:
        raise DataError(f"{header_place(stream.name)}: --keep column(s) {quoted_list(unknown)} not in the file (columns: {listed(stream.header)})")


def chunk_features(model: TrainedModel, stream: CsvStream, chunk: Chunk, text_columns: list[str]) -> np.ndarray:
    """The model's raw matrix for the chunk's rows: its features in the model's order, in the
    chunk's dtype (float32 only when every value is exactly one), float64 when some are read as text."""
    position = stream.positions  # header.index per feature is quadratic
    columns = [position[name] for name in model.features]
    read_as_text = set(text_columns)
    as_text = [(j, name) for j, name in enumerate(model.features) if name in read_as_text]
    if not as_text:
        return chunk.values[:, column_index(columns)]  # features in file order: a view, no copy
    categories = _categories(model)
    X = np.array(chunk.values[:, columns], dtype=np.float64)  # (a number read as text is a float64)
    for j, name in as_text:
        if name in categories:  # the chunk's codes (into its text values, spaces around them aside) become the model's
            X[:, j] = category_codes(categories[name], [value.strip() for value in chunk.text[name]], X[:, j])
        else:  # a numeric feature also passed through with --keep was read as text
            X[:, j] = chunk.numbers(stream.header, name, stream.name, text_columns)  # (NaN: missing)
    return X


def chunk_outputs(model: TrainedModel, stream: CsvStream, chunk: Chunk, text_columns: list[str]) -> np.ndarray:
    """The model's outputs for a chunk's rows; a cell the model cannot take is a DataError."""
    return outputs_for(model, stream, chunk, chunk_features(model, stream, chunk, text_columns))


def outputs_for(model: TrainedModel, stream: CsvStream, chunk: Chunk, X: np.ndarray, rows: np.ndarray | None = None,
                apply: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The model's outputs for ``X``, the raw matrix of the chunk's rows ``rows`` (default: all of
    them; evaluate leaves out the rows it drops); a cell the model cannot take is a DataError
    naming its line and column. ``apply``: what to compute instead of the outputs (embed's
    hidden-layer codes), with the same errors placed the same way."""
    try:
        return model.outputs(X) if apply is None else apply(X)
    except (FeatureOverflow, MissingCell, UnknownCategory) as exc:
        name = model.features[exc.column]
        row = exc.row if rows is None else int(rows[exc.row])
        where = f"{chunk.where(row)}: column {quoted(name)}"
        if isinstance(exc, MissingCell):
            raise _missing_cell(model, where) from None
        if isinstance(exc, UnknownCategory):
            raise _unknown_category(model, stream, chunk, row, name, where) from None
        raise DataError(
            f"{where}: {X[exc.row, exc.column]:g} is too large for this {model.network.dtype.name} model (after normalisation)"
        ) from None


def _missing_cell(model: TrainedModel, where: str) -> DataError:
    """A missing feature cell the model has no value to fill in for."""
    strategy = model.plan.missing
    why = "fills nothing" if strategy == "error" else "only trained on complete rows, so it has no values to fill in"
    return DataError(
        f"{where}: missing value (the model was trained with data.missing: {strategy}, which {why}; "
        f"give the cell a value, or train with data.missing: {FILLS})"
    )


def _unknown_category(model: TrainedModel, stream: CsvStream, chunk: Chunk, row: int, name: str, where: str) -> DataError:
    categories = _categories(model)[name]
    value = chunk.text[name][int(chunk.column(stream.header, name)[row])].strip()
    return DataError(
        f"{where}: unknown category {quoted(value)} (the model knows {len(categories):,}: {listed(categories)}; "
        "train with data.unknown_category: ignore to accept unseen values)"
    )


def kept_cells(chunk: Chunk, header: list[str], name: str) -> list[str | None]:
    """A --keep column's cells as the file holds them, one per row: a cell that reads as missing
    ("NA", with the model's missing_values) is still copied as written; None only for an empty
    CSV cell or a Parquet null (nothing to copy)."""
    if isinstance(chunk, ParquetChunk) and chunk.missing_values:
        return chunk.cells(name)
    cells = chunk.text_column(header, name)
    written = [token for token in chunk.missing_values if token.strip()]  # ("" reads back as an empty cell anyway)
    if not written or not any(token in chunk.source for token in written):
        return cells  # (no token in the chunk's text: every None is an empty cell)
    gaps = [row for row, cell in enumerate(cells) if cell is None]
    if gaps:  # (rare: each read again from its record)
        records = [record for record in chunk.records if record not in ("\n", "\r\n")]  # (blank lines are no rows)
        position = chunk.positions[name] if chunk.positions is not None else header.index(name)
        for row in gaps:
            cells[row] = next(csv.reader([records[row]]))[position] or None
    return cells


def kept_fields(chunk: Chunk, header: list[str], name: str) -> list[str]:
    """:func:`kept_cells` as CSV fields; an empty cell (a Parquet null) is an empty field."""
    return ["" if cell is None else csv_field(cell) for cell in kept_cells(chunk, header, name)]


def text_columns_for(model: TrainedModel, header: list[str], keep: list[str]) -> list[str]:
    """Columns read as text: anything that is not a feature, the categorical features, and the kept ones."""
    features, kept = set(model.features), set(keep)  # (sets: a file may have 100,000 columns)
    categorical = set(_categories(model))
    return [name for name in header if name not in features or name in kept or name in categorical]


def model_chunks(model: TrainedModel, stream: CsvStream, text_columns: list[str], keep: list[str] = (),
                 targets: bool = True) -> Iterator[Chunk]:
    """The stream's chunks as the model reads them: with the missing-cell tokens it was trained
    with (none for a model from before encodings: an empty cell is then not a number), the
    columns nobody reads skipped (the targets too unless ``targets``: predict needs none), and
    the empty chunks left out."""
    skip = skipped_columns(model, stream.header, keep, targets)
    # In the network's dtype when the values are exactly that (integer pixels in float32): half
    # the memory and copying of float64 chunks, and the same numbers.
    for chunk in stream.chunks(text_columns, skip, model.plan.missing_values, model.network.dtype):
        if len(chunk.values):
            yield chunk


def skipped_columns(model: TrainedModel, header: list[str], keep: list[str], targets: bool = True) -> set[str]:
    """Columns nobody reads (not a feature, kept one or, if ``targets``, target): they may hold
    anything, and are not parsed, so that a file with a million extra columns costs no more
    than its bytes (a Parquet file's are not even decoded)."""
    used = {*model.features, *(model.targets if targets else ()), *keep}
    return {name for name in header if name not in used}


def chunk_bytes_for(model: TrainedModel, rows: int | None = None) -> int:
    """CSV bytes to read at a time so that a chunk's outputs (rows × classes, or targets) fit
    one block: a row takes at least two bytes per numeric feature (`1,`), one per feature whose
    cell may be empty (a missing cell, a category), so this many bytes hold at most
    ``model.rows_per_output_block`` rows. The usual 2 MiB (4 KiB a feature for wide files, 8 KiB for a float32 model) unless
    there are thousands of outputs; the network itself runs in blocks whatever the chunk (TrainedModel.outputs).
    ``rows``: the most rows a chunk may hold instead (embed's codes are as wide as their layer)."""
    plan = model.plan
    if "" in plan.missing_values:
        row_bytes = len(model.features)
    else:
        row_bytes = 2 * len(model.features) - len(plan.categorical)
    # At least ROW_BLOCK_BYTES_PER_COLUMN a feature, twice that for a float32 model (its chunks'
    # values take half the memory, so as many bytes of values): polars' cost per call grows with
    # the columns (~5 µs each). On a 784-pixel file, 2 MiB made predict 1.2 x slower than 4 MiB,
    # and 8 KiB a feature parsed 60,000 rows in 0.78 s against 0.92 s at 4 KiB (float32 chunks;
    # predict peaks at ~245 MB against ~175 MB).
    per_feature = ROW_BLOCK_BYTES_PER_COLUMN * (8 // model.network.dtype.itemsize)
    text_bytes = max(CHUNK_BYTES, per_feature * len(model.features))
    return max(1, min(text_bytes, (model.rows_per_output_block if rows is None else rows) * row_bytes))


def _categories(model: TrainedModel) -> dict[str, tuple[str, ...]]:
    """Each categorical feature's categories, by name (none for a model from before encodings)."""
    if model.encoding is None:
        return {}
    return {column.name: column.categories for column in model.encoding.columns if column.categories is not None}
