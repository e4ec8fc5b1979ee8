"""The fast path for reading CSV: polars' multi-threaded parser.

Only the happy path lives here. Anything unusual — a bad cell, a ragged row, a byte-order
mark, blank lines, a value that is not finite — makes these functions return None, and the
caller parses the text again with NumPy's parser, whose failure is then located exactly
(file, line, column, value). So polars speeds up good files and never changes an answer.

Missing cells (the caller's ``missing_values``): polars reads an empty cell as null, and a
token too when given ``null_values``; it reads a blank line or a short row as nulls as well.
So a null is taken for a missing cell only when "" is a token and the block's text shows
every null to be a cell — no blank line, as many commas as full rows have (a block without
quotes) — and NaN in the values is only ever such a null: a "nan" or "inf" cell is refused
as before. Tokens other than "" are given to polars only once a block needs them (they cost
a quarter of its parse on a clean file).

Column types are decided once, from a sample, and given to polars: inferring them inside
every read cost a tenth of a whole file's parse, and on a 2 MiB block of a 785-column file
more than NumPy's entire parse of that block.
"""

from __future__ import annotations

import functools
import io
import math
import os
from itertools import compress
from pathlib import Path
from typing import Callable

import numpy as np

from nncli.tabular.parse import column_index, missing_tokens, number_tokens

SAMPLE_ROWS = 100
# Integer columns whose sample stays below NARROW_BELOW are parsed as 32-bit integers (a tenth
# faster than 64-bit), and below SHORT_BELOW as 16-bit ones: as fast to parse, and their copy
# into the float32 matrix took a fifth of the 32-bit one's time on 20,000 rows of pixels (no
# range check either: every 16-bit integer is exactly a float32). A larger value further down
# makes polars refuse, and the text is read again with 32-bit integers, then with every number
# as float64 — the same values, since integers are exact either way.
NARROW_BELOW = 1 << 30
SHORT_BELOW = 1 << 14

Parsed = tuple[np.ndarray, dict[str, list[str]]]

# Below this, importing polars (0.1–0.2 s) costs more than its faster parse saves: measured
# from a cold start, the break-even is ≈ 8 MB for long float text, ≈ 12 MB for small integers
# and ≈ 40 MB for short decimals; from here on the worst case loses a few hundredths.
FAST_PATH_BYTES = 32 << 20

# polars' cost grows with the number of columns (~2.4 KB and ~14 µs each, whatever the rows): on
# ~114 MB of float text it is 3.4 × NumPy's speed at 1,000 columns, 2.3 × at 30,000, 0.9 × at
# 50,000 and 0.6 × at 100,000; 1.2 million columns took 16 s and 2.9 GB for three rows (and
# 10 million abort the process). Wider tables go to NumPy's parser, whose cost is per byte.
FAST_PATH_MAX_COLUMNS = 30_000


def polars_pays(size: int, columns: int) -> bool:
    """The parser policy, for every reader: polars for inputs of ``FAST_PATH_BYTES`` and more
    (a file by its size, a pipe once that much has passed) of at most ``FAST_PATH_MAX_COLUMNS``
    columns, NumPy's parser otherwise and for whatever polars does not take cleanly — and
    always under an address-space limit (``ulimit -v``): polars reserves address space freely
    and aborts the whole process when a reservation fails, where NumPy raises MemoryError."""
    return size >= FAST_PATH_BYTES and columns <= FAST_PATH_MAX_COLUMNS and not _address_space_limited()


@functools.lru_cache(maxsize=1)
def _address_space_limited() -> bool:
    try:
        import resource  # (Unix only)
    except ImportError:
        return False
    return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def read_numeric(path: Path, header: list[str], text_columns: list[str], crlf: bool = False,
                 dtype=np.float64, rows: int | None = None, missing_values: tuple[str, ...] = ()) -> Parsed | None:
    """(values, text values) as :func:`nncli.tabular.parse.parse_rows` returns them, or None.

    ``crlf``: the file's lines end in CRLF (see :func:`nncli.tabular.parse.check_line_ends`, which has
    already refused any other carriage return). ``dtype``: float32 asks for the values as float32
    when every one of them is exactly a float32 (see :func:`numeric_frame`). ``rows``: the number
    of lines after the header, when each of them is one row (no quoted field, which may span
    lines): the file is then parsed ``ROW_BLOCK_BYTES`` of lines at a time into one preallocated
    matrix, so polars never holds the whole table beside it (a frame of the whole file and its
    parse peaked at 4-6 x the float32 matrix); without it, the whole file at once.
    ``missing_values``: see the module's docstring."""
    import polars as pl  # imported only when a file is big enough for it to pay

    tokens = missing_tokens(missing_values)
    try:
        sample = pl.read_csv(io.BytesIO(_first_lines(path, SAMPLE_ROWS + 1)), infer_schema_length=SAMPLE_ROWS,
                             schema_overrides={name: pl.String for name in text_columns},
                             null_values=_null_values(tokens), **_OPTIONS)
    except Exception:  # any refusal by polars: the exact parser decides and explains
        return None
    types = column_types(sample, header, text_columns, tokens)
    if types is None:
        return None
    if rows is None:  # (nulls are refused here: without each line a row, they may be blank lines)
        parsed, _ = _read_typed(path, types, header, text_columns, has_header=True, dtype=dtype, tokens=tokens)
    else:
        parsed = _read_blocks(path, types, header, text_columns, rows, dtype, tokens)
    if parsed is not None and crlf:
        parsed = _as_text_mode(parsed)
    return parsed


