"""A Parquet file opened for polars: what it holds, known before any of its data is decoded
(:class:`ParquetLayout`: the footer nncli reads itself, then the column types polars reads),
and polars' refusals turned into one-line errors (:func:`polars_errors`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nncli.errors import DataError
from nncli.tabular.parquet_footer import Footer, read_file_footer


@dataclass
class ParquetLayout:
    """What a Parquet file holds, known before any of its data is decoded."""

    name: str
    header: list[str]
    types: dict  # column -> polars data type
    footer: Footer

    @property
    def rows(self) -> int:
        return self.footer.rows


def parquet_layout(path: str | Path) -> ParquetLayout:
    """Check ``path`` is a whole Parquet file within the budgets and read its layout: its footer
    (here) and its columns' types (polars, once the footer has passed)."""
    name = str(path)
    footer = read_file_footer(path)
    with polars_errors(name, "its schema"):
        types = dict(scan(name).collect_schema())
    header = list(types)
    if not header:
        raise DataError(f"{name}: a Parquet file with no columns")
    for index, column in enumerate(header, start=1):
        if not column.strip():
            raise DataError(f"{name}: column {index} has no name; every column needs one")
    return ParquetLayout(name, header, types, footer)


def scan(name: str):
    """The file as polars' lazy frame: that file alone (a name is no glob pattern, folders named
    ``year=2024`` add no columns)."""
    import polars as pl

    return pl.scan_parquet(name, glob=False, hive_partitioning=False)


@contextlib.contextmanager
def polars_errors(name: str, what: str) -> Iterator[None]:
    """polars' refusals (a damaged page, an unsupported encoding) as one-line DataErrors.

    A file damaged in some ways makes polars panic: the panic reaches Python as an exception,
    but Rust first prints its message (and a backtrace, under RUST_BACKTRACE) on the process's
    standard error, around the one-line error. That output is held back while polars reads
    (the stderr file descriptor redirected to a temporary file), written out as it was if the
    read succeeds, and dropped when it fails."""
    import polars as pl

    with _held_stderr() as held:
        try:
            yield
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError) as exc:
            held.drop()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if "os error 12" in reason or "allocate" in reason.lower():
                raise DataError(
                    f"{name}: not enough memory to read {what} ({reason[:200]}); an address-space limit (ulimit -v) counts too"
                ) from None
            if isinstance(exc, pl.exceptions.PanicException):
                raise DataError(f"{name}: cannot read {what}: a damaged Parquet file (polars stopped on it)") from None
            raise DataError(f"{name}: cannot read {what}: {reason[:300]} (a damaged or unsupported Parquet file?)") from None


class _held_stderr(contextlib.AbstractContextManager):
    """File descriptor 2 redirected to a temporary file until the block ends; then what was
    written is copied to the real standard error, unless :meth:`drop` was called."""

    def __enter__(self) -> "_held_stderr":
        self.kept = True
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            self.saved = None  # no standard error to hold back
            return self
        self.file = tempfile.TemporaryFile()
        os.dup2(self.file.fileno(), 2)
        return self

    def drop(self) -> None:
        self.kept = False

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        with self.file:
            if self.kept and self.file.tell():
                self.file.seek(0)
                with contextlib.suppress(OSError):
                    os.write(2, self.file.read(1 << 20))
