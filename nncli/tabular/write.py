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
        if columns[0]:  # (an empty block writes nothing, not even the header yet)
            out.write(header * (rows == 0) + _lines(columns))
            rows += len(columns[0])
    if rows == 0:
        out.write(header)
    out.flush()
    return rows


def _lines(columns: list[list[str]]) -> str:
    """The rows of these columns as CSV lines. One column (predict's labels, the usual output)
    is joined whole: 20 times faster than a join per row (0.3 CPU-s of a 2-million-row predict
    to CSV, 0.1 s of its wall time beside the parse)."""
    if len(columns) == 1:
        return "\n".join(columns[0]) + "\n"
    return "\n".join(map(",".join, zip(*columns))) + "\n"


def float_format(dtype: np.dtype) -> str:
    # Enough significant digits that every value reads back as exactly the same number.
    return "%.9g" if np.dtype(dtype) == np.float32 else "%.17g"