# Text parsed at a time by :func:`_read_blocks`, at least. Measured on 36 MB of integer pixels
# (20,000 rows, 785 columns): a block costs ~5 x its text while parsed (the text, the frame, its
# values, what polars' allocator keeps a while), 4 MiB ~0.4 x the float32 matrix; 2 MiB saved
# 0.3 x more but took 10-20 % longer, 8 MiB was as fast and 0.3 x bigger.
ROW_BLOCK_BYTES = 4 << 20
# ... and per column: every parse costs ~5 µs a column whatever its rows (polars' setup and the
# checks after it), which text of 4 KiB a column keeps to a few per cent of the parse.
ROW_BLOCK_BYTES_PER_COLUMN = 4 << 10


def _read_blocks(path: Path, types: dict, header: list[str], text_columns: list[str], rows: int,
                 dtype, tokens: frozenset[str] = frozenset()) -> Parsed | None:
    """The file's ``rows`` rows parsed a block of whole lines at a time into one :class:`_Table`;
    None as soon as a block is not clean, or the rows are not the lines (a blank line, say)."""
    if rows <= 0:
        return None
    table = _Table(rows, header, text_columns, dtype, tokens)
    frames = _Frames(header, text_columns, tokens, types)
    block_bytes = max(ROW_BLOCK_BYTES, ROW_BLOCK_BYTES_PER_COLUMN * len(header))
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.readline()  # the header (its length and the lines' were checked before any parse)
        start = f.tell()
        while start < size:
            f.seek(min(start + block_bytes, size))
            f.readline()  # to the end of that line: each block is whole lines, read in one piece
            end = f.tell()
            f.seek(start)
            if frames.add(f.read(end - start), lambda _: table) is None:
                return None
            start = end
    return table.result()


def _as_text_mode(parsed: Parsed) -> Parsed | None:
    """Text cells as NumPy's parser reads a CRLF file (in text mode, so a quoted field's CRLF
    is LF), or None when that would merge two distinct values (the exact parser decides)."""
    values, text_values = parsed
    normalised = {name: [value.replace("\r\n", "\n") for value in distinct] for name, distinct in text_values.items()}
    if any(len(set(distinct)) != len(distinct) for distinct in normalised.values()):
        return None
    return values, normalised


class BlockParser:
    """polars for the plain blocks (no quote) of one stream, with the types of its first block
    (blocks whose carriage returns the stream has checked, see :func:`nncli.tabular.parse.check_line_ends`).
    Values as :func:`numeric_frame` gives them: float64, or with ``dtype`` float32 a float32
    block while its values are exactly float32s (the same numbers in half the memory)."""

    def __init__(self, header: list[str], text_columns: list[str], missing_values: tuple[str, ...] = (), dtype=np.float64):
        self.header, self.text_columns, self.dtype = header, text_columns, dtype
        self.tokens = missing_tokens(missing_values)
        self.frames: _Frames | None = None

    @property
    def types(self) -> dict | None:
        return None if self.frames is None else self.frames.types

    def parse(self, block: bytes) -> Parsed | None:
        import polars as pl

        if self.frames is not None:
            table = self.frames.add(block, self._table)
            return None if table is None else table.result()
        for null_values in _attempts(self.tokens):
            try:
                frame = pl.read_csv(io.BytesIO(block), has_header=False, new_columns=self.header,
                                    schema_overrides={name: pl.String for name in self.text_columns},
                                    infer_schema_length=SAMPLE_ROWS, null_values=null_values, **_OPTIONS)
            except Exception:
                continue
            types = column_types(frame, self.header, self.text_columns, self.tokens)
            if types is None:
                continue
            self.frames = _Frames(self.header, self.text_columns, self.tokens, types, with_nulls=bool(null_values))
            parsed = numeric_frame(frame, self.header, self.text_columns, self.dtype, self.tokens, block)
            if parsed is not None or null_values:
                return parsed
        return None

    def _table(self, rows: int) -> "_Table | None":
        return _Table(rows, self.header, self.text_columns, self.dtype, self.tokens) if rows else None


