"""Hostile model files, and what is shown of them: every case is a real `nncli` process.

A refused file ends with exit 2, one `nncli: error: …` line naming the file and what is wrong,
no traceback or warning, and nothing written or changed. Cases about memory run under an
address-space cap (MEMORY_CAP) that the unchecked code exceeds: decompression bombs, a network
too large to load, a wide layer applied to many rows, a confusion matrix of 30,000 classes.
Cases about the terminal check that names from a file are shown escaped, never acted on.
"""

import functools
import hashlib
import io
import json
import os
import resource
import struct
import subprocess
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from nncli.files.npz import MAX_META_CHARS
from tests.test_subprocess import NNCLI

MEMORY_CAP = 1536 << 20  # 1.5 GiB of address space: nncli itself needs ~0.5 GiB
GOOD_CSV = "a,b,label\n1,2,x\n3,4,y\n"


# --- building model files by hand ------------------------------------------------------------
def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape: tuple, dtype: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def meta(**changes) -> dict:
    """A valid two-class model's metadata (2 inputs → softmax over x, y; no bias), changed."""
    record = {
        "format": "nncli-model", "format_version": 2, "nncli_version": "0.1.0", "layers": [2, 2],
        "activations": ["softmax"], "activation_params": [{}], "bias": False, "dtype": "float64",
        "loss": "cross_entropy", "loss_params": {}, "features": ["a", "b"], "targets": ["label"],
        "classes": ["x", "y"], "feature_scaler": {"method": "none", "offset": [0, 0], "scale": [1, 1]},
        "metrics": {"epochs": 1, "train_loss": 0.5}, "history": [{"epoch": 1, "train_loss": 0.5}],
    }
    record.update(changes)
    return record


def meta_npy(record: dict | str) -> bytes:
    return npy(np.array(record if isinstance(record, str) else json.dumps(record)))


def model(record: dict | str | None = None, compression=zipfile.ZIP_STORED, **arrays) -> bytes:
    """An .npz as np.savez writes it: meta plus the arrays (W1 = identity unless given)."""
    arrays = arrays or {"W1": np.eye(2)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("meta.npy", meta_npy(meta() if record is None else record))
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", array if isinstance(array, bytes) else npy(array))
    return buffer.getvalue()


def raw_zip(members: list[dict]) -> bytes:
    """A zip written field by field, so that entries can say what zipfile would never write:
    deflate data made without inflating it, encryption flags, other methods, lying sizes.
    Each member: name, data (as stored), and optionally method, flags, crc, size (inflated),
    stored_size (the compressed size the entry declares)."""
    out, central = io.BytesIO(), io.BytesIO()
    for member in members:
        name, data = member["name"].encode(), member["data"]
        method, flags = member.get("method", 0), member.get("flags", 0)
        crc = member.get("crc", zlib.crc32(data))
        size, stored = member.get("size", len(data)), member.get("stored_size", len(data))
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, stored, size, len(name), 0))
        out.write(name + data)
        central.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc, stored, size,
                                  len(name), 0, 0, 0, 0, 0, offset) + name)
    directory = central.getvalue()
    start = out.tell()
    out.write(directory)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0))
    return out.getvalue()


@functools.lru_cache(maxsize=None)
def deflated_zeros(mebibytes: int) -> bytes:
    """Raw deflate data of ``mebibytes`` MiB of zero bytes, made in milliseconds: after a full
    flush each MiB of zeros compresses to the same bytes, so one is repeated."""
    mib = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + repeated * (mebibytes - 1) + compressor.flush()


@functools.lru_cache(maxsize=None)
def zeros_crc(prefix: bytes, mebibytes: int) -> int:
    crc, mib = zlib.crc32(prefix), bytes(1 << 20)
    for _ in range(mebibytes):
        crc = zlib.crc32(mib, crc)
    return crc


