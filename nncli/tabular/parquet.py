"""Parquet files: read whole (train), streamed a few row groups at a time (predict, evaluate),
and predictions written (``predict -o out.parquet``). polars decodes them; this module keeps
the CSV readers' promises (:mod:`nncli.tabular.source`, :mod:`nncli.tabular.stream`):

* the same table: numbers as numbers (booleans 0 and 1), text columns as codes into their
  distinct values in order of first appearance, missing cells NaN, and the same errors, with
  "file: row N" (the N-th data row) where a CSV message names a line;
* sizes checked before anything is decoded: the file's metadata (its footer) is read here, by a
  small reader of Parquet's Thrift encoding, so its rows, columns and row groups are measured
  against the budgets before polars allocates for them;
* bounded memory: a file is decoded about ``READ_BYTES`` at a time (consecutive row groups,
  or a slice of a larger one) and handed on in chunks (a stream) or copied into the matrix
  (a whole read).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from nncli.budgets import KiB, MiB, available_memory, budget, human_bytes
from nncli.errors import DataError, OutputError, quoted, reading
from nncli.tabular.parse import NotANumber, as_number, column_index, missing_tokens
from nncli.tabular.source import CsvColumns
from nncli.tabular.stream import CHUNK_BYTES

MAGIC = b"PAR1"
ENCRYPTED_MAGIC = b"PARE"  # a file whose footer is encrypted
# The footer (schema and row groups) is read whole, here and by polars: 64 MiB holds ~400,000
# column chunks (~160 bytes each with statistics): 100,000 columns in 4 row groups, 1,000 in 400.
MAX_METADATA_BYTES = 64 * MiB  # NNCLI_MAX_PARQUET_METADATA
# Columns: as many as the CSV readers' line budget admits of long floats (docs/csv.md, Limits).
# polars' cost grows with them (~14 µs and 2.4 KB a column for every read).
MAX_COLUMNS = 100_000  # NNCLI_MAX_COLUMNS
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
FLAT_COLUMNS = "nncli reads columns of numbers or text"
# Rows of float64 copied out of a frame at a time (as fast.BLOCK_BYTES), and at least this many
# rows (each copy costs ~1 µs a column: 20,000 columns in blocks of 13 rows took 3 s a GB).
BLOCK_BYTES = 2 * MiB
BLOCK_ROWS = 256


def metadata_budget() -> int:
    return budget("NNCLI_MAX_PARQUET_METADATA", MAX_METADATA_BYTES)


def column_budget() -> int:
    return budget("NNCLI_MAX_COLUMNS", MAX_COLUMNS)


def where(name: str, row: int) -> str:
    """A data row (0-based) of a Parquet file for a message: ``data.parquet: row 17``."""
    return f"{name}: row {row + 1}"


# --- the footer --------------------------------------------------------------------------------
class _Thrift:
    """Just enough of Thrift's compact protocol to read a Parquet footer: fields are walked one
    by one and skipped unless asked for; every length is checked against the bytes left, and
    nesting is limited, so a crafted footer raises ValueError instead of allocating or recursing."""

    STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT, UUID = range(14)
    MAX_DEPTH = 64

    def __init__(self, data: bytes):
        self.data, self.at, self.depth = data, 0, 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ValueError("the metadata ends early")
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("an integer longer than 64 bits")

    def integer(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def fields(self) -> Iterator[tuple[int, int]]:
        """(field id, type) of each field of a struct, to its end; the caller reads or skips each value."""
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise ValueError("structures nested too deep")
        last = 0
        while True:
            header = self.byte()
            kind = header & 0x0F
            if kind == self.STOP:
                self.depth -= 1
                return
            last = last + (header >> 4) if header >> 4 else self.integer()
            yield last, kind

    def sequence(self) -> tuple[int, int]:
        """A list's (size, element type)."""
        header = self.byte()
        size = header >> 4 if header >> 4 != 15 else self.varint()
        if size > len(self.data) - self.at:  # every element takes a byte at least
            raise ValueError("a list longer than the metadata")
        return size, header & 0x0F

    def skip(self, kind: int) -> None:
        self.at = _skip(self.data, self.at, kind, self.depth)
        if self.at > len(self.data):
            raise ValueError("a value longer than the metadata")


