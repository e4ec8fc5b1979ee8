"""Where every table is opened, and the one place that picks its parser.

``open_csv`` streams a file or stdin (predict, evaluate); ``read_csv`` reads a whole file
(train).  Both ask :func:`nncli.tabular.fast.polars_pays` whether polars should parse: below
``FAST_PATH_BYTES`` importing polars costs more than its faster parse saves, so small inputs
are parsed by NumPy alone.  Whatever parses a table, the values and every error message are
the same (the bad-CSV tests run through both parsers).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nncli.errors import DataError, reading
from nncli.tabular.fast import polars_pays, read_numeric
from nncli.tabular.parse import check_line_ends, parse_rows, read_header
from nncli.tabular.stream import CHUNK_BYTES, CsvStream


@dataclass
class CsvColumns:
    """A CSV file parsed to float64, with its text columns encoded as integer codes."""

    path: Path
    header: list[str]
    values: np.ndarray  # (rows, len(header)) float64
    text_values: dict[str, list[str]]  # text column -> distinct values, code = list index

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.header.index(name)]

    def columns(self, names: Sequence[str]) -> np.ndarray:
        return self.values[:, [self.header.index(n) for n in names]]


def open_csv(source: str | Path, chunk_bytes: int = CHUNK_BYTES) -> CsvStream:
    """A CSV file, or ``-`` for stdin, to be read chunk by chunk (bounded memory)."""
    return CsvStream(source, chunk_bytes)


def read_csv(path: Path, text_columns: Iterable[str] = ()) -> CsvColumns:
    """Parse a whole CSV file: every column numeric and finite, except ``text_columns``."""
    header = read_header(path)
    text_columns = list(text_columns)
    crlf = _file_line_ends(path)
    fast = None
    if polars_pays(path.stat().st_size) and not _starts_with_bom(path):
        fast = read_numeric(path, header, text_columns, crlf)
    values, text_values = fast if fast is not None else parse_rows(path, header, str(path), text_columns)
    if values.shape[0] == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return CsvColumns(path, header, values, text_values)


def _file_line_ends(path: Path) -> bool:
    """:func:`check_line_ends` for a whole file, mapped rather than read into memory."""
    with reading(path, DataError, "CSV file"):
        with open(path, "rb") as f:
            try:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    return check_line_ends(data, str(path))
            except (ValueError, OSError):  # not mappable (a special file): read it
                f.seek(0)
                return check_line_ends(f.read(), str(path))


def _starts_with_bom(path: Path) -> bool:
    """A byte-order mark: polars would fold it into the first column's name."""
    with open(path, "rb") as f:
        return f.read(3).startswith(b"\xef\xbb\xbf")
