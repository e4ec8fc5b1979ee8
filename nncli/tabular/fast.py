"""The fast path for reading CSV: polars' multi-threaded parser.

Only the happy path lives here. Anything unusual — a bad cell, a ragged row, a byte-order
mark, blank lines, a value that is not finite — makes these functions return None, and the
caller parses the text again with NumPy's parser, whose failure is then located exactly
(file, line, column, value). So polars speeds up good files and never changes an answer.

Column types are decided once, from a sample, and given to polars: inferring them inside
every read cost a tenth of a whole file's parse, and on a 2 MiB block of a 785-column file
more than NumPy's entire parse of that block.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from nncli.tabular.parse import column_index

SAMPLE_ROWS = 100
# Integer columns whose sample stays below this are parsed as 32-bit integers (a tenth faster
# than 64-bit); a larger value further down makes polars refuse, and the text is read again
# with every number as float64 — the same values, since integers are exact either way.
NARROW_BELOW = 1 << 30

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
    columns, NumPy's parser otherwise and for whatever polars does not take cleanly."""
    return size >= FAST_PATH_BYTES and columns <= FAST_PATH_MAX_COLUMNS


def read_numeric(path: Path, header: list[str], text_columns: list[str], crlf: bool = False,
                 dtype=np.float64) -> Parsed | None:
    """(values, text values) as :func:`nncli.tabular.parse.parse_rows` returns them, or None.

    ``crlf``: the file's lines end in CRLF (see :func:`nncli.tabular.parse.check_line_ends`, which has
    already refused any other carriage return). ``dtype``: float32 asks for the values as float32
    when every one of them is exactly a float32 (see :func:`numeric_frame`)."""
    import polars as pl  # imported only when a file is big enough for it to pay

    try:
        sample = pl.read_csv(io.BytesIO(_first_lines(path, SAMPLE_ROWS + 1)), infer_schema_length=SAMPLE_ROWS,
                             schema_overrides={name: pl.String for name in text_columns}, **_OPTIONS)
    except Exception:  # any refusal by polars: the exact parser decides and explains
        return None
    types = column_types(sample, header, text_columns)
    if types is None:
        return None
    parsed, _ = _read_typed(path, types, header, text_columns, has_header=True, dtype=dtype)
    if parsed is not None and crlf:
        parsed = _as_text_mode(parsed)
    return parsed


def _as_text_mode(parsed: Parsed) -> Parsed | None:
    """Text cells as NumPy's parser reads a CRLF file (in text mode, so a quoted field's CRLF
    is LF), or None when that would merge two distinct values (the exact parser decides)."""
    values, text_values = parsed
    normalised = {name: [value.replace("\r\n", "\n") for value in distinct] for name, distinct in text_values.items()}
    if any(len(set(distinct)) != len(distinct) for distinct in normalised.values()):
        return None
    return values, normalised


class BlockParser:
    """polars for the plain blocks of one stream, with the types of its first block (blocks
    whose carriage returns the stream has checked, see :func:`nncli.tabular.parse.check_line_ends`)."""

    def __init__(self, header: list[str], text_columns: list[str]):
        self.header, self.text_columns = header, text_columns
        self.types: dict | None = None

    def parse(self, block: bytes) -> Parsed | None:
        import polars as pl

        if self.types is not None:
            parsed, types = _read_typed(block, self.types, self.header, self.text_columns, has_header=False)
            self.types = types or self.types  # widened for good when the data outgrew them
            return parsed
        try:
            frame = pl.read_csv(io.BytesIO(block), has_header=False, new_columns=self.header,
                                schema_overrides={name: pl.String for name in self.text_columns},
                                infer_schema_length=SAMPLE_ROWS, **_OPTIONS)
        except Exception:
            return None
        self.types = column_types(frame, self.header, self.text_columns)
        return numeric_frame(frame, self.header, self.text_columns)


_OPTIONS = dict(quote_char='"', truncate_ragged_lines=False, raise_if_empty=False)


def _read_typed(source: Path | bytes, types: dict, header: list[str], text_columns: list[str],
                has_header: bool, dtype=np.float64) -> tuple[Parsed | None, dict | None]:
    """Read with ``types``, then with every number as float64 if polars refused; returns the
    parse (or None: the exact parser's turn) and the types that worked."""
    import polars as pl  # (callers have found it installed)

    text = set(text_columns)
    wide = {name: pl.String if name in text else pl.Float64 for name in header}
    for schema in (types, wide) if types != wide else (wide,):
        try:
            frame = pl.read_csv(io.BytesIO(source) if isinstance(source, bytes) else source,
                                has_header=has_header, schema=schema, **_OPTIONS)
        except Exception:  # a row that does not fit: wider types, then the exact parser
            continue
        return numeric_frame(frame, header, text_columns, dtype), schema
    return None, None


