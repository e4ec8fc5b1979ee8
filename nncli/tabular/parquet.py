"""Parquet files read as nncli reads CSV files: whole (train), or streamed a few row groups at
a time (predict, evaluate), with the CSV readers' promises (:mod:`nncli.tabular.source`,
:mod:`nncli.tabular.stream`):

* the same table: numbers as numbers (booleans 0 and 1), text columns as codes into their
  distinct values in order of first appearance, missing cells NaN, and the same errors, with
  "file: row N" (the N-th data row) where a CSV message names a line
  (:mod:`nncli.tabular.parquet_columns`);
* sizes checked before anything is decoded: the file's footer is read and measured against the
  budgets first (:mod:`nncli.tabular.parquet_footer`), and each read against the memory this
  process may take before polars allocates for it;
* bounded memory: a file is decoded about ``READ_BYTES`` at a time (consecutive row groups,
  or a slice of a larger one) and handed on in chunks (a stream) or copied into the matrix
  (a whole read).

Writing predictions is :mod:`nncli.files.parquetsink`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from nncli.budgets import KiB, MiB, available_memory, human_bytes
from nncli.errors import DataError
from nncli.tabular.parquet_columns import ColumnPlan, Matrix, is_non_finite, is_text, where
from nncli.tabular.parquet_footer import Group
from nncli.tabular.parquet_layout import ParquetLayout, parquet_layout, polars_errors, scan
from nncli.tabular.parse import as_number, missing_tokens
from nncli.tabular.source import CsvColumns
from nncli.tabular.stream import CHUNK_BYTES

# Decoded bytes asked of polars at a time: consecutive row groups up to this; a row group of
# up to SLICE_BYTES alone; a larger one in slices of this size (polars decodes only the pages a
# slice needs, but slices cost more than whole row groups). Measured on 1 GB of 19 MB row
# groups (20 columns): whole row groups streamed at a 215-257 MB peak in 2.9 s; slices of 16,
# 8, 4 MiB at 170, 158, 146 MB in 3.9, 6.4, 8.1 s.
READ_BYTES = 16 * MiB
SLICE_BYTES = 64 * MiB
# ... and at least this per column: a read costs ~10 µs a column whatever its rows (polars'
# setup, the casts), which reads of 4 KiB a column keep to a few per cent (as fast.py's blocks).
READ_BYTES_PER_COLUMN = 4 * KiB


def _check_memory(name: str, need: int, what: str) -> None:
    room = available_memory()
    if need > room:
        raise DataError(
            f"{name}: {what} take {human_bytes(need)}, more than the {human_bytes(room)} of memory this process may take"
        )


# --- reading a whole file (train) ---------------------------------------------------------------
@dataclass
class ParquetColumns(CsvColumns):
    """A Parquet file read whole, as :func:`nncli.tabular.source.read_csv` returns a CSV file."""

    def where(self, row: int) -> str:
        return where(str(self.path), row)


def read_parquet(path: Path, text_columns: Iterable[str] = (), dtype=np.float64,
                 missing_values: Iterable[str] = ()) -> ParquetColumns:
    """The whole file as numbers, its ``text_columns`` as codes (see :class:`ColumnPlan` for the rules).

    The budgets are checked first, from the footer: its metadata, its columns, and the table
    (rows × columns × 8 bytes) against the memory this process may take. The file is then
    decoded ``READ_BYTES`` of row groups at a time into one preallocated matrix."""
    path = Path(path)
    layout = parquet_layout(path)
    if layout.rows == 0:
        raise DataError(f"{path}: has no data rows")
    rows, columns = layout.rows, len(layout.header)
    _check_memory(layout.name, rows * columns * 8, f"its {rows:,} rows × {columns:,} columns")
    plan = ColumnPlan(layout.name, layout.types, text_columns, (), missing_values)
    table = Matrix(layout.rows, len(layout.header), dtype)
    codes: dict[str, dict[str, int]] = {column: {} for column in plan.texts}
    for first_row, frame in _reads(layout, plan.read):
        plan.fill_numbers(frame, first_row, table, first_row)
        plan.fill_texts(frame, table, first_row, codes)
    return ParquetColumns(path=path, header=layout.header, values=table.values,
                          text_values={column: list(codes[column]) for column in plan.texts})


def _reads(layout: ParquetLayout, columns: list[str], until: int | None = None) -> Iterator[tuple[int, object]]:
    """(first row, frame of ``columns``) for the file's rows in order (up to row ``until``, if
    given), about ``READ_BYTES`` decoded at a time (:func:`_read_ranges`); a read that could
    take more memory than this process may take is refused before polars allocates for it."""
    source = scan(layout.name).select(columns or layout.header[:1])  # (no columns: no rows either)
    read_bytes = max(READ_BYTES, READ_BYTES_PER_COLUMN * len(columns))
    for first, rows, need in _read_ranges(layout.footer.groups, len(columns), read_bytes, max(SLICE_BYTES, read_bytes)):
        if until is not None:
            if first >= until:
                return
            rows = min(rows, until - first)
        place = f"rows {first + 1:,} to {first + rows:,}"
        _check_memory(layout.name, need, f"{place}, decoded,")
        with polars_errors(layout.name, place):
            frame = source.slice(first, rows).collect()
        if frame.height != rows:
            raise DataError(f"{layout.name}: {place}: polars read {frame.height:,} rows (a damaged Parquet file?)")
        yield first, frame


def _read_ranges(groups: Sequence[Group], columns: int, read_bytes: int, slice_bytes: int) -> Iterator[tuple[int, int, int]]:
    """(first row, rows, memory it may take) of each read: consecutive row groups up to
    ``read_bytes`` decoded, a row group of up to ``slice_bytes`` alone, a larger one in slices
    of ``read_bytes``.

    polars decodes only the pages a slice needs, but may first load the row group's stored
    bytes whole: a part of a large row group may take its stored size as well. A value takes
    8 bytes at least, whatever a crafted footer says (the float64 a read becomes)."""
    first, rows, size = 0, 0, 0
    for group in groups:
        decoded = max(group.decoded, group.rows * columns * 8)
        if decoded > read_bytes and rows:  # a large row group is read alone
            yield first, rows, size
            first, rows, size = first + rows, 0, 0
        if decoded > slice_bytes and group.rows > 1:
            parts = min(group.rows, -(-decoded // read_bytes))
            step = -(-group.rows // parts)
            for offset in range(0, group.rows, step):
                part = min(step, group.rows - offset)
                yield first + offset, part, decoded * part // group.rows + group.stored
            first += group.rows
            continue
        rows, size = rows + group.rows, size + decoded
        if size >= read_bytes:
            yield first, rows, size
            first, rows, size = first + rows, 0, 0
    if rows:
        yield first, rows, size


# --- streaming (predict, evaluate) ---------------------------------------------------------------
@dataclass
class ParquetChunk:
    """Rows of a Parquet stream, as :class:`nncli.tabular.stream.Chunk` has a CSV stream's."""

    values: np.ndarray  # (rows, columns) float64; text columns hold codes into `text`, NaN when missing
    text: dict[str, list[str]]  # text column -> distinct values in this chunk
    name: str  # the file, for messages
    first_row: int  # the file's row (0-based) of this chunk's first row
    positions: dict[str, int]
    _frame: object = field(repr=False)  # the polars frame of these rows: numbers() reads columns read as text from it
    _plan: ColumnPlan = field(repr=False)

    @property
    def first_line(self) -> int:
        """The first row's number (1-based) where a CSV chunk has its first line's (for messages)."""
        return self.first_row + 1

    @property
    def lines(self) -> list[str]:
        return []  # no text to search: messages name rows through where()

    @property
    def missing_values(self) -> tuple[str, ...]:
        return tuple(self._plan.tokens)

    def where(self, row: int) -> str:
        return where(self.name, self.first_row + row)

    def line_of_row(self, row: int) -> int:
        """The file's row number (1-based) of this chunk's row ``row``."""
        return self.first_row + row + 1

    def column(self, header: list[str], name: str) -> np.ndarray:
        return self.values[:, self.positions[name]]

    def numbers(self, header: list[str], name: str, source: str = "", text_columns: Sequence[str] = ()) -> np.ndarray:
        """A column read as text that must here be numbers (NaN where missing)."""
        return self._plan.number_values(self._frame[name], self.first_row)

    def text_column(self, header: list[str], name: str) -> list[str | None]:
        """The column's cells as text, None where missing."""
        distinct = np.array([*self.text[name], None], dtype=object)
        codes = self.column(header, name)
        return distinct[np.where(np.isnan(codes), len(distinct) - 1, codes).astype(np.intp)].tolist()


