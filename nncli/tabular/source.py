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
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nncli.errors import DataError, reading
from nncli.tabular.fast import polars_pays, read_numeric
from nncli.tabular.parse import (
    at_line,
    check_line_ends,
    check_line_lengths,
    column_index,
    count_lines,
    inside_quotes_after,
    line_budget,
    line_of_row,
    lines_after_header,
    parse_rows,
    read_header,
    read_line,
    records,
    unclosed_quote,
)
from nncli.tabular.stream import CHUNK_BYTES, CsvStream

SCAN_BYTES = 16 << 20  # a whole file is checked this much at a time (plus the rest of a line)


@dataclass
class CsvColumns:
    """A CSV file parsed to numbers, with its text columns encoded as integer codes."""

    path: Path
    header: list[str]
    values: np.ndarray  # (rows, len(header)) float64, or float32 when asked for and exact (read_csv); NaN: a missing cell
    text_values: dict[str, list[str]]  # text column -> distinct values, code = list index
    rows_are_lines: bool = False  # data row i is line i + 2 (no blank line, no field spanning lines)

    def where(self, row: int) -> str:
        """``data.csv:17``: the line where data row ``row`` (from 0) starts, for an error
        message (the file is read again unless each line after the header is a row)."""
        if self.rows_are_lines:
            return f"{self.path}:{row + 2}"
        try:
            line = line_of_row(records(lines_after_header(self.path), str(self.path)), row)
        except (DataError, OSError):  # (a file that changed since it was read)
            line = None
        return at_line(str(self.path), line)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Column name -> index (``header.index`` once per column is quadratic in a wide file)."""
        return {name: i for i, name in enumerate(self.header)}

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.positions[name]]

    def columns(self, names: Sequence[str]) -> np.ndarray:
        return self.values[:, column_index([self.positions[n] for n in names])]


def open_csv(source: str | Path, chunk_bytes: int = CHUNK_BYTES) -> CsvStream:
    """A CSV file, or ``-`` for stdin, to be read chunk by chunk (bounded memory)."""
    return CsvStream(source, chunk_bytes)


def read_csv(path: Path, text_columns: Iterable[str] = (), dtype=np.float64, missing_values: Iterable[str] = ()) -> CsvColumns:
    """Parse a whole CSV file: every column numeric and finite, except ``text_columns``, and
    NaN for a missing cell (one of ``missing_values``, see :func:`nncli.tabular.parse.missing_tokens`)
    in any column; a numeric column's cell that is neither is a :class:`~nncli.tabular.parse.NotANumber`.

    The values are float64; ``dtype`` float32 lets polars' parser return them as float32 when
    every value is exactly a float32 (integer pixels, say), which halves the table and skips a
    float64 copy of it. The numbers are the same either way. polars parses a file without
    quotes a block of lines at a time into the matrix returned, so its read peaks at about that
    matrix and one block (:data:`nncli.tabular.fast.ROW_BLOCK_BYTES`), not a frame of the whole file as well.

    The rules are the streams' (:mod:`nncli.tabular.parse`): no line longer than the line
    budget (checked before a parser reads the file), no lone carriage return, and every quoted
    field closed (checked after the parse, which may have taken an unclosed quote for a field
    running to the end of the file).
    """
    header = read_header(path)
    text_columns = list(text_columns)
    missing_values = tuple(missing_values)
    layout = _file_layout(path)
    fast = None
    if polars_pays(path.stat().st_size, len(header)) and not _starts_with_bom(path):
        # Without quotes each line after the header is a row (or a blank line, which polars
        # refuses): polars may then parse the file a block of lines at a time.
        fast = read_numeric(path, header, text_columns, layout.crlf, dtype, rows=None if layout.quotes else layout.lines,
                            missing_values=missing_values)
    values, text_values = fast if fast is not None else parse_rows(path, header, str(path), text_columns,
                                                                     missing_values=missing_values)
    if layout.quotes:
        _check_quotes(path, layout, len(values))
    if values.shape[0] == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return CsvColumns(path, header, values, text_values, rows_are_lines=len(values) == layout.lines)


@dataclass
class _Layout:
    crlf: bool  # lines end in CRLF
    quotes: bool  # the file holds a quote character
    lines: int = 0  # lines after the header
    last_line: str = ""  # the last line after the header that is not blank, and its number
    last_line_number: int = 0
    ends_line: bool = True  # the file ends with a line feed (or is empty)


def _file_layout(path: Path) -> _Layout:
    """One pass over the whole file: line lengths (:func:`check_line_lengths`, first: a longer
    line is never read whole), line ends (:func:`check_line_ends`), and what
    :func:`_check_quotes` needs. The file is mapped, or, where it cannot be (an address space
    smaller than the file), read in blocks of whole lines: bounded memory whatever the file."""
    name, limit = str(path), line_budget()
    layout = _Layout(crlf=False, quotes=False)
    with reading(path, DataError, "CSV file"):
        with open(path, "rb") as f:
            try:
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):  # (an empty file cannot be mapped either)
                line = 1
                while block := f.read(SCAN_BYTES):
                    if not block.endswith(b"\n"):  # whole lines only, each within the budget
                        block += read_line(f, name, line + count_lines(block, len(block)), limit)
                    line += _scan(block, name, line, limit, layout)
                line_feeds = line - 1
            else:
                with data:
                    line_feeds = _scan(data, name, 1, limit, layout)
    layout.lines = line_feeds + (not layout.ends_line) - 1  # the file's lines but the header
    return layout


def _scan(data, name: str, first_line: int, limit: int, layout: _Layout) -> int:
    """Check ``data`` (whole lines from ``first_line``) into ``layout``; its number of line
    feeds (counting them costs ~0.25 ms a MB)."""
    check_line_lengths(data, name, first_line, limit)
    layout.crlf |= check_line_ends(data, name, first_line)
    size = len(data)
    layout.ends_line = data[size - 1 : size] in (b"\n", b"") if size else layout.ends_line
    layout.quotes |= data.find(b'"') >= 0
    feeds = count_lines(data, size)
    end = size
    while end and data[end - 1] in b"\r\n":
        end -= 1  # trailing blank lines: the last line that is not blank ends here
    start = data.rfind(b"\n", 0, end) + 1
    number = first_line + feeds - count_lines(data, size, start)
    if end and number > 1:
        layout.last_line, layout.last_line_number = data[start:end].decode("utf-8", "replace"), number
    return feeds


def _check_quotes(path: Path, layout: _Layout, rows: int) -> None:
    """Every quoted field closes: the quoting rule of :func:`nncli.tabular.parse.records`.

    NumPy's parser (and polars) take a quoted field that never closes for one running to the
    end of the file, losing every row after it. When each line after the header was one row, no
    field spans lines and only the last line can open such a quote; otherwise (fields that span
    lines, blank lines) every record is checked."""
    if rows == layout.lines:
        if inside_quotes_after(layout.last_line, False):
            raise unclosed_quote(str(path), layout.last_line_number)
        return
    for _ in records(lines_after_header(path), str(path)):
        pass


def _starts_with_bom(path: Path) -> bool:
    """A byte-order mark: polars would fold it into the first column's name."""
    with open(path, "rb") as f:
        return f.read(3).startswith(b"\xef\xbb\xbf")
