"""Reading CSV text exactly: the header's rules, NumPy's C parser, and the exact place of a problem.

The rows are parsed by NumPy's C parser (``np.loadtxt``); which parser reads a source is
decided in :mod:`nncli.tabular.source`.  When a parse fails, or a value is not finite, the text
is scanned again with the ``csv`` module only to find and name the first bad cell exactly
(line as an editor numbers it, column name, the value).

The rules every reader applies, whole file or stream, NumPy or polars, live here once: how long
a line (or a record whose quoted field spans lines) may be (:func:`line_budget`,
:func:`check_line_lengths`, :func:`read_line`), where a quoted field opens and closes
(:func:`records`), which cells mean "missing" (:func:`missing_tokens`), and
how names from a file are listed in a message (:func:`listed`; one value: :func:`nncli.errors.quoted`).
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
import stat
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence

import numpy as np

from nncli.budgets import budget, human_bytes
from nncli.errors import MAX_QUOTE_CHARS, DataError, quoted, reading

ENCODING = "utf-8-sig"  # accepts a byte-order mark (Excel writes one)

# The longest line (or record whose quoted fields span lines) any reader takes, in bytes: it
# bounds the memory one row can claim (NumPy's parser needs ~10x a line's size, so a line of
# 8 MiB costs ~100 MB) and so the number of columns (a 100,001-column file of long floats has
# ~2 MB lines). A longer line is refused with its line number before it is read whole.
MAX_LINE_BYTES = 8 << 20
LINE_BYTES_VARIABLE = "NNCLI_MAX_LINE_BYTES"  # a user with wider files sets e.g. 64M


class NotANumber(DataError):
    """A cell of a numeric column that is not a number (nor a missing-cell token): ``column``
    names the column, ``value`` is the cell (without surrounding spaces, as the message quotes
    it). Training reads such a column again as text (a category). A "nan" or "inf" cell is not
    this error: it is a number, just not a finite one."""

    def __init__(self, message: str, column: str, value: str):
        super().__init__(message)
        self.column, self.value = column, value


def missing_tokens(missing_values: Iterable[str]) -> frozenset[str]:
    """The cells that mean "missing", as every reader compares them: without surrounding spaces
    (a cell " NA" is "NA", a cell of spaces is ""), in numeric and text columns alike."""
    return frozenset(token.strip() for token in missing_values)


def number_tokens(tokens: frozenset[str]) -> np.ndarray:
    """The values of the tokens that read as finite numbers ("-999"): a parser that reads
    numbers first must look again at a cell with one of these values."""
    return np.array([as_number(token) for token in tokens if math.isfinite(as_number(token))], dtype=np.float64)


def quoted_list(values: Sequence[object], limit: int = 10) -> str:
    """The first ``limit`` values, each :func:`quoted`, and how many there are in all."""
    shown = ", ".join(quoted(value) for value in values[:limit])
    return shown + (f", … ({len(values):,} in all)" if len(values) > limit else "")


def listed(values: Sequence[object], limit: int = 10) -> str:
    """Names for a list in a message ("a, b, c, … (12 in all)"): each as written when it is
    plain (printable, short, no comma or surrounding space), else :func:`quoted`."""
    def shown(value: object) -> str:
        text = str(value)
        plain = text.isprintable() and text == text.strip() and "," not in text and 0 < len(text) <= MAX_QUOTE_CHARS
        return text if plain else quoted(text)

    return ", ".join(shown(value) for value in values[:limit]) + (f", … ({len(values):,} in all)" if len(values) > limit else "")


def line_budget() -> int:
    """:data:`MAX_LINE_BYTES`, or the user's ``NNCLI_MAX_LINE_BYTES``."""
    return budget(LINE_BYTES_VARIABLE, MAX_LINE_BYTES)


def line_too_long(name: str, line: int, limit: int, what: str = "line") -> DataError:
    return DataError(
        f"{name}:{line}: {what} is longer than {human_bytes(limit)}, the longest nncli reads "
        f"(set {LINE_BYTES_VARIABLE}, e.g. {LINE_BYTES_VARIABLE}=64M, if the file is right)"
    )