def zeros_member(name: str, shape: tuple, dtype: str) -> dict:
    """A .npy of zeros, deflated as np.savez_compressed would: a few KB per GiB it declares."""
    header = npy_header(shape, dtype)
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if n_bytes % (1 << 20):  # small: the real thing
        data = header + bytes(n_bytes)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return {"name": f"{name}.npy", "data": compressor.compress(data) + compressor.flush(), "method": 8,
                "crc": zlib.crc32(data), "size": len(data)}
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    return {"name": f"{name}.npy", "data": head + deflated_zeros(n_bytes >> 20), "method": 8,
            "crc": zeros_crc(header, n_bytes >> 20), "size": len(header) + n_bytes}


def bomb(record: dict, shapes: dict[str, tuple], dtype: str = "float32") -> bytes:
    meta_bytes = meta_npy(record)
    members = [{"name": "meta.npy", "data": meta_bytes}]
    members += [zeros_member(name, shape, dtype) for name, shape in shapes.items()]
    return raw_zip(members)


def with_entry(archive: bytes, name: str, **fields) -> bytes:
    """``archive`` with one member's flags, method or sizes changed in both of its headers."""
    data = bytearray(archive)
    offsets = {"flags": (6, 8, "<H"), "method": (8, 10, "<H"), "stored_size": (18, 20, "<I")}
    for signature, shift in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            name_length = struct.unpack("<H", data[at + 26 + shift : at + 28 + shift])[0]
            start = at + (30 if shift == 0 else 46)
            if data[start : start + name_length] == name.encode():
                for field, value in fields.items():
                    local, central, fmt = offsets[field]
                    position = at + (local if shift == 0 else central)
                    data[position : position + struct.calcsize(fmt)] = struct.pack(fmt, value)
            at += 4
    return bytes(data)


def with_raw_meta(text: str, **arrays) -> bytes:
    """A model whose metadata is this exact JSON text (1e999 and huge integers cannot come from
    json.dumps of Python values)."""
    return model(text, **arrays)


def huge_literal(key: str, literal: str) -> str:
    return json.dumps(meta(metrics={"epochs": 1, key: 12345})).replace("12345", literal)


BIG = 1 << 28  # a hidden layer of 268 million neurons
BOMB_META = meta(layers=[2, BIG, 2], activations=["relu", "softmax"], activation_params=[{}, {}], bias=True, dtype="float32")
BOMB_ARRAYS = {"W1": (2, BIG), "b1": (BIG,), "W2": (BIG, 2), "b2": (2,)}  # 5 GiB of float32