def _skip(data: bytes, at: int, kind: int, depth: int) -> int:
    """The position after a value of type ``kind`` at ``at`` (the walk through a footer's
    column chunks, ~30 values each: kept to plain loops over bytes, ~0.3 s for 20,000 columns).
    Reading past the end raises IndexError; a length is checked against the bytes left."""
    if kind <= _Thrift.FALSE:  # (a boolean field: its value is its type)
        if kind == _Thrift.STOP:
            raise ValueError("unknown Thrift type 0")
        return at
    if kind <= _Thrift.I64:
        if kind == _Thrift.BYTE:
            return at + 1
        while data[at] & 0x80:
            at += 1
        return at + 1
    if kind in (_Thrift.DOUBLE, _Thrift.UUID):
        return at + (8 if kind == _Thrift.DOUBLE else 16)
    if kind == _Thrift.BINARY:
        size, shift = 0, 0
        while True:
            byte = data[at]
            at += 1
            size |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return at + size
            shift += 7
    if depth >= _Thrift.MAX_DEPTH:
        raise ValueError("structures nested too deep")
    if kind == _Thrift.STRUCT:
        while True:
            header = data[at]
            at += 1
            if not header:
                return at
            if not header >> 4:  # a field id written out: a zigzag varint
                while data[at] & 0x80:
                    at += 1
                at += 1
            at = _skip(data, at, header & 0x0F, depth + 1)
    if kind in (_Thrift.LIST, _Thrift.SET, _Thrift.MAP):
        if kind == _Thrift.MAP:
            size, shift = 0, 0
            while True:
                byte = data[at]
                at += 1
                size |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
            kinds = (data[at] >> 4, data[at] & 0x0F) if size else ()
            at += bool(size)
            size *= 2
        else:
            header = data[at]
            at += 1
            size = header >> 4
            if size == 15:
                size, shift = 0, 0
                while True:
                    byte = data[at]
                    at += 1
                    size |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
            kinds = (header & 0x0F,)
        if size > len(data) - at:  # every element takes a byte at least
            raise ValueError("a list longer than the metadata")
        if kinds in ((_Thrift.TRUE,), (_Thrift.FALSE,)):
            return at + size  # (a list's booleans take a byte each, as a map's do)
        for k in range(size):
            element = kinds[k % len(kinds)]
            at = at + 1 if element in (_Thrift.TRUE, _Thrift.FALSE) else _skip(data, at, element, depth + 1)
        return at
    raise ValueError(f"unknown Thrift type {kind}")


class Group(NamedTuple):
    """A row group, as the footer describes it."""

    rows: int
    decoded: int  # bytes, uncompressed (total_byte_size)
    stored: int  # bytes in the file (total_compressed_size; the decoded size when not given)


@dataclass
class Footer:
    rows: int
    columns: int  # schema elements below the root: the columns, and the parts of nested ones
    groups: list[Group]  # in order


def read_footer(data: bytes) -> Footer:
    """The rows, column count and row groups of a Parquet footer (FileMetaData); ValueError if it
    is malformed or its counts disagree."""
    thrift = _Thrift(data)
    rows, elements, groups = None, 0, []
    for number, kind in thrift.fields():
        if number == 2 and kind == thrift.LIST:  # the schema: one element per node, the root first
            elements, _ = thrift.sequence()
            for _ in range(elements):
                thrift.skip(thrift.STRUCT)
        elif number == 3 and kind == thrift.I64:
            rows = thrift.integer()
        elif number == 4 and kind == thrift.LIST:
            size, _ = thrift.sequence()
            for _ in range(size):
                group = {}  # RowGroup: 2 total_byte_size, 3 num_rows, 6 total_compressed_size
                for inner, inner_kind in thrift.fields():
                    if inner in (2, 3, 6) and inner_kind == thrift.I64:
                        group[inner] = thrift.integer()
                    else:
                        thrift.skip(inner_kind)
                if group.get(3, -1) < 0 or group.get(2, 0) < 0 or group.get(6, 0) < 0:
                    raise ValueError("a row group without a valid number of rows")
                groups.append(Group(group[3], group.get(2, 0), group.get(6, group.get(2, 0))))
        else:
            thrift.skip(kind)
    if rows is None or rows < 0 or elements < 1:
        raise ValueError("no number of rows, or no schema")
    if sum(group.rows for group in groups) != rows:
        raise ValueError(f"its row groups hold {sum(group.rows for group in groups):,} rows, not the {rows:,} it says")
    return Footer(rows, elements - 1, groups)