_OPTIONS = dict(quote_char='"', truncate_ragged_lines=False, raise_if_empty=False)


def _null_values(tokens: frozenset[str]) -> list[str] | None:
    """The tokens for polars' ``null_values``: only when "" is one (see the module's docstring),
    and only those that are not "" (polars reads an empty cell as null anyway)."""
    return (sorted(tokens - {""}) or None) if "" in tokens else None


def _attempts(tokens: frozenset[str]) -> list[list[str] | None]:
    """polars' ``null_values`` to try a block with: none first (faster), then the tokens; only
    the tokens when one reads as a number ("-999": without them, polars would read a number)."""
    null_values = _null_values(tokens)
    if null_values and len(number_tokens(tokens)):
        return [null_values]
    return [None, null_values] if null_values else [None]


class _Frames:
    """Blocks of one file or stream read by polars into a :class:`_Table`, with the types that
    worked so far (widened for good when the data outgrew them) and, once a block needed them,
    the missing-cell tokens as polars' ``null_values`` for every block after it."""

    def __init__(self, header: list[str], text_columns: list[str], tokens: frozenset[str], types: dict,
                 with_nulls: bool = False):
        self.header, self.text_columns, self.tokens, self.types = header, text_columns, tokens, types
        self.null_values = _null_values(tokens)
        self.with_nulls = with_nulls and self.null_values is not None

    def add(self, block: bytes, table_for: Callable[[int], "_Table | None"]) -> "_Table | None":
        """Parse ``block`` (whole lines, no quote) and add its rows to ``table_for(rows)``; that
        table, or None when polars does not read the block cleanly (the exact parser's turn)."""
        for null_values in [self.null_values] if self.with_nulls else _attempts(self.tokens):
            frame, types = _read_frame(block, self.types, self.header, self.text_columns, False, null_values)
            if frame is None:
                continue
            self.types = types
            table = table_for(frame.height)
            if table is None:
                return None
            table.source = block
            if table.add(frame):
                self.with_nulls = null_values is not None
                return table
        return None


def _read_typed(source: Path, types: dict, header: list[str], text_columns: list[str],
                has_header: bool, dtype=np.float64, tokens: frozenset[str] = frozenset()) -> tuple[Parsed | None, dict | None]:
    """Read with ``types``, then with every number as float64 if polars refused; returns the
    parse (or None: the exact parser's turn) and the types that worked."""
    frame, types = _read_frame(source, types, header, text_columns, has_header)
    return (None if frame is None else numeric_frame(frame, header, text_columns, dtype, tokens)), types


def _read_frame(source: Path | bytes, types: dict, header: list[str], text_columns: list[str],
                has_header: bool, null_values: list[str] | None = None) -> tuple[object | None, dict | None]:
    """A polars frame read with ``types``, or with every number as float64 if polars refused
    them, and the types that worked; (None, None) if polars refused both."""
    import polars as pl  # (callers have found it installed)

    text = set(text_columns)
    wider = {name: pl.Int32 if dtype == pl.Int16 else dtype for name, dtype in types.items()}
    wide = {name: pl.String if name in text else pl.Float64 for name in header}
    schemas = []
    for schema in (types, wider, wide):
        if schema not in schemas:
            schemas.append(schema)
    for schema in schemas:
        try:
            return pl.read_csv(io.BytesIO(source) if isinstance(source, bytes) else source,
                               has_header=has_header, schema=schema, null_values=null_values, **_OPTIONS), schema
        except Exception:  # a row that does not fit: wider types, then the exact parser
            continue
    return None, None


def _first_lines(path: Path, count: int) -> bytes:
    """The file's first lines (polars given a path and n_rows takes longer: it maps the file)."""
    with open(path, "rb") as f:
        return b"".join(line for line, _ in zip(f, range(count)))


