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
  or a slice of a larger one), its numbers a few columns (``COLUMN_BYTES``) at a time, and
  handed on in chunks (a stream: about as many values as a CSV chunk's text holds, the
  columns nobody uses never decoded) or copied into the matrix (a whole read). A 1 GB file
  streams within the peak memory of the CSV file of the same rows (about 1.1 ×).

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
from nncli.tabular.parquet_columns import BLOCK_ROWS, ColumnPlan, Matrix, is_non_finite, is_text, where
from nncli.tabular.parquet_footer import Group
from nncli.tabular.parquet_layout import ParquetLayout, parquet_layout, polars_errors, scan
from nncli.tabular.parse import as_number, missing_tokens
from nncli.tabular.source import CsvColumns
from nncli.tabular.stream import CHUNK_BYTES

# Decoded bytes asked of polars at a time: consecutive row groups up to this; a row group of
# up to SLICE_BYTES alone in a whole read (train), a larger one in slices of this size; a stream
# (predict, evaluate) slices every row group larger than this (polars decodes only the pages a
# slice needs, but a page is decoded whole for every slice that touches it).
READ_BYTES = 16 * MiB
SLICE_BYTES = 64 * MiB
# ... and at least this per column: a read costs ~10 µs a column whatever its rows (polars'
# setup, the casts), which reads of 4 KiB a column keep to a few per cent (as fast.py's blocks).
READ_BYTES_PER_COLUMN = 4 * KiB
# Columns of numbers are decoded about this many bytes at a time within a read (_fill_numbers).
# Measured streaming 1 GB of 19 MB row groups (7 million rows × 20 floats, predict to CSV; the
# CSV of the same rows peaks at 120 MB): every column of a whole row group at once peaked at
# 219-265 MB; 16 MiB slices with 4 MiB of columns at a time at 145 MB in 1.15 × the time, with
# 2 MiB at 126-130 MB in 1.2-1.3 ×, with 1 MiB at ~120 MB in 1.4 ×.
COLUMN_BYTES = 2 * MiB


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
                 missing_values: Iterable[str] = (), skip: Iterable[str] = ()) -> ParquetColumns:
    """The whole file as numbers, its ``text_columns`` as codes (see :class:`ColumnPlan` for the
    rules), ``skip`` not read at all (0 in the matrix: columns nobody uses, which may then hold
    anything, lists and structs included).

    The budgets are checked first, from the footer: its metadata, its columns, and the table
    (rows × columns × 8 bytes) against the memory this process may take. The file is then
    decoded ``READ_BYTES`` of row groups at a time, a few columns at a time, into one
    preallocated matrix."""
    path = Path(path)
    layout = parquet_layout(path)
    if layout.rows == 0:
        raise DataError(f"{path}: has no data rows")
    rows, columns = layout.rows, len(layout.header)
    _check_memory(layout.name, rows * columns * 8, f"its {rows:,} rows × {columns:,} columns")
    plan = ColumnPlan(layout.name, layout.types, text_columns, skip, missing_values)
    table = Matrix(layout.rows, len(layout.header), dtype)
    codes: dict[str, dict[str, int]] = {column: {} for column in plan.texts}
    texts = scan(layout.name).select(plan.texts)
    for first_row, rows, _ in _ranges(layout, plan.read):
        _fill_numbers(layout, plan, first_row, rows, table, first_row)
        if plan.texts:
            plan.fill_texts(_read(layout.name, texts, first_row, rows), table, first_row, codes)
    return ParquetColumns(path=path, header=layout.header, values=table.values,
                          text_values={column: list(codes[column]) for column in plan.texts})


def _reads(layout: ParquetLayout, columns: list[str], until: int | None = None) -> Iterator[tuple[int, object]]:
    """(first row, frame of ``columns``) for the file's rows in order (up to row ``until``, if
    given), about ``READ_BYTES`` decoded at a time (:func:`_ranges`)."""
    source = scan(layout.name).select(columns or layout.header[:1])  # (no columns: no rows either)
    for first, rows, _ in _ranges(layout, columns, until):
        yield first, _read(layout.name, source, first, rows)