@dataclass
class ParquetLayout:
    """What a Parquet file holds, known before any of its data is decoded."""

    name: str
    header: list[str]
    types: dict  # column -> polars data type
    footer: Footer

    @property
    def rows(self) -> int:
        return self.footer.rows


def parquet_layout(path: str | Path) -> ParquetLayout:
    """Check ``path`` is a whole Parquet file within the budgets and read its layout: its footer
    (here) and its columns' types (polars, once the footer has passed)."""
    name = str(path)
    with reading(path, DataError, "Parquet file"):
        info = os.stat(path)  # (before open: opening a named pipe would wait for a writer)
        if not stat.S_ISREG(info.st_mode) and not Path(path).is_dir():
            raise DataError(f"{name}: not a regular file (a pipe or a device); save the Parquet data to a file first")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(len(MAGIC))
            if size < 2 * len(MAGIC) + 4 or head != MAGIC:
                raise DataError(f"{name}: not a Parquet file (it does not start with the Parquet signature PAR1)")
            f.seek(size - 8)
            tail = f.read(8)
            if tail[4:] == ENCRYPTED_MAGIC:
                raise DataError(f"{name}: an encrypted Parquet file; nncli reads unencrypted ones")
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != MAGIC or length > size - 2 * len(MAGIC) - 4:
                raise DataError(f"{name}: not a whole Parquet file (its end is not a Parquet footer: cut short?)")
            limit = metadata_budget()
            if length > limit:
                raise DataError(
                    f"{name}: its metadata is {human_bytes(length)}, more than the {human_bytes(limit)} nncli reads "
                    "(set NNCLI_MAX_PARQUET_METADATA, e.g. NNCLI_MAX_PARQUET_METADATA=256M, if the file is right)"
                )
            f.seek(size - 8 - length)
            data = f.read(length)
    try:
        footer = read_footer(data)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{name}: corrupt Parquet metadata ({exc})") from None
    except IndexError:
        raise DataError(f"{name}: corrupt Parquet metadata (it ends early)") from None
    limit = column_budget()
    if footer.columns > limit:
        raise DataError(
            f"{name}: has {footer.columns:,} columns, more than the {limit:,} nncli reads "
            "(set NNCLI_MAX_COLUMNS if the file is right)"
        )
    with _polars_errors(name, "its schema"):
        types = dict(_scan(name).collect_schema())
    header = list(types)
    if not header:
        raise DataError(f"{name}: a Parquet file with no columns")
    for index, column in enumerate(header, start=1):
        if not column.strip():
            raise DataError(f"{name}: column {index} has no name; every column needs one")
    return ParquetLayout(name, header, types, footer)


def _scan(name: str):
    """The file as polars' lazy frame: that file alone (a name is no glob pattern, folders named
    ``year=2024`` add no columns)."""
    import polars as pl

    return pl.scan_parquet(name, glob=False, hive_partitioning=False)


@contextlib.contextmanager
def _polars_errors(name: str, what: str) -> Iterator[None]:
    """polars' refusals (a damaged page, an unsupported encoding) as one-line DataErrors.

    A file damaged in some ways makes polars panic: the panic reaches Python as an exception,
    but Rust first prints its message (and a backtrace, under RUST_BACKTRACE) on the process's
    standard error, around the one-line error. That output is held back while polars reads
    (the stderr file descriptor redirected to a temporary file), written out as it was if the
    read succeeds, and dropped when it fails."""
    import polars as pl

    with _held_stderr() as held:
        try:
            yield
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError) as exc:
            held.drop()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if "os error 12" in reason or "allocate" in reason.lower():
                raise DataError(
                    f"{name}: not enough memory to read {what} ({reason[:200]}); an address-space limit (ulimit -v) counts too"
                ) from None
            if isinstance(exc, pl.exceptions.PanicException):
                raise DataError(f"{name}: cannot read {what}: a damaged Parquet file (polars stopped on it)") from None
            raise DataError(f"{name}: cannot read {what}: {reason[:300]} (a damaged or unsupported Parquet file?)") from None


