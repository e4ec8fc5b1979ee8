"""Which parse cache a run reads or writes (`data.cache`), and what it tells the user.

``auto`` caches CSV files of ``CACHE_FROM_BYTES`` or more in ``$XDG_CACHE_HOME/nncli`` (else
``~/.cache/nncli``): below that size a parse takes a fraction of a second and a cache would only
fill the disk. A folder caches every file there; ``off`` never reads or writes one. A cache
that cannot be used is a warning and a fresh parse — never an error, never trusted — and a
cache that cannot be written (read-only folder, full disk) is a warning too: the run goes on.

A Parquet file is never cached: it is already binary and columnar (read whole about 2.4 times
faster than the CSV of the same rows is parsed), and a cache is checked against its CSV
(at least two bytes of text a value, a missing cell's text found by its line), which a
compressed file cannot back. So it is always read into memory; training from disk
(``data.in_memory: false``) needs a CSV file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.budgets import human_bytes
from nncli.commands.table_memo import TableMemo
from nncli.config import Config, resolve_path
from nncli.errors import DataError, NncliError, OutputError, escaped
from nncli.files.datacache import (
    SPARE_DISK_BYTES,
    CachedTable,
    CacheProblem,
    CacheWriter,
    NoCache,
    ParseRequest,
    default_location,
    fingerprint,
    read_cache,
    room_for,
    write_cache,
)
from nncli.files.npz import meta_chars
from nncli.tabular.fast import FAST_PATH_BYTES
from nncli.tabular.outofcore import TableOnDisk
from nncli.tabular.parse import read_header
from nncli.tabular.source import CsvColumns, open_csv, read_csv
from nncli.tabular.tables import is_parquet, read_table

CACHE_FROM_BYTES = FAST_PATH_BYTES  # below it a parse takes a fraction of a second (and polars is not used)


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
    """``read(path, text_columns, dtype, missing_values)``: :func:`nncli.tabular.source.read_csv`
    through the cache the config asks for (a cache parsed with other text columns, dtype or
    missing-cell tokens is another cache). ``writes``: False for a dry run (it reads a cache,
    never writes one). ``memo``: the process's tables parsed before (a sweep's worker), for the
    files this cache does not hold: small CSV files, Parquet files, or any with ``data.cache: off``."""

    config: Config
    writes: bool = True
    uses: list[CacheUse] = field(default_factory=list)
    memo: TableMemo | None = None

    def read(self, path: Path, text_columns=(), dtype=np.float64, missing_values=(), skip=()) -> CsvColumns:
        request = ParseRequest(tuple(text_columns), np.dtype(dtype).name, tuple(missing_values))
        if is_parquet(path):  # (never cached: see the module's docstring; `skip`: its columns left undecoded)
            return self._parsed(path, (request, tuple(sorted(skip))),
                                lambda: read_table(path, text_columns, dtype, missing_values, skip))
        location = self._location(path, request)
        if location is None:
            return self._parsed(path, (request, ()), lambda: read_csv(path, text_columns, dtype, missing_values))
        source_print = fingerprint(path)
        try:
            cached = read_cache(location, source_print, request, meta_chars(), read_header(path))
        except CacheProblem as problem:
            unusable = "" if isinstance(problem, NoCache) else str(problem)
        else:
            self.uses.append(CacheUse(str(path), str(location), "read"))
            return CsvColumns(path, cached.header, cached.values, cached.text_values)
        table = read_csv(path, text_columns, dtype, missing_values)
        self.uses.append(self._write(location, path, source_print, request, table, unusable))
        return table

    def _parsed(self, path: Path, request: tuple, parse) -> CsvColumns:
        """``parse()``, or the memo's table of the same file and request (the parser's, and the skipped columns)."""
        return parse() if self.memo is None else self.memo.read(path, request, parse)

    def on_disk(self, path: Path, text_columns=(), dtype=np.float64, missing_values=(), skip=()) -> CsvColumns:
        """The CSV's table on disk, for data bigger than memory: its values a
        :class:`~nncli.tabular.outofcore.TableOnDisk` of the cache read (checked as they are
        used), else of one written from the CSV streamed a chunk at a time (a dry run writes
        it too: the file has to be read somewhere). With ``missing_values``, NaN (a missing cell)
        may be among its values (:attr:`nncli.files.datacache.CachedTable.missing_values`).
        A Parquet file has no parse cache, so it cannot be read from disk: a ConfigError."""
        if is_parquet(path):
            raise self.config.error("data.in_memory", f"training from disk reads a CSV file's parse cache, and {path} is a "
                                    "Parquet file, which nncli reads into memory; set data.in_memory: true (or auto)")
        request = ParseRequest(tuple(text_columns), np.dtype(dtype).name, tuple(missing_values))
        location = self._location(path, request, required=True)
        source_print, header = fingerprint(path), read_header(path)
        try:
            cached = read_cache(location, source_print, request, meta_chars(), header, load=False)
        except CacheProblem as problem:
            unusable = "" if isinstance(problem, NoCache) else str(problem)
        else:
            self.uses.append(CacheUse(str(path), str(location), "read"))
            return _on_disk(path, cached)
        size = path.stat().st_size  # a float32 table of short integers is about the CSV's size
        try:
            location.parent.mkdir(parents=True, exist_ok=True)
            if not room_for(location, size):
                raise self.config.error("data.cache", f"training from disk needs the parse cache of {path}, about "
                                        f"{human_bytes(size)}, and {location.parent} has less free space; choose a folder with room")
            stream_to_cache(path, location, source_print, request)
        except (OSError, OutputError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise self.config.error("data.cache", f"cannot write the parse cache {escaped(str(location))} ({why}); "
                                    "training from disk needs it: choose a folder nncli can write") from None
        if fingerprint(path) != source_print:
            raise DataError(f"{path}: the CSV file changed while it was read; run again")
        self.uses.append(CacheUse(str(path), str(location), "written", _ignored(location, unusable)))
        try:
            return _on_disk(path, read_cache(location, source_print, request, meta_chars(), header, load=False))
        except CacheProblem as problem:  # replaced by another run in the meantime, say
            raise DataError(f"{path}: its parse cache {escaped(str(location))} changed as it was written ({problem}); run again") from None

    def cached_bytes(self, path: Path, text_columns=(), dtype=np.float64, missing_values=()) -> int | None:
        """The size of the file's cache if there is one (unchecked: for an estimate)."""
        if is_parquet(path):
            return None
        try:
            location = self._location(path, ParseRequest(tuple(text_columns), np.dtype(dtype).name, tuple(missing_values)))
            return None if location is None else location.stat().st_size
        except OSError:
            return None

    def _location(self, path: Path, request: ParseRequest, required: bool = False) -> Path | None:
        """Where the file's cache is, or None for no cache; ``required``: data bigger than
        memory, read from its cache whatever the file's size."""
        setting = self.config.data.cache
        if setting == "off":
            if required:
                raise self.config.error("data.cache", "is off, but training from disk (data.in_memory: false) reads the parse cache; "
                                        "set data.cache: auto or a folder")
            return None
        if setting == "auto":
            if path.stat().st_size < CACHE_FROM_BYTES and not required:
                return None
            folder = user_cache_folder()
        else:
            folder = resolve_path(self.config, "data.cache", setting)
        return default_location(path, request, folder)

    def _write(self, location: Path, path: Path, source_print: dict, request: ParseRequest, table: CsvColumns,
               unusable: str) -> CacheUse:
        """Write the cache of a table just parsed; ``unusable``: why the cache there was not read."""
        ignored = _ignored(location, unusable)
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
        warning = "; ".join(filter(None, [ignored, f"parse cache {escaped(str(location))} not written: {why}"]))
        return CacheUse(str(path), str(location), "not written", warning)