def _first_lines(path: Path, count: int) -> bytes:
    """The file's first lines (polars given a path and n_rows takes longer: it maps the file)."""
    with open(path, "rb") as f:
        return b"".join(line for line, _ in zip(f, range(count)))


def column_types(sample, header: list[str], text_columns: list[str]) -> dict | None:
    """polars types to read the rest with, from a frame of the first rows, or None when the
    sample already shows something only the exact parser can explain (a non-numeric column)."""
    import polars as pl

    if sample.columns != header:
        return None
    schema = sample.schema
    text_columns = set(text_columns)
    integers = [name for name, dtype in schema.items() if dtype.is_integer() and name not in text_columns]
    # One pass over the sample for every integer column (a polars call per column costs more).
    largest = dict(zip(integers, np.abs(sample.select(integers).to_numpy()).max(axis=0))) if integers and sample.height else {}
    types = {}
    for name, dtype in schema.items():
        if name in text_columns:
            types[name] = pl.String
        elif dtype.is_integer():
            types[name] = pl.Int32 if largest.get(name, NARROW_BELOW) < NARROW_BELOW else pl.Float64
        elif dtype.is_numeric():
            types[name] = pl.Float64
        else:
            return None
    return types


def numeric_frame(frame, header: list[str], text_columns: list[str], dtype=np.float64) -> Parsed | None:
    """A polars frame as (values with text columns as codes, text values), or None when it is not
    the clean numeric table the fast path promises (the exact parser then decides).

    The values are float64, or with ``dtype`` float32 a float32 matrix when every value is
    exactly a float32 (integers up to 2**24, floats that round-trip): the same numbers in half
    the memory, with no float64 copy of the table on the way. They are copied out of the frame
    a block of columns at a time into one preallocated (rows, columns) matrix, so the frame and
    that matrix are the only full-size copies alive at once."""
    import polars as pl

    if frame.columns != header or frame.height == 0:
        return None
    text = set(text_columns)
    numeric = [name for name in header if name not in text]
    schema = frame.schema  # built anew on every access: fetch it once
    if any(not schema[name].is_numeric() for name in numeric):
        return None  # a column polars read as text: let the exact parser name the bad cell
    if any(frame.null_count().row(0)):  # (sum_horizontal builds an expression per column)
        return None  # empty cells or blank lines: let the exact parser name them
    distinct = {name: frame.get_column(name).unique(maintain_order=True) for name in text_columns}
    narrow = np.dtype(dtype) == np.float32 and all(len(values) <= EXACT_FLOAT32 for values in distinct.values())
    values = _numeric_values(frame.drop(text_columns) if text_columns else frame,  # (drop, not select: select
                             [i for i, name in enumerate(header) if name not in text],  # builds an expression per column)
                             len(header), narrow)
    if values is None:
        return None
    text_values: dict[str, list[str]] = {}
    position = {name: i for i, name in enumerate(header)}
    for name in text_columns:
        # Distinct values in order of first appearance and each cell's index among them, as
        # NumPy's parser numbers them (so an error names the same first unknown label).
        text_values[name] = distinct[name].to_list()
        values[:, position[name]] = frame.get_column(name).cast(pl.Enum(distinct[name])).to_physical().to_numpy()
    return values, text_values


EXACT_FLOAT32 = 1 << 24  # every integer up to this magnitude is exactly a float32
BLOCK_BYTES = 1 << 20  # a block of columns copied out of a frame at a time


def _numeric_values(frame, positions: list[int], width: int, narrow: bool) -> np.ndarray | None:
    """The frame's (numeric) columns placed at ``positions`` of a new (rows, width) matrix:
    float32 if ``narrow`` and every value is exactly a float32, else float64; None when a float
    column holds nan or inf (integers are always finite)."""
    rows, columns = frame.height, frame.width
    values = np.empty((rows, width), dtype=np.float32 if narrow else np.float64)
    step = max(1, BLOCK_BYTES // (8 * rows))
    for start in range(0, columns, step):
        block = frame[:, start : start + step].to_numpy()
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            return None
        if narrow and not _exact_float32(block):
            return _numeric_values(frame, positions, width, narrow=False)  # the same numbers, in float64
        values[:, column_index(positions[start : start + step])] = block
    return values


def _exact_float32(block: np.ndarray) -> bool:
    if block.dtype.kind in "iu":
        return block.size == 0 or (int(block.min()) >= -EXACT_FLOAT32 and int(block.max()) <= EXACT_FLOAT32)
    return bool((block.astype(np.float32).astype(block.dtype) == block).all())