def read_line(f: BinaryIO, name: str, line: int, limit: int | None = None) -> bytes:
    """The next line of ``f`` (with its line end), refused if longer than the line budget:
    never more than that is read into memory, whatever the file (``/dev/zero``, one endless line)."""
    limit = line_budget() if limit is None else limit
    raw = f.readline(limit + 1)
    if len(raw) > limit and not raw.endswith(b"\n"):
        raise line_too_long(name, line, limit, "the header line" if line == 1 else "line")
    return raw


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file, checked: a regular file; present, unique, not empty."""
    with reading(path, DataError, "CSV file"):
        # (stat before open: opening a named pipe would wait for a writer)
        if not stat.S_ISREG(os.stat(path).st_mode) and not Path(path).is_dir():
            raise DataError(
                f"{path}: not a regular file (a pipe or a device); training reads its data file "
                "more than once, so save the data to a file first"
            )
        with open(path, "rb") as f:
            raw = read_line(f, str(path), 1)
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
    if inside_quotes_after(first, False):
        raise DataError(f"{name}:1: a quoted field opened here is never closed; column names must be on the first line")
    try:
        _allow_long_fields()
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
            raise DataError(f"{name}:1: column name {quoted(column)} appears twice (columns {seen[column]:,} and {index:,})")
        seen[column] = index
    return header


# Bytes looked at at once when checking line ends and counting lines (bounded memory): as fast
# as 16 MiB, whose temporaries (a bool per byte) glibc then kept, ~16 MB of the reader's peak.
_SCAN_WINDOW = 1 << 20


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


def check_line_lengths(data, name: str, first_line: int = 1, limit: int | None = None) -> None:
    """Refuse a line of ``data`` (bytes, or an mmap of a whole file) longer than the line budget,
    naming it, before any parser reads it whole.

    Fast whatever the file: only aligned windows of about half the budget are searched for a
    line feed (memchr, which stops at the first), since a longer line covers one of them whole.
    """
    limit = line_budget() if limit is None else limit
    size = len(data)
    window = limit // 2 + 1  # a line of limit + 1 bytes or more covers a whole aligned window
    start = 0
    while start < size:
        end = min(start + window, size)
        if data.find(b"\n", start, end) < 0:  # a long line: measure it
            low = max(0, start - limit - 1)
            line_start = data.rfind(b"\n", low, start) + 1 or low  # (not found after low: long already)
            line_end = data.find(b"\n", end, min(size, line_start + limit + 1))
            if line_end < 0:
                line_end = min(size, line_start + limit + 1)
            if line_end - line_start > limit:
                line = first_line + count_lines(data, line_start)
                raise line_too_long(name, line, limit, "the header line" if line == 1 else "line")
        start = end


def count_lines(data, end: int, start: int = 0) -> int:
    """How many line feeds ``data`` (bytes, or an mmap of a whole file) holds from ``start`` to
    ``end``: in windows, with NumPy (three times ``bytes.count``'s speed)."""
    total = 0
    for i in range(start, end, _SCAN_WINDOW):
        view = np.frombuffer(data, np.uint8, count=min(i + _SCAN_WINDOW, end) - i, offset=i)
        total += int(np.count_nonzero(view == 10))
        del view  # (a view of an mmap must go before the mmap closes)
    return total


def unclosed_quote(name: str, line: int, limit: int | None = None) -> DataError:
    """A quoted field that does not close: at the end of the input, or (``limit``) within the line budget."""
    more = "" if limit is None else (
        f" within {human_bytes(limit)}, the longest record nncli reads (set {LINE_BYTES_VARIABLE} if the field is right)"
    )
    return DataError(f"{name}:{line}: a quoted field opened here is never closed{more}")


def records(
    lines: Iterable[str], name: str, first_line: int = 2, more: Callable[[int], str | None] | None = None,
    limit: int | None = None,
) -> Iterator[str]:
    """CSV records from ``lines`` (each with its line end): a quoted field that spans lines
    keeps its record whole; ``more(line_number)``, if given, supplies the lines after
    ``lines`` while a quoted field is open (a stream reading past its block).

    The one quoting rule of every reader (the whole-file parsers are checked against it, the
    streams split their blocks with it): only a quote that opens a field starts a quoted field
    (RFC 4180, Python's csv module: `12" ruler` is plain text), `""` inside it is a quote, and
    it must close before the input ends and within the line budget; if not, the DataError names
    the line where it opened. A line break inside a field reads as "\\n", as in a whole-file read.
    """
    limit = line_budget() if limit is None else limit
    pending: list[str] = []
    inside, started, size = False, 0, 0
    line_number = first_line - 1
    lines = iter(lines)
    while True:
        line = next(lines, None)
        if line is None:
            if not inside or more is None:
                break
            line = more(line_number + 1)  # the quoted field goes on past the given lines
            if line is None:
                break
        line_number += 1
        if not inside and '"' not in line:
            yield line
            continue
        if not inside:
            size = 0
        inside, opened_here = _quote_state_after(line, inside)
        if opened_here:
            started = line_number  # (a field may close and another open on a later line of the record)
        if inside and line.endswith("\r\n"):
            line = line[:-2] + "\n"
        pending.append(line)
        size += len(line)
        if not inside:
            yield "".join(pending) if len(pending) > 1 else line
            pending = []
        elif size > limit:
            raise unclosed_quote(name, started, limit)
    if inside:
        raise unclosed_quote(name, started)


def numbered_rows(lines: Iterable[str], name: str, first_line: int = 2) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, its fields) for each record of ``lines``."""
    _allow_long_fields()
    line = first_line
    for record in records(lines, name, first_line):
        try:
            row = next(csv.reader([record]), [])
        except csv.Error as exc:
            if "new-line character seen in unquoted field" in str(exc):  # the csv module's wording
                raise DataError(f"{name}:{line}: a carriage return (\\r) without a line feed after it; lines must end with \\n or \\r\\n") from None
            raise DataError(f"{name}:{line}: malformed CSV ({exc})") from None
        yield line, row
        line += record.count("\n")


# Rows, and bytes, :func:`sniff_text_columns` looks at: a first guess, cheap on any file.
SNIFF_ROWS = 1000
SNIFF_BYTES = 1 << 20  # (its cells are kept while looked at: ~20 MB at most)


def sniff_text_columns(path: Path, columns: Sequence[str], missing_values: Iterable[str] = (),
                       rows: int = SNIFF_ROWS) -> list[str]:
    """Which of ``columns`` (in their order) hold, in the file's first ``rows`` rows (and
    :data:`SNIFF_BYTES`), a cell that is neither a number nor one of ``missing_values``: text
    columns found before the file is parsed. Only a guess: a text cell further down makes the
    read raise :class:`NotANumber`, and the caller reads again with that column as text. The
    file's own problems (a bad byte, an unclosed quote) are left to the read, which names them:
    the rows before one still count here."""
    header = read_header(path)
    tokens = missing_tokens(missing_values)
    position = {column: i for i, column in enumerate(header)}
    wanted = {position[column] for column in columns if column in position}
    name, limit = str(path), line_budget()

    def lines() -> Iterator[str]:
        with open(path, "rb") as f:
            read_line(f, name, 1, limit)  # the header
            line, passed = 2, 0
            while passed < SNIFF_BYTES and (raw := read_line(f, name, line, limit)):
                passed += len(raw)
                line += 1
                yield raw.decode("utf-8")

    sample: list[list[str]] = []
    try:
        for _, row in numbered_rows(lines(), name):
            if len(sample) >= rows:
                break
            sample.append(row)
    except (DataError, UnicodeDecodeError, OSError):
        pass
    # Each distinct cell is looked at once, then the columns holding a text cell are found
    # (1,000 rows of 785 columns: 0.1 s, most of it the csv module's; a cell at a time, 0.5 s).
    distinct: set[str] = set()
    for row in sample:
        distinct.update(row)
    text = {cell for cell in distinct if not _reads_as_number(cell, tokens)}
    if not text:
        return []
    cells = list(itertools.zip_longest(*sample))  # (None where a row is short)
    found = {index for index in wanted if index < len(cells) and not text.isdisjoint(cells[index])}
    return [column for column in columns if position.get(column) in found]


def _reads_as_number(cell: str, tokens: frozenset[str]) -> bool:
    """A number as NumPy's parser reads one (finite or not), or a missing cell."""
    try:
        float(cell)
    except ValueError:
        return cell.strip() in tokens
    return (cell.isascii() and "_" not in cell) or bool(_NUMBER.fullmatch(cell.strip())) or cell.strip() in tokens


