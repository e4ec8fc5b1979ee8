"""Safe ``.npz`` archives with a JSON ``meta`` entry: the format of model files and checkpoints.

Writing is atomic (temporary file, fsync, rename).  Reading never unpickles and never trusts a
size it has not checked: the file's signature first (a pickle is named as such), then the zip's
directory (how many members, before Python's zipfile parses it), then for each member its zip
entry (no encryption, stored or deflated only, its data inside the file, a plausible compression
ratio) and its ``.npy`` header — dtype (no Python objects), declared shape (against what the
metadata implies, before anything is allocated) and that the entry holds exactly the bytes the
header describes — and only then the data, with ``allow_pickle=False``.  The JSON metadata is
bounded in characters and in values before it is parsed.  The limits are listed, with their
reasons, in docs/model-file.md ("Limits").
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from nncli.budgets import budget
from nncli.errors import reading
from nncli.files.atomic import atomic_write

# One array: 2**30 values, 4 GiB of float32 — the config's whole-network budget
# (config/budgets.py, MAX_NETWORK_BYTES) in a single matrix.
MAX_ARRAY_ELEMENTS = 1 << 30
# Members of the zip: a model has two per layer plus ``meta`` (config.MAX_LAYERS is 1,000), a
# checkpoint a few more per layer. Checked in the zip's own directory record before Python's
# zipfile parses the directory, which costs ~700 bytes per member (a 45 MB file of empty
# members would take 330 MB and seconds to open).
MAX_MEMBERS = 10_000
# The JSON metadata, in characters (config, feature and class names, one ~200-character
# record per epoch): 100,000 epochs (config.MAX_EPOCHS) of history are ~20 M characters.
# NNCLI_MAX_METADATA_BYTES raises it (e.g. 64M).
MAX_META_CHARS = 32 << 20
# Values in the metadata (numbers, strings, lists, mappings): parsing makes a Python object of
# each, ~50-200 bytes; nncli's metadata averages ~20 characters per value, so one value per 16
# characters of the budget (2 M values by default) leaves room for any file nncli writes while
# keeping a crafted one (`[{},{},…]`, 3 characters a value) to a few hundred MB of memory.
CHARS_PER_VALUE = 16
# Digits of a JSON integer: beyond ~308 an integer cannot even be shown as a float (nncli's
# largest are random-generator states of 39 digits).
MAX_INT_DIGITS = 300
# Compression: trained float weights deflate to about 1.1:1; an entry that inflates more than
# 20-fold is mostly one repeated byte (a "decompression bomb": 8 MB of deflated zeros declaring
# 8 GiB). Small entries may compress well (a zero bias vector), so the ratio applies from 1 MiB.
# nncli writes uncompressed archives (np.savez); re-save a compressed one with np.savez.
MAX_INFLATION = 20
INFLATION_FROM_BYTES = 1 << 20

_READABLE = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}  # as NumPy writes
_METHODS = {9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstandard", 95: "xz", 98: "ppmd", 99: "AES encryption"}

Meta = TypeVar("Meta")
Expected = dict[str, tuple[tuple, str]]  # array name -> (shape, dtype name)


def meta_chars() -> int:
    return budget("NNCLI_MAX_METADATA_BYTES", MAX_META_CHARS)


def write_archive(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    members = {"meta": np.array(json.dumps(meta, allow_nan=False)), **arrays}
    with atomic_write(path) as f:
        np.savez(f, **members)


def read_archive(
    path: Path,
    *,
    kind: str,
    error: type[Exception],
    parse_meta: Callable[[dict], Meta],
    expected: Callable[[Meta], Expected],
    misplaced: str = "",
) -> tuple[Meta, dict[str, np.ndarray]]:
    """The validated meta and the arrays ``expected(meta)`` names, each checked before loading.

    ``kind`` ("model file", "checkpoint") and ``error`` (the NncliError to raise) make the
    messages; ``parse_meta`` validates the JSON (format, version, fields) and may raise itself.
    ``misplaced`` is said when the file is data or a config (given in the wrong place, say).
    """
    path = Path(path)
    size = _check_signature(path, kind, error, misplaced)
    try:
        _check_directory(path, size, kind, error)
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if "meta.npy" not in members:
                raise error(f"{path}: a .npz archive without nncli metadata ('meta'); not an nncli {kind}")
            text = str(_read_member(path, size, archive, members["meta.npy"], "meta", None, None, error))
            data = parse_json(path, text, error)
            if not isinstance(data, dict):
                raise error(f"{path}: metadata is not a JSON object; not an nncli {kind}")
            meta = parse_meta(data)
            arrays = {}
            for name, (shape, dtype) in expected(meta).items():
                if int(np.prod(shape, dtype=np.float64)) > MAX_ARRAY_ELEMENTS:
                    raise error(f"{path}: array {name!r} declares shape {shape}; implausibly large")
                if f"{name}.npy" not in members:
                    raise error(f"{path}: array {name!r} is missing from the {kind}")
                arrays[name] = _read_member(path, size, archive, members[f"{name}.npy"], name, tuple(shape), dtype, error)
    except (zipfile.BadZipFile, zlib.error, EOFError, zipfile.LargeZipFile, struct.error, UnicodeDecodeError) as exc:
        raise error(f"{path}: damaged or truncated {kind} ({exc})") from None
    except NotImplementedError as exc:  # zipfile: "zip file version 10.9" (needs a newer unzip), and the like
        raise error(f"{path}: the {kind} uses a zip feature nncli cannot read ({exc}); not written by NumPy") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {kind}: {exc.strerror or exc}") from None
    return meta, arrays


def parse_json(path: Path, text: str, error: type[Exception]):
    """The metadata's JSON, refusing before parsing what would take more memory than its budget
    and while parsing what nncli never writes (NaN, 1e999, integers of hundreds of digits)."""
    limit = meta_chars()
    if len(text) > limit:
        raise error(f"{path}: metadata is {len(text):,} characters long; nncli reads at most {limit:,} "
                    "(NNCLI_MAX_METADATA_BYTES raises the limit)")
    # Every value but the first follows a comma or opens a list or mapping: an upper bound, with
    # no parsing (characters inside strings count too, which only overestimates).
    values = text.count(",") + text.count("[") + text.count("{") + 1
    if values > limit // CHARS_PER_VALUE:
        raise error(f"{path}: metadata holds about {values:,} values; nncli reads at most {limit // CHARS_PER_VALUE:,} "
                    "(NNCLI_MAX_METADATA_BYTES raises the limit)")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
        # A JSON escape such as \ud800 makes a lone surrogate: a string no output can encode.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return data
    except UnicodeEncodeError:
        raise error(f"{path}: metadata holds text that is not valid Unicode (a lone surrogate); not written by nncli") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: metadata is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except ValueError as exc:  # NaN, Infinity, 1e999 or a huge integer, which nncli never writes
        raise error(f"{path}: metadata holds {exc}; not written by nncli") from None
    except RecursionError:
        raise error(f"{path}: metadata nests too deeply; not written by nncli") from None


def _refuse_constant(name: str):
    raise ValueError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} (too large for a float)")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text):,} digits")
    return int(text)


SNIFF_BYTES = 1024  # the first bytes read to tell what a file that is no archive is
_YAML_KEY = re.compile(rb"(?:#[^\n]*\n|\s)*[A-Za-z_][\w.-]*:(?:\s|$)")


def other_file_kind(path: Path, head: bytes) -> str | None:
    """What a file that is not an archive looks like, when it is one a user would give nncli
    instead: "a Parquet file", "a CSV file", "a YAML config" (from its first bytes and its name)."""
    suffix = path.suffix.lower()
    if head.startswith(b"PAR1") or suffix == ".parquet":
        return "a Parquet file"
    if suffix in (".yaml", ".yml"):
        return "a YAML config"
    if suffix in (".csv", ".tsv"):
        return "a CSV file"
    lines = head.split(b"\n")
    if b"\0" in head:
        return None
    if _YAML_KEY.match(head):
        return "a YAML config"
    rows = [line for line in lines[:-1] if line.strip()][:4]  # (whole lines only)
    if len(rows) >= 2 and rows[0].count(b",") > 0 and len({row.count(b",") for row in rows}) == 1:
        return "a CSV file"
    return None


def _check_signature(path: Path, kind: str, error: type[Exception], misplaced: str = "") -> int:
    """The file's size, once its first bytes say it is a zip archive."""
    with reading(path, error, kind):
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
            size = os.fstat(f.fileno()).st_size
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return size
    if not head:
        what = "empty file"
    elif head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        what = "a Python pickle (nncli never loads pickles: they can run code)"
    elif head.startswith(b"\x93NUMPY"):
        what = "a single .npy array, not an .npz archive"
    elif (other := other_file_kind(path, head)) is not None:
        if misplaced and path.suffix.lower() != ".npz":  # (named .npz: in its place, but damaged)
            raise error(f"{path}: looks like {other}, not an .npz {kind}; {misplaced}")
        what = f"not a zip/.npz archive (it looks like {other})"
    else:
        what = "not a zip/.npz archive"
    raise error(f"{path}: {what}; expected an .npz {kind} written by nncli train")


