"""CSV files to arrays: header checks, a fast C parser, exact error locations, labels, scaling.

The happy path is NumPy's C parser (``np.loadtxt``).  When it fails, or a value is not
finite, the file is scanned again with the ``csv`` module only to find and name the first
bad cell exactly (row as an editor numbers lines, column name, the value).
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nncli.errors import DataError

ENCODING = "utf-8-sig"  # accepts a byte-order mark (Excel writes one)


@dataclass
class CsvColumns:
    """A CSV file parsed to float64, with its text columns encoded as integer codes."""

    path: Path
    header: list[str]
    values: np.ndarray  # (rows, len(header)) float64
    text_values: dict[str, list[str]]  # text column -> distinct values, code = list index

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.header.index(name)]

    def columns(self, names: Sequence[str]) -> np.ndarray:
        return self.values[:, [self.header.index(n) for n in names]]


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file, checked: present, unique, not empty."""
    try:
        with open(path, encoding=ENCODING, newline="") as f:
            first = f.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; expected a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}:1: not UTF-8 text; expected a CSV file with a header row") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if "\x00" in first:
        raise DataError(f"{path}:1: binary data; expected a CSV file with a header row")
    if not first.strip():
        raise DataError(f"{path}: file is empty; expected a CSV file with a header row")
    header = [name.strip() for name in next(csv.reader([first]))]
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab")):
            if delimiter in first:
                raise DataError(
                    f"{path}:1: the header is a single column containing {label}s; nncli reads "
                    f"comma-separated files (is this file {label}-separated?)"
                )
    for index, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}:1: column {index} has no name; every column needs a header")
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(f"{path}:1: column name {name!r} appears twice (columns {seen[name]} and {index})")
        seen[name] = index
    return header


def read_csv(path: Path, text_columns: Iterable[str] = ()) -> CsvColumns:
    """Parse a whole CSV file: every column numeric and finite, except ``text_columns``."""
    header = read_header(path)
    text_columns = list(text_columns)
    codes: dict[str, dict[str, int]] = {name: {} for name in text_columns}
    converters = {
        header.index(name): (lambda cell, table=codes[name]: table.setdefault(cell.strip(), len(table)))
        for name in text_columns
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" is reported below, as one line
            values = np.loadtxt(
                path,
                delimiter=",",
                skiprows=1,
                dtype=np.float64,
                ndmin=2,
                quotechar='"',
                encoding=ENCODING,
                converters=converters or None,
            )
    except (ValueError, UnicodeDecodeError) as exc:
        raise locate_bad_cell(path, header, text_columns) or DataError(f"{path}: cannot parse CSV: {exc}") from None
    if values.shape[0] == 0:
        raise DataError(f"{path}: has a header but no data rows")
    if values.shape[1] != len(header):  # loadtxt checks rows against each other, not the header
        raise locate_bad_cell(path, header, text_columns) or DataError(
            f"{path}: rows have {values.shape[1]} fields but the header names {len(header)} columns"
        )
    if not np.isfinite(values).all():
        raise locate_bad_cell(path, header, text_columns) or DataError(f"{path}: contains NaN or infinite values")
    return CsvColumns(path, header, values, {name: list(table) for name, table in codes.items()})


def locate_bad_cell(path: Path, header: list[str], text_columns: Sequence[str] = ()) -> DataError | None:
    """Scan the file row by row for the first malformed cell (only after a fast parse failed)."""
    numeric = [(i, name) for i, name in enumerate(header) if name not in text_columns]
    try:
        with open(path, encoding=ENCODING, newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue  # blank lines are skipped, as by the fast parser
                if len(row) != len(header):
                    return DataError(
                        f"{path}:{line}: row has {len(row)} fields but the header has {len(header)} columns"
                    )
                for index, name in numeric:
                    problem = _cell_problem(row[index])
                    if problem:
                        return DataError(f"{path}:{line}: column {name!r}: {problem}")
    except UnicodeDecodeError as exc:
        return DataError(f"{path}: not UTF-8 text (byte {exc.start}); expected a CSV file")
    except csv.Error as exc:
        return DataError(f"{path}: malformed CSV: {exc}")
    return None


def _cell_problem(cell: str) -> str | None:
    text = cell.strip()
    if not text:
        return "empty cell; expected a number"
    try:
        value = float(text)
    except ValueError:
        shown = text if len(text) <= 30 else text[:27] + "..."
        return f"{shown!r} is not a number"
    if math.isnan(value):
        return f"{text!r} (NaN); expected a finite number"
    if math.isinf(value):
        return f"{text!r} is infinite or too large for float64; expected a finite number"
    return None


def find_row(path: Path, column: str, value: str) -> int | None:
    """The line on which ``column`` first holds ``value`` (for error messages only)."""
    with open(path, encoding=ENCODING, newline="") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader)]
        index = header.index(column)
        for row in reader:
            if len(row) > index and row[index].strip() == value:
                return reader.line_num
    return None


# --- labels ----------------------------------------------------------------------------------
def class_order(labels: Iterable[str]) -> list[str]:
    """Classes in a stable order: numerically if every label is a number, else alphabetically.

    Labels keep their original spelling ("07" stays "07"); only the order is decided here.
    """
    labels = list(labels)
    try:
        return sorted(labels, key=lambda label: (float(label), label))
    except ValueError:
        return sorted(labels)


def one_hot(codes: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    out = np.zeros((len(codes), n_classes), dtype=dtype)
    out[np.arange(len(codes)), codes] = 1
    return out


# --- normalisation ---------------------------------------------------------------------------
@dataclass
class Scaler:
    """``(x - offset) / scale`` per column; statistics come from the training split only."""

    method: str  # standard | minmax | none
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, method: str) -> "Scaler":
        columns = X.shape[1]
        if method == "standard":
            offset, scale = X.mean(axis=0), X.std(axis=0)
        elif method == "minmax":
            offset, scale = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        elif method == "none":
            offset, scale = np.zeros(columns), np.ones(columns)
        else:
            raise ValueError(f"unknown normalisation {method!r}")
        # A constant column carries no information; scaling it by 1 keeps it finite (0).
        scale = np.where(scale > 0, scale, 1.0)
        return cls(method, offset.astype(np.float64), scale.astype(np.float64))

    def transform(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        if self.method == "none":
            return X.astype(dtype, copy=False)
        return ((X - self.offset) / self.scale).astype(dtype, copy=False)

    def inverse(self, Y: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return Y
        return Y * self.scale.astype(Y.dtype) + self.offset.astype(Y.dtype)

    def to_json(self) -> dict:
        return {"method": self.method, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "Scaler":
        return cls(data["method"], np.asarray(data["offset"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64))


def split_indices(n: int, fraction: float, rng: np.random.Generator, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices; the validation part is ``round(n * fraction)`` rows."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    n_validation = int(round(n * fraction))
    return order[n_validation:], order[:n_validation]
