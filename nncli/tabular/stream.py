"""Stream a CSV file (or stdin) in chunks, so memory stays bounded whatever the file size.

Used by `predict` and `evaluate` (opened by :func:`nncli.tabular.source.open_csv`): each chunk
of about ``CHUNK_BYTES`` of text is parsed (polars for plain blocks of big inputs, NumPy's C
parser otherwise — see :meth:`CsvStream.chunks`) and handed on before the next is read, so
output starts long before a large input has been read.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from nncli.errors import DataError, reading
from nncli.tabular.fast import BlockParser, polars_pays
from nncli.tabular.parse import (
    RowParser,
    as_number,
    check_line_ends,
    check_line_lengths,
    line_budget,
    line_of_row,
    locate_bad_cell,
    parse_header,
    quoted,
    read_line,
    records,
    split_lines,
)
from nncli.tabular.prefetch import read_ahead

# 2 MiB of text per chunk (callers with wide rows ask for more: columns.chunk_bytes_for): enough
# for polars to pay off; ~120 MB peak for 20 columns. A chunk is this plus the
# rest of its last line, and of a quoted field spanning lines: at most the line budget
# (parse.MAX_LINE_BYTES) more.
CHUNK_BYTES = 2 << 20


@dataclass
class Chunk:
    values: np.ndarray  # (rows, columns) float64 (or float32: see parsed_chunks); text columns hold codes into `text`; NaN: a missing cell
    text: dict[str, list[str]]  # text column -> distinct values in this chunk
    source: str  # the chunk's raw text, kept only to locate a problem for an error message
    first_line: int  # line number of its first line in the file (the header is line 1)
    _records: list[str] | None = None
    positions: dict[str, int] | None = None  # column name -> index (header.index per name is quadratic)
    name: str = ""  # the stream's, for messages ("data.csv", "<stdin>")
    missing_values: tuple[str, ...] = ()  # the cells read as missing

    @property
    def records(self) -> list[str]:
        """The chunk's records (a quoted field may make one span lines)."""
        if self._records is None:
            self._records = split_lines(self.source)
        return self._records

    @property
    def lines(self) -> list[str]:
        """The chunk's physical lines (a quoted field may span several)."""
        return split_lines(self.source)

    def line_of_row(self, row: int) -> int:
        """The file line on which data row ``row`` of this chunk starts (blank lines skipped)."""
        line = line_of_row(self.records, row, self.first_line)
        return self.first_line + self.source.count("\n") if line is None else line

    def where(self, row: int) -> str:
        """``data.csv:17``: where data row ``row`` of this chunk starts, for an error message."""
        return f"{self.name}:{self.line_of_row(row)}"

    def column(self, header: list[str], name: str) -> np.ndarray:
        return self.values[:, self.positions[name] if self.positions is not None else header.index(name)]

    def numbers(self, header: list[str], name: str, source: str, text_columns: list[str]) -> np.ndarray:
        """A column read as text (it may hold anything elsewhere) that must here be finite
        numbers, or missing cells (NaN); anything else is a :class:`~nncli.tabular.parse.NotANumber`."""
        distinct = np.array([as_number(cell) for cell in self.text[name]], dtype=np.float64)
        if not np.isfinite(distinct).all():
            others = [column for column in text_columns if column != name]
            raise locate_bad_cell(self.lines, header, source, others, self.first_line, self.missing_values) or DataError(
                f"{source}: column {quoted(name)} holds a value that is not a finite number"
            )
        return np.append(distinct, np.nan)[self._indices(header, name, len(distinct))]

    def text_column(self, header: list[str], name: str) -> list[str | None]:
        """The column's cells as text, one per row; None for a missing cell."""
        distinct = np.array([*self.text[name], None], dtype=object)
        return distinct[self._indices(header, name, len(distinct) - 1)].tolist()

    def _indices(self, header: list[str], name: str, missing: int) -> np.ndarray:
        """A text column's codes as indices, ``missing`` for a missing cell."""
        codes = self.column(header, name)
        if self.missing_values:
            codes = np.where(np.isnan(codes), missing, codes)
        return codes.astype(np.intp)


def _starts_as_parquet(f: BinaryIO) -> bool:
    """Whether ``f`` begins with Parquet's signature, looked at without consuming it (a pipe is
    peeked; its binary would otherwise be refused as a long line or as text that is not UTF-8)."""
    if hasattr(f, "peek"):
        return f.peek(4)[:4] == b"PAR1"
    if f.seekable():
        start = f.tell()
        head = f.read(4)
        f.seek(start)
        return head == b"PAR1"
    return False


