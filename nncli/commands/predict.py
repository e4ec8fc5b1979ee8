"""The `predict` service: a trained model applied to the rows of a CSV or Parquet file, chunk by chunk;
CSV rows out (stdout or a file), or a Parquet file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, TextIO

import numpy as np

from nncli.core.model import TrainedModel
from nncli.errors import ModelFileError, UsageError
from nncli.files.atomic import atomic_write
from nncli.files.clusters import is_clusters_file
from nncli.files.model import MODEL_THEN_DATA, load_model
from nncli.files.parquetsink import ParquetSink
from nncli.files.paths import check_writable, is_device, same_file
from nncli.tabular.columns import (
    check_columns,
    chunk_bytes_for,
    chunk_outputs,
    kept_cells,
    kept_fields,
    model_chunks,
    text_columns_for,
)
from nncli.tabular.parse import listed
from nncli.tabular.stream import Chunk, CsvStream
from nncli.tabular.tables import open_table
from nncli.tabular.write import csv_field, float_format, write_csv_rows


def predict(model_path: Path, data: str, output: str | None, keep: list[str], proba: bool, stdout: TextIO) -> int:
    """`nncli predict`: predictions for every row of ``data`` (a CSV or Parquet file, or - for CSV on stdin) to
    ``output`` (written atomically: Parquet when its name ends in .parquet, else CSV) or ``stdout`` (CSV);
    returns the number of rows."""
    destination = None if output is None else output_file(output)
    try:
        trained = load_model(model_path, MODEL_THEN_DATA)
    except ModelFileError:
        if not is_clusters_file(model_path):
            raise
        from nncli.commands.assign import assign_rows  # a file of `nncli cluster --save`: rows to its clusters

        return assign_rows(model_path, data, destination, keep, proba, stdout)
    return write_rows(
        model_path, data, output, destination, stdout, chunk_bytes_for(trained),
        to_csv=lambda stream, f: predict_csv(trained, stream, f, keep, proba),
        to_parquet=lambda stream, f, spill_folder: predict_parquet(trained, stream, f, keep, proba, spill_folder, name=output),
    )


def write_rows(model_path: Path, data: str, output: str | None, destination: Path | None, stdout: TextIO, chunk_bytes: int,
               to_csv: Callable[[CsvStream, TextIO], int], to_parquet: Callable[[CsvStream, BinaryIO, Path | None], int],
               what: str = "predictions") -> int:
    """A model's rows out, for predict and embed: ``data`` opened in chunks of ``chunk_bytes``, and
    written by ``to_csv`` to ``stdout`` or by ``to_csv`` / ``to_parquet`` to ``destination``
    (atomically: Parquet when its name ends in .parquet, with the spill folder for its rows);
    returns the number of rows. ``destination`` is the checked ``--output`` (:func:`output_file`)."""
    if destination is not None:
        check_writable(destination)
        for source, role in ((Path(data), "input file"), (model_path, "model file")):
            if (data != "-" or role == "model file") and same_file(destination, source):
                raise UsageError(f"--output {output}: is the {role}; write the {what} elsewhere")
    with open_table(data, chunk_bytes) as stream:
        if destination is None:
            return to_csv(stream, stdout)
        if writes_parquet(destination):
            # (rows past 16 MiB wait in temporary files beside the output: on the disk that must hold it anyway)
            spill_folder = None if is_device(destination) else destination.parent
            with atomic_write(destination, "wb") as f:
                return to_parquet(stream, f, spill_folder)
        with atomic_write(destination, "w") as f:
            return to_csv(stream, f)


def writes_parquet(destination: Path) -> bool:
    """An output named ``*.parquet`` (any case) is written as Parquet; any other as CSV."""
    return destination.suffix.lower() == ".parquet"


def output_file(text: str) -> Path:
    """An output file path given on the command line: not empty, not a folder name."""
    if not text.strip():
        raise UsageError("--output: the path is empty")
    if text.endswith(("/", os.sep)):
        raise UsageError(f"--output {text}: names a folder; give a file name, e.g. {text}predictions.csv")
    return Path(text).expanduser()


def output_columns(model: TrainedModel, keep: list[str], proba: bool) -> list[str]:
    columns = list(keep)
    if model.autoencoder:  # its targets are its features: a column of the same name may be kept beside
        columns += [f"reconstruction_{feature}" for feature in model.targets]
    elif model.is_classification or len(model.targets) == 1:
        columns.append("prediction")
    else:
        columns += [f"prediction_{target}" for target in model.targets]
    if proba:
        columns += [f"proba_{label}" for label in model.classes]
    return columns


def predict_csv(model: TrainedModel, stream: CsvStream, out: TextIO, keep: list[str] = (), proba: bool = False) -> int:
    """Write predictions for every row of ``stream`` to ``out`` as CSV; returns the number of rows."""
    keep, text_columns = _checked(model, stream, keep, proba)
    fmt = float_format(model.network.dtype)
    labels = None if model.classes is None else np.array([csv_field(c) for c in model.classes], dtype=object)

    def blocks() -> Iterator[list[list[str]]]:
        for chunk, outputs in _outputs(model, stream, text_columns, keep):
            columns = [kept_fields(chunk, stream.header, name) for name in keep]
            columns.append(_format_rows(outputs, fmt) if labels is None else labels[outputs.argmax(axis=1)].tolist())
            if proba:
                columns.append(_format_rows(outputs, fmt))
            yield columns

    return write_csv_rows(out, output_columns(model, keep, proba), blocks())


def predict_parquet(model: TrainedModel, stream: CsvStream, out: BinaryIO, keep: list[str] = (), proba: bool = False,
                    spill_folder: Path | None = None, name: str = "the output") -> int:
    """Write predictions for every row of ``stream`` to ``out`` as Parquet, the CSV output's columns
    and values (:func:`predict_csv`) typed: kept columns as text (null for a missing cell), a class
    label as text, a regression value or a probability as a float of the model's dtype.
    Returns the number of rows."""
    keep, text_columns = _checked(model, stream, keep, proba)
    dtype = model.network.dtype
    predictions = [str] if model.is_classification else [dtype] * len(model.targets)
    kinds = [str] * len(keep) + predictions + [dtype] * (len(model.classes) if proba else 0)
    labels = None if model.classes is None else np.array(model.classes, dtype=object)
    with ParquetSink(out, dict(zip(output_columns(model, keep, proba), kinds)), spill_folder, name=name) as sink:
        for chunk, outputs in _outputs(model, stream, text_columns, keep):
            columns: list = [kept_cells(chunk, stream.header, column) for column in keep]
            if labels is not None:
                columns.append(labels[outputs.argmax(axis=1)].tolist())
            else:
                columns += [outputs[:, j].astype(dtype) for j in range(outputs.shape[1])]
            if proba:
                columns += [outputs[:, j].astype(dtype) for j in range(outputs.shape[1])]
            sink.write(columns)
    return sink.rows


def numbers_csv(stream: CsvStream, out: TextIO, keep: list[str], names: list[str], dtype: np.dtype,
                blocks: Iterable[tuple[Chunk, np.ndarray]]) -> int:
    """Rows of numbers as CSV (embed's codes): the --keep columns as written, then one column per
    name, from each chunk of ``stream`` with its matrix; returns the number of rows. As in
    :func:`predict_csv`, the header goes out with the first rows."""
    fmt = float_format(dtype)
    return write_csv_rows(out, [*keep, *names], ([kept_fields(chunk, stream.header, name) for name in keep] + [_format_rows(matrix, fmt)]
                                                  for chunk, matrix in blocks))


def numbers_parquet(stream: CsvStream, out: BinaryIO, keep: list[str], names: list[str], dtype: np.dtype,
                    blocks: Iterable[tuple[Chunk, np.ndarray]], spill_folder: Path | None = None, name: str = "the output") -> int:
    """:func:`numbers_csv` as Parquet: kept columns as text (null for a missing cell), the numbers as ``dtype``."""
    with ParquetSink(out, dict(zip([*keep, *names], [str] * len(keep) + [dtype] * len(names))), spill_folder, name=name) as sink:
        for chunk, matrix in blocks:
            sink.write([kept_cells(chunk, stream.header, column) for column in keep]
                       + [matrix[:, j].astype(dtype) for j in range(matrix.shape[1])])
    return sink.rows


def _checked(model: TrainedModel, stream: CsvStream, keep: list[str], proba: bool) -> tuple[list[str], list[str]]:
    """The kept columns (each once) and the columns read as text, once the request is checked
    against the model and the file's columns."""
    keep = list(dict.fromkeys(keep))  # a column asked for twice is copied once
    if proba and not model.is_classification:
        raise UsageError(f"--proba needs a classification model; this one predicts {listed(model.targets)}")
    clash = set(keep) & set(output_columns(model, [], proba))
    if clash:
        raise UsageError(f"--keep {sorted(clash)[0]}: the output already has a column of that name")
    check_columns(model, stream, keep)
    return keep, text_columns_for(model, stream.header, keep)


def _outputs(model: TrainedModel, stream: CsvStream, text_columns: list[str], keep: list[str]) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Each chunk of the stream, with the model's outputs for its rows."""
    for chunk in model_chunks(model, stream, text_columns, keep, targets=False):  # (a target column is not read)
        yield chunk, chunk_outputs(model, stream, chunk, text_columns)


def _format_rows(matrix: np.ndarray, fmt: str) -> list[str]:
    row_format = ",".join([fmt] * matrix.shape[1])
    return [row_format % tuple(row) for row in matrix.tolist()]
