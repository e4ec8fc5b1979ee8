"""CSV text out: fields quoted only when they must be, numbers that read back exactly."""

from __future__ import annotations

from typing import Iterable, TextIO

import numpy as np


def csv_field(text: str) -> str:
    """Quote a field the way the csv module would (only when it has to)."""
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv_rows(out: TextIO, names: list[str], blocks: Iterable[list[list[str]]]) -> int:
    """Rows as CSV: ``blocks`` gives, chunk by chunk, its columns of ready fields. The header goes
    out with the first rows, so an input refused in its first chunk leaves no output at all (and
    alone when there is no row). Returns the number of rows."""
    header = ",".join(csv_field(name) for name in names) + "\n"
    rows = 0
    for columns in blocks:
        out.write(header * (rows == 0) + "".join(",".join(parts) + "\n" for parts in zip(*columns)))
        rows += len(columns[0])
    if rows == 0:
        out.write(header)
    out.flush()
    return rows


def float_format(dtype: np.dtype) -> str:
    # Enough significant digits that every value reads back as exactly the same number.
    return "%.9g" if np.dtype(dtype) == np.float32 else "%.17g"