class ParquetStream:
    """A Parquet file read chunk by chunk, with :class:`nncli.tabular.stream.CsvStream`'s interface."""

    def __init__(self, source: str | Path, chunk_bytes: int = CHUNK_BYTES):
        if str(source) == "-":
            raise DataError("<stdin>: Parquet cannot be read from standard input; give the file's path")
        self.layout = parquet_layout(source)
        self.name = self.layout.name
        self.header = self.layout.header
        self.positions = {column: i for i, column in enumerate(self.header)}
        # As many rows as chunk_bytes of CSV text holds at most (two bytes a value, "1,"): the
        # bound nncli.tabular.columns.chunk_bytes_for gives a chunk's outputs.
        self.chunk_rows = max(1, chunk_bytes // (2 * max(1, len(self.header))))

    def __enter__(self) -> "ParquetStream":
        return self

    def __exit__(self, *exc) -> None:
        pass  # (polars opens the file for each read)

    def chunks(self, text_columns: Iterable[str] = (), skip: Iterable[str] = (),
               missing_values: Iterable[str] = ()) -> Iterator[ParquetChunk]:
        """Chunks of ``chunk_rows`` rows at most (a read's last may be shorter): ``text_columns``
        as codes, ``skip`` not read at all (0 in ``values``), the others numbers."""
        plan = ColumnPlan(self.layout.name, self.layout.types, text_columns, skip, missing_values)
        for first_row, frame in _reads(self.layout, plan.read):
            table = Matrix(frame.height, len(self.header), np.float64)
            plan.fill_numbers(frame, first_row, table, 0)
            for offset in range(0, frame.height, self.chunk_rows):
                part = frame.slice(offset, self.chunk_rows)
                codes: dict[str, dict[str, int]] = {}  # (a chunk's text values are its own, as a CSV chunk's)
                plan.fill_texts(part, table, offset, codes)
                text = {column: list(codes.get(column, {})) for column in plan.texts}
                values = table.values[offset : offset + part.height]
                yield ParquetChunk(values, text, self.name, first_row + offset, self.positions, part, plan)


def open_parquet(source: str | Path, chunk_bytes: int = CHUNK_BYTES) -> ParquetStream:
    return ParquetStream(source, chunk_bytes)


def sniff_text_columns(path: Path, columns: Sequence[str], missing_values: Iterable[str] = (), rows: int = 1000) -> list[str]:
    """Which of ``columns`` hold text that is not a number (nor a missing value) in the file's
    first ``rows`` rows: text columns (String, Categorical) only, other types are numbers or
    refused as such."""
    import polars as pl

    layout = parquet_layout(path)
    tokens = missing_tokens(missing_values)
    wanted = [column for column in columns if column in layout.types and is_text(layout.types[column])]
    if not wanted:
        return []
    with polars_errors(layout.name, "its first rows"):
        frame = scan(layout.name).select(wanted).head(rows).collect()
    found = []
    for column in wanted:
        cells = frame[column].cast(pl.String).drop_nulls().unique().to_list()
        if any(cell.strip() not in tokens and not math.isfinite(as_number(cell)) and not is_non_finite(cell) for cell in cells):
            found.append(column)
    return found


def text_blocks(path: Path, rows: int) -> Iterator[list[list[str | None]]]:
    """The file's first ``rows`` rows as text, a read at a time: each column's cells (in the
    file's order) as a CSV file of the same table holds them (polars' text of each value, as
    :class:`ColumnPlan` reads a text column), None for a null. For guessing a config from the
    data (init); a column nncli cannot read (binary, nested) is refused as the readers refuse it."""
    import polars as pl

    layout = parquet_layout(path)
    ColumnPlan(layout.name, layout.types, layout.header, (), ())  # (the refusals)
    for _, frame in _reads(layout, layout.header, until=rows):
        text = frame.select(pl.all().cast(pl.String))
        yield [text.to_series(j).to_list() for j in range(text.width)]
