"""CSV text out: fields quoted only when they must be, numbers that read back exactly."""

from __future__ import annotations

import numpy as np


def csv_field(text: str) -> str:
    """Quote a field the way the csv module would (only when it has to)."""
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def float_format(dtype: np.dtype) -> str:
    # Enough significant digits that every value reads back as exactly the same number.
    return "%.9g" if np.dtype(dtype) == np.float32 else "%.17g"