# --- the catalogue ----------------------------------------------------------------------------
# name: (files, args, exit code, fragments of the one stderr line, environment)
PREDICT = ["predict", "m.npz", "data.csv"]
INSPECT = ["inspect", "m.npz"]
EVALUATE = ["evaluate", "m.npz", "data.csv"]
CASES = {
    # --- archives ---
    "encrypted member": ({"m.npz": lambda: with_entry(model(), "W1.npy", flags=1)}, PREDICT, 2, ["m.npz: array 'W1' is encrypted"], {}),
    "encrypted metadata": ({"m.npz": lambda: with_entry(model(), "meta.npy", flags=1)}, INSPECT, 2, ["m.npz: the metadata is encrypted"], {}),
    "deflate64 member": ({"m.npz": lambda: with_entry(model(), "W1.npy", method=9)}, PREDICT, 2, ["m.npz: array 'W1' is compressed with deflate64"], {}),
    "AES member": ({"m.npz": lambda: with_entry(model(), "W1.npy", method=99)}, EVALUATE, 2, ["m.npz: array 'W1' is compressed with AES encryption"], {}),
    "bzip2 member": ({"m.npz": lambda: with_entry(model(), "W1.npy", method=12)}, PREDICT, 2, ["compressed with bzip2", "stored or deflated"], {}),
    "patched data": ({"m.npz": lambda: with_entry(model(), "W1.npy", flags=0x20)}, PREDICT, 2, ["array 'W1' is stored as patched data"], {}),
    "entry longer than its header says": (
        {"m.npz": lambda: model(W1=npy(np.eye(2)) + b"\0" * 64)}, PREDICT, 2,
        ["m.npz: damaged: array 'W1' has a zip entry of 224 bytes, but its .npy header describes 160"], {}),
    "stored sizes disagree": ({"m.npz": lambda: with_entry(model(), "W1.npy", stored_size=100)}, PREDICT, 2, ["array 'W1' is stored uncompressed but its sizes disagree"], {}),
    "10,003 members": (
        {"m.npz": lambda: raw_zip([{"name": "meta.npy", "data": meta_npy(meta())}, {"name": "W1.npy", "data": npy(np.eye(2))}]
                                  + [{"name": f"x{i}", "data": b""} for i in range(10_001)])},
        PREDICT, 2, ["m.npz: the archive lists 10,003 members; an nncli model file has at most 10,000"], {}),
    "70,002 members (a ZIP64 directory)": (
        {"m.npz": lambda: model(None, **{"W1": np.eye(2)}, **{f"x{i}": b"" for i in range(70_000)})},
        PREDICT, 2, ["m.npz: the archive lists 70,002 members"], {}),
    "zip version from the future": ({"m.npz": lambda: model().replace(b"PK\x01\x02\x14\x03\x14\x00", b"PK\x01\x02\x14\x03\x7f\x00", 1)},
                                    PREDICT, 2, ["m.npz: the model file uses a zip feature nncli cannot read (zip file version 12.7)"], {}),  # was NotImplementedError
    # --- metadata of the wrong type or size (each used to be a traceback, or shown) ---
    "metrics value a list (inspect)": ({"m.npz": lambda: model(meta(metrics={"train_loss": [1]}))}, INSPECT, 2,
                                       ["m.npz: metadata field metrics.train_loss: expected a number or null, got a list '[1]'"], {}),
    "metrics value a string": ({"m.npz": lambda: model(meta(metrics={"val_accuracy": "0.9"}))}, INSPECT, 2,
                               ["metadata field metrics.val_accuracy: expected a number or null, got a string"], {}),
    "metrics epochs a string": ({"m.npz": lambda: model(meta(metrics={"epochs": "3"}))}, INSPECT, 2,
                                ["metadata field metrics.epochs: expected a whole number >= 0, got a string"], {}),
    "metrics a list": ({"m.npz": lambda: model(meta(metrics=[1, 2]))}, PREDICT, 2, ["m.npz: metadata field metrics: Input should be a valid dictionary"], {}),
    "history row not a mapping": ({"m.npz": lambda: model(meta(history=[{"epoch": 1}, 7]))}, INSPECT, 2, ["metadata field history.1: Input should be a valid dictionary"], {}),
    "history value nested": ({"m.npz": lambda: model(meta(history=[{"epoch": 1, "val_loss": [[0.5]]}]))}, INSPECT, 2,
                             ["metadata field history.0.val_loss: expected a number or null, got a list"], {}),
    "history best not a flag": ({"m.npz": lambda: model(meta(history=[{"epoch": 1, "best": "yes"}]))}, INSPECT, 2,
                                ["metadata field history.0.best: expected true or false"], {}),
    "1e999 in metrics": ({"m.npz": lambda: with_raw_meta(huge_literal("train_loss", "1e999"))}, ["inspect", "m.npz", "--json"], 2,
                         ["m.npz: metadata holds the number 1e999 (too large for a float); not written by nncli"], {}),
    "401-digit integer": ({"m.npz": lambda: with_raw_meta(huge_literal("train_loss", "1" * 401))}, INSPECT, 2,
                          ["m.npz: metadata holds an integer of 401 digits"], {}),
    "huge activation parameter": (
        {"m.npz": lambda: with_raw_meta(json.dumps(meta(layers=[2, 2, 2], activations=["leaky_relu", "softmax"],
                                                        activation_params=[{"slope": 12345}, {}])).replace("12345", "9" * 309),
                                        W1=np.eye(2), W2=np.eye(2))},
        PREDICT, 2, ["m.npz: metadata holds an integer of 309 digits"], {}),  # was an OverflowError
    "layer size a string": ({"m.npz": lambda: model(meta(layers=["2", 2]))}, PREDICT, 2, ["metadata field layers.0: Input should be a valid integer"], {}),
    "bias 1 for true": ({"m.npz": lambda: model(meta(bias=1))}, PREDICT, 2, ["metadata field bias: Input should be a valid boolean"], {}),
    "scale a string": ({"m.npz": lambda: model(meta(feature_scaler={"method": "none", "offset": [0, 0], "scale": ["1", 1]}))}, PREDICT, 2,
                       ["metadata field feature_scaler.scale.0: Input should be a valid number"], {}),
    "created a number": ({"m.npz": lambda: model(meta(created=20240101))}, INSPECT, 2, ["metadata field created: Input should be a valid string"], {}),
    "name of 70,000 characters": ({"m.npz": lambda: model(meta(classes=["x", "y" * 70_000]))}, EVALUATE, 2,
                                  ["metadata field classes.1: a name of 70,000 characters; nncli reads names of at most 65,536"], {}),
    "a target that is also a feature": ({"m.npz": lambda: model(meta(targets=["b"]))}, EVALUATE, 2,
                                        ["m.npz: metadata names 'b' both a feature and a target"], {}),  # was a KeyError
    "1,001 layers": ({"m.npz": lambda: model(meta(layers=[2] * 1_001, activations=["relu"] * 999 + ["softmax"],
                                                  activation_params=[{}] * 1_000))}, PREDICT, 2,
                     ["m.npz: metadata declares 1,001 layers; nncli builds at most 1,000"], {}),
    "metadata over its budget": ({"m.npz": lambda: model()}, PREDICT, 2,
                                 ["m.npz: metadata is", "characters long; nncli reads at most 100 (NNCLI_MAX_METADATA_BYTES raises the limit)"],
                                 {"NNCLI_MAX_METADATA_BYTES": "100"}),
    "metadata of too many values": ({"m.npz": lambda: model(meta(junk=[0] * 20_000))}, PREDICT, 2,
                                    ["m.npz: metadata holds about 20,0", "values; nncli reads at most 16,384"],
                                    {"NNCLI_MAX_METADATA_BYTES": "256K"}),
    # --- models that do not fit or cannot be applied ---
    "relu output with cross-entropy": ({"m.npz": lambda: model(meta(activations=["relu"]))}, ["predict", "m.npz", "data.csv", "--proba"], 2,
                                       ["m.npz: loss 'cross_entropy' needs a softmax output layer, but metadata says 'relu'"], {}),
    "weights near float32 max (predict)": (
        {"m.npz": lambda: model(meta(layers=[2, 4, 2], activations=["relu", "softmax"], activation_params=[{}, {}], dtype="float32"),
                                W1=np.full((2, 4), 3e38, np.float32), W2=np.full((4, 2), 3e38, np.float32))},
        ["predict", "m.npz", "data.csv", "-o", "out.csv"], 2,
        ["m.npz: applying the model overflows float32 in layer 1 of 2 (a value beyond ±3.4e+38; its weights reach 3e+38)"], {}),
    "weights near float32 max (evaluate)": (
        {"m.npz": lambda: model(meta(layers=[2, 4, 2], activations=["tanh", "softmax"], activation_params=[{}, {}], dtype="float32"),
                                W1=np.ones((2, 4), np.float32), W2=np.full((4, 2), 3e38, np.float32))},
        EVALUATE, 2, ["m.npz: applying the model overflows float32 in layer 2 of 2"], {}),
    "target normalisation overflows": (
        {"m.npz": lambda: model(meta(activations=["identity"], loss="mse", classes=None, layers=[2, 1], dtype="float32",
                                     target_scaler={"method": "standard", "offset": [0], "scale": [1e30]}),
                                W1=np.full((2, 1), 1e30, np.float32))},
        PREDICT, 2, ["m.npz: the model's target normalisation overflows float32"], {}),
    "errors beyond float64 (evaluate)": (  # was inf in text and a ValueError traceback with --json
        {"m.npz": lambda: model(meta(activations=["identity"], loss="mse", classes=None, layers=[2, 1]), W1=np.full((2, 1), 1e200)),
         "data.csv": "a,b,label\n1,2,3\n3,4,4\n"},
        ["evaluate", "m.npz", "data.csv", "--json"], 2,
        ["data.csv:2: in the 2 rows from here, the errors of m.npz's predictions (up to 7e+200) against the targets (up to 4) "
         "overflow float64: the loss and MSE cannot be computed"], {}),
    # --- inspect --export ---
    "export over an existing file": ({"m.npz": lambda: model(), "out/W1.csv": "mine\n"}, ["inspect", "m.npz", "--export", "out"], 2,
                                     ["--export: out/W1.csv exists; use --force to overwrite"], {}),
    "export through a symlink": ({"m.npz": lambda: model(), "victim.txt": "precious\n", "out/W1.csv": ("link", "../victim.txt")},
                                 ["inspect", "m.npz", "--export", "out"], 2,
                                 ["--export: out/W1.csv is a symbolic link; nncli does not write through links"], {}),
    "export through a dangling symlink": ({"m.npz": lambda: model(), "out/W1.npy": ("link", "../created-elsewhere")},
                                          ["inspect", "m.npz", "--export", "out", "--format", "npy"], 2,
                                          ["out/W1.npy is a symbolic link"], {}),
    "--json of a big model": ({"m.npz": lambda: model(meta(layers=[2, 1024, 1025], activations=["relu", "softmax"], activation_params=[{}, {}],
                                                            classes=[f"c{i}" for i in range(1025)], dtype="float32"),
                                                       W1=np.zeros((2, 1024), np.float32), W2=np.zeros((1024, 1025), np.float32))},
                              ["inspect", "m.npz", "--json"], 2,
                              ["--json: m.npz has 1,051,648 weights and biases; --json prints at most 1,048,576 (pick one layer with --layer N"],
                              {"NNCLI_MAX_CLASSES": "2000"}),  # (more classes than the default budget, to be that big)
    "--weights --full of a big matrix": ({"m.npz": lambda: model(meta(layers=[2, 300, 300], activations=["relu", "softmax"], activation_params=[{}, {}],
                                                                       classes=[f"c{i}" for i in range(300)]),
                                                                  W1=np.zeros((2, 300)), W2=np.zeros((300, 300)))},
                                         ["inspect", "m.npz", "--weights", "--full"], 2,
                                         ["--full: W2 has 90,000 values; --full prints at most 65,536"], {}),
}


