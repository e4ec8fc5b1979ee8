"""How a table's feature columns become the network's inputs: numbers as they are, categories
one-hot, missing cells filled. The plan is fitted on the training rows, stored in the model
file (plain JSON) and applied the same way by train, predict, evaluate and the streaming path.

The raw matrix every function here takes has one column per feature, in the plan's order:
a number for a numeric column, the index into the column's ``categories`` for a categorical
one (``UNKNOWN`` for a value not among them), NaN for a missing cell in either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MISSING_STRATEGIES = ("error", "mean", "median", "most_frequent", "drop_rows")
UNKNOWN_POLICIES = ("error", "ignore")
DEFAULT_MISSING_VALUES = ("", "NA", "NaN", "null")
UNKNOWN = -1.0  # a category the training rows never had


class MissingCell(ValueError):
    """A missing cell where the plan has no fill (``missing: error`` or ``drop_rows``)."""

    def __init__(self, row: int, column: int):
        super().__init__(f"row {row}, column {column}: missing value")
        self.row, self.column = row, column


class UnknownCategory(ValueError):
    """A category the training rows never had, with ``unknown_category: error``."""

    def __init__(self, row: int, column: int):
        super().__init__(f"row {row}, column {column}: unknown category")
        self.row, self.column = row, column


class NothingToFill(ValueError):
    """A column whose training rows are all missing: no mean, median or mode to fill with."""

    def __init__(self, column: int):
        super().__init__(f"column {column}: every training value is missing")
        self.column = column


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    categories: tuple[str, ...] | None = None  # one-hot over these (sorted); None: a number
    fill: float | None = None  # a missing cell becomes this (a number, or a category's index); None: no fill

    @property
    def width(self) -> int:
        """Network inputs this column becomes."""
        return 1 if self.categories is None else len(self.categories)

    @property
    def input_names(self) -> list[str]:
        """One name per network input: the column's, or ``column=category`` per category."""
        return [self.name] if self.categories is None else [f"{self.name}={value}" for value in self.categories]


