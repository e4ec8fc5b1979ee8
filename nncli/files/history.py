"""Reading a run's history.csv back (``write_history`` in runfiles.py writes it): one record per
epoch, as the model file's ``history`` holds them, so that a plot of either is the same plot.

``epoch`` becomes an int, ``best`` a bool, ``non_finite`` (``val_loss=inf;…``) a dict, and every
other column a float (an empty cell, which is how a NaN or infinite value was stored, None). A
file edited by hand gets errors that name its line and column.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from nncli.budgets import MAX_EPOCHS, MiB
from nncli.errors import DataError, quoted, reading
from nncli.files.runfiles import NON_FINITE

# A history row is ~150 bytes; MAX_EPOCHS of them with room for many metrics.
MAX_HISTORY_BYTES = 64 * MiB
_FLAGS = ("best",)


def read_history(path: Path) -> list[dict]:
    """The records of ``path``, a history.csv; a DataError for a file that is not one."""
    with reading(path, DataError, "history file"):
        size = path.stat().st_size
        if size > MAX_HISTORY_BYTES:
            raise DataError(f"{path}: {size:,} bytes; a history file of {MAX_EPOCHS:,} epochs is far smaller, so this is not one")
        text = path.read_bytes().decode("utf-8", errors="replace")
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header or header[0] != "epoch":
        raise DataError(f"{path}:1: not a history file (its first column is not 'epoch'; nncli train writes history.csv with one)")
    fast = [_FAST.get(name, _float) for name in header]
    records = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields; the header has {len(header)}")
        try:  # one conversion per cell (10,000 epochs read in a blink), the careful one on a failure
            records.append({name: convert(cell) for name, convert, cell in zip(header, fast, row)})
        except (ValueError, TypeError):
            records.append({name: _value(path, line, name, cell) for name, cell in zip(header, row)})
        if len(records) > MAX_EPOCHS:
            raise DataError(f"{path}: more than {MAX_EPOCHS:,} epochs; nncli trains at most that many")
    return records


def _float(cell: str) -> float | None:
    if not cell:
        return None
    number = float(cell)
    return number if number - number == 0 else None  # (inf - inf and nan - nan are nan: not finite)


def _epoch(cell: str) -> int:
    if not cell.isdigit() or int(cell) < 1:
        raise ValueError(cell)
    return int(cell)


def _flag(cell: str) -> bool:
    if cell not in ("True", "False", ""):
        raise ValueError(cell)
    return cell == "True"


def _flags(cell: str) -> dict:
    return dict(part.split("=", 1) for part in cell.split(";") if "=" in part)


_FAST = {"epoch": _epoch, "best": _flag, NON_FINITE: _flags}


def _value(path: Path, line: int, name: str, cell: str):
    if name in _FLAGS:
        if cell not in ("True", "False", ""):
            raise DataError(f"{path}:{line}: column {name!r}: expected True or False, got {quoted(cell)}")
        return cell == "True"
    if name == NON_FINITE:  # "val_loss=inf;train_loss=nan" (what the empty cells were)
        return dict(part.split("=", 1) for part in cell.split(";") if "=" in part)
    if cell == "":
        return None
    try:
        number = float(cell)
    except ValueError:
        raise DataError(f"{path}:{line}: column {quoted(name)}: {quoted(cell)} is not a number") from None
    if name == "epoch":
        if not number.is_integer() or number < 1:
            raise DataError(f"{path}:{line}: column 'epoch': {quoted(cell)} is not an epoch number (1, 2, …)")
        return int(number)
    return number if math.isfinite(number) else None