def _ignored(location: Path, unusable: str) -> str:
    """The warning for a cache that was there but could not be used (none when there was none)."""
    return f"parse cache {escaped(str(location))} ignored ({unusable}); the CSV file was parsed again" if unusable else ""


def user_cache_folder() -> Path:
    """``$XDG_CACHE_HOME/nncli``, else ``~/.cache/nncli`` (a relative XDG_CACHE_HOME is ignored,
    as the XDG base directory specification asks)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "nncli"


def _on_disk(path: Path, cached: CachedTable) -> CsvColumns:
    table = TableOnDisk(cached.file, cached.offset, cached.shape, cached.dtype, str(path))
    return CsvColumns(path, cached.header, table, cached.text_values)


STREAM_CHUNK_BYTES = 8 << 20  # CSV text parsed at a time when streaming a file into its cache


class _Widen(Exception):
    """A value that is not exactly a float32 turned up: the cache is written again in float64."""


def stream_to_cache(path: Path, location: Path, source_print: dict, request: ParseRequest) -> None:
    """Write the cache of a CSV file too big to parse whole, a chunk at a time: the same
    table :func:`nncli.tabular.source.read_csv` would give (text cells coded in order of first
    appearance, NaN for a missing cell; float32 when asked for and every value is exactly one —
    if one turns out not to be, the file is streamed again into float64)."""
    narrow = request.dtype == "float32"
    try:
        _stream(path, location, source_print, request, np.float32 if narrow else np.float64)
    except _Widen:
        _stream(path, location, source_print, request, np.float64)


def _stream(path: Path, location: Path, source_print: dict, request: ParseRequest, dtype) -> None:
    text_columns = list(request.text_columns)
    with open_csv(path, STREAM_CHUNK_BYTES) as stream:
        positions = [stream.positions[name] for name in text_columns]
        seen: list[dict[str, int]] = [{} for _ in text_columns]
        with CacheWriter(location, None, len(stream.header), dtype, missing=bool(request.missing_values)) as writer:
            for chunk in stream.chunks(text_columns, missing_values=request.missing_values):
                values = chunk.values
                for column, name, codes in zip(positions, text_columns, seen):
                    # The chunk's codes count from its own first cell: renumber them in the file's order
                    # (a missing cell, NaN, stays NaN: the remap's last entry).
                    remap = np.array([codes.setdefault(text, len(codes)) for text in chunk.text[name]] + [np.nan])
                    chunk_codes = values[:, column]
                    if request.missing_values:
                        chunk_codes = np.where(np.isnan(chunk_codes), len(remap) - 1, chunk_codes)
                    values[:, column] = remap[chunk_codes.astype(np.intp)]
                if dtype == np.float32:
                    with np.errstate(over="ignore"):  # (a value beyond float32's range widens the table)
                        narrowed = values.astype(np.float32)
                    if not np.array_equal(narrowed, values, equal_nan=bool(request.missing_values)):
                        raise _Widen()
                    values = narrowed
                writer.write_rows(values)
            if writer.rows_written == 0:
                raise DataError(f"{path}: has a header but no data rows")
            writer.finish(source_print, request, stream.header, {name: list(codes) for name, codes in zip(text_columns, seen)})
