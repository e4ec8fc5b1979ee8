"""Hostile and broken input, table-driven: every case is a real `nncli` process, and must end
with the documented exit code, one `nncli: error: …` line naming the file and the place, no
traceback, and no file created, changed or left behind (unless the case expects output)."""

import hashlib
import io
import json
import pickle
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.test_subprocess import NNCLI

GOOD_CSV = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,1,x\n2,3,y\n"
GOOD_YAML = "data:\n  train: data.csv\n  target: label\nmodel:\n  layers: [auto, 4, auto]\ntraining:\n  epochs: 2\n"


def alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        p, n = chr(96 + i), chr(97 + i)
        lines.append(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]")
    return "\n".join(lines) + "\n"


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def model_meta(**changes) -> bytes:
    meta = {
        "format": "nncli-model", "format_version": 1, "nncli_version": "0", "layers": [2, 2], "activations": ["softmax"],
        "bias": False, "dtype": "float64", "loss": "cross_entropy", "features": ["a", "b"], "targets": ["label"],
        "classes": ["x", "y"], "feature_scaler": {"method": "none", "offset": [0, 0], "scale": [1, 1]},
    }
    meta.update(changes)
    return npy(np.array(json.dumps(meta)))


GIANT_HEADER = io.BytesIO()
np.lib.format.write_array_header_1_0(GIANT_HEADER, {"descr": "<f8", "fortran_order": False, "shape": (2, 10**12)})