def _check_directory(path: Path, size: int, kind: str, error: type[Exception]) -> None:
    """The member count from the zip's end record, before zipfile builds an object per member.

    A file without a readable end record is left to zipfile, which names it as damaged.
    """
    with open(path, "rb") as f:
        tail_start = max(0, size - (22 + 0xFFFF))  # the end record, then a comment of up to 64 KiB
        f.seek(tail_start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            return
        members = struct.unpack("<H", tail[at + 10 : at + 12])[0]
        if members == 0xFFFF and at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":  # ZIP64
            f.seek(struct.unpack("<Q", tail[at - 12 : at - 4])[0])
            record = f.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                members = struct.unpack("<Q", record[32:40])[0]
    if members > MAX_MEMBERS:
        raise error(f"{path}: the archive lists {members:,} members; an nncli {kind} has at most {MAX_MEMBERS:,}")


def _check_entry(path: Path, size: int, info: zipfile.ZipInfo, name: str, error: type[Exception]) -> None:
    """What the zip directory says of a member, checked before the member is opened."""
    name = "the metadata" if name == "meta" else f"array {name!r}"
    if info.flag_bits & 0x41:  # bit 0: encrypted, bit 6: strong encryption
        raise error(f"{path}: {name} is encrypted; nncli reads unencrypted archives, as NumPy writes them")
    if info.compress_type not in _READABLE:
        method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
        raise error(f"{path}: {name} is compressed with {method}; nncli reads stored or deflated "
                    "members (as np.savez and np.savez_compressed write them)")
    if info.flag_bits & 0x20:  # "compressed patched data": no reader supports it
        raise error(f"{path}: {name} is stored as patched data; not a NumPy archive")
    if info.header_offset + info.compress_size > size:
        raise error(f"{path}: damaged or truncated: {name} declares {info.compress_size:,} bytes "
                    f"of data, beyond the end of the {size:,}-byte file")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise error(f"{path}: damaged: {name} is stored uncompressed but its sizes disagree "
                    f"({info.compress_size:,} and {info.file_size:,} bytes)")
    if info.file_size > INFLATION_FROM_BYTES and info.file_size > MAX_INFLATION * max(info.compress_size, 1):
        raise error(f"{path}: {name} would inflate {info.compress_size:,} bytes to {info.file_size:,} "
                    f"(more than {MAX_INFLATION}-fold: a decompression bomb, not trained weights)")


def _read_member(path, size, archive, info, name, shape, dtype, error):
    limit = 4 * meta_chars() + 4096 if name == "meta" else MAX_ARRAY_ELEMENTS * 8 + 4096
    if info.file_size > limit:
        raise error(f"{path}: {'metadata' if name == 'meta' else f'array {name!r}'} is implausibly large "
                    f"({info.file_size:,} bytes)")
    _check_entry(path, size, info, name, error)
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise error(f"{path}: array {name!r} has a malformed header ({exc})") from None
        header_bytes = member.tell()
        declared_shape, _fortran, declared_dtype = header
        if declared_dtype.hasobject:
            raise error(f"{path}: array {name!r} holds Python objects; refusing to load it (pickle)")
        if name == "meta":
            if declared_dtype.kind != "U" or declared_shape != ():
                raise error(f"{path}: 'meta' is not a JSON string; not an nncli file")
        else:
            if declared_dtype != np.dtype(dtype):
                raise error(f"{path}: array {name!r} has dtype {declared_dtype}, expected {dtype}")
            if tuple(declared_shape) != shape:
                raise error(f"{path}: array {name!r} has shape {tuple(declared_shape)}, expected {shape}")
    # The zip entry must hold exactly what the header describes: NumPy allocates the whole array
    # before reading, so a short entry would cost the memory and then fail, a long one hide data.
    described = header_bytes + declared_dtype.itemsize * int(np.prod(declared_shape, dtype=np.int64))
    if info.file_size != described:
        raise error(f"{path}: damaged: array {name!r} has a zip entry of {info.file_size:,} bytes, "
                    f"but its .npy header describes {described:,}")
    with archive.open(info) as fresh:  # read again from the start, header included
        try:
            return np.lib.format.read_array(fresh, allow_pickle=False)
        except ValueError as exc:
            raise error(f"{path}: array {name!r} is damaged ({exc})") from None