def _ranges(layout: ParquetLayout, columns: list[str], until: int | None = None,
            slice_bytes: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(first row, rows, memory it may take) of each read of ``columns`` (:func:`_read_ranges`:
    row groups of more than ``slice_bytes``, default ``SLICE_BYTES``, in slices), up to row
    ``until`` if given; a read that could take more memory than this process may take is
    refused before polars allocates for it."""
    read_bytes = max(READ_BYTES, READ_BYTES_PER_COLUMN * len(columns))
    slice_bytes = max(SLICE_BYTES if slice_bytes is None else slice_bytes, read_bytes)
    for first, rows, need in _read_ranges(layout.footer.groups, len(columns), read_bytes, slice_bytes):
        if until is not None:
            if first >= until:
                return
            rows = min(rows, until - first)
        _check_memory(layout.name, need, f"{_place(first, rows)}, decoded,")
        yield first, rows, need


def _place(first: int, rows: int) -> str:
    return f"rows {first + 1:,} to {first + rows:,}"


def _read(name: str, source, first: int, rows: int):
    """Rows ``first`` to ``first + rows`` of ``source`` (a lazy frame of the file), decoded."""
    place = _place(first, rows)
    with polars_errors(name, place):
        frame = source.slice(first, rows).collect()
    if frame.height != rows:
        raise DataError(f"{name}: {place}: polars read {frame.height:,} rows (a damaged Parquet file?)")
    return frame


def _fill_numbers(layout: ParquetLayout, plan: ColumnPlan, first: int, rows: int, table: Matrix, start: int) -> None:
    """The numeric columns (and text ones parsed as numbers) of rows ``first`` to ``first + rows``
    into ``table`` from its row ``start``, decoded ``COLUMN_BYTES`` at a time. polars decodes
    every column of a read at once (in parallel, each with its buffers), so that a read of a
    whole row group takes a few times its decoded size; a few columns at a time, only their
    pages (a page is decoded whole, so fewer rows at a time would cost more)."""
    columns = plan.numbers + plan.parsed
    step = max(1, COLUMN_BYTES // (8 * max(1, rows)))  # (a number decodes to 8 bytes)
    source = scan(layout.name)
    for at in range(0, len(columns), step):
        batch = columns[at : at + step]
        frame = _read(layout.name, source.select(batch), first, rows)
        plan.part(batch).fill_numbers(frame, first, table, start)
        del frame  # (before the next columns are decoded)


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

    values: np.ndarray  # (rows, columns) float64 (or float32: see ParquetStream.chunks); text columns hold codes into `text`, NaN when missing
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

    def cells(self, name: str) -> list[str | None]:
        """A column read as text, as the file holds it (a missing value's text too): None for a null."""
        import polars as pl

        return self._frame[name].cast(pl.String).to_list()

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
        # and about chunk_bytes of values (8 bytes each) where that is fewer, at least
        # BLOCK_ROWS: a chunk's work downstream (the model's outputs, their text) grows with its rows.
        width = max(1, len(self.header))
        self.chunk_rows = max(1, min(chunk_bytes // (2 * width), max(BLOCK_ROWS, chunk_bytes // (8 * width))))

    def __enter__(self) -> "ParquetStream":
        return self

    def __exit__(self, *exc) -> None:
        pass  # (polars opens the file for each read)

    def chunks(self, text_columns: Iterable[str] = (), skip: Iterable[str] = (),
               missing_values: Iterable[str] = (), dtype=np.float64) -> Iterator[ParquetChunk]:
        """Chunks of ``chunk_rows`` rows at most (a read's last may be shorter): ``text_columns``
        as codes, ``skip`` not read at all (0 in ``values``), the others numbers; float64, or
        float32 when ``dtype`` is and a read's values are all exactly float32s (as the CSV stream's)."""
        plan = ColumnPlan(self.layout.name, self.layout.types, text_columns, skip, missing_values)
        texts = scan(self.name).select(plan.texts)
        for first_row, rows, _ in _ranges(self.layout, plan.read, slice_bytes=READ_BYTES):
            table = Matrix(rows, len(self.header), dtype)
            _fill_numbers(self.layout, plan, first_row, rows, table, 0)
            frame = _read(self.name, texts, first_row, rows) if plan.texts else None  # (chunks read their text from it)
            for offset in range(0, rows, self.chunk_rows):
                height = min(self.chunk_rows, rows - offset)
                part = None if frame is None else frame.slice(offset, height)
                codes: dict[str, dict[str, int]] = {}  # (a chunk's text values are its own, as a CSV chunk's)
                if part is not None:
                    plan.fill_texts(part, table, offset, codes)
                text = {column: list(codes.get(column, {})) for column in plan.texts}
                values = table.values[offset : offset + height]
                if offset + height == rows:  # a read's last chunk, which its reader still holds while the next is decoded:
                    values = values.copy()  # its own rows, not a view that keeps the read's alive
                    table = frame = None
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
