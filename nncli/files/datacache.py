"""The parse cache: a CSV file's parsed table on disk, to be read back instead of parsed.

One file, written atomically (temporary file, fsync, rename), laid out as::

    .npy header (padded to HEADER_BYTES)  the (rows, columns) values, C order, float32 or float64
    the values                            (so ``np.load`` of the file gives the table)
    JSON metadata                         source fingerprint, parse request, header, text values
    trailer                               JSON length (8 bytes, little-endian) + MAGIC

A cache is never trusted: the trailer, the metadata (bounded like a model file's, see
:func:`nncli.files.npz.parse_json`), the ``.npy`` header (dtype, order, shape) and the file's
exact size must all agree, and the table may not hold more values than its CSV has room for,
before anything is read; the source's fingerprint (size,
modification time, a hash of its first and last MiB) and the parse request must match the
caller's, its column names the CSV's; every value is checked finite and every text column's
codes those of a parse as the table is read. A table parsed with missing-cell tokens holds NaN
for a missing cell (and nothing else: never an infinity); its cache records how many there are
and a hash of where (:class:`MissingCells`), so that a NaN anywhere else is damage as any value
that is not finite is, and none of its text values may be a token. One parsed without tokens
holds no NaN.
Anything else is a :class:`CacheProblem`, which the caller reports as a warning before parsing
the CSV again. Nothing here is unpickled: ``.npy`` headers are read by NumPy's literal parser.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from nncli import __version__
from nncli.core.preprocess import parsed_codes
from nncli.files.atomic import atomic_write, remove_stale_temporaries
from nncli.files.npz import parse_json

FORMAT = 1
MAGIC = b"NNCLI-CACHE-1\n"
HEADER_BYTES = 4096  # the .npy header, padded: room for any shape, and page-aligned values
FINGERPRINT_BYTES = 1 << 20  # hashed at each end of the source file
CHECK_BLOCK_BYTES = 16 << 20  # values checked finite this much at a time (bounded temporaries)
SPARE_DISK_BYTES = 256 << 20  # a cache is not written if it would leave less free space than this
_DTYPES = {"<f4": np.dtype("<f4"), "<f8": np.dtype("<f8")}


class CacheProblem(Exception):
    """A cache that cannot be used (stale, foreign or damaged): why, in a few words."""


class NoCache(CacheProblem):
    """No cache of this source as it is now (none yet, the source changed, another nncli
    version wrote it): nothing to warn about, the cache is simply made anew."""


@dataclass(frozen=True)
class ParseRequest:
    """What a table was parsed for: the same file read for another purpose is another table."""

    text_columns: tuple[str, ...]
    dtype: str  # the dtype asked of the parser ("float32": float32 where exact)
    missing_values: tuple[str, ...] = ()  # the cells read as missing (NaN), as the parser compares them

    def __post_init__(self):
        # One request however the tokens are listed (the parser strips them, order and repeats do not matter).
        object.__setattr__(self, "missing_values", tuple(sorted({token.strip() for token in self.missing_values})))

    def to_json(self) -> dict:
        # (without tokens, the document of the caches written before missing cells existed)
        tokens = {"missing_values": list(self.missing_values)} if self.missing_values else {}
        return {"text_columns": list(self.text_columns), "dtype": self.dtype, **tokens}


@dataclass
class CachedTable:
    """A checked cache: its metadata, and where its values lie in the file checked (``file``,
    left open: read through it, never the name again, which another run may have replaced).
    ``values``: the table, mapped copy-on-write and checked (``read_cache(load=True)``)."""

    header: list[str]
    text_values: dict[str, list[str]]
    file: BinaryIO
    offset: int
    shape: tuple[int, int]
    dtype: np.dtype
    values: np.ndarray | None = None
    missing_values: tuple[str, ...] = ()  # the request's tokens: NaN (a missing cell) may be among the values
    missing: dict | None = None  # then where: MissingCells(...).to_json() of the values as written


def fingerprint(source: Path) -> dict:
    """Size, modification time and a hash of the first and last MiB: a changed file changes
    it (an edit that keeps size, time and both ends is not caught — documented)."""
    stat = source.stat()
    digest = hashlib.blake2b(digest_size=16)
    with open(source, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if stat.st_size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, stat.st_size - FINGERPRINT_BYTES))
            digest.update(f.read(FINGERPRINT_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "blake2b": digest.hexdigest()}


def default_location(source: Path, request: ParseRequest, folder: Path) -> Path:
    """The cache file of ``source`` in ``folder``: one per source path and request, so a
    changed source replaces its cache instead of adding one."""
    key = hashlib.sha256(repr((str(source.resolve()), request.to_json())).encode()).hexdigest()[:16]
    stem = os.fsencode(source.stem)[:100].decode(errors="ignore") or "data"  # (names: at most 255 bytes)
    return folder / f"{stem}-{key}.nncli-cache"


def room_for(path: Path, values_bytes: int) -> bool:
    """Whether the disk holding ``path`` has room for a cache of this size and some to spare."""
    try:
        return shutil.disk_usage(path.parent).free >= values_bytes + SPARE_DISK_BYTES
    except OSError:
        return False


def write_cache(path: Path, source_print: dict, request: ParseRequest, header: list[str], values: np.ndarray,
                text_values: dict[str, list[str]]) -> None:
    """The table as a cache file, atomically (an existing cache is replaced whole)."""
    with CacheWriter(path, len(values), values.shape[1], values.dtype, missing=bool(request.missing_values)) as writer:
        writer.write_rows(values)
        writer.finish(source_print, request, header, text_values)


class MissingCells:
    """Where a table's NaN (its missing cells) are, rows added in order: how many, and a hash
    of their positions (row-major indices), whatever blocks the rows come in."""

    def __init__(self, columns: int):
        self.columns, self.rows, self.count = columns, 0, 0
        self._digest = hashlib.blake2b(digest_size=16)

    def add(self, rows: np.ndarray) -> None:
        positions = np.flatnonzero(np.isnan(rows))  # (a clean block costs one pass)
        if len(positions):
            self.count += len(positions)
            self._digest.update((positions + self.rows * self.columns).astype("<i8").tobytes())
        self.rows += len(rows)

    def to_json(self) -> dict:
        return {"cells": self.count, "blake2b": self._digest.hexdigest()}


class CacheWriter:
    """A cache written a block of rows at a time; ``rows`` None: as many as come (the header
    is then written last, over its placeholder). ``missing``: the table may hold NaN (missing
    cells), whose places the metadata records (:class:`MissingCells`)."""

    def __init__(self, path: Path, rows: int | None, columns: int, dtype, missing: bool = False):
        self.path, self.rows, self.columns = path, rows, columns
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.missing = MissingCells(columns) if missing else None
        self.rows_written = 0
        self._writing = None
        self._file: BinaryIO | None = None

    def __enter__(self) -> "CacheWriter":
        remove_stale_temporaries(self.path)  # a writer killed outright (kill -9, an abort) left its temporary file
        # A cache replaces whatever else is at its name — a link (never the file it points to),
        # a FIFO or a device (atomic_write would write into those, as into -o /dev/stdout).
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            self.path.unlink()
        self._writing = atomic_write(self.path)
        self._file = self._writing.__enter__()
        self._file.write(_npy_header((self.rows or 0, self.columns), self.dtype))
        return self

    def write_rows(self, rows: np.ndarray) -> None:
        if rows.shape[1:] != (self.columns,) or (self.rows is not None and self.rows_written + len(rows) > self.rows):
            raise ValueError(f"rows of shape {rows.shape} do not fit a cache of {self.rows} × {self.columns}")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if self.missing is not None:
            self.missing.add(rows)
        rows.tofile(self._file)
        self.rows_written += len(rows)

    def finish(self, source_print: dict, request: ParseRequest, header: list[str], text_values: dict[str, list[str]]) -> None:
        if self.rows is None:
            end = self._file.tell()
            self._file.seek(0)
            self._file.write(_npy_header((self.rows_written, self.columns), self.dtype))
            self._file.seek(end)
        elif self.rows_written != self.rows:
            raise ValueError(f"{self.rows_written} rows written to a cache of {self.rows}")
        if bool(request.missing_values) != (self.missing is not None):
            raise ValueError("a cache of a table with missing cells records where they are (CacheWriter(missing=True))")
        meta = {"format": FORMAT, "nncli": __version__, "source": source_print, "request": request.to_json(),
                "header": header, "text_values": text_values}
        if self.missing is not None:
            meta["missing"] = self.missing.to_json()
        text = _json_bytes(meta)
        self._file.write(text + len(text).to_bytes(8, "little") + MAGIC)

    def __exit__(self, *exc) -> bool | None:
        return self._writing.__exit__(*exc)


def _json_bytes(meta: dict) -> bytes:
    return json.dumps(meta, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _npy_header(shape: tuple[int, int], dtype: np.dtype) -> bytes:
    """A version 1.0 ``.npy`` header (magic, 2-byte length, dict literal) padded with spaces to
    HEADER_BYTES, as NumPy pads its own headers to 64 bytes."""
    text = repr({"descr": dtype.str, "fortran_order": False, "shape": shape}).encode("latin1")
    prefix = np.lib.format.magic(1, 0)
    padding = HEADER_BYTES - len(prefix) - 2 - len(text) - 1
    if padding < 0:
        raise ValueError(f"a .npy header for shape {shape} does not fit {HEADER_BYTES} bytes")
    return prefix + (HEADER_BYTES - len(prefix) - 2).to_bytes(2, "little") + text + b" " * padding + b"\n"


def read_cache(path: Path, source_print: dict, request: ParseRequest, max_meta_chars: int, header: list[str],
               load: bool = True) -> CachedTable:
    """The cached table of a source with this fingerprint, request and ``header`` (the CSV's
    column names), checked (see the module's docstring), or :class:`CacheProblem`. ``load``:
    map the values copy-on-write and check them (:func:`_loaded`); False: the caller reads and
    checks them itself, a window at a time (data bigger than memory, never mapped)."""
    try:  # (without blocking: a FIFO at the name must not hang the open; fstat then refuses it)
        f = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    except FileNotFoundError:
        raise NoCache() from None
    except OSError as exc:
        raise CacheProblem(f"cannot read it: {exc.strerror or exc}") from None
    try:
        table = _checked(path, f, source_print, request, max_meta_chars, header)
        if load:
            table.values = _loaded(table)
            f.close()
        return table
    except OSError as exc:
        f.close()
        raise CacheProblem(f"cannot read it: {exc.strerror or exc}") from None
    except BaseException:
        f.close()
        raise


def _checked(path: Path, f: BinaryIO, source_print: dict, request: ParseRequest, max_meta_chars: int,
             header: list[str]) -> CachedTable:
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode):  # (opened without blocking: a FIFO is refused at the open below)
        raise CacheProblem("not a regular file")
    meta, dtype, shape, offset = _layout(path, f, info.st_size, max_meta_chars)
    if meta.get("source") != source_print or meta.get("nncli") != __version__:
        raise NoCache("the CSV file changed since the cache was written, or another nncli version wrote it")
    # A CSV value takes at least two bytes (a digit and a comma or line end), one when it may be
    # an empty cell (a missing one): a cache cannot hold more values than its CSV file has room
    # for (the budget that bounds what it may ask).
    value_bytes = 1 if "" in request.missing_values else 2
    if shape[0] * shape[1] * value_bytes > source_print["size"]:
        raise CacheProblem(f"a table of {shape[0]:,} × {shape[1]:,} values; its CSV file has room for fewer")
    if meta.get("request") != request.to_json():
        raise CacheProblem("written for another reading of the file")
    if meta.get("header") != header or len(header) != shape[1]:
        raise CacheProblem("its column names are not the CSV file's")
    text_values = meta.get("text_values")
    tokens = set(request.missing_values)
    if not (isinstance(text_values, dict) and set(text_values) == set(request.text_columns)
            and all(isinstance(v, list) and all(isinstance(s, str) and s.strip() not in tokens for s in v)
                    and len(set(v)) == len(v) for v in text_values.values())):
        raise CacheProblem("its text values do not match its request")
    missing = meta.get("missing")
    if request.missing_values and not (isinstance(missing, dict) and set(missing) == {"cells", "blake2b"}
                                       and type(missing["cells"]) is int and isinstance(missing["blake2b"], str)):
        raise CacheProblem("it does not say where its missing cells are")
    return CachedTable(list(header), text_values, f, offset, shape, dtype, missing_values=request.missing_values,
                       missing=missing if request.missing_values else None)


def _layout(path: Path, f: BinaryIO, size: int, max_meta_chars: int) -> tuple[dict, np.dtype, tuple[int, int], int]:
    """The metadata, dtype, shape and data offset, once every size agrees with the file's."""
    tail = len(MAGIC) + 8
    if size < HEADER_BYTES + tail:
        raise CacheProblem("too short to be a cache")
    f.seek(size - tail)
    trailer = f.read(tail)
    if trailer[8:] != MAGIC:
        raise CacheProblem("not an nncli cache (no trailer)")
    meta_bytes = int.from_bytes(trailer[:8], "little")
    if meta_bytes > min(max_meta_chars * 4, size):  # (UTF-8: at most 4 bytes a character)
        raise CacheProblem(f"metadata of {meta_bytes:,} bytes")
    f.seek(0)
    try:
        if np.lib.format.read_magic(f) != (1, 0):
            raise CacheProblem("not a version 1.0 .npy table")
        shape, fortran, descr = np.lib.format.read_array_header_1_0(f)
    except ValueError as exc:
        raise CacheProblem(f"not a .npy table ({exc})") from None
    offset = f.tell()
    if descr.str not in _DTYPES or fortran or len(shape) != 2 or offset != HEADER_BYTES:
        raise CacheProblem(f"a table of {descr.str}, shape {shape}; expected 2-D float32 or float64 in C order")
    if shape[0] < 1 or shape[1] < 1:
        raise CacheProblem(f"a table of shape {shape}; nncli caches tables with rows")
    data_bytes = shape[0] * shape[1] * descr.itemsize
    if offset + data_bytes + meta_bytes + tail != size:
        raise CacheProblem("its size does not match its header (truncated?)")
    f.seek(offset + data_bytes)
    try:
        meta = parse_json(path, f.read(meta_bytes).decode("utf-8"), CacheProblem)
    except UnicodeDecodeError:
        raise CacheProblem("metadata is not UTF-8") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CacheProblem("another cache format")
    return meta, _DTYPES[descr.str], shape, offset


def _loaded(table: CachedTable) -> np.ndarray:
    """The values, mapped copy-on-write from the checked file (its pages come straight from the
    page cache, and whatever the caller writes — the split writes the training rows over the
    table — stays in this process), checked a block at a time: every value finite (or NaN where
    the cache says a cell was missing, when the table was parsed with tokens), and every text
    column's codes as a parse makes them (:func:`text_codes_parsed`)."""
    try:
        values = np.memmap(table.file, dtype=table.dtype, mode="c", offset=table.offset, shape=table.shape)
    except (OSError, ValueError) as exc:  # ENOMEM: no address space left for the map (ulimit -v)
        raise CacheProblem(f"cannot map it: {getattr(exc, 'strerror', None) or exc}") from None
    missing = MissingCells(table.shape[1]) if table.missing_values else None
    for block in row_blocks(values):
        if not finite_or_missing(block, missing is not None):
            raise CacheProblem("it holds values that are not finite (damaged)")
        if missing is not None:
            missing.add(block)
    if missing is not None and missing.to_json() != table.missing:
        if missing.count < table.missing["cells"]:
            raise CacheProblem("its missing cells are not those of its parse (damaged)")
        raise CacheProblem("it holds values that are not finite (damaged)")  # a NaN where no cell was missing
    for name, distinct in table.text_values.items():
        if not text_codes_parsed(values[:, table.header.index(name)], len(distinct), missing):
            raise CacheProblem("its text codes are not those of a parse (damaged)")
    return values


def finite_or_missing(values: np.ndarray, missing: bool) -> bool:
    """Every value finite; with ``missing`` (a table parsed with missing-cell tokens), NaN too,
    never an infinity."""
    return not np.isinf(values).any() if missing else bool(np.isfinite(values).all())


def text_codes_parsed(codes: np.ndarray, count: int, missing: bool) -> bool:
    """A text column's codes as a parse gives them (:func:`nncli.core.preprocess.parsed_codes`);
    with ``missing``, NaN for a missing cell among them (a column of missing cells only has no
    text values)."""
    if missing:
        codes = codes[~np.isnan(codes)]
        if not len(codes):
            return count == 0
    return parsed_codes(codes, count)


def row_blocks(values: np.ndarray, block_bytes: int = CHECK_BLOCK_BYTES) -> Iterator[np.ndarray]:
    rows = max(1, block_bytes // max(1, values.shape[1] * values.itemsize))
    for start in range(0, len(values), rows):
        yield values[start : start + rows]