def _allow_long_fields() -> None:
    """Raise the csv module's field limit to the line budget: its own default, 128 KiB, would
    call a long but valid cell "malformed" (and a message could not name the line of a label)."""
    csv.field_size_limit(max(csv.field_size_limit(), line_budget()))


def inside_quotes_after(line: str, inside: bool) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of ``line``."""
    return _quote_state_after(line, inside)[0]


def _quote_state_after(line: str, inside: bool) -> tuple[bool, bool]:
    """Whether a CSV record is still inside a quoted field at the end of ``line``, and whether
    that field opened on this line.

    Jumps from quote to quote (no Python loop over ordinary characters): outside a quoted
    field, a quote matters only at the start of a field; inside, `""` is an escaped quote.
    """
    position, opened_here = 0, False
    while True:
        if inside:
            close = line.find('"', position)
            if close < 0:
                return True, opened_here
            if line.startswith('"', close + 1):  # "" inside a quoted field
                position = close + 2
                continue
            inside, position = False, close + 1
        else:
            quote = line.find('"', position)
            if quote < 0:
                return False, False
            opens_field = quote == 0 or line[quote - 1] == ","
            inside, position, opened_here = opens_field, quote + 1, opens_field


def parse_rows(
    source: Path | list[str],
    header: list[str],
    name: str,
    text_columns: Iterable[str] = (),
    first_line: int = 2,
    skip: Iterable[str] = (),
    missing_values: Iterable[str] = (),
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Parse data rows (a file after its header, or a list of lines) with NumPy's C parser.

    Returns a ``(rows, len(header))`` float64 array in which each of ``text_columns`` holds
    codes into its list of distinct values (as written, spaces included).  Any malformed row or non-finite
    number raises a DataError naming ``name``, the line (counting from ``first_line``),
    the column and the value. Columns in ``skip`` may hold anything and are not read (0 in the
    array, no list of values): a file may have a million columns nobody asked for. A cell equal
    to one of ``missing_values`` (:func:`missing_tokens`) is NaN, in a numeric or a text column
    (never one of its values); NaN means nothing else.
    """
    return RowParser(header, text_columns, skip, missing_values).parse(source, name, first_line)


