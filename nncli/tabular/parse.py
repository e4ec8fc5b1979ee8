"""Reading CSV text exactly: the header's rules, NumPy's C parser, and the exact place of a problem.

The rows are parsed by NumPy's C parser (``np.loadtxt``); which parser reads a source is
decided in :mod:`nncli.tabular.source`.  When a parse fails, or a value is not finite, the text
is scanned again with the ``csv`` module only to find and name the first bad cell exactly
(line as an editor numbers it, column name, the value).
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from nncli.errors import DataError, reading

ENCODING = "utf-8-sig"  # accepts a byte-order mark (Excel writes one)


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file, checked: present, unique, not empty."""
    with reading(path, DataError, "CSV file"):
        with open(path, "rb") as f:
            raw = f.readline(1 << 20)
    try:
        first = raw.decode(ENCODING)
    except UnicodeDecodeError:
        raise DataError(f"{path}:1: not UTF-8 text; expected a CSV file with a header row") from None
    return parse_header(first, str(path))


def parse_header(first: str, name: str) -> list[str]:
    """Check and split a header line; ``name`` is the file as the user should see it."""
    if "\x00" in first:
        raise DataError(f"{name}:1: binary data; expected a CSV file with a header row")
    if not first:
        raise DataError(f"{name}: file is empty; expected a CSV file with a header row")
    if not first.strip():
        raise DataError(f"{name}:1: the first line is blank; it must be the header row (column names)")
    if "\r" in first.rstrip("\r\n"):
        raise DataError(f"{name}:1: lines end in a bare carriage return (old Mac style); convert them, e.g. tr '\\r' '\\n'")
    try:
        header = [column.strip() for column in next(csv.reader([first]))]
    except csv.Error as exc:
        raise DataError(f"{name}:1: malformed header row ({exc})") from None
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab")):
            if delimiter in first:
                raise DataError(
                    f"{name}:1: the header is a single column containing {label}s; nncli reads "
                    f"comma-separated files (is this file {label}-separated?)"
                )
    for index, column in enumerate(header, start=1):
        if not column:
            raise DataError(f"{name}:1: column {index} has no name; every column needs a header")
    seen: dict[str, int] = {}
    for index, column in enumerate(header, start=1):
        if column in seen:
            raise DataError(f"{name}:1: column name {column!r} appears twice (columns {seen[column]} and {index})")
        seen[column] = index
    return header


_SCAN_WINDOW = 16 << 20  # bytes looked at at once when checking line ends (bounded memory)


def check_line_ends(data, name: str, first_line: int = 1) -> bool:
    """Whether ``data`` (bytes, or an mmap of a whole file) ends its lines in CRLF.

    A carriage return that is not followed by a line feed is a DataError naming its line:
    NumPy's whole-file reader would take it for a line break and its line-by-line reader for
    part of a cell (and polars for either), so nncli takes it for neither.
    """
    if data.find(b"\r") < 0:  # memchr speed: an LF file costs one quick scan
        return False
    size = len(data)
    for start in range(0, size, _SCAN_WINDOW):
        end = min(start + _SCAN_WINDOW, size)
        view = np.frombuffer(data, np.uint8, count=min(end + 1, size) - start, offset=start)  # + the next byte
        returns = np.flatnonzero(view[: end - start] == 13)
        following = returns + 1
        lone = following >= len(view)  # the data's very last byte
        lone[~lone] = view[following[~lone]] != 10
        if lone.any():
            position = start + int(returns[lone.argmax()])
            del view  # (a view of an mmap must go before the mmap closes)
            line = first_line + sum(data[i : min(i + _SCAN_WINDOW, position)].count(b"\n") for i in range(0, position, _SCAN_WINDOW))
            raise DataError(f"{name}:{line}: a carriage return (\\r) without a line feed after it; lines must end with \\n or \\r\\n")
    return True


