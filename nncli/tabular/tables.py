"""Any table nncli reads, CSV or Parquet: the one place that tells them apart.

A file is Parquet when its name ends in ``.parquet`` (any case) or it starts with Parquet's
signature ``PAR1``; anything else, and ``-`` (stdin), is CSV. Both kinds give the same objects
(:class:`nncli.tabular.source.CsvColumns` whole, a stream of chunks for predict and evaluate),
with the same values and errors; Parquet's name rows where CSV's name lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nncli.tabular.parquet import ParquetStream, open_parquet, read_parquet
from nncli.tabular.parquet import sniff_text_columns as sniff_parquet
from nncli.tabular.parquet_footer import MAGIC
from nncli.tabular.parse import sniff_text_columns as sniff_csv
from nncli.tabular.source import CsvColumns, open_csv, read_csv
from nncli.tabular.stream import CHUNK_BYTES, CsvStream


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` names a Parquet file: by its suffix, else by its first bytes (a file
    that cannot be opened is left to the CSV reader, whose error names the problem)."""
    if str(path) == "-":
        return False
    if Path(path).suffix.lower() == ".parquet":
        return True
    try:
        if not Path(path).is_file():  # (a named pipe would block the open, and is read as CSV)
            return False
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def header_place(path: str | Path) -> str:
    """Where a message about a file's column names points: a CSV file's header line
    (``data.csv:1``), a Parquet file itself (its schema: ``data.parquet``)."""
    return str(path) if is_parquet(path) else f"{path}:1"


def read_table(path: Path, text_columns: Iterable[str] = (), dtype=np.float64, missing_values: Iterable[str] = (),
               skip: Iterable[str] = ()) -> CsvColumns:
    """A whole CSV or Parquet file (:func:`nncli.tabular.source.read_csv`,
    :func:`nncli.tabular.parquet.read_parquet`); ``where(row)`` names a row's place in it.
    ``skip``: columns nobody uses, which a Parquet file's reader leaves undecoded (0 in the
    table; they may hold any type); a CSV file's are read as the others (a text cell in one is
    found by the caller, as for any column)."""
    if is_parquet(path):
        return read_parquet(path, text_columns, dtype, missing_values, skip)
    return read_csv(path, text_columns, dtype, missing_values)


def open_table(source: str | Path, chunk_bytes: int = CHUNK_BYTES) -> CsvStream | ParquetStream:
    """A CSV file, ``-`` (stdin, CSV) or a Parquet file, to be read chunk by chunk."""
    if is_parquet(source):
        return open_parquet(source, chunk_bytes)
    return open_csv(source, chunk_bytes)


def sniff_text_columns(path: Path, columns: Sequence[str], missing_values: Iterable[str] = ()) -> list[str]:
    """Which of ``columns`` hold, in the file's first rows, a cell that is neither a number nor
    a missing value (CSV: :func:`nncli.tabular.parse.sniff_text_columns`)."""
    if is_parquet(path):
        return sniff_parquet(path, columns, missing_values)
    return sniff_csv(path, columns, missing_values)