class CsvStream:
    """A CSV file or ``-`` (stdin): the header at once, then rows chunk by chunk.

    Bytes are decoded line by line, so a byte that is not UTF-8 is reported with its line.
    """

    def __init__(self, source: str | Path, chunk_bytes: int = CHUNK_BYTES):
        self._reading: list = []  # the read-ahead generators of chunks(), closed with the stream
        self.chunk_bytes = chunk_bytes
        if str(source) == "-":
            self.name = "<stdin>"
            if sys.stdin is None:  # started with <&-
                raise DataError("<stdin>: standard input is closed; give a CSV file, or pipe one in")
            self._file: BinaryIO = sys.stdin.buffer
            # Held while the stream is: a read-ahead thread blocked on a silent pipe keeps it (and
            # with it sys.stdin) alive, or the interpreter's exit would close sys.stdin under that
            # thread's lock and abort ("Fatal Python error: _enter_buffered_busy", exit 134).
            self._stdin = sys.stdin
        else:
            self.name = str(source)
            with reading(source, DataError, "CSV file"):
                self._file = open(source, "rb")
        try:
            if self.name == "<stdin>" and _starts_as_parquet(self._file):  # (a file is told by it in tables.py)
                raise DataError("<stdin>: standard input holds a Parquet file; give its path instead (stdin is read as CSV)")
            first = self._decode(read_line(self._file, self.name, 1), 1)
            self.header = parse_header(first.removeprefix("\ufeff"), self.name)  # a byte-order mark is fine
            self.positions = {column: i for i, column in enumerate(self.header)}
        except BaseException:
            self.__exit__()
            raise

    def _size(self) -> int | None:
        """The input's size in bytes when it is a regular file (stdin may be one), else None."""
        try:
            info = os.fstat(self._file.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def __enter__(self) -> "CsvStream":
        return self

    def __exit__(self, *exc) -> None:
        for ahead in self._reading:  # (its thread, done with its chunk, before the file goes)
            ahead.close()
        if sys.stdin is None or self._file is not sys.stdin.buffer:
            self._file.close()

    def _decode(self, raw: bytes, first_line: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + raw.count(b"\n", 0, exc.start)
            start = raw.rfind(b"\n", 0, exc.start) + 1
            raise DataError(
                f"{self.name}:{line}: not UTF-8 text (byte {exc.start - start + 1} of the line); expected a CSV file"
            ) from None

    def chunks(self, text_columns: Iterable[str] = (), skip: Iterable[str] = (),
               missing_values: Iterable[str] = (), dtype=np.float64) -> Iterator[Chunk]:
        """:meth:`parsed_chunks`, the next one parsed while the caller works on this one (see
        :mod:`nncli.tabular.prefetch`): the same chunks and errors, in the same order. Closing the
        stream stops the reading ahead first."""
        ahead = read_ahead(self.parsed_chunks(text_columns, skip, missing_values, dtype))
        self._reading.append(ahead)
        return ahead

    def parsed_chunks(self, text_columns: Iterable[str] = (), skip: Iterable[str] = (),
                      missing_values: Iterable[str] = (), dtype=np.float64) -> Iterator[Chunk]:
        """Parsed chunks; ``text_columns`` may hold anything, the others must be finite numbers,
        except ``skip``: columns that may hold anything and are not read at all (cheaper than
        text when a file has many columns the caller does not need). A cell equal to one of
        ``missing_values`` is NaN in any column (see :func:`nncli.tabular.parse.parse_rows`).
        With ``dtype`` float32, a chunk whose values are all exactly float32s may come as
        float32 (the same numbers; a caller takes either dtype).

        The file is read in blocks of whole lines. In an input big enough for polars to pay
        for its import, a block without quotes goes to polars' parser; anything it does not
        take cleanly (and every block with quotes, which may hold a field spanning lines) goes
        to NumPy's parser, whose errors name the exact line, column and value.
        """
        skip = set(skip)
        text_columns = list(dict.fromkeys([*text_columns, *(name for name in self.header if name in skip)]))
        missing_values = tuple(missing_values)
        fast = BlockParser(self.header, text_columns, missing_values, dtype)  # (polars reads skipped columns as text: few columns there)
        exact = RowParser(self.header, text_columns, skip, missing_values)
        line_number = 2
        limit = line_budget()
        size, passed = self._size(), 0  # a pipe's size is unknown: count what has passed instead
        while True:
            block = self._file.read(self.chunk_bytes)
            if not block:
                return
            if not block.endswith(b"\n"):  # whole lines only, and none longer than the budget
                block += read_line(self._file, self.name, line_number + block.count(b"\n"), limit)
            passed += len(block)
            check_line_lengths(block, self.name, line_number, limit)
            check_line_ends(block, self.name, line_number)  # a lone "\r" means the same in every reader
            quoted_records = None
            if b'"' in block:
                quoted_records = self._records(self._decode(block, line_number), line_number, limit)
                source = "".join(quoted_records)
            else:
                source = self._decode(block, line_number)
            use_polars = polars_pays(passed if size is None else size, len(self.header))
            parsed = fast.parse(block) if quoted_records is None and use_polars else None
            if parsed is None:
                lines = quoted_records if quoted_records is not None else split_lines(source)
                parsed = exact.parse(lines, self.name, first_line=line_number)
            yield Chunk(parsed[0], parsed[1], source, line_number, quoted_records, self.positions, self.name, missing_values)
            line_number += source.count("\n")

    def _records(self, text: str, first_line: int, limit: int) -> list[str]:
        """The block's lines as records (:func:`nncli.tabular.parse.records`, the rule of every
        reader), reading on past the block while a quoted field that spans lines goes on."""

        def more(line: int) -> str | None:
            raw = read_line(self._file, self.name, line, limit)
            if raw:
                check_line_ends(raw, self.name, line)
            return self._decode(raw, line) if raw else None

        return list(records(split_lines(text), self.name, first_line, more, limit))
