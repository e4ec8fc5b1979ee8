"""The `embed` service: each row's activations at one hidden layer of a model (its code), written
as `predict` writes predictions: CSV on stdout or to a file, or Parquet, streamed chunk by chunk."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from nncli.commands.predict import numbers_csv, numbers_parquet, output_file, write_rows
from nncli.core.model import TrainedModel
from nncli.errors import UsageError
from nncli.files.model import MODEL_THEN_DATA, load_model
from nncli.tabular.columns import check_columns, text_columns_for
from nncli.tabular.embedding import chunk_bytes_for_codes, code_columns, embedding_layer, stream_codes
from nncli.tabular.stream import CsvStream


def embed(model_path: Path, data: str, layer: int | None, keep: list[str], output: str | None, stdout: TextIO) -> int:
    """`nncli embed`: the codes at hidden ``layer`` (default: the narrowest) of every row of ``data``
    (a CSV or Parquet file, or - for CSV on stdin), as columns code_1 … code_m after the --keep
    columns; to ``output`` or ``stdout`` as predict writes. Returns the number of rows."""
    destination = None if output is None else output_file(output)
    trained = load_model(model_path, MODEL_THEN_DATA)
    layer = embedding_layer(trained, layer)
    names = code_columns(trained, layer)
    dtype = trained.network.dtype

    def blocks(stream: CsvStream, kept: list[str]):
        return stream_codes(trained, stream, text_columns_for(trained, stream.header, kept), layer, kept)

    def to_csv(stream: CsvStream, out: TextIO) -> int:
        kept = _checked_keep(trained, stream, keep, names)
        return numbers_csv(stream, out, kept, names, dtype, blocks(stream, kept))

    def to_parquet(stream: CsvStream, out, spill_folder: Path | None) -> int:
        kept = _checked_keep(trained, stream, keep, names)
        return numbers_parquet(stream, out, kept, names, dtype, blocks(stream, kept), spill_folder, name=output)

    return write_rows(model_path, data, output, destination, stdout, chunk_bytes_for_codes(trained, layer),
                      to_csv, to_parquet, what="codes")


def _checked_keep(model: TrainedModel, stream: CsvStream, keep: list[str], names: list[str]) -> list[str]:
    """The --keep columns, each once, checked against the file and the code columns."""
    keep = list(dict.fromkeys(keep))
    clash = set(keep) & set(names)
    if clash:
        raise UsageError(f"--keep {min(clash)}: the output already has a column of that name")
    check_columns(model, stream, keep)
    return keep