class _held_stderr(contextlib.AbstractContextManager):
    """File descriptor 2 redirected to a temporary file until the block ends; then what was
    written is copied to the real standard error, unless :meth:`drop` was called."""

    def __enter__(self) -> "_held_stderr":
        self.kept = True
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            self.saved = None  # no standard error to hold back
            return self
        self.file = tempfile.TemporaryFile()
        os.dup2(self.file.fileno(), 2)
        return self

    def drop(self) -> None:
        self.kept = False

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        with self.file:
            if self.kept and self.file.tell():
                self.file.seek(0)
                with contextlib.suppress(OSError):
                    os.write(2, self.file.read(1 << 20))


def _check_memory(name: str, need: int, what: str) -> None:
    room = available_memory()
    if need > room:
        raise DataError(
            f"{name}: {what} take {human_bytes(need)}, more than the {human_bytes(room)} of memory this process may take"
        )


# --- from polars columns to the matrix -----------------------------------------------------------
class _Plan:
    """How each column of a file becomes a column of numbers (decided once from its types).

    Asked for as a number: integers, floats, decimals and booleans (0, 1) as they are; text as
    a CSV reader reads it (a cell that is not a number is a :class:`NotANumber`). Asked for as
    text: text as it is, any other flat type as polars writes it in a CSV file ("1.5", "true",
    "2024-01-31"). A null is missing (NaN), as is a text cell equal to one of
    ``missing_values`` and a NaN or infinity whose text, as polars writes it in a CSV file
    ("NaN", "inf", "-inf"), is one (as in a CSV file of the same table); with no missing
    values at all (a model from before they were read) a null is what an empty CSV cell is: an
    error in a numeric column, the text "" in a text column.
    """

    def __init__(self, layout: ParquetLayout, text_columns: Iterable[str], skip: Iterable[str], missing_values: Iterable[str]):
        import polars as pl

        self.name = layout.name
        self.tokens = missing_tokens(missing_values)  # (compared with cells without surrounding spaces)
        skip, text = set(skip), set(text_columns)
        self.read = [column for column in layout.header if column not in skip]
        self.position = {column: i for i, column in enumerate(layout.header)}
        self.numbers, self.parsed, self.texts = [], [], []
        for column in self.read:
            dtype = layout.types[column]
            if dtype.is_nested() or dtype == pl.Object:
                raise DataError(f"{self.name}: column {quoted(column)} holds {_type_name(dtype)} values; {FLAT_COLUMNS}")
            if dtype == pl.Binary:
                raise DataError(f"{self.name}: column {quoted(column)} holds binary values; {FLAT_COLUMNS}")
            if column in text:
                self.texts.append(column)
            elif dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
                self.numbers.append(column)
            elif _is_text(dtype):
                self.parsed.append(column)
            else:
                raise DataError(
                    f"{self.name}: column {quoted(column)} holds {_type_name(dtype)} values; expected numbers "
                    "(a column read as categories may hold them)"
                )
        self.number_index = column_index([self.position[c] for c in self.numbers])
        self.casts = [pl.col(c).cast(pl.Float64) for c in self.numbers]

    def fill_numbers(self, frame, first_row: int, table: "_Matrix", start: int) -> None:
        """Write the frame's numeric columns (its rows are the file's from ``first_row``) into
        ``table`` from row ``start``: every column's work is done once for all of its rows (a
        call per column costs ~10 µs, which a wide file's small chunks would pay again and again)."""
        if self.numbers:
            numeric = frame.select(self.casts)
            step = max(BLOCK_ROWS, BLOCK_BYTES // (8 * numeric.width))
            for offset in range(0, numeric.height, step):
                part = numeric.slice(offset, step)
                block = part.to_numpy(order="c")  # (Fortran order, the default, copied 8 x slower into the rows)
                bad = ~np.isfinite(block)
                if bad.any():
                    block = self._missing_numbers(part, block, bad, first_row + offset)
                table.put(start + offset, self.number_index, block)
        for column in self.parsed:
            table.put(start, self.position[column], self.parse_numbers(frame[column], first_row))

    def fill_texts(self, frame, table: "_Matrix", start: int, codes: dict[str, dict[str, int]]) -> None:
        """Write the frame's text columns into ``table`` from row ``start``, as codes into ``codes``."""
        for column in self.texts:
            table.put(start, self.position[column], self.text_codes(frame[column], codes.setdefault(column, {})))

    def _missing_numbers(self, part, block: np.ndarray, bad: np.ndarray, first_row: int) -> np.ndarray:
        """``block`` (``part``'s values) with NaN for the non-finite cells that are missing ones;
        the first other one is an error."""
        block = block.copy()  # (polars' own memory, read-only)
        for j in np.flatnonzero(bad.any(axis=0)):
            column, values = part.columns[int(j)], block[:, j]
            nulls = part.to_series(int(j)).is_null().to_numpy()
            allowed = nulls if self.tokens else np.zeros(len(values), dtype=bool)
            for text, cells in (("NaN", np.isnan(values) & ~nulls), ("inf", values == np.inf), ("-inf", values == -np.inf)):
                if text in self.tokens:
                    allowed |= cells
            refused = np.flatnonzero(bad[:, j] & ~allowed)
            if len(refused):
                i = int(refused[0])
                problem = ("null (an empty cell); expected a number" if nulls[i] else
                           "NaN; expected a finite number" if np.isnan(values[i]) else
                           f"{values[i]:g} (infinite); expected a finite number")
                raise DataError(f"{where(self.name, first_row + i)}: column {quoted(column)}: {problem}")
            values[bad[:, j]] = np.nan
        return block

    def number_values(self, series, first_row: int) -> np.ndarray:
        """A column that must hold numbers (NaN where missing), whatever it was read as."""
        import polars as pl

        if _is_text(series.dtype):
            return self.parse_numbers(series, first_row)
        part = series.cast(pl.Float64).to_frame()
        block = part.to_numpy()
        bad = ~np.isfinite(block)
        if bad.any():
            block = self._missing_numbers(part, block, bad, first_row)
        return block[:, 0]

    def parse_numbers(self, series, first_row: int) -> np.ndarray:
        """Text cells read as numbers, as the CSV readers read them (each distinct text once)."""
        import polars as pl

        series = series.cast(pl.String)
        distinct = series.unique(maintain_order=True).drop_nulls().to_list()
        numbers = np.empty(len(distinct) + 1)
        numbers[-1] = np.nan  # a null
        for k, cell in enumerate(distinct):
            if cell.strip() in self.tokens:
                numbers[k] = np.nan
                continue
            numbers[k] = as_number(cell)
            if not math.isfinite(numbers[k]):
                row = first_row + int(series.eq(cell).arg_true()[0])
                message = f"{where(self.name, row)}: column {quoted(series.name)}: {_cell_problem(cell)}"
                if _is_non_finite(cell):
                    raise DataError(message)  # a number, just not a finite one
                raise NotANumber(message, series.name, cell.strip())
        index = self._index(series, distinct)
        if not self.tokens and len(index) and (index == len(distinct)).any():
            row = first_row + int(np.argmax(index == len(distinct)))
            raise DataError(f"{where(self.name, row)}: column {quoted(series.name)}: null (an empty cell); expected a number")
        return numbers[index]

    def text_codes(self, series, codes: dict[str, int]) -> np.ndarray:
        """Codes into ``codes`` (each new text gets the next), NaN for a missing cell."""
        import polars as pl

        series = series.cast(pl.String)
        if not self.tokens:
            series = series.fill_null("")  # as an empty CSV cell
        distinct = series.unique(maintain_order=True).drop_nulls().to_list()
        tokens = self.tokens
        code = np.array([np.nan if cell.strip() in tokens else codes.setdefault(cell, len(codes)) for cell in distinct])
        code = np.append(code, np.nan)  # (a null's)
        return code[self._index(series, distinct)]

    @staticmethod
    def _index(series, distinct: list[str]) -> np.ndarray:
        """Each cell's index in ``distinct`` (its distinct non-null texts); a null's is len(distinct)."""
        import polars as pl

        if not distinct:
            return np.full(len(series), 0, dtype=np.intp)
        return series.cast(pl.Enum(distinct)).to_physical().fill_null(len(distinct)).to_numpy().astype(np.intp, copy=False)


def _cell_problem(cell: str) -> str:
    """What is wrong with a text cell read as a number (the CSV readers' words)."""
    text = cell.strip()
    if not text:
        return "empty cell; expected a number"
    if not _is_non_finite(text):
        return f"{quoted(text)} is not a number"
    if math.isnan(as_number(text)):
        return f"{quoted(text)} (NaN); expected a finite number"
    return f"{quoted(text)} is infinite or too large for float64; expected a finite number"


def _is_non_finite(cell: str) -> bool:
    """A number as the CSV readers read one ("nan", "-inf", "1e400"), but not a finite one."""
    text = cell.strip()
    return not math.isfinite(as_number(text)) and (math.isinf(as_number(text)) or text.lstrip("+-").lower() == "nan")


def _is_text(dtype) -> bool:
    import polars as pl

    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _type_name(dtype) -> str:
    return str(dtype).split("(")[0]


class _Matrix:
    """The (rows, columns) values, float32 (when asked for) while every value is exactly a
    float32, else float64: the same numbers either way (as :class:`nncli.tabular.fast._Table`)."""

    def __init__(self, rows: int, columns: int, dtype):
        # (zeros: the columns a stream skips stay 0, as the CSV readers leave them)
        self.values = np.zeros((rows, columns), dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)

    def put(self, start: int, columns, block: np.ndarray) -> None:
        if self.values.dtype == np.float32 and not _exact_float32(block):
            self.values = self.values.astype(np.float64)  # (once: every value so far is exact)
        self.values[start : start + len(block), columns] = block


def _exact_float32(block: np.ndarray) -> bool:
    with np.errstate(over="ignore"):
        narrow = block.astype(np.float32)
    return bool(((narrow == block) | np.isnan(block)).all())


# --- reading a whole file (train) ---------------------------------------------------------------
@dataclass
class ParquetColumns(CsvColumns):
    """A Parquet file read whole, as :func:`nncli.tabular.source.read_csv` returns a CSV file."""

    def where(self, row: int) -> str:
        return where(str(self.path), row)


def read_parquet(path: Path, text_columns: Iterable[str] = (), dtype=np.float64,
                 missing_values: Iterable[str] = ()) -> ParquetColumns:
    """The whole file as numbers, its ``text_columns`` as codes (see :class:`_Plan` for the rules).

    The budgets are checked first, from the footer: its metadata, its columns, and the table
    (rows × columns × 8 bytes) against the memory this process may take. The file is then
    decoded ``READ_BYTES`` of row groups at a time into one preallocated matrix."""
    path = Path(path)
    layout = parquet_layout(path)
    if layout.rows == 0:
        raise DataError(f"{path}: has no data rows")
    rows, columns = layout.rows, len(layout.header)
    _check_memory(layout.name, rows * columns * 8, f"its {rows:,} rows × {columns:,} columns")
    plan = _Plan(layout, text_columns, (), missing_values)
    table = _Matrix(layout.rows, len(layout.header), dtype)
    codes: dict[str, dict[str, int]] = {column: {} for column in plan.texts}
    for first_row, frame in _reads(layout, plan.read):
        plan.fill_numbers(frame, first_row, table, first_row)
        plan.fill_texts(frame, table, first_row, codes)
    return ParquetColumns(path=path, header=layout.header, values=table.values,
                          text_values={column: list(codes[column]) for column in plan.texts})


def _reads(layout: ParquetLayout, columns: list[str]) -> Iterator[tuple[int, object]]:
    """(first row, frame of ``columns``) for the file's rows in order, about ``READ_BYTES``
    decoded at a time (:func:`_read_ranges`); a read that could take more memory than this
    process may take is refused before polars allocates for it."""
    source = _scan(layout.name).select(columns or layout.header[:1])  # (no columns: no rows either)
    read_bytes = max(READ_BYTES, READ_BYTES_PER_COLUMN * len(columns))
    for first, rows, need in _read_ranges(layout.footer.groups, len(columns), read_bytes, max(SLICE_BYTES, read_bytes)):
        place = f"rows {first + 1:,} to {first + rows:,}"
        _check_memory(layout.name, need, f"{place}, decoded,")
        with _polars_errors(layout.name, place):
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
    _plan: _Plan = field(repr=False)

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
        plan = _Plan(self.layout, text_columns, skip, missing_values)
        for first_row, frame in _reads(self.layout, plan.read):
            table = _Matrix(frame.height, len(self.header), np.float64)
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
    wanted = [column for column in columns if column in layout.types and _is_text(layout.types[column])]
    if not wanted:
        return []
    with _polars_errors(layout.name, "its first rows"):
        frame = _scan(layout.name).select(wanted).head(rows).collect()
    found = []
    for column in wanted:
        cells = frame[column].cast(pl.String).drop_nulls().unique().to_list()
        if any(cell.strip() not in tokens and not math.isfinite(as_number(cell)) and not _is_non_finite(cell) for cell in cells):
            found.append(column)
    return found


# --- writing (predict -o out.parquet) ------------------------------------------------------------
# Rows are gathered in memory up to this, then written to a temporary Arrow IPC file; the Parquet
# file is written from those at the end by polars' streaming engine, which takes ~150 MB
# whatever the rows. 7 million rows of 4 columns peaked at 281 MB with 16 MiB, 379 with 64.
SPILL_BYTES = 16 * MiB


class ParquetSink:
    """Columns of predictions, chunk after chunk, to a Parquet file.

    ``out`` is a binary file (the caller's :func:`nncli.files.atomic.atomic_write`, which makes
    the write atomic); ``schema`` names each column and its type: ``str`` (text, None for a
    missing value) or a NumPy float type. Chunks are kept in memory up to ``SPILL_BYTES``, then
    written to temporary Arrow IPC files in ``spill_folder`` (beside the output, say: the system's
    temporary folder may be memory); :meth:`close` writes the Parquet file from them. Used as a
    context manager, an exception discards everything and writes nothing."""

    def __init__(self, out: BinaryIO, schema: dict[str, object], spill_folder: Path | None = None,
                 spill_bytes: int = SPILL_BYTES, name: str = "the Parquet output"):
        import polars as pl

        self.out, self.spill_bytes, self.spill_folder, self.name = out, spill_bytes, spill_folder, name
        self.schema = {name: pl.String if kind is str else _float_type(kind) for name, kind in schema.items()}
        self._frames: list = []
        self._buffered = 0
        self._folder: tempfile.TemporaryDirectory | None = None
        self._spilled: list[str] = []
        self.rows = 0

    def __enter__(self) -> "ParquetSink":
        return self

    def __exit__(self, kind, *exc) -> None:
        try:
            if kind is None:
                self.close()
        finally:
            self._discard()

    def write(self, columns: Sequence[Sequence]) -> None:
        """One chunk: a sequence per column, in the schema's order, all of the same length."""
        import polars as pl

        if len(columns) != len(self.schema):
            raise ValueError(f"{len(columns)} columns for a schema of {len(self.schema)}")
        frame = pl.DataFrame([pl.Series(name, cells, dtype=dtype) for (name, dtype), cells in zip(self.schema.items(), columns)])
        self._frames.append(frame)
        self._buffered += frame.estimated_size()
        self.rows += frame.height
        if self._buffered >= self.spill_bytes:
            self._spill()

    def _spill(self) -> None:
        import polars as pl

        if not self._frames:
            return
        with self._writing():
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix=".nncli-parquet-", dir=self.spill_folder)
            path = os.path.join(self._folder.name, f"{len(self._spilled):06d}.arrow")
            pl.concat(self._frames, rechunk=False).write_ipc(path, compression="uncompressed")
        self._spilled.append(path)
        self._frames, self._buffered = [], 0

    def close(self) -> None:
        """Write the Parquet file: from memory if nothing was spilled, else streamed from the spilled files."""
        import polars as pl

        if not self._spilled:
            with self._writing():
                pl.concat(self._frames or [pl.DataFrame(schema=self.schema)]).write_parquet(self.out)
        else:
            self._spill()
            with self._writing():
                pl.scan_ipc(self._spilled).sink_parquet(self.out)
        self.out.flush()
        self._frames = []

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (a full disk, a folder that cannot be written) as one line."""
        import polars as pl

        try:
            yield
        except (pl.exceptions.PolarsError, OSError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise OutputError(f"{self.name}: cannot write the Parquet file: {reason}") from None

    def _discard(self) -> None:
        self._frames = []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def _float_type(kind):
    import polars as pl

    return pl.Float32 if np.dtype(kind) == np.float32 else pl.Float64
