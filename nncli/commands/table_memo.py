"""Tables a process has parsed, kept for its next run on the same file: a sweep's trials.

Every trial of a sweep is an ordinary training run, and a worker runs many of them on the same
data file. The parse cache on disk (parse_cache.py) serves files of 32 MiB and more; below that
size every trial parsed the file again — 18 ms of a 140 ms digits trial. A worker's memo keeps
those tables (and Parquet files', which have no disk cache, and any table under
``data.cache: off``) in memory, up to :data:`MEMO_BYTES` in all, the least recently used
dropped first.

A table is the file's only while the file is unchanged: the key holds the file's fingerprint
(size, modification time, a hash of both ends: files/datacache.py), taken before and after the
parse, and a file that changed during the parse is not kept. Each run gets a copy of its own,
because training scales its rows in place.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Callable

from nncli.files.datacache import fingerprint
from nncli.tabular.source import CsvColumns

# What a worker keeps, in values' bytes: a 1,797 × 65 digits table is 0.9 MB, so this holds
# dozens of small files, or one table of a Parquet file of a few million cells.
MEMO_BYTES = 64 << 20


class TableMemo:
    """``read(path, request, parse)``: ``parse()``'s table, from memory when this process
    parsed the unchanged file for the same ``request`` (hashable: what the parser was asked)."""

    def __init__(self, budget: int = MEMO_BYTES):
        self.budget = budget
        self._tables: OrderedDict[tuple, CsvColumns] = OrderedDict()

    def read(self, path: Path, request: tuple, parse: Callable[[], CsvColumns]) -> CsvColumns:
        try:
            before = _print(path)
        except OSError:  # (not a file we can stat and read twice: parsed as always, and the parse says why)
            return parse()
        key = (str(path), request, before)
        kept = self._tables.get(key)
        if kept is not None:
            self._tables.move_to_end(key)
            return _copy(kept)
        table = parse()
        try:
            unchanged = _print(path) == before
        except OSError:
            unchanged = False
        if unchanged and table.values.nbytes <= self.budget:
            self._tables[key] = _copy(table)  # (the caller's table is theirs to change)
            self._within_budget()
        return table

    @property
    def held_bytes(self) -> int:
        return sum(table.values.nbytes for table in self._tables.values())

    def _within_budget(self) -> None:
        while self.held_bytes > self.budget:
            self._tables.popitem(last=False)


def _print(path: Path) -> tuple:
    return tuple(sorted(fingerprint(Path(path)).items()))


def _copy(table: CsvColumns) -> CsvColumns:
    """The table with values, header and codes of its own (a Parquet file's stays a ParquetColumns)."""
    return replace(table, header=list(table.header), values=table.values.copy(),
                   text_values={name: list(values) for name, values in table.text_values.items()})