# name: (files, args, exit code, fragments of the one stderr line)
TRAIN = ["train", "c.yaml", "-o", "out/m.npz"]
CASES = {
    # --- configs ---
    "yaml syntax": ({"c.yaml": "data:\n  train: [x\n"}, TRAIN, 2, ["c.yaml:3:", "YAML syntax error"]),
    "empty yaml": ({"c.yaml": ""}, TRAIN, 2, ["c.yaml: config is empty"]),
    "top-level list": ({"c.yaml": "- 1\n- 2\n"}, TRAIN, 2, ["c.yaml:1: expected a mapping", "got a list"]),
    "unknown key": ({"c.yaml": GOOD_YAML + "  epohcs: 3\n"}, TRAIN, 2, ["c.yaml:8: training.epohcs: unknown key; did you mean 'epochs'?"]),
    "duplicate key": ({"c.yaml": GOOD_YAML + "  epochs: 3\n"}, TRAIN, 2, ["c.yaml:8: training.epochs: duplicate key (first set on line 7)"]),
    "python tag": ({"c.yaml": "data: !!python/object/apply:os.system ['touch PWNED']\n"}, TRAIN, 2, ["c.yaml:1:", "could not determine a constructor"]),
    "alias bomb": ({"c.yaml": alias_bomb()}, TRAIN, 2, ["c.yaml: config expands to more than 100,000 values"]),
    "huge file": ({"c.yaml": "# " + "x" * (2 << 20) + "\n"}, TRAIN, 2, ["c.yaml: config file is larger than 1 MiB"]),
    "bool for int": ({"c.yaml": GOOD_YAML.replace("epochs: 2", "epochs: true")}, TRAIN, 2, ["c.yaml:7: training.epochs: input should be a valid integer (got true)"]),
    "float for int": ({"c.yaml": GOOD_YAML.replace("epochs: 2", "epochs: 2.5")}, TRAIN, 2, ["c.yaml:7: training.epochs: input should be a valid integer (got 2.5)"]),
    "nan": ({"c.yaml": GOOD_YAML + "  learning_rate: .nan\n"}, TRAIN, 2, ["c.yaml:8: training.learning_rate: input should be a finite number"]),
    "inf": ({"c.yaml": GOOD_YAML + "  learning_rate: .inf\n"}, TRAIN, 2, ["c.yaml:8: training.learning_rate: input should be a finite number"]),
    "layer size 0": ({"c.yaml": GOOD_YAML.replace("[auto, 4, auto]", "[auto, 0, auto]")}, TRAIN, 2, ["c.yaml:5: model.layers.1: expected a whole number of neurons >= 1"]),
    "negative rate": ({"c.yaml": GOOD_YAML + "  learning_rate: -0.1\n"}, TRAIN, 2, ["c.yaml:8: training.learning_rate: input should be greater than 0 (got -0.1)"]),
    "dropout 1": ({"c.yaml": GOOD_YAML.replace("model:\n", "model:\n  dropout: 1.0\n")}, TRAIN, 2, ["c.yaml:5: model.dropout: input should be less than 1"]),
    "loss/activation": ({"c.yaml": GOOD_YAML.replace("model:\n", "model:\n  output_activation: tanh\n")}, TRAIN, 2, ["c.yaml:5: model.output_activation: cross_entropy needs a softmax output"]),
    "unknown optimizer": ({"c.yaml": GOOD_YAML + "  optimizer: adamm\n"}, TRAIN, 2, ["c.yaml:8: training.optimizer: expected one of: sgd, adam, adamw, rmsprop", "(got 'adamm'); did you mean 'adam'?"]),
    # --- CSVs (with GOOD_YAML) ---
    "csv empty": ({"data.csv": ""}, TRAIN, 2, ["data.csv: file is empty"]),
    "csv header only": ({"data.csv": "a,b,label\n"}, TRAIN, 2, ["data.csv: has a header but no data rows"]),
    "csv binary": ({"data.csv": b"\x00\x01PK\x03\x04\x00"}, TRAIN, 2, ["data.csv:1: binary data"]),
    "csv ragged": ({"data.csv": GOOD_CSV + "1,2\n"}, TRAIN, 2, ["data.csv:8: row has 2 fields but the header has 3 columns"]),
    # (a text cell in a feature makes it categorical: see the accepted cases below)
    "csv category explosion": ({"data.csv": "a,b,label\n" + "".join(f"{i},id{i},{'xy'[i % 2]}\n" for i in range(150))}, TRAIN, 2,
                               ["data.csv: column 'b' has 150 distinct values, more than data.max_categories (100); every value distinct: looks like an ID; add it to data.drop"]),
    "csv empty cell": ({"data.csv": GOOD_CSV + ",2,x\n"}, TRAIN, 2, ["data.csv:8: column 'a': missing value; set data.missing to"]),
    "csv all-missing column": ({"data.csv": "a,b,label\n1,,x\n2,NA,y\n3,,x\n4,,y\n", "c.yaml": GOOD_YAML.replace("data:\n", "data:\n  missing: mean\n")},
                               TRAIN, 2, ["data.csv: column 'b': every value is missing; add the column to data.drop"]),
    "csv missing label": ({"data.csv": GOOD_CSV + "1,2,\n"}, TRAIN, 2, ["data.csv:8: column 'label': missing target value"]),
    "csv text in a regression target": ({"data.csv": "a,b,y\n1,2,3\n3,4,5\n5,6,seven\n", "c.yaml": "data: {train: data.csv, target: y}\ntraining: {loss: mse, epochs: 1}\n"},
                                        TRAIN, 2, ["data.csv:4: column 'y': 'seven' is not a number", "regression target"]),
    "csv nan": ({"data.csv": GOOD_CSV + "nan,2,x\n"}, TRAIN, 2, ["data.csv:8: column 'a': 'nan' (NaN); expected a finite number"]),
    "csv inf": ({"data.csv": GOOD_CSV + "1,-Infinity,x\n"}, TRAIN, 2, ["data.csv:8: column 'b': '-Infinity' is infinite"]),
    "csv 1e400": ({"data.csv": GOOD_CSV + "1e400,2,x\n"}, TRAIN, 2, ["data.csv:8: column 'a': '1e400' is infinite or too large for float64"]),
    "csv semicolons": ({"data.csv": GOOD_CSV.replace(",", ";")}, TRAIN, 2, ["data.csv:1: the header is a single column containing semicolons"]),
    "csv duplicate header": ({"data.csv": "a,a,label\n1,2,x\n"}, TRAIN, 2, ["data.csv:1: column name 'a' appears twice"]),
    "csv one class": ({"data.csv": "a,b,label\n1,2,x\n3,4,x\n"}, TRAIN, 2, ["column 'label' has a single class ('x')"]),
    "csv bad utf-8 on line 5": ({"data.csv": GOOD_CSV.encode().replace(b"7,8", b"7,\xff")}, TRAIN, 2, ["data.csv:5: not UTF-8 text"]),
    # --- model files, through predict ---
    "model pickle": ({"m.npz": pickle.dumps({"W1": 1})}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: a Python pickle (nncli never loads pickles"]),
    "model random bytes": ({"m.npz": bytes(range(256)) * 8}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: not a zip/.npz archive"]),
    "model zero bytes": ({"m.npz": b""}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: empty file"]),
    "model is a csv": ({"m.npz": GOOD_CSV}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: not a zip/.npz archive"]),
    "model truncated": ({"m.npz": npz({"meta": model_meta(), "W1": npy(np.eye(2))})[:150]}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: damaged or truncated model file"]),
    "model version": ({"m.npz": npz({"meta": model_meta(format_version=7), "W1": npy(np.eye(2))})}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: model format version 7 is not supported"]),
    "model shapes": ({"m.npz": npz({"meta": model_meta(), "W1": npy(np.eye(3))})}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: array 'W1' has shape (3, 3), expected (2, 2)"]),
    "model object dtype": ({"m.npz": npz({"meta": model_meta(), "W1": npy(np.array([[print, 1], [2, 3]], dtype=object))})}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: array 'W1' holds Python objects; refusing to load it"]),
    "model giant shape": ({"m.npz": npz({"meta": model_meta(), "W1": GIANT_HEADER.getvalue()})}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: array 'W1' has shape (2, 1000000000000), expected (2, 2)"]),
    "model giant layers": ({"m.npz": npz({"meta": model_meta(layers=[2, 10**9, 2], activations=["relu", "softmax"])})}, ["predict", "m.npz", "data.csv"], 2, ["implausibly large"]),
    "model meta not json": ({"m.npz": npz({"meta": npy(np.array("{oops"))})}, ["predict", "m.npz", "data.csv"], 2, ["m.npz: metadata is not valid JSON"]),
    # --- evaluation and outputs ---
    "unseen label": ({"m.npz": npz({"meta": model_meta(), "W1": npy(np.eye(2))}), "t.csv": "a,b,label\n1,2,x\n3,4,zebra\n"}, ["evaluate", "m.npz", "t.csv"], 2, ["t.csv:3: column 'label': label 'zebra' does not occur in the training data"]),
    "output under a file": ({"blocker": "x"}, ["train", "c.yaml", "-o", "blocker/m.npz"], 2, ["blocker/m.npz: cannot write there: blocker is a file"]),
    "run dir is a file": ({"blocker": "x"}, ["train", "c.yaml", "--run-dir", "blocker"], 2, ["--run-dir blocker: is a file"]),
    "disk full (train)": ({}, ["train", "c.yaml", "-o", "/dev/full"], 1, ["/dev/full: cannot write: No space left on device"]),
    "disk full (predict)": ({"m.npz": npz({"meta": model_meta(), "W1": npy(np.eye(2))})}, ["predict", "m.npz", "data.csv", "-o", "/dev/full"], 1, ["/dev/full: cannot write: No space left on device"]),
    "unwritable (proc)": ({}, ["train", "c.yaml", "-o", "/proc/nncli-test.npz"], 1, ["/proc/nncli-test.npz: cannot write"]),
    "resume a model file": ({"m.npz": npz({"meta": model_meta(), "W1": npy(np.eye(2))})}, ["train", "--resume", "m.npz"], 2, ["m.npz: not an nncli checkpoint (that is a model file: use it with --init-from)"]),
}

ACCEPTED = {
    "bom and crlf": ({"data.csv": b"\xef\xbb\xbf" + GOOD_CSV.replace("\n", "\r\n").encode()}, TRAIN),
    "one row (regression)": ({"data.csv": "a,b,label\n1,2,3\n", "c.yaml": GOOD_YAML + "  loss: mse\ndata:\n"}, None),
    "constant column": ({"data.csv": "a,b,label\n" + "".join(f"5,{i},{'xy'[i % 2]}\n" for i in range(12))}, TRAIN),
    "quoted fields": ({"data.csv": 'a,b,label\n"1","2","x, or so"\n3,4,y\n5,6,"x, or so"\n7,8,y\n'}, TRAIN),
    "text cell: the column becomes categorical": ({"data.csv": GOOD_CSV + "1,two,x\n"}, TRAIN),
}


def snapshot(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def setup(folder: Path, files: dict) -> None:
    base = {"data.csv": GOOD_CSV, "c.yaml": GOOD_YAML}
    for name, content in {**base, **files}.items():
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("name", CASES)
def test_hostile_input(tmp_path, name):
    files, args, code, fragments = CASES[name]
    setup(tmp_path, files)
    before = snapshot(tmp_path)
    started = time.monotonic()
    result = subprocess.run([str(NNCLI), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert snapshot(tmp_path) == before  # nothing written, changed, or executed (no PWNED)
    assert not (tmp_path / "out").exists()
    if name in ("alias bomb", "huge file"):
        assert elapsed < 10  # process start included; the naive way takes minutes


@pytest.mark.parametrize("name", ACCEPTED)
def test_awkward_but_valid_input_is_accepted(tmp_path, name):
    files, args = ACCEPTED[name]
    setup(tmp_path, files)
    if name == "one row (regression)":
        (tmp_path / "c.yaml").write_text("data:\n  train: data.csv\n  target: label\n  validation_split: 0\ntraining:\n  loss: mse\n  epochs: 2\n")
        args = TRAIN
    result = subprocess.run([str(NNCLI), *args, "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out" / "m.npz", allow_pickle=False) as archive:
        assert np.isfinite(archive["W1"]).all()
    if name.startswith("text cell"):
        from nncli.files.model import load_model

        assert load_model(tmp_path / "out" / "m.npz").plan.categorical == ["b"]