class RowParser:
    """:func:`parse_rows` for one header, its per-column work done once (a stream parses many
    chunks, and a wide file's columns cost per chunk otherwise)."""

    def __init__(self, header: list[str], text_columns: Iterable[str] = (), skip: Iterable[str] = (),
                 missing_values: Iterable[str] = ()):
        skip = set(skip)
        self.header = header
        self.text_columns = [column for column in text_columns if column not in skip]
        self.not_numbers = {*self.text_columns, *skip}
        position = {column: i for i, column in enumerate(header)}  # (header.index per column is quadratic)
        self.text_positions = [(column, position[column]) for column in self.text_columns]
        # One shared converter for every skipped column; the text columns' are set per parse.
        self.converters = {position[column]: _skipped for column in skip if column in position}
        self.tokens = missing_tokens(missing_values)
        self.missing_values = tuple(missing_values)
        self.numeric = [i for i, column in enumerate(header) if column not in self.not_numbers]
        # A token that reads as a finite number ("-999") is hidden in NumPy's own parse of the
        # numbers: a value equal to one sends the parse to the converters below.
        self.number_tokens = number_tokens(self.tokens)

    def parse(self, source: Path | list[str], name: str, first_line: int = 2) -> tuple[np.ndarray, dict[str, list[str]]]:
        header = self.header

        def failure(fallback: str) -> DataError:
            lines = lines_after_header(source) if isinstance(source, Path) else split_lines("".join(source))
            return locate_bad_cell(lines, header, name, self.not_numbers, first_line, self.missing_values) or DataError(
                f"{name}: {fallback}")

        codes, converters = self._converters()
        try:
            values = _load(source, converters)
        except ValueError as exc:
            if not self.tokens:
                raise failure(f"cannot parse CSV: {exc}") from None
            values = None  # perhaps a missing cell: read again, a cell at a time
        if values is not None and len(values) and values.shape[1] != len(header):  # loadtxt compares rows with each other only
            raise failure(f"rows have {values.shape[1]:,} fields but the header names {len(header):,} columns")
        if not self.tokens:
            if not np.isfinite(values).all():
                raise failure("contains NaN or infinite values")
        elif values is None or self._hides_missing(values):
            # Missing cells: each numeric cell through a converter that reads a token as NaN and
            # refuses anything else that is not a finite number (~2 x NumPy's own parse).
            codes, converters = self._converters(numbers=True)
            try:
                values = _load(source, converters)
            except ValueError as exc:
                raise failure(f"cannot parse CSV: {exc}") from None
            if len(values) and values.shape[1] != len(header):
                raise failure(f"rows have {values.shape[1]:,} fields but the header names {len(header):,} columns")
        return values, {column: list(table) for column, table in codes.items()}

    def _converters(self, numbers: bool = False) -> tuple[dict[str, dict[str, int]], dict]:
        """Fresh code tables for the text columns, and the converters that fill them (with
        ``numbers``, every numeric column's too: see :meth:`parse`)."""
        codes: dict[str, dict[str, int]] = {column: {} for column in self.text_columns}
        converters = dict(self.converters)
        tokens = self.tokens
        for column, index in self.text_positions:
            if tokens:
                converters[index] = lambda cell, table=codes[column]: (
                    math.nan if cell.strip() in tokens else table.setdefault(cell, len(table)))
            else:
                converters[index] = lambda cell, table=codes[column]: table.setdefault(cell, len(table))
        if numbers:
            number = _number_or_missing(tokens)
            converters.update((index, number) for index in self.numeric)
        return codes, converters

    def _hides_missing(self, values: np.ndarray) -> bool:
        """Whether NumPy's own parse may have read a missing cell as a number: a NaN (a "NaN"
        token, or a "nan" that must be refused), an infinity, or a token's value ("-999")."""
        numeric = values[:, column_index(self.numeric)] if len(self.numeric) != values.shape[1] else values
        if not np.isfinite(numeric).all():  # (a text column's NaN is a token already)
            return True
        return bool(len(self.number_tokens)) and bool(np.isin(numeric, self.number_tokens).any())


