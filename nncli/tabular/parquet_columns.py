"""How the columns of a Parquet file, as polars decodes them, become nncli's table: the CSV
readers' values (:mod:`nncli.tabular.source`) from typed columns.

:class:`ColumnPlan` decides once, from the file's column types, how each column is read
(numbers, text parsed as numbers, text as codes) and refuses the types nncli does not read;
it then fills a :class:`Matrix` from each frame polars decodes, with the same missing cells,
codes and errors as a CSV file of the same table (rows named "file: row N").
"""

from __future__ import annotations

import copy
import math
from typing import Iterable

import numpy as np

from nncli.budgets import MiB
from nncli.errors import DataError, quoted
from nncli.tabular.fast import exact_float32
from nncli.tabular.parse import NotANumber, as_number, column_index, missing_tokens

FLAT_COLUMNS = "nncli reads columns of numbers or text"
# Rows of float64 copied out of a frame at a time (as fast.BLOCK_BYTES), and at least this many
# rows (each copy costs ~1 µs a column: 20,000 columns in blocks of 13 rows took 3 s a GB).
BLOCK_BYTES = 2 * MiB
BLOCK_ROWS = 256


def where(name: str, row: int) -> str:
    """A data row (0-based) of a Parquet file for a message: ``data.parquet: row 17``."""
    return f"{name}: row {row + 1}"


class ColumnPlan:
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

    def __init__(self, name: str, types: dict, text_columns: Iterable[str], skip: Iterable[str], missing_values: Iterable[str]):
        """``name``: the file, for messages; ``types``: each column's polars type, in the file's order."""
        import polars as pl

        self.name = name
        self.tokens = missing_tokens(missing_values)  # (compared with cells without surrounding spaces)
        skip, text = set(skip), set(text_columns)
        self.read = [column for column in types if column not in skip]
        self.position = {column: i for i, column in enumerate(types)}
        self.numbers, self.parsed, self.texts = [], [], []
        for column in self.read:
            dtype = types[column]
            if dtype.is_nested() or dtype == pl.Object:
                raise DataError(f"{self.name}: column {quoted(column)} holds {_type_name(dtype)} values; {FLAT_COLUMNS}")
            if dtype == pl.Binary:
                raise DataError(f"{self.name}: column {quoted(column)} holds binary values; {FLAT_COLUMNS}")
            if column in text:
                self.texts.append(column)
            elif dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
                self.numbers.append(column)
            elif is_text(dtype):
                self.parsed.append(column)
            else:
                raise DataError(
                    f"{self.name}: column {quoted(column)} holds {_type_name(dtype)} values; expected numbers "
                    "(a column read as categories may hold them)"
                )
        self._index_numbers()

    def _index_numbers(self) -> None:
        import polars as pl

        self.number_index = column_index([self.position[c] for c in self.numbers])
        self.casts = [pl.col(c).cast(pl.Float64) for c in self.numbers]

    def part(self, columns: Iterable[str]) -> "ColumnPlan":
        """The same plan for ``columns`` alone (of those it reads): for a frame of just those."""
        wanted = set(columns)
        part = copy.copy(self)
        part.read = [c for c in self.read if c in wanted]
        part.numbers = [c for c in self.numbers if c in wanted]
        part.parsed = [c for c in self.parsed if c in wanted]
        part.texts = [c for c in self.texts if c in wanted]
        part._index_numbers()
        return part

    def fill_numbers(self, frame, first_row: int, table: Matrix, start: int) -> None:
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

    def fill_texts(self, frame, table: Matrix, start: int, codes: dict[str, dict[str, int]]) -> None:
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

        if is_text(series.dtype):
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
                if is_non_finite(cell):
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
    if not is_non_finite(text):
        return f"{quoted(text)} is not a number"
    if math.isnan(as_number(text)):
        return f"{quoted(text)} (NaN); expected a finite number"
    return f"{quoted(text)} is infinite or too large for float64; expected a finite number"


def is_non_finite(cell: str) -> bool:
    """A number as the CSV readers read one ("nan", "-inf", "1e400"), but not a finite one."""
    text = cell.strip()
    return not math.isfinite(as_number(text)) and (math.isinf(as_number(text)) or text.lstrip("+-").lower() == "nan")


def is_text(dtype) -> bool:
    import polars as pl

    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _type_name(dtype) -> str:
    return str(dtype).split("(")[0]


class Matrix:
    """The (rows, columns) values, float32 (when asked for) while every value is exactly a
    float32, else float64: the same numbers either way (as :class:`nncli.tabular.fast._Table`)."""

    def __init__(self, rows: int, columns: int, dtype):
        # (zeros: the columns a stream skips stay 0, as the CSV readers leave them)
        self.values = np.zeros((rows, columns), dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)

    def put(self, start: int, columns, block: np.ndarray) -> None:
        if self.values.dtype == np.float32 and not exact_float32(block, missing=True):  # (NaN: a null)
            self.values = self.values.astype(np.float64)  # (once: every value so far is exact)
        self.values[start : start + len(block), columns] = block