def column_types(sample, header: list[str], text_columns: list[str], tokens: frozenset[str] = frozenset()) -> dict | None:
    """polars types to read the rest with, from a frame of the first rows, or None when the
    sample already shows something only the exact parser can explain (a non-numeric column).
    With missing cells possible (``tokens``), a column whose sample holds only numbers and
    tokens (all missing, say) is float64."""
    import polars as pl

    if sample.columns != header:
        return None
    schema = sample.schema
    text_columns = set(text_columns)
    if tokens:  # a column of numbers and missing cells (polars takes a cell of spaces for text)
        schema = {name: pl.Float64 if dtype == pl.String and name not in text_columns and _numbers_or_missing(sample[name], tokens)
                  else dtype for name, dtype in schema.items()}
    integers = [name for name, dtype in schema.items() if dtype.is_integer() and name not in text_columns]
    # One pass over the sample for every integer column (a polars call per column costs more).
    largest = dict(zip(integers, np.abs(sample.select(integers).to_numpy()).max(axis=0))) if integers and sample.height else {}
    types = {}
    for name, dtype in schema.items():
        if name in text_columns:
            types[name] = pl.String
        elif dtype.is_integer():
            largest_seen = largest.get(name, NARROW_BELOW)
            types[name] = pl.Int16 if largest_seen < SHORT_BELOW else pl.Int32 if largest_seen < NARROW_BELOW else pl.Float64
        elif dtype.is_numeric():
            types[name] = pl.Float64
        else:
            return None
    return types


def _numbers_or_missing(column, tokens: frozenset[str]) -> bool:
    """Whether a sample's text column holds only numbers and missing-cell tokens (or nulls)."""
    import polars as pl

    cells = column.str.strip_chars()
    try:
        cells.filter(~cells.is_in(list(tokens))).cast(pl.Float64)
    except Exception:  # (polars' strict cast: a cell that is not a number)
        return False
    return True


def numeric_frame(frame, header: list[str], text_columns: list[str], dtype=np.float64,
                  tokens: frozenset[str] = frozenset(), block: bytes | None = None) -> Parsed | None:
    """A polars frame as (values with text columns as codes, text values), or None when it is not
    the clean numeric table the fast path promises (the exact parser then decides).

    The values are float64, or with ``dtype`` float32 a float32 matrix when every value is
    exactly a float32 (integers up to 2**24, floats that round-trip): the same numbers in half
    the memory, with no float64 copy of the table on the way (see :class:`_Table`). Missing
    cells (``tokens``) are NaN when ``block``, the frame's text, shows its nulls to be cells."""
    if frame.columns != header or frame.height == 0:
        return None
    table = _Table(frame.height, header, text_columns, dtype, tokens)
    table.source = block
    return table.result() if table.add(frame) else None


EXACT_FLOAT32 = 1 << 24  # every integer up to this magnitude is exactly a float32
# Rows copied out of a frame at a time, as many as 2 MiB of its values hold (16-bit integers:
# four times the rows of float64): from 1 to 16 MiB the copy took the same time, 256 KiB 2.5 x
# as long (a call per column per block); copying blocks of columns instead (each a strided
# write across the whole matrix) took 4 x as long.
BLOCK_BYTES = 2 << 20
SHORT_TYPES = {"Int8", "Int16", "UInt8"}  # polars types whose values take 2 bytes or fewer


