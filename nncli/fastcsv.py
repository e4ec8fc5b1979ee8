"""The fast path for reading a whole CSV file: polars' multi-threaded parser.

Only the happy path lives here. Anything unusual — a bad cell, a ragged row, a byte-order
mark, blank lines, a value that is not finite — makes :func:`read_numeric` return None, and
the caller parses the file again with NumPy's parser, whose failure is then located exactly
(file, line, column, value). So polars speeds up good files and never changes an answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_numeric(path: Path, header: list[str], text_columns: list[str]) -> tuple[np.ndarray, dict[str, list[str]]] | None:
    """(values, text values) as :func:`nncli.data.parse_rows` returns them, or None."""
    try:
        import polars as pl
    except ImportError:  # pragma: no cover - polars is a dependency; keep working without it
        return None
    try:
        # Column types are inferred (integer columns parse much faster than as floats); a
        # later row that does not fit the inferred type makes polars refuse, and the exact
        # parser takes over.
        frame = pl.read_csv(
            path,
            has_header=True,
            schema_overrides={name: pl.String for name in text_columns},
            infer_schema_length=100,
            quote_char='"',
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except Exception:  # any refusal by polars: the exact parser decides and explains
        return None
    return numeric_frame(frame, header, text_columns)


def numeric_frame(frame, header: list[str], text_columns: list[str]) -> tuple[np.ndarray, dict[str, list[str]]] | None:
    """A polars frame as (float64 values with text columns as codes, text values), or None when
    it is not the clean numeric table the fast path promises (the exact parser then decides)."""
    if frame.columns != header or frame.height == 0:
        return None
    numeric = [name for name in header if name not in text_columns]
    schema = frame.schema  # built anew on every access: fetch it once
    if any(not schema[name].is_numeric() for name in numeric):
        return None  # a column polars read as text: let the exact parser name the bad cell
    if frame.null_count().sum_horizontal().item():
        return None  # empty cells or blank lines: let the exact parser name them
    if text_columns:
        values = np.empty((frame.height, len(header)), dtype=np.float64)
        if numeric:
            positions = [header.index(name) for name in numeric]
            values[:, positions] = frame.select(numeric).to_numpy()
    else:
        values = frame.to_numpy().astype(np.float64, copy=False)  # one conversion, not one per column
    text_values: dict[str, list[str]] = {}
    for name in text_columns:
        distinct, codes = np.unique(frame.get_column(name).to_numpy().astype(str), return_inverse=True)
        text_values[name] = distinct.tolist()
        values[:, header.index(name)] = codes
    if not np.isfinite(values).all():
        return None
    return values, text_values
