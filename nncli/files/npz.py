"""Safe ``.npz`` archives with a JSON ``meta`` entry: the format of model files and checkpoints.

Writing is atomic (temporary file, fsync, rename).  Reading never unpickles: the file's
signature is checked first (a pickle is named as such), then each member's ``.npy`` header —
dtype (no Python objects), declared shape (checked before anything is allocated) and size —
and only then the data, with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from nncli.errors import reading
from nncli.files.atomic import atomic_write

MAX_META_BYTES = 64 << 20
MAX_ARRAY_ELEMENTS = 1 << 30  # 4 GiB of float32: far beyond any network nncli trains

Meta = TypeVar("Meta")
Expected = dict[str, tuple[tuple, str]]  # array name -> (shape, dtype name)


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
) -> tuple[Meta, dict[str, np.ndarray]]:
    """The validated meta and the arrays ``expected(meta)`` names, each checked before loading.

    ``kind`` ("model file", "checkpoint") and ``error`` (the NncliError to raise) make the
    messages; ``parse_meta`` validates the JSON (format, version, fields) and may raise itself.
    """
    path = Path(path)
    _check_signature(path, kind, error)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if "meta.npy" not in members:
                raise error(f"{path}: a .npz archive without nncli metadata ('meta'); not an nncli {kind}")
            text = _read_member(path, archive, members["meta.npy"], "meta", None, None, error)
            try:
                data = json.loads(str(text), parse_constant=_refuse_constant)
            except json.JSONDecodeError as exc:
                raise error(f"{path}: metadata is not valid JSON ({exc.msg} at char {exc.pos})") from None
            except ValueError as exc:  # NaN or Infinity, which nncli never writes
                raise error(f"{path}: metadata holds {exc}; not written by nncli") from None
            except RecursionError:
                raise error(f"{path}: metadata nests too deeply; not written by nncli") from None
            if not isinstance(data, dict):
                raise error(f"{path}: metadata is not a JSON object; not an nncli {kind}")
            meta = parse_meta(data)
            arrays = {}
            for name, (shape, dtype) in expected(meta).items():
                if int(np.prod(shape, dtype=np.float64)) > MAX_ARRAY_ELEMENTS:
                    raise error(f"{path}: array {name!r} declares shape {shape}; implausibly large")
                if f"{name}.npy" not in members:
                    raise error(f"{path}: array {name!r} is missing from the {kind}")
                arrays[name] = _read_member(path, archive, members[f"{name}.npy"], name, tuple(shape), dtype, error)
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise error(f"{path}: damaged or truncated {kind} ({exc})") from None
    except (EOFError, zipfile.LargeZipFile) as exc:
        raise error(f"{path}: damaged or truncated {kind} ({exc})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {kind}: {exc.strerror or exc}") from None
    return meta, arrays


def _refuse_constant(name: str):
    raise ValueError(name)


def _check_signature(path: Path, kind: str, error: type[Exception]) -> None:
    with reading(path, error, kind):
        with open(path, "rb") as f:
            head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return
    if not head:
        what = "empty file"
    elif head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        what = "a Python pickle (nncli never loads pickles: they can run code)"
    elif head.startswith(b"\x93NUMPY"):
        what = "a single .npy array, not an .npz archive"
    else:
        what = "not a zip/.npz archive"
    raise error(f"{path}: {what}; expected an .npz {kind} written by nncli train")


def _read_member(path, archive, info, name, shape, dtype, error):
    limit = MAX_META_BYTES if name == "meta" else MAX_ARRAY_ELEMENTS * 8 + 4096
    if info.file_size > limit:
        raise error(f"{path}: array {name!r} is implausibly large ({info.file_size:,} bytes)")
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
    with archive.open(info) as fresh:  # read again from the start, header included
        try:
            return np.lib.format.read_array(fresh, allow_pickle=False)
        except ValueError as exc:
            raise error(f"{path}: array {name!r} is damaged ({exc})") from None