class _Table:
    """One preallocated (rows, columns) matrix filled from polars frames of consecutive rows:
    numeric columns as their values, text columns as codes into their distinct values in order
    of first appearance (as NumPy's parser numbers them, so an error names the same first
    unknown label). float32 (when asked for) while every value is exactly a float32 (integers up
    to 2**24, floats that round-trip), else float64: the same numbers either way."""

    def __init__(self, rows: int, header: list[str], text_columns: list[str], dtype, tokens: frozenset[str] = frozenset()):
        self.header, self.text_columns = header, list(text_columns)
        self.tokens = tokens  # missing-cell tokens (see the module's docstring)
        self.number_tokens = number_tokens(tokens)  # the values of those that read as numbers ("-999")
        self.source: bytes | None = None  # the text of the next frame, when it is whole lines without quotes
        text = set(text_columns)
        self.is_number = [name not in text for name in header]
        self.numeric_index = column_index([i for i, name in enumerate(header) if name not in text])
        position = {name: i for i, name in enumerate(header)}
        self.text_positions = [(name, position[name]) for name in self.text_columns]
        self.codes: dict[str, dict[str, int]] = {name: {} for name in self.text_columns}
        self.values = np.empty((rows, len(header)), dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)
        self.filled = 0

    def add(self, frame) -> bool:
        """Append the frame's rows; False when they are not the clean numeric table the fast
        path promises (a text or empty cell, a blank line, nan or inf, more rows than expected;
        with missing cells, a null that :attr:`source` does not show to be a cell)."""
        import polars as pl

        start, end = self.filled, self.filled + frame.height
        if frame.columns != self.header or end > len(self.values):
            return False
        # (the distinct types of the numeric columns: frame.schema builds a dict of them all)
        numeric_types = set(compress(frame.dtypes, self.is_number))
        if not all(dtype.is_numeric() for dtype in numeric_types):
            return False  # a column polars read as text: let the exact parser name the bad cell
        missing = any(frame.null_count().row(0))  # (sum_horizontal builds an expression per column)
        if missing and not self._nulls_are_cells(frame.height):
            return False  # empty cells or blank lines: let the exact parser name them
        numbers = frame.clone()  # (its columns are shared, not copied; drop() took ~1 ms per 250 columns)
        texts = [(numbers.drop_in_place(name), position) for name, position in self.text_positions]
        if numbers.width:
            widest = 2 if {str(dtype) for dtype in numeric_types} <= SHORT_TYPES else 8
            step = max(1, BLOCK_BYTES // (widest * numbers.width))
            for offset in range(0, frame.height, step):
                part = numbers.slice(offset, step)
                block = part.to_numpy()
                if missing:  # NaN only where polars read a null (a missing cell): never a "nan" or "inf" cell
                    if np.count_nonzero(~np.isfinite(block)) != sum(part.null_count().row(0)):
                        return False
                elif block.dtype.kind == "f" and not np.isfinite(block).all():
                    return False
                if len(self.number_tokens) and np.isin(block, self.number_tokens).any():
                    return False  # " -999" is the token "-999" (spaces aside), which polars read as a number
                if self.values.dtype == np.float32 and not exact_float32(block, missing):
                    self._widen(start + offset)  # the same numbers, in float64
                self.values[start + offset : start + offset + len(block), self.numeric_index] = block
        for column, position in texts:
            distinct = column.unique(maintain_order=True)
            nulls = column.null_count()
            if nulls:
                distinct = distinct.drop_nulls()
            codes, tokens = self.codes[column.name], self.tokens
            code = np.array([math.nan if tokens and value.strip() in tokens else codes.setdefault(value, len(codes))
                             for value in distinct.to_list()] + [math.nan], dtype=np.float64)  # (the last: a null)
            if self.values.dtype == np.float32 and len(codes) > EXACT_FLOAT32:
                self._widen(end)
            if len(distinct):
                physical = column.cast(pl.Enum(distinct)).to_physical()
                self.values[start:end, position] = code[(physical.fill_null(len(distinct)) if nulls else physical).to_numpy()]
            else:  # every cell missing
                self.values[start:end, position] = math.nan
        self.filled = end
        return True

    def _nulls_are_cells(self, rows: int) -> bool:
        """Whether every null of a frame of ``rows`` rows read from :attr:`source` is a missing
        cell: "" is a token (polars reads an empty cell, and a cell of spaces, as null), and the
        text is whole lines without quotes in which every row is full: as many commas as that
        many full rows have (a short row's absent cells are nulls too, and so is a blank line's
        row; a one-column file has no commas, and no blank line then)."""
        block = self.source
        if "" not in self.tokens or block is None or b'"' in block:
            return False
        if len(self.header) == 1:
            return b"\n\n" not in block and b"\n\r\n" not in block and not block.startswith((b"\n", b"\r\n"))
        commas = np.count_nonzero(np.frombuffer(block, np.uint8) == ord(","))  # (twice bytes.count's speed)
        return commas == rows * (len(self.header) - 1)

    def result(self) -> Parsed | None:
        """(values, text values), or None unless every row expected was added."""
        if self.filled != len(self.values):
            return None
        return self.values, {name: list(codes) for name, codes in self.codes.items()}

    def _widen(self, written: int) -> None:
        """The matrix as float64, its first ``written`` rows copied."""
        wide = np.empty(self.values.shape, dtype=np.float64)
        wide[:written] = self.values[:written]
        self.values = wide


def exact_float32(block: np.ndarray, missing: bool = False) -> bool:
    """Whether every value of ``block`` is exactly a float32 (with ``missing``, NaN is: a missing
    cell). A value beyond float32's range is not (3.5e38 rounds to inf: no warning about it)."""
    if block.dtype.kind in "iu":
        if block.dtype.itemsize <= 2:
            return True  # (every 16-bit integer is exactly a float32)
        return block.size == 0 or (int(block.min()) >= -EXACT_FLOAT32 and int(block.max()) <= EXACT_FLOAT32)
    with np.errstate(over="ignore"):
        narrow = block.astype(np.float32)
    same = narrow.astype(block.dtype) == block
    return bool((same | np.isnan(block)).all() if missing else same.all())