@dataclass(frozen=True)
class Encoding:
    columns: tuple[FeatureColumn, ...]
    missing: str = "error"
    unknown_category: str = "error"
    missing_values: tuple[str, ...] = ()  # the cells that mean "missing" (as trained: predict reads with them)

    @classmethod
    def numeric(cls, names: Sequence[str]) -> "Encoding":
        """Every column a number, nothing missing: what models from before encodings meant."""
        return cls(tuple(FeatureColumn(name) for name in names))

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def width(self) -> int:
        """The network's input width."""
        return sum(column.width for column in self.columns)

    @property
    def input_names(self) -> list[str]:
        return [name for column in self.columns for name in column.input_names]

    @property
    def categorical(self) -> list[str]:
        return [column.name for column in self.columns if column.categories is not None]

    @property
    def is_plain(self) -> bool:
        """Every column a number with no fill: the raw matrix is the network's input."""
        return all(column.categories is None and column.fill is None for column in self.columns)

    def one_hot_inputs(self) -> np.ndarray:
        """Per network input: True where it is a category's 0/1 (scalers leave those alone)."""
        return np.array([column.categories is not None for column in self.columns for _ in range(column.width)], dtype=bool)

    @classmethod
    def fit(cls, names: Sequence[str], categories: Sequence[Sequence[str] | None], train_raw: np.ndarray,
            missing: str = "error", unknown_category: str = "error",
            missing_values: Sequence[str] = DEFAULT_MISSING_VALUES) -> "Encoding":
        """The plan for ``names`` (``categories[j]``: column j's categories, sorted, or None for
        a number), its fill values taken from the training rows ``train_raw`` (raw matrix, see
        the module's docstring) under ``missing``: mean, median or most frequent value of a
        numeric column; the most frequent category of a categorical one whatever the strategy
        (ties: the first in the categories' order). ``error`` and ``drop_rows`` fill nothing.
        Raises :class:`NothingToFill` for a column whose training values are all missing."""
        if missing not in MISSING_STRATEGIES:
            raise ValueError(f"unknown missing-value strategy {missing!r}")
        if unknown_category not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown unknown_category policy {unknown_category!r}")
        columns = []
        for j, (name, values) in enumerate(zip(names, categories)):
            kept = tuple(values) if values is not None else None
            fill = None
            if missing not in ("error", "drop_rows"):
                fill = _fill_value(train_raw[:, j], missing, kept, j)
            columns.append(FeatureColumn(name, kept, fill))
        return cls(tuple(columns), missing, unknown_category, tuple(missing_values))

    def encode(self, raw: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The network's inputs for ``raw`` rows (unscaled): ``rows × width`` in ``dtype``.

        Raises :class:`MissingCell` for a missing cell the plan cannot fill and
        :class:`UnknownCategory` for an unknown category under ``unknown_category: error``
        (row and column of the first, in the raw matrix); an ignored unknown category is all
        zeros."""
        self._check(raw)
        out = np.zeros((len(raw), self.width), dtype=dtype)
        offset = 0
        for first, last in self._runs():
            if self.columns[first].categories is None:  # a run of numeric columns: one block copy
                block = out[:, offset : offset + last - first]
                block[...] = raw[:, first:last]
                self._fill_numbers(block, first)
                offset += last - first
            else:
                self._one_hot(raw[:, first], first, out[:, offset : offset + self.columns[first].width])
                offset += self.columns[first].width
        return out

    def _runs(self) -> list[tuple[int, int]]:
        """(first, last + 1) of each run of consecutive numeric columns, and of each categorical one."""
        runs: list[tuple[int, int]] = []
        for j, column in enumerate(self.columns):
            if column.categories is None and runs and runs[-1][1] == j and self.columns[runs[-1][0]].categories is None:
                runs[-1] = (runs[-1][0], j + 1)
            else:
                runs.append((j, j + 1))
        return runs

    def _check(self, raw: np.ndarray) -> None:
        """The first (row after row, as in the file) missing cell without a fill, then the
        first refused unknown category."""
        unfilled = [j for j, column in enumerate(self.columns) if column.fill is None]
        if unfilled:
            missing = np.isnan(raw[:, unfilled])
            if missing.any():
                row, at = np.argwhere(missing)[0]
                raise MissingCell(int(row), unfilled[at])
        categorical = [j for j, column in enumerate(self.columns) if column.categories is not None]
        if categorical and self.unknown_category == "error":
            unknown = raw[:, categorical] == UNKNOWN
            if unknown.any():
                row, at = np.argwhere(unknown)[0]
                raise UnknownCategory(int(row), categorical[at])

    def _fill_numbers(self, block: np.ndarray, first: int) -> None:
        missing = np.isnan(block)
        if missing.any():  # (every such column has a fill: see _check)
            rows, columns = np.nonzero(missing)
            fills = np.array([column.fill for column in self.columns[first : first + block.shape[1]]], dtype=np.float64)
            block[rows, columns] = fills[columns]

    def _one_hot(self, values: np.ndarray, j: int, out: np.ndarray) -> None:
        fill = self.columns[j].fill
        if fill is not None:
            values = np.where(np.isnan(values), fill, values)
        known = np.flatnonzero(values != UNKNOWN)  # (an ignored unknown category stays all zeros)
        out[known, values[known].astype(np.intp)] = 1

    def to_json(self) -> dict:
        return {
            "missing": self.missing,
            "unknown_category": self.unknown_category,
            "missing_values": list(self.missing_values),
            "columns": [{"name": c.name, "categories": None if c.categories is None else list(c.categories), "fill": c.fill}
                        for c in self.columns],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Encoding":
        """The plan from a model file's ``meta``; ValueError for anything malformed (the
        loader turns it into a one-line model-file error)."""
        if not isinstance(data, dict) or set(data) != {"missing", "unknown_category", "missing_values", "columns"}:
            raise ValueError("expected an object with keys missing, unknown_category, missing_values, columns")
        if data["missing"] not in MISSING_STRATEGIES or data["unknown_category"] not in UNKNOWN_POLICIES:
            raise ValueError("unknown missing or unknown_category value")
        if not isinstance(data["columns"], list):
            raise ValueError("columns: expected a list")
        tokens = data["missing_values"]
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            raise ValueError("missing_values: expected a list of strings")
        columns = [_column_from_json(item, j) for j, item in enumerate(data["columns"])]
        return cls(tuple(columns), data["missing"], data["unknown_category"], tuple(tokens))


def category_codes(categories: Sequence[str], distinct: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """A text column's cells as indices into ``categories``: ``codes`` index ``distinct`` (a
    parse's distinct values, NaN for a missing cell); a value not in ``categories`` becomes
    ``UNKNOWN``, a missing cell stays NaN. A value is compared without its surrounding spaces
    (the parsers keep a text cell's spaces; " red" is the category "red", as " cat" is the
    class "cat" and " 1" the number 1): training takes its categories stripped the same way."""
    index = {value: i for i, value in enumerate(categories)}
    lookup = np.array([index.get(value.strip(), UNKNOWN) for value in distinct] + [np.nan], dtype=np.float64)
    positions = np.where(np.isnan(codes), len(distinct), codes).astype(np.intp)
    return lookup[positions]


def _fill_value(values: np.ndarray, strategy: str, categories: tuple[str, ...] | None, column: int) -> float:
    present = values[~np.isnan(values)]
    if not len(present):
        raise NothingToFill(column)
    if categories is not None or strategy == "most_frequent":
        distinct, counts = np.unique(present, return_counts=True)  # sorted: ties go to the smallest
        return float(distinct[np.argmax(counts)])
    if strategy == "mean":
        return float(np.mean(present, dtype=np.float64))
    return float(np.median(present))


def _column_from_json(item, j: int) -> FeatureColumn:
    if not isinstance(item, dict) or set(item) != {"name", "categories", "fill"}:
        raise ValueError(f"columns[{j}]: expected an object with keys name, categories, fill")
    name, categories, fill = item["name"], item["categories"], item["fill"]
    if not isinstance(name, str):
        raise ValueError(f"columns[{j}].name: expected a string")
    if categories is not None:
        if not isinstance(categories, list) or not categories or not all(isinstance(c, str) for c in categories):
            raise ValueError(f"columns[{j}].categories: expected a non-empty list of strings")
        if len(set(categories)) != len(categories):
            raise ValueError(f"columns[{j}].categories: repeats a category")
        categories = tuple(categories)
    if fill is not None:
        if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not np.isfinite(fill):
            raise ValueError(f"columns[{j}].fill: expected a finite number or null")
        if categories is not None and (fill != int(fill) or not 0 <= fill < len(categories)):
            raise ValueError(f"columns[{j}].fill: expected the index of one of its categories")
        fill = float(fill)
    return FeatureColumn(name, categories, fill)