# Memory: each of these needs far more than MEMORY_CAP if a declared size is trusted.
MEMORY_CASES = {
    # The bomb: 5 MB of deflated zeros declaring a 5 GiB network.
    "network over budget": ({"m.npz": lambda: bomb(BOMB_META, BOMB_ARRAYS)}, PREDICT, 2,
                            ["m.npz: the network declares 1,342,177,282 weights and biases (5.0 GiB of float32), more than the 4 GiB nncli loads"], {}),
    # The same with the budget raised: the compression ratio gives it away.
    "decompression bomb": ({"m.npz": lambda: bomb(BOMB_META, BOMB_ARRAYS)}, PREDICT, 2,
                           ["m.npz: array 'W1' would inflate", "to 2,147,483,776 (more than 20-fold: a decompression bomb"],
                           {"NNCLI_MAX_NETWORK_BYTES": "16G"}),
    # A stored entry declaring 2 GiB that the 1 KB file does not hold (NumPy would allocate it first).
    "entry beyond the end of the file": (
        {"m.npz": lambda: raw_zip([{"name": "meta.npy", "data": meta_npy(meta(layers=[2, BIG // 2, 2], activations=["relu", "softmax"],
                                                                               activation_params=[{}, {}]))},
                                   {"name": "W1.npy", "data": npy_header((2, BIG // 2), "float64"),
                                    "size": 128 + 16 * (BIG // 2), "stored_size": 128 + 16 * (BIG // 2)}])},
        PREDICT, 2, ["m.npz: damaged or truncated: array 'W1' declares 2,147,483,776 bytes of data, beyond the end of the"], {}),
    # Metadata of 128 MiB (as NumPy stores text: 4 bytes a character), deflated to 130 KB.
    "metadata bomb": ({"m.npz": lambda: raw_zip([zeros_member("meta", (), f"<U{MAX_META_CHARS}")])}, PREDICT, 2,
                      ["m.npz: the metadata would inflate", "a decompression bomb"], {}),
}


def build(folder: Path, files: dict) -> None:
    (folder / "data.csv").write_text(GOOD_CSV)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "link":
            path.symlink_to(content[1])
            continue
        content = content() if callable(content) else content
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def snapshot(folder: Path) -> dict:
    """Every file's content hash and every link's target, under ``folder``."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = ("link", os.readlink(path))
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run(folder: Path, args: list[str], env: dict | None = None, memory_cap: int | None = None) -> subprocess.CompletedProcess:
    limit = (lambda: resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))) if memory_cap else None
    return subprocess.run([str(NNCLI), *args], cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, preexec_fn=limit)


def assert_refused(result, code: int, fragments: list[str]) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("name", CASES)
def test_hostile_model(tmp_path, name):
    files, args, code, fragments, env = CASES[name]
    build(tmp_path, files)
    before = snapshot(tmp_path)
    result = run(tmp_path, args, env)
    assert_refused(result, code, fragments)
    assert snapshot(tmp_path) == before  # nothing written, changed, or written through a link
    assert not (tmp_path / "created-elsewhere").exists()


@pytest.mark.parametrize("name", MEMORY_CASES)
def test_hostile_model_under_a_memory_cap(tmp_path, name):
    files, args, code, fragments, env = MEMORY_CASES[name]
    build(tmp_path, files)
    assert (tmp_path / "m.npz").stat().st_size < 10 << 20  # a small file …
    before = snapshot(tmp_path)
    started = time.monotonic()
    result = run(tmp_path, args, env, memory_cap=MEMORY_CAP)  # … that must not cost gigabytes
    assert_refused(result, code, fragments)
    assert time.monotonic() - started < 20  # refused from the sizes, not after inflating them
    assert snapshot(tmp_path) == before


# --- hostile but loadable: bounded memory, and names shown as written -----------------------
def wide_model() -> bytes:
    """A legitimate shape at the edge: 2 inputs, a hidden layer of 2**20 neurons (16 MB stored)."""
    width = 1 << 20
    return model(meta(layers=[2, width, 2], activations=["relu", "softmax"], activation_params=[{}, {}], dtype="float32"),
                 W1=np.full((2, width), 1e-3, np.float32), W2=np.zeros((width, 2), np.float32))


def many_classes_model(k: int = 30_000) -> bytes:
    """75 KB of file (deflated, as np.savez_compressed writes) for 30,000 classes."""
    W = np.zeros((2, k), np.float32)
    W[:, 1] = 1  # predicts class c1
    return model(meta(layers=[2, k], classes=[f"c{i}" for i in range(k)], dtype="float32"), zipfile.ZIP_DEFLATED, W1=W)


def test_a_wide_layer_applied_to_many_rows_stays_within_memory(tmp_path):
    """Before: 400 rows × 2**20 neurons were one 1.6 GiB matrix (MemoryError under the cap)."""
    build(tmp_path, {"m.npz": wide_model, "many.csv": "a,b\n" + "1,2\n" * 400})
    result = run(tmp_path, ["predict", "m.npz", "many.csv"], memory_cap=MEMORY_CAP)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["prediction"] + ["x"] * 400


def test_evaluate_with_30000_classes_stays_within_memory(tmp_path):
    """Before: a 30,000 × 30,000 confusion matrix (7 GB). Now scores come from per-class counts
    and the matrix is left out beyond MAX_CONFUSION_CLASSES."""
    rows = "".join(f"1,2,c{i % 3}\n" for i in range(600))
    build(tmp_path, {"m.npz": many_classes_model, "t.csv": "a,b,label\n" + rows})
    assert (tmp_path / "m.npz").stat().st_size < 100_000
    allowed = {"NNCLI_MAX_CLASSES": "30000"}  # a user who raised the budget for such a model
    result = run(tmp_path, ["evaluate", "m.npz", "t.csv", "--json"], allowed, memory_cap=MEMORY_CAP)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["confusion_matrix"] is None and len(report["per_class"]) == 30_000
    assert report["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert report["per_class"][1] == {"class": "c1", "precision": pytest.approx(1 / 3), "recall": 1.0,
                                      "f1": pytest.approx(0.5), "support": 200}
    text = run(tmp_path, ["evaluate", "m.npz", "t.csv"], allowed, memory_cap=MEMORY_CAP)
    assert text.returncode == 0, text.stderr[-2000:]
    assert "per class: 30,000 classes, too many for a table" in text.stdout
    assert "confusion matrix: 30,000 classes, too many to show" in text.stdout


def test_a_compressed_model_still_loads(tmp_path):
    """np.savez_compressed of a trained model: float weights deflate ~1.1:1, far from the bomb ratio."""
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(size=(2, 700)), rng.normal(size=(700, 2))
    record = meta(layers=[2, 700, 2], activations=["tanh", "softmax"], activation_params=[{}, {}])
    build(tmp_path, {"m.npz": model(record, zipfile.ZIP_DEFLATED, W1=W1, W2=W2), "plain.npz": model(record, W1=W1, W2=W2)})
    compressed, plain = run(tmp_path, PREDICT + ["--proba"]), run(tmp_path, ["predict", "plain.npz", "data.csv", "--proba"])
    assert compressed.returncode == 0, compressed.stderr
    assert compressed.stdout == plain.stdout and compressed.stdout.count("\n") == 3


def test_a_history_with_non_finite_values_loads(tmp_path):
    """What save_model writes for a diverged validation loss: null, flagged under non_finite."""
    record = meta(metrics={"epochs": 1, "epoch": 1, "train_loss": 0.5, "val_loss": None, "non_finite": {"val_loss": "inf"}},
                  history=[{"epoch": 1, "train_loss": 0.5, "val_loss": None, "best": False, "non_finite": {"val_loss": "inf"}}])
    build(tmp_path, {"m.npz": model(record)})
    result = run(tmp_path, INSPECT)
    assert result.returncode == 0, result.stderr
    assert "train_loss 0.5000" in result.stdout


HOSTILE_NAMES = {
    "features": ["\x1b[31mred\x1b[0m", "[bold red]x"],
    "classes": ["\x1b]0;pwned\x07", "y\nz"],
    "targets": ["label\u202e"],
}


def test_inspect_shows_names_from_the_file_escaped(tmp_path):
    """ANSI sequences, a terminal-title OSC, a newline, a bidi override and rich markup in names:
    shown escaped and literal (never acted on), in the summary and the --weights tables."""
    record = meta(**HOSTILE_NAMES, nncli_version="9\x1b[2J", created="2024\r", config={"seed": "\x1b[5m7"},
                  metrics={"epochs": 1, "train_loss": 0.5, "val_\x1b[1mx": 0.25})
    build(tmp_path, {"\x1b[1mm.npz": model(record)})
    result = run(tmp_path, ["inspect", "\x1b[1mm.npz", "--weights"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not any(c in out for c in "\x1b\x07\r\u202e"), repr(out)
    for fragment in ("\\x1b[31mred\\x1b[0m", "[bold red]x", "\\x1b]0;pwned\\x07", "y\\nz", "label\\u202e", "nncli 9\\x1b[2J",
                     "2024\\r", "seed \\x1b[5m7", "val_\\x1b[1mx 0.2500", "Model \\x1b[1mm.npz"):
        assert fragment in out, (fragment, out)
    assert "y\\nz" in out.split("W1")[1]  # the matrix's column names, too
    assert out.count("\n") == len(out.splitlines())  # no line broken by a name
    document = json.loads(run(tmp_path, ["inspect", "\x1b[1mm.npz", "--json"]).stdout)
    assert document["features"] == HOSTILE_NAMES["features"] and document["classes"] == HOSTILE_NAMES["classes"]  # JSON: raw


def test_evaluate_shows_names_from_the_file_escaped(tmp_path):
    classes = ["\x1b[31mx", "[red]y"]
    build(tmp_path, {"m.npz": model(meta(classes=classes)),
                     "t.csv": "a,b,label\n" + "".join(f"{i},{1 - i},{classes[i]}\n" for i in (0, 1))})
    result = run(tmp_path, ["evaluate", "m.npz", "t.csv"])
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and result.stdout.count("\\x1b[31mx") == 3  # per class, and both confusion axes
    assert result.stdout.count("[red]y") == 3


def test_evaluate_shows_target_names_escaped(tmp_path):
    """Regression with two targets: their names are in the metric names (mse_<target>) too."""
    targets = ["\x1b[1mt", "u"]
    record = meta(layers=[2, 2], activations=["identity"], loss="mse", classes=None, targets=targets)
    build(tmp_path, {"m.npz": model(record), "t.csv": "a,b,\x1b[1mt,u\n1,2,1,2\n3,4,3,5\n"})
    result = run(tmp_path, ["evaluate", "m.npz", "t.csv"])
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "mse_\\x1b[1mt" in result.stdout and "\\x1b[1mt  " in result.stdout


def test_export_with_force_replaces_files_but_never_links(tmp_path):
    """--force replaces an existing export, and still never writes through a link."""
    from nncli.commands.inspect import inspect
    from nncli.errors import UsageError

    build(tmp_path, {"m.npz": model(), "out/W1.csv": "old\n", "victim.txt": "precious\n"})
    result = inspect(tmp_path / "m.npz", export=str(tmp_path / "out"), force=True)
    assert [p.name for p in result.files] == ["W1.csv"] and (tmp_path / "out/W1.csv").read_text() == "1,0\n0,1\n"
    (tmp_path / "out/W1.csv").unlink()
    (tmp_path / "out/W1.csv").symlink_to("../victim.txt")
    with pytest.raises(UsageError, match="is a symbolic link"):
        inspect(tmp_path / "m.npz", export=str(tmp_path / "out"), force=True)
    assert (tmp_path / "victim.txt").read_text() == "precious\n"
    with pytest.raises(UsageError, match="--force applies to --export"):
        inspect(tmp_path / "m.npz", force=True)
    before = snapshot(tmp_path)
    assert_refused(run(tmp_path, ["inspect", "m.npz", "--export", "out", "--force"]), 2, ["out/W1.csv is a symbolic link"])
    assert snapshot(tmp_path) == before
    (tmp_path / "out/W1.csv").unlink()
    (tmp_path / "out/W1.csv").write_text("old\n")
    assert run(tmp_path, ["inspect", "m.npz", "--export", "out", "--force"]).returncode == 0
    assert (tmp_path / "out/W1.csv").read_text() == "1,0\n0,1\n"


def test_budgets_leave_room_for_what_train_writes():
    """The model loader reads whatever the config's budgets let `train` write."""
    from nncli.budgets import MAX_EPOCHS, MAX_LAYERS
    from nncli.files.npz import MAX_MEMBERS

    assert MAX_META_CHARS >= MAX_EPOCHS * 250  # a history record is ~200 characters
    assert MAX_MEMBERS >= 2 * MAX_LAYERS + 1


def test_hidden_neuron_names_are_made_when_shown():
    """`inspect --weights` names hidden neurons h1.1 … h1.n: as a sequence made on lookup, not a
    list of n strings (a 4 GiB model may have a layer of 500 million neurons: 30 GB of names)."""
    from types import SimpleNamespace

    from nncli.commands.inspect import neuron_names

    network = SimpleNamespace(sizes=[2, 500_000_000, 3, 2])
    fake = SimpleNamespace(network=network, features=["a", "b"], classes=["x", "y"], targets=["label"], is_classification=True)
    rows, columns = neuron_names(fake, 2)
    assert len(rows) == 500_000_000 and rows[0] == "h1.1" and rows[-1] == "h1.500000000" and rows[1:3] == ["h1.2", "h1.3"]
    assert list(columns) == ["h2.1", "h2.2", "h2.3"]
    with pytest.raises(IndexError):
        rows[500_000_000]


def test_names_are_escaped_on_a_terminal_too(tmp_path):
    """With colour (stdout a terminal), rich draws its own escape codes, but a name's stay text."""
    import pty

    build(tmp_path, {"m.npz": model(meta(features=["\x1b[31mred", "[bold red]x"], classes=["\x1b]0;pwned\x07", "y"]))})
    pid, fd = pty.fork()
    if pid == 0:  # the child: nncli on a terminal
        os.chdir(tmp_path)
        os.environ.pop("NO_COLOR", None)
        os.execv(str(NNCLI), [str(NNCLI), "inspect", "m.npz", "--weights"])
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert "\x1b[31mred" not in out and "\x1b]0;" not in out and "\x07" not in out
    assert "\\x1b[31mred" in out and "[bold red]x" in out and "\\x1b]0;pwned\\x07" in out
