"""Tables a process has parsed, kept for its next run on the same file: a sweep's trials.

Every trial of a sweep is an ordinary training run, and a worker runs many of them on the same
data file. The parse cache on disk (parse_cache.py) serves files of 32 MiB and more; below that
size every trial parsed the file again — 18 ms of a 140 ms digits trial. A worker's memo keeps
those tables (and Parquet files', which have no disk cache, and any table under
``data.cache: off``) in memory, up to :data:`MEMO_BYTES` in all, the least recently used
dropped first.

A table is the file's only while the file is unchanged: the key holds the file's fingerprint
(size, modification time, a hash of both ends: files/datacache.py), taken before and after the
parse, and a file that changed during the parse is not kept (and once the changed file's table
is kept, its earlier state's goes). An edit that keeps the size, the time and both ends of the
file is not seen, as by the parse cache. Each run gets a copy of its own, because training
scales its rows in place. A parse that met text in a numeric column fails again from memory: that is how
training finds a feature holding text, before it reads the file again with that column as text.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from nncli.files.datacache import fingerprint
from nncli.tabular.parse import NotANumber
from nncli.tabular.source import CsvColumns

# What a worker keeps, values and text cells counted: a 1,797 × 65 digits table is 0.9 MB, so
# this holds dozens of small files, or one table of a Parquet file of a few million cells.
MEMO_BYTES = 64 << 20


@dataclass
class _Kept:
    table: CsvColumns | None  # the parse's table, or None when it failed:
    # what it raised — a feature holding text (training reads the file again with it as text) — as
    # NotANumber's arguments: the exception itself would keep the parse's frames, and its matrix, alive
    error: tuple[str, str, str] | None
    nbytes: int


class TableMemo:
    """``read(path, request, parse)``: ``parse()``'s table, from memory when this process
    parsed the unchanged file for the same ``request`` (hashable: what the parser was asked);
    a parse that met a cell that is not a number raises that again, as the file would (other
    errors, such as a table too big for the memory free now, are not kept)."""

    def __init__(self, budget: int = MEMO_BYTES):
        self.budget = budget
        self._kept: OrderedDict[tuple, _Kept] = OrderedDict()

    def read(self, path: Path, request: tuple, parse: Callable[[], CsvColumns]) -> CsvColumns:
        try:
            before = _print(path)
        except OSError:  # (not a file we can stat and read twice: parsed as always, and the parse says why)
            return parse()
        key = (str(path), request, before)
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            if kept.error is not None:
                raise NotANumber(*kept.error)
            return _copy(kept.table)
        try:
            table = parse()
        except NotANumber as exc:
            self._keep(key, path, _Kept(None, (str(exc), exc.column, exc.value), 0))
            raise
        size = _size(table)
        if size <= self.budget:
            self._keep(key, path, _Kept(_copy(table), None, size))  # (the caller's table is theirs to change)
        return table

    @property
    def held_bytes(self) -> int:
        return sum(kept.nbytes for kept in self._kept.values())

    def _keep(self, key: tuple, path: Path, kept: _Kept) -> None:
        """Keep what the parse of the file as ``key`` saw it gave, unless the file changed meanwhile;
        what an earlier state of the file gave for the same request goes."""
        try:
            if _print(path) != key[2]:
                return
        except OSError:
            return
        for old in [old for old in self._kept if old[:2] == key[:2]]:
            del self._kept[old]
        self._kept[key] = kept
        while self.held_bytes > self.budget:
            self._kept.popitem(last=False)


def _print(path: Path) -> tuple:
    return tuple(sorted(fingerprint(Path(path)).items()))


def _size(table: CsvColumns) -> int:
    """The table's bytes in memory: its values and its text columns' distinct cells."""
    text = sum(sys.getsizeof(values) + sum(map(sys.getsizeof, values)) for values in table.text_values.values())
    return table.values.nbytes + text


def _copy(table: CsvColumns) -> CsvColumns:
    """The table with values, header and codes of its own (a Parquet file's stays a ParquetColumns)."""
    return replace(table, header=list(table.header), values=table.values.copy(),
                   text_values={name: list(values) for name, values in table.text_values.items()})
