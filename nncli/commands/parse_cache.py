"""Which parse cache a run reads or writes (`data.cache`), and what it tells the user.

``auto`` caches CSV files of ``CACHE_FROM_BYTES`` or more in ``$XDG_CACHE_HOME/nncli`` (else
``~/.cache/nncli``): below that size a parse takes a fraction of a second and a cache would only
fill the disk. A folder caches every file there; ``off`` never reads or writes one. A cache
that cannot be used is a warning and a fresh parse — never an error, never trusted — and a
cache that cannot be written (read-only folder, full disk) is a warning too: the run goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.budgets import human_bytes
from nncli.config import Config, resolve_path
from nncli.errors import NncliError, escaped
from nncli.files.datacache import (
    SPARE_DISK_BYTES,
    CacheProblem,
    NoCache,
    ParseRequest,
    default_location,
    fingerprint,
    read_cache,
    room_for,
    write_cache,
)
from nncli.files.npz import meta_chars
from nncli.tabular.source import CsvColumns, read_csv

CACHE_FROM_BYTES = 32 << 20  # the size from which polars parses too (nncli.tabular.fast.FAST_PATH_BYTES)


@dataclass
class CacheUse:
    """What happened to one file's cache: for the --json document, and a warning if it went wrong."""

    source: str
    cache: str
    outcome: str  # "read", "written", "not written", "ignored" (a dry run does not write)
    warning: str = ""

    def to_json(self) -> dict:
        return {"source": self.source, "cache": self.cache, "outcome": self.outcome}


@dataclass
class ParseCache:
    """``read(path, text_columns, dtype)``: :func:`nncli.tabular.source.read_csv` through the
    cache the config asks for. ``writes``: False for a dry run (it reads a cache, never writes one)."""

    config: Config
    writes: bool = True
    uses: list[CacheUse] = field(default_factory=list)

    def read(self, path: Path, text_columns=(), dtype=np.float64) -> CsvColumns:
        request = ParseRequest(tuple(text_columns), np.dtype(dtype).name)
        location = self._location(path, request)
        if location is None:
            return read_csv(path, text_columns, dtype)
        source_print = fingerprint(path)
        try:
            cached = read_cache(location, source_print, request, meta_chars())
        except CacheProblem as problem:
            unusable = "" if isinstance(problem, NoCache) else str(problem)
        else:
            self.uses.append(CacheUse(str(path), str(location), "read"))
            return CsvColumns(path, cached.header, cached.values, cached.text_values)
        table = read_csv(path, text_columns, dtype)
        self.uses.append(self._write(location, path, source_print, request, table, unusable))
        return table

    def _location(self, path: Path, request: ParseRequest) -> Path | None:
        setting = self.config.data.cache
        if setting == "off":
            return None
        if setting == "auto":
            if path.stat().st_size < CACHE_FROM_BYTES:
                return None
            folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nncli"
        else:
            folder = resolve_path(self.config, "data.cache", setting)
        return default_location(path, request, folder)

    def _write(self, location: Path, path: Path, source_print: dict, request: ParseRequest, table: CsvColumns,
               unusable: str) -> CacheUse:
        """Write the cache of a table just parsed; ``unusable``: why the cache there was not read."""
        shown = escaped(str(location))
        ignored = f"parse cache {shown} ignored ({unusable}); the CSV file was parsed again" if unusable else ""
        if not self.writes:
            return CacheUse(str(path), str(location), "ignored" if unusable else "not written", ignored)
        if fingerprint(path) != source_print:
            why = "the CSV file changed while it was read"
        else:
            try:
                location.parent.mkdir(parents=True, exist_ok=True)
                if room_for(location, table.values.nbytes):
                    write_cache(location, source_print, request, table.header, table.values, table.text_values)
                    return CacheUse(str(path), str(location), "written", ignored)
                why = f"less than {human_bytes(table.values.nbytes + SPARE_DISK_BYTES)} free on its disk"
            except OSError as exc:
                why = exc.strerror or str(exc)
            except NncliError as exc:  # atomic_write's OutputError: the message names the file
                why = str(exc)
        warning = "; ".join(filter(None, [ignored, f"parse cache {shown} not written: {why}"]))
        return CacheUse(str(path), str(location), "not written", warning)