def _load(source: Path | list[str], converters: dict) -> np.ndarray:
    """NumPy's C parser on CSV text (a file after its header, or a list of lines)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": callers report that
            return np.loadtxt(
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
    except UnicodeDecodeError as exc:
        raise ValueError(str(exc)) from None
    except ValueError as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C inside a converter, wrapped by NumPy
            raise exc.__cause__ from None
        raise


def _number_or_missing(tokens: frozenset[str]) -> Callable[[str], float]:
    """The converter of a numeric column that may hold missing cells: NaN for a token, the
    number NumPy's parser reads, or ValueError (the exact scan then names the cell). float()
    reads what NumPy reads and a little more ("1_000", non-ASCII digits), checked for here."""
    nan, isfinite = math.nan, math.isfinite
    numbers_among_tokens = bool(len(number_tokens(tokens)))

    def number(cell: str) -> float:
        if numbers_among_tokens and cell.strip() in tokens:
            return nan
        try:
            value = float(cell)
        except ValueError:
            if cell.strip() in tokens:
                return nan
            raise
        if isfinite(value) and cell.isascii() and "_" not in cell:
            return value
        if cell.strip() in tokens:  # a token that reads as a number: "NaN", "-999"
            return nan
        if isfinite(value) and _NUMBER.fullmatch(cell.strip()):
            return value
        raise ValueError(f"{cell!r} is not a finite number")

    return number


def _skipped(cell: str) -> float:
    """The converter of a column nobody reads (one shared function, not one per column)."""
    return 0.0


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
    lines: Iterable[str], header: list[str], name: str, text_columns: Sequence[str] = (), first_line: int = 2,
    missing_values: Iterable[str] = (),
) -> DataError | None:
    """Scan rows one by one for the first malformed cell (only after a fast parse failed); a
    cell of a numeric column that is not a number is a :class:`NotANumber`, unless it is one
    of ``missing_values``."""
    text_columns = set(text_columns)
    tokens = missing_tokens(missing_values)
    numeric = [(i, column) for i, column in enumerate(header) if column not in text_columns]
    try:
        for line, row in numbered_rows(lines, name, first_line):
            if not row:
                continue  # blank lines are skipped, as by the fast parser
            if len(row) == 1 and len(header) > 1 and not row[0].strip():
                return DataError(f"{name}:{line}: line holds only spaces; remove it (empty lines are skipped)")
            if len(row) != len(header):
                return DataError(
                    f"{name}:{line}: row has {len(row):,} field{'s' * (len(row) != 1)} but the header has {len(header):,} columns"
                )
            for index, column in numeric:
                problem = _cell_problem(row[index], tokens)
                if problem:
                    message = f"{name}:{line}: column {quoted(column)}: {problem}"
                    if _NUMBER.fullmatch(row[index].strip()):  # a number, not a finite one
                        return DataError(message)
                    return NotANumber(message, column, row[index].strip())
    except DataError as exc:  # an unclosed quote, a line that is not UTF-8, malformed CSV
        return exc
    except UnicodeDecodeError as exc:
        return DataError(f"{name}: not UTF-8 text (byte {exc.start}); expected a CSV file")
    return None


# What NumPy's parser reads as a number (Python's float() also takes `1_000` and non-ASCII digits).
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:inf|infinity|nan)", re.IGNORECASE)


def column_index(positions: list[int]) -> slice | list[int]:
    """Column positions as a slice when they are consecutive: selecting with it gives a view
    and assigning through it needs no gather."""
    if positions and positions == list(range(positions[0], positions[0] + len(positions))):
        return slice(positions[0], positions[0] + len(positions))
    return positions


def python_number(text: str) -> bool:
    """Whether Python's float() takes ``text`` (looser than the parsers: "1_000", "infinity"):
    enough to tell a label or a category that reads as a number from a word."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def parser_number(text: str) -> bool:
    """Whether the parsers read ``text`` (without surrounding spaces) as a number: stricter than
    Python's float(), which also takes "1_000" and non-ASCII digits such as "\uff15"."""
    return bool(_NUMBER.fullmatch(text.strip()))


