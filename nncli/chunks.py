"""Stream a CSV file (or stdin) in chunks, so memory stays bounded whatever the file size.

Used by `predict` and `evaluate`: each chunk of about ``CHUNK_BYTES`` of text is parsed by
NumPy's C parser (:func:`nncli.data.parse_rows`) and handed on before the next is read, so
output starts long before a large input has been read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from nncli.data import locate_bad_cell, parse_header, parse_rows, physical_lines
from nncli.errors import DataError, reading

CHUNK_BYTES = 1 << 20  # 1 MiB of text per chunk: ~10 MB of float64, output after milliseconds
MAX_RECORD_BYTES = 1 << 20  # a quoted field longer than this is taken for an unclosed quote


@dataclass
class Chunk:
    values: np.ndarray  # (rows, columns) float64; text columns hold codes into `text`
    text: dict[str, list[str]]  # text column -> distinct values in this chunk
    records: list[str]  # the raw records, kept only to locate a problem for an error message
    first_line: int  # line number of records[0] in the file (the header is line 1)

    @property
    def lines(self) -> list[str]:
        """The chunk's physical lines (a quoted field may span several)."""
        return list(physical_lines(self.records))

    def line_of_row(self, row: int) -> int:
        """The file line on which data row ``row`` of this chunk starts (blank lines skipped)."""
        line = self.first_line
        for record in self.records:
            if record not in ("\n", "\r\n"):
                if row == 0:
                    return line
                row -= 1
            line += record.count("\n")
        return line

    def column(self, header: list[str], name: str) -> np.ndarray:
        return self.values[:, header.index(name)]

    def numbers(self, header: list[str], name: str, source: str, text_columns: list[str]) -> np.ndarray:
        """A column read as text (it may hold anything elsewhere) that must here be finite numbers."""
        try:
            distinct = np.array([float(cell) for cell in self.text[name]], dtype=np.float64)
        except ValueError:
            distinct = np.array([np.nan])
        if not np.isfinite(distinct).all():
            others = [column for column in text_columns if column != name]
            raise locate_bad_cell(self.lines, header, source, others, self.first_line) or DataError(
                f"{source}: column {name!r} holds a value that is not a finite number"
            )
        return distinct[self.column(header, name).astype(np.intp)]

    def text_column(self, header: list[str], name: str) -> list[str]:
        """The column's cells as text, one per row."""
        distinct = np.array(self.text[name], dtype=object)
        return distinct[self.column(header, name).astype(np.intp)].tolist() if len(distinct) else []


class CsvStream:
    """A CSV file or ``-`` (stdin): the header at once, then rows chunk by chunk.

    Bytes are decoded line by line, so a byte that is not UTF-8 is reported with its line.
    """

    def __init__(self, source: str | Path, chunk_bytes: int = CHUNK_BYTES):
        self.chunk_bytes = chunk_bytes
        self._line = 0
        if str(source) == "-":
            self.name = "<stdin>"
            self._file: BinaryIO = sys.stdin.buffer
        else:
            self.name = str(source)
            with reading(source, DataError, "CSV file"):
                self._file = open(source, "rb")
        try:
            first = self._decode(self._file.readline())
            self.header = parse_header(first.removeprefix("\ufeff"), self.name)  # a byte-order mark is fine
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> "CsvStream":
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not sys.stdin.buffer:
            self._file.close()

    def _decode(self, raw: bytes) -> str:
        self._line += 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{self.name}:{self._line}: not UTF-8 text (byte {exc.start + 1} of the line); expected a CSV file"
            ) from None

    def chunks(self, text_columns: Iterable[str] = ()) -> Iterator[Chunk]:
        """Parsed chunks; ``text_columns`` may hold anything, the others must be finite numbers."""
        text_columns = list(text_columns)
        line_number = 2
        records = self._records()
        while True:
            lines = self._take(records)
            if not lines:
                return
            values, text = parse_rows(lines, self.header, self.name, text_columns, first_line=line_number)
            yield Chunk(values, text, lines, line_number)
            line_number += sum(line.count("\n") for line in lines)

    def _records(self) -> Iterator[str]:
        """Lines, with a quoted field that spans lines kept in one record.

        Only a quote that opens a field starts a quoted field (as in RFC 4180 and Python's csv
        module): `12" ruler` is plain text. A record still open after MAX_RECORD_BYTES is an
        unterminated quote, reported with the line where it began.
        """
        pending, inside, started = "", False, 0
        for raw in self._file:
            line = self._decode(raw)
            if not inside and '"' not in line:
                yield line  # the common case: no quotes, no parsing
                continue
            if not inside:
                started = self._line
            inside = _inside_quotes_after(line, inside)
            pending += line
            if not inside:
                yield pending
                pending = ""
            elif len(pending) > MAX_RECORD_BYTES:
                break
        if inside:
            raise DataError(f"{self.name}:{started}: a quoted field opened here is never closed")

    def _take(self, records: Iterator[str]) -> list[str]:
        lines, size = [], 0
        for record in records:
            lines.append(record)
            size += len(record)
            if size >= self.chunk_bytes:
                break
        return lines


def _inside_quotes_after(line: str, inside: bool) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of ``line``.

    Jumps from quote to quote (no Python loop over ordinary characters): outside a quoted
    field, a quote matters only at the start of a field; inside, `""` is an escaped quote.
    """
    position = 0
    while True:
        if inside:
            close = line.find('"', position)
            if close < 0:
                return True
            if line.startswith('"', close + 1):  # "" inside a quoted field
                position = close + 2
                continue
            inside, position = False, close + 1
        else:
            quote = line.find('"', position)
            if quote < 0:
                return False
            opens_field = quote == 0 or line[quote - 1] == ","
            inside, position = opens_field, quote + 1
