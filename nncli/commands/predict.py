"""The `predict` service: a trained model applied to the rows of a CSV or Parquet file, CSV rows out, chunk by chunk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import numpy as np

from nncli.core.model import TrainedModel
from nncli.errors import UsageError
from nncli.files.atomic import atomic_write
from nncli.files.model import load_model
from nncli.files.paths import check_writable, same_file
from nncli.tabular.columns import check_columns, chunk_bytes_for, chunk_outputs, model_chunks, text_columns_for
from nncli.tabular.parse import listed
from nncli.tabular.stream import Chunk, CsvStream
from nncli.tabular.tables import open_table
from nncli.tabular.write import csv_field, float_format


def predict(model_path: Path, data: str, output: str | None, keep: list[str], proba: bool, stdout: TextIO) -> int:
    """`nncli predict`: predictions for every row of ``data`` (a CSV or Parquet file, or - for CSV on stdin) to
    ``output`` (written atomically) or ``stdout``; returns the number of rows."""
    destination = None if output is None else output_file(output)
    trained = load_model(model_path)
    if destination is not None:
        check_writable(destination)
        for source, what in ((Path(data), "input CSV"), (model_path, "model file")):
            if (data != "-" or what == "model file") and same_file(destination, source):
                raise UsageError(f"--output {output}: is the {what}; write the predictions elsewhere")
    with open_table(data, chunk_bytes_for(trained)) as stream:
        if destination is None:
            return predict_csv(trained, stream, stdout, keep, proba)
        with atomic_write(destination, "w") as f:
            return predict_csv(trained, stream, f, keep, proba)


def output_file(text: str) -> Path:
    """An output file path given on the command line: not empty, not a folder name."""
    if not text.strip():
        raise UsageError("--output: the path is empty")
    if text.endswith(("/", os.sep)):
        raise UsageError(f"--output {text}: names a folder; give a file name, e.g. {text}predictions.csv")
    return Path(text).expanduser()


def output_columns(model: TrainedModel, keep: list[str], proba: bool) -> list[str]:
    columns = list(keep)
    if model.is_classification or len(model.targets) == 1:
        columns.append("prediction")
    else:
        columns += [f"prediction_{target}" for target in model.targets]
    if proba:
        columns += [f"proba_{label}" for label in model.classes]
    return columns


def predict_csv(model: TrainedModel, stream: CsvStream, out: TextIO, keep: list[str] = (), proba: bool = False) -> int:
    """Write predictions for every row of ``stream`` to ``out``; returns the number of rows."""
    keep = list(dict.fromkeys(keep))  # a column asked for twice is copied once
    if proba and not model.is_classification:
        raise UsageError(f"--proba needs a classification model; this one predicts {listed(model.targets)}")
    clash = set(keep) & set(output_columns(model, [], proba))
    if clash:
        raise UsageError(f"--keep {sorted(clash)[0]}: the output already has a column of that name")
    check_columns(model, stream, keep)
    text_columns = text_columns_for(model, stream.header, keep)
    # Written with the first rows: a file refused in its first chunk leaves no output at all.
    header = ",".join(csv_field(name) for name in output_columns(model, keep, proba)) + "\n"
    fmt = float_format(model.network.dtype)
    labels = None if model.classes is None else np.array([csv_field(c) for c in model.classes], dtype=object)
    rows = 0
    for chunk in model_chunks(model, stream, text_columns, keep):
        outputs = chunk_outputs(model, stream, chunk, text_columns)
        columns: list[list[str]] = [_kept_cells(chunk, stream.header, name) for name in keep]
        if labels is not None:
            columns.append(labels[outputs.argmax(axis=1)].tolist())
        else:
            columns.append(_format_rows(outputs, fmt))
        if proba:
            columns.append(_format_rows(outputs, fmt))
        out.write(header * (rows == 0) + "".join(",".join(parts) + "\n" for parts in zip(*columns)))
        rows += len(outputs)
    if rows == 0:
        out.write(header)
    out.flush()
    return rows


def _kept_cells(chunk: Chunk, header: list[str], name: str) -> list[str]:
    """A --keep column's cells as CSV fields, as the file wrote them; a cell read as missing (one
    of the model's missing_values) is an empty field."""
    return ["" if cell is None else csv_field(cell) for cell in chunk.text_column(header, name)]


def _format_rows(matrix: np.ndarray, fmt: str) -> list[str]:
    row_format = ",".join([fmt] * matrix.shape[1])
    return [row_format % tuple(row) for row in matrix.tolist()]