def as_number(cell: str) -> float:
    """A cell as NumPy's parser reads it, or NaN when that parser would refuse it (Python's
    float() also takes "1_000" and "infinity")."""
    text = cell.strip()
    return float(text) if _NUMBER.fullmatch(text) else math.nan


def _cell_problem(cell: str, tokens: frozenset[str] = frozenset()) -> str | None:
    text = cell.strip()
    if text in tokens:
        return None
    if not text:
        return "empty cell; expected a number"
    if not _NUMBER.fullmatch(text):
        return f"{quoted(text)} is not a number"
    value = float(text)
    if math.isnan(value):
        return f"{quoted(text)} (NaN); expected a finite number"
    if math.isinf(value):
        return f"{quoted(text)} is infinite or too large for float64; expected a finite number"
    return None


def find_line(lines: Iterable[str], header: list[str], column: str, value: str, first_line: int = 2, name: str = "") -> int | None:
    """The line on which ``column`` first holds ``value`` (for error messages only)."""
    index = header.index(column)
    try:
        for line, row in numbered_rows(lines, name, first_line):
            if len(row) > index and row[index].strip() == value.strip():
                return line
    except (csv.Error, DataError):
        pass
    return None


def line_of_row(texts: Iterable[str], row: int, first_line: int = 2) -> int | None:
    """The line on which data row ``row`` (from 0) starts, given the records from ``first_line``
    on (:func:`records`: a quoted field may make one span lines); blank lines are no rows, as
    for every parser. None past the last row."""
    line = first_line
    for record in texts:
        if record not in ("\n", "\r\n"):
            if row == 0:
                return line
            row -= 1
        line += record.count("\n")
    return None


def at_line(name: str, line: int | None) -> str:
    """``name:line`` for a message, or just ``name`` when the line is not known."""
    return name if line is None else f"{name}:{line}"