def parse_rows(
    source: Path | list[str],
    header: list[str],
    name: str,
    text_columns: Iterable[str] = (),
    first_line: int = 2,
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Parse data rows (a file after its header, or a list of lines) with NumPy's C parser.

    Returns a ``(rows, len(header))`` float64 array in which each of ``text_columns`` holds
    codes into its list of distinct values (as written, spaces included).  Any malformed row or non-finite
    number raises a DataError naming ``name``, the line (counting from ``first_line``),
    the column and the value.
    """
    text_columns = list(text_columns)
    codes: dict[str, dict[str, int]] = {column: {} for column in text_columns}
    converters = {
        header.index(column): (lambda cell, table=codes[column]: table.setdefault(cell, len(table)))
        for column in text_columns
    }

    def failure(fallback: str) -> DataError:
        lines = lines_after_header(source) if isinstance(source, Path) else split_lines("".join(source))
        return locate_bad_cell(lines, header, name, text_columns, first_line) or DataError(f"{name}: {fallback}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": callers report that
            values = np.loadtxt(
                source,
                delimiter=",",
                skiprows=1 if isinstance(source, Path) else 0,
                dtype=np.float64,
                ndmin=2,
                quotechar='"',
                comments=None,  # "#" is data: a label "C#" is not "C", a row "#1,2" is not dropped
                encoding=ENCODING,
                converters=converters or None,
            )
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C inside a converter, wrapped by NumPy
            raise exc.__cause__ from None
        raise failure(f"cannot parse CSV: {exc}") from None
    if len(values) and values.shape[1] != len(header):  # loadtxt compares rows with each other only
        raise failure(f"rows have {values.shape[1]} fields but the header names {len(header)} columns")
    if not np.isfinite(values).all():
        raise failure("contains NaN or infinite values")
    return values, {column: list(table) for column, table in codes.items()}


def split_lines(text: str) -> list[str]:
    """Lines with their endings, so that the csv module's line count is the file's (a quoted
    field may span lines). Only "\n" ends a line (not form feeds and the like)."""
    lines = text.split("\n")
    last = lines.pop()
    lines = [line + "\n" for line in lines]
    if last:
        lines.append(last)
    return lines


def lines_after_header(path: Path) -> Iterator[str]:
    """The file's lines after the header, decoded one by one so a bad byte is found by line."""
    with open(path, "rb") as f:
        next(f, None)
        for number, raw in enumerate(f, start=2):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1} of the line); expected a CSV file") from None


def locate_bad_cell(
    lines: Iterable[str], header: list[str], name: str, text_columns: Sequence[str] = (), first_line: int = 2
) -> DataError | None:
    """Scan rows one by one for the first malformed cell (only after a fast parse failed)."""
    numeric = [(i, column) for i, column in enumerate(header) if column not in text_columns]
    try:
        reader = csv.reader(lines)
        line = first_line - 1
        for row in reader:
            line = first_line - 1 + reader.line_num
            if not row:
                continue  # blank lines are skipped, as by the fast parser
            if len(row) == 1 and len(header) > 1 and not row[0].strip():
                return DataError(f"{name}:{line}: line holds only spaces; remove it (empty lines are skipped)")
            if len(row) != len(header):
                return DataError(
                    f"{name}:{line}: row has {len(row)} field{'s' * (len(row) != 1)} but the header has {len(header)} columns"
                )
            for index, column in numeric:
                problem = _cell_problem(row[index])
                if problem:
                    return DataError(f"{name}:{line}: column {column!r}: {problem}")
    except UnicodeDecodeError as exc:
        return DataError(f"{name}: not UTF-8 text (byte {exc.start}); expected a CSV file")
    except csv.Error as exc:
        if "new-line character seen in unquoted field" in str(exc):  # the csv module's wording
            return DataError(f"{name}:{line + 1}: a carriage return (\\r) without a line feed after it; lines must end with \\n or \\r\\n")
        return DataError(f"{name}:{line + 1}: malformed CSV ({exc})")
    return None


# What NumPy's parser reads as a number (Python's float() also takes `1_000` and non-ASCII digits).
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:inf|infinity|nan)", re.IGNORECASE)


def column_index(positions: list[int]) -> slice | list[int]:
    """Column positions as a slice when they are consecutive: selecting with it gives a view
    and assigning through it needs no gather."""
    if positions and positions == list(range(positions[0], positions[0] + len(positions))):
        return slice(positions[0], positions[0] + len(positions))
    return positions


def as_number(cell: str) -> float:
    """A cell as NumPy's parser reads it, or NaN when that parser would refuse it (Python's
    float() also takes "1_000" and "infinity")."""
    text = cell.strip()
    return float(text) if _NUMBER.fullmatch(text) else math.nan


def _cell_problem(cell: str) -> str | None:
    text = cell.strip()
    if not text:
        return "empty cell; expected a number"
    if not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 30 else text[:27] + "..."
        return f"{shown!r} is not a number"
    value = float(text)
    if math.isnan(value):
        return f"{text!r} (NaN); expected a finite number"
    if math.isinf(value):
        return f"{text!r} is infinite or too large for float64; expected a finite number"
    return None


def find_line(lines: Iterable[str], header: list[str], column: str, value: str, first_line: int = 2) -> int | None:
    """The line on which ``column`` first holds ``value`` (for error messages only)."""
    index = header.index(column)
    reader = csv.reader(lines)
    try:
        for row in reader:
            if len(row) > index and row[index].strip() == value.strip():
                return first_line - 1 + reader.line_num
    except csv.Error:
        pass
    return None
