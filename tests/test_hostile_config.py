"""Hostile configs and command lines (issue #10), table-driven like tests/test_hostile.py: every
case is a real `nncli` process, memory-capped where the case is about memory, and must end with
the documented exit code, one `nncli: error: …` line naming the place, no traceback, no warning,
and nothing created or changed. The budgets are in nncli/config/budgets.py (docs/config.md,
"Limits")."""

import os
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nncli.config import config_from_dict, load_config
from nncli.config.source import ConfigSource
from nncli.errors import ConfigError, one_line, quoted
from tests.test_hostile import GOOD_YAML, model_meta, npy, npz, setup, snapshot
from tests.test_subprocess import NNCLI

MEMORY_CAP = 3 << 29  # 1.5 GiB of address space: Python, NumPy and OpenBLAS start well within it
LONG = "x" * 300  # one file name longer than the 255 bytes file systems allow
MODEL = npz({"meta": model_meta(), "W1": npy(np.eye(2))})  # a valid (format 1) model file


def capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def config(**sections) -> str:
    """GOOD_YAML with lines added to its sections: config(model="  dtype: float64")."""
    text = GOOD_YAML
    for section, lines in sections.items():
        text = text.replace(f"{section}:\n", f"{section}:\n{lines}\n", 1)
    return text


TRAIN = ["train", "c.yaml", "-o", "out/m.npz"]
HUGE_LAYER = config(model="  layers: [auto, 1000000000000, auto]").replace("  layers: [auto, 4, auto]\n", "")
NETWORK = "model.layers: 1,000,000,000,000 × 1 weights (layer 2; 3,000,000,000,001 parameters in all) need at least 10.9 TiB as float32"

# name: (files, args, extra environment, capped, exit code, fragments of the one stderr line)
CASES = {
    # --- memory: refused by a budget before anything is allocated ---
    "layer of 10**12": ({"c.yaml": HUGE_LAYER}, TRAIN, {}, True, 2, [f"c.yaml:5: {NETWORK}", "budget is 4 GiB (NNCLI_MAX_NETWORK_BYTES"]),
    "layer of 10**12, dry run": ({"c.yaml": HUGE_LAYER}, [*TRAIN, "--dry-run"], {}, True, 2, [f"c.yaml:5: {NETWORK}"]),
    "layer of 10**12, inspect": ({"c.yaml": HUGE_LAYER}, ["inspect", "c.yaml"], {}, True, 2, [f"c.yaml:5: {NETWORK}"]),
    "layer of 10**12 by --set": ({}, [*TRAIN, "--set", "model.layers=[64,1000000000000,auto]", "--set", "model.dtype=float64"], {}, True, 2,
                                 ["--set model.layers=[64,1000000000000,auto]: model.layers: 64 × 1,000,000,000,000 weights", "480 TiB as float64"]),
    "wide and deep": ({"c.yaml": config(model="  layers: [auto, 100000, 100000, auto]").replace("  layers: [auto, 4, auto]\n", "")}, TRAIN, {}, True, 2,
                      ["c.yaml:5: model.layers: 100,000 × 100,000 weights (layer 2;", "37.3 GiB as float32"]),
    "network budget from the environment": ({"c.yaml": config(model="  layers: [auto, 1000, auto]").replace("  layers: [auto, 4, auto]\n", "")}, TRAIN,
                                            {"NNCLI_MAX_NETWORK_BYTES": "8K"}, False, 2, ["c.yaml:5: model.layers:", "the budget is 8 KiB"]),
    "batch_size 10**15": ({"c.yaml": config(training="  batch_size: 1000000000000000")}, TRAIN, {}, True, 2,
                          ["c.yaml:7: training.batch_size: input should be less than or equal to 1000000000"]),
    "batch_size 10**9": ({"c.yaml": config(training="  batch_size: 1000000000")}, TRAIN, {}, True, 2,
                         ["c.yaml:7: training.batch_size: 1,000,000,000 rows × 4 neurons (the widest layer) need at least 14.9 GiB", "NNCLI_MAX_BATCH_BYTES"]),
    "config is /dev/zero": ({}, ["train", "/dev/zero"], {}, True, 2, ["/dev/zero: config file is larger than 1 MiB"]),
    "config is a sparse 8 GiB file": ({"c.yaml": b"sparse"}, TRAIN, {}, True, 2, ["c.yaml: config file is larger than 1 MiB"]),
    "half a million values": ({"c.yaml": "data: {train: data.csv, target: [" + "a," * 450_000 + "a]}\n"}, TRAIN, {}, True, 2,
                              ["c.yaml:1:", "config holds more than 100,000 values"]),
    # --- the stack: nesting is counted while PyYAML builds its (recursive) tree ---
    "5,000 nested [ in the file": ({"c.yaml": "data: " + "[" * 5000 + "\n"}, TRAIN, {}, False, 2, ["c.yaml:1:38: nested more than 32 levels deep"]),
    "5,000 nested [ in --set": ({}, [*TRAIN, "--set", "model.layers=" + "[" * 5000], {}, False, 2, ["model.layers: nested more than 32 levels deep"]),
    "deeply nested --set value": ({}, [*TRAIN, "--set", "data.target=" + nested(40)], {}, False, 2, ["data.target: nested more than 32 levels deep"]),
    "deeply nested --set key": ({}, [*TRAIN, "--set", "a." * 5000 + "b=1"], {}, False, 2, ["the key is nested more than 32 levels deep"]),
    # --- integers: digits counted before conversion, every count bounded ---
    "--set 5,000 nines": ({}, [*TRAIN, "--set", "training.epochs=" + "9" * 5000], {}, False, 2,
                          ["(5,022 characters): training.epochs: an integer of 5,000 digits is far out of range"]),
    "5,000-digit hex, print config": ({"c.yaml": config(training="  epochs: 0x" + "f" * 5000).replace("  epochs: 2\n", "")}, [*TRAIN, "--print-config"], {}, False, 2,
                                      ["c.yaml:7: training.epochs: an integer of 5,000 digits is far out of range"]),
    "a million digits on one line": ({"c.yaml": config(training="  batch_size: " + "7" * 1_000_000)}, TRAIN, {}, False, 2,
                                     ["c.yaml:7: training.batch_size: an integer of 1,000,000 digits"]),
    "epochs above the bound": ({}, [*TRAIN, "--set", "training.epochs=100001"], {}, False, 2, ["training.epochs: input should be less than or equal to 100000 (got 100001)"]),
    # --- initial weights: finite in the model's dtype ---
    "normal std 1e308": ({}, [*TRAIN, "--set", "model.init={name: normal, std: 1e308}"], {}, False, 2, ["model.init.std: input should be less than or equal to 1000000"]),
    "constant 1e308": ({"c.yaml": config(model="  init: {name: constant, value: 1e308}")}, TRAIN, {}, False, 2, ["c.yaml:5: model.init.value: input should be less than or equal to 1000000"]),
    "uniform limit 1e308": ({}, [*TRAIN, "--set", "model.init={name: uniform, limit: 1e308}"], {}, False, 2, ["model.init.limit: input should be less than or equal to 1000000 (got 1e+308)"]),
    # --- long and odd keys and values: quoted short, escaped ---
    "a 1 MB unknown key": ({"c.yaml": config(training="  ? " + "k" * 1_000_000 + "\n  : 1")}, TRAIN, {}, False, 2,
                           ["c.yaml:7: training.kkkkkkkkkkkkkkkkkkkkkkkkkkkk…kkkkkk (1,000,000 characters): unknown key"]),
    "a 1 MB value on one line": ({"c.yaml": config(training="  loss: " + "v" * 1_000_000)}, TRAIN, {}, False, 2,
                                 ["c.yaml:7: training.loss: input should be", "(got 'vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv…vvvvvvvv' (1,000,000 characters))"]),
    "a 1 MB duplicate key": ({"c.yaml": config(training=("  ? " + "k" * 400_000 + "\n  : 1\n") * 2)}, TRAIN, {}, False, 2, ["(400,000 characters): duplicate key (first set on line 7)"]),
    "a 1 MB tag": ({"c.yaml": "data: !!python/name:" + "x" * 900_000 + " 1\n"}, TRAIN, {}, False, 2, ["c.yaml:1:7: YAML syntax error: could not determine a constructor", "(900,078 characters)"]),
    "control characters in a key": ({"c.yaml": config(training='  "\\e[2J\\e[31mred\\u202e": 1')}, TRAIN, {}, False, 2, ["c.yaml:7: training.\\x1b[2J\\x1b[31mred\\u202e: unknown key"]),
    "a list as a key": ({"c.yaml": config(training="  ? [a, b]\n  : 1")}, TRAIN, {}, False, 2, ["c.yaml:7: training: a key must be a name, not a list or mapping"]),
    "a long --set value": ({}, [*TRAIN, "--set", "data.target=" + "z" * 100_000], {"NNCLI_MAX_CONFIG_BYTES": "64K"}, False, 2,
                           ["--set data.target=zzzz", "(100,018 characters): longer than a whole config may be (64 KiB; NNCLI_MAX_CONFIG_BYTES"]),
    "superscript index in --set": ({}, [*TRAIN, "--set", "model.layers.²=3"], {}, False, 2, ["--set model.layers.²=3: model.layers has 3 entries; '²' is not an index of it"]),
    "a bad budget variable": ({}, TRAIN, {"NNCLI_MAX_CONFIG_BYTES": "lots"}, False, 2, ["environment variable NNCLI_MAX_CONFIG_BYTES='lots': expected a number such as 8G"]),
    # --- explicit YAML tags: the value must be what the tag says (these were tracebacks) ---
    "!!int 1:30": ({"c.yaml": GOOD_YAML.replace("epochs: 2", 'epochs: !!int "1:30"')}, TRAIN, {}, False, 2, ["c.yaml:7:11: '1:30' is not a valid int (tagged !!int)"]),
    "!!float empty": ({"c.yaml": GOOD_YAML.replace("epochs: 2", 'epochs: !!float ""')}, TRAIN, {}, False, 2, ["c.yaml:7:11: '' is not a valid float (tagged !!float)"]),
    "!!bool maybe": ({}, [*TRAIN, "--set", "data.shuffle=!!bool maybe"], {}, False, 2, ["--set data.shuffle=!!bool maybe: data.shuffle: 'maybe' is not a valid bool"]),
    "!!timestamp": ({"c.yaml": GOOD_YAML.replace("epochs: 2", "epochs: !!timestamp 2020-13-45")}, TRAIN, {}, False, 2, ["c.yaml:7:11:", "could not determine a constructor for the tag 'tag:yaml.org,2002:timestamp'"]),
    "NUL in the output path": ({}, [*TRAIN[:2], "--set", 'output="m\\0.npz"'], {}, False, 2, ["output: a path cannot contain a NUL character"]),
    # --- names the file system refuses (ENAMETOOLONG) ---
    "-o name too long": ({}, ["train", "c.yaml", "-o", LONG + ".npz"], {}, False, 2, ["304 bytes"]),
    "--run-dir name too long": ({}, ["train", "c.yaml", "--run-dir", LONG], {}, False, 2, ["(300 characters): file name too long"]),
    "--export name too long": ({"m.npz": MODEL}, ["inspect", "m.npz", "--export", LONG], {}, False, 2, ["(300 characters): file name too long"]),
    "predict -o name too long": ({"m.npz": MODEL}, ["predict", "m.npz", "data.csv", "-o", LONG], {}, False, 2, ["300 bytes"]),
    "config name too long": ({}, ["train", LONG + ".yaml"], {}, False, 2, ["(305 characters): file name too long"]),
    "data name too long": ({}, [*TRAIN, "--set", f"data.train={LONG}.csv"], {}, False, 2, ["(304 characters): file name too long"]),
    "model name too long": ({}, ["predict", LONG + ".npz", "data.csv"], {}, False, 2, ["(304 characters): file name too long"]),
    "checkpoint name too long": ({}, ["train", "--resume", LONG], {}, False, 2, ["(300 characters): file name too long"]),
    "path too long": ({}, ["train", "c.yaml", "-o", "d/" * 2100 + "m.npz"], {}, False, 2, ["file name too long (the path is 4,205 bytes long; the system allows 4,096)"]),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_config(tmp_path, name):
    files, args, env, memory_capped, code, fragments = CASES[name]
    setup(tmp_path, files)
    if name == "config is a sparse 8 GiB file":
        with open(tmp_path / "c.yaml", "r+b") as f:
            f.truncate(8 << 30)  # no disk used; read whole, it would need 8 GiB of memory
    before = snapshot(tmp_path) if "sparse" not in name else None
    started = time.monotonic()
    result = subprocess.run([str(NNCLI), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env}, preexec_fn=capped if memory_capped else None)
    elapsed = time.monotonic() - started
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    assert len(result.stderr) < 1000, len(result.stderr)  # values are quoted short
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    if before is not None:
        assert snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "d").exists()
    assert elapsed < 20  # refused up front (process start included), not after allocating


# --- stdout that cannot be written (a full disk): one line on stderr and exit 1, --help too ---
FULL = {
    "--help": ["--help"],
    "--version": ["--version"],
    "bare nncli": [],
    "train --help": ["train", "--help"],
    "schema": ["schema"],
    "print config": ["train", "c.yaml", "--print-config"],
    "inspect a config": ["inspect", "c.yaml"],
    "inspect a model": ["inspect", "m.npz"],
    "predict": ["predict", "m.npz", "data.csv"],
    "evaluate --json": ["evaluate", "m.npz", "data.csv", "--json"],
}


@pytest.mark.parametrize("name", FULL)
def test_stdout_is_a_full_disk(tmp_path, name):
    setup(tmp_path, {"m.npz": MODEL})
    before = snapshot(tmp_path)
    with open("/dev/full", "w") as full:
        result = subprocess.run([str(NNCLI), *FULL[name]], cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_out_of_memory_beyond_the_budgets_is_one_line(tmp_path):
    """A budget raised above what the machine has: NumPy's MemoryError becomes one line, exit 1."""
    setup(tmp_path, {"c.yaml": config(model="  layers: [auto, 100000, 100000, auto]").replace("  layers: [auto, 4, auto]\n", "")})
    result = subprocess.run([str(NNCLI), *TRAIN, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NNCLI_MAX_NETWORK_BYTES": "1T"}, preexec_fn=capped)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr == "nncli: error: out of memory; use a smaller batch_size or smaller layers (budgets: docs/config.md)\n"


# Needs, in nncli/commands/train.py `_layer_sizes`, before `return layers`:
#     check_network_budget(config, layers, rows=len(data.X_train))
@pytest.mark.parametrize("budget, fragment", [
    ("NNCLI_MAX_NETWORK_BYTES", "model.layers: 300 × 4 weights (layer 1; 1,214 parameters in all) need 4.7 KiB as float32"),
    ("NNCLI_MAX_BATCH_BYTES", "training.batch_size: 5 rows × 306 neurons (every layer's width added up) × 2 buffers need 12.0 KiB"),
])
def test_budgets_again_once_auto_sizes_are_known(tmp_path, budget, fragment):
    """[auto, 4, auto] fits with auto = 1; the data's 300 feature columns make it too big."""
    header = ",".join(f"f{i}" for i in range(300)) + ",label"
    rows = "".join(",".join(["1"] * 300) + f",{'xy'[i % 2]}\n" for i in range(6))
    setup(tmp_path, {"data.csv": header + "\n" + rows})
    result = subprocess.run([str(NNCLI), *TRAIN, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, budget: "4K"})
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and result.stderr.count("\n") == 1


# --- in-process: the other bounds and --set paths (the same code as in a process, without the
# start-up cost of one per case) ---
IN_PROCESS = {
    "layer of 10**12, print config": ([], HUGE_LAYER, f"c.yaml:5: {NETWORK}"),
    "5,000-digit hex by --set": (["training.epochs=0x" + "f" * 5000], GOOD_YAML, "training.epochs: an integer of 5,000 digits"),
    "patience above the bound": (["training.early_stopping={patience: 10000000}"], GOOD_YAML, "training.early_stopping.patience: input should be less than or equal to 100000"),
    "step_size above the bound": (["training.schedule={name: step, step_size: 10000000}"], GOOD_YAML, "training.schedule.step_size: input should be less than or equal to 100000"),
    "checkpoint_every above the bound": (["training.checkpoint_every=10000000"], GOOD_YAML, "training.checkpoint_every: input should be less than or equal to 100000"),
    "warmup above the bound": (["training.warmup_epochs=10000000"], GOOD_YAML, "training.warmup_epochs: input should be less than or equal to 100000"),
    "seed 2**63": ([f"seed={2**63}"], GOOD_YAML, "seed: input should be less than 9223372036854775808"),
    "too many layers": (["model.layers=[auto" + ", 1" * 1000 + ", auto]"], GOOD_YAML, "model.layers: list should have at most 1000 items"),
    "layer size 2**63": ([f"model.layers=[auto, {2**63}, auto]"], GOOD_YAML, "model.layers.1: expected a whole number of neurons >= 1 (below 2**63)"),
    "class weight 1e300": (["training.class_weights={x: 1e300}"], GOOD_YAML, "the weight of class 'x' must be a number > 0 and at most 1e6 (got 1e+300)"),
    "a long path by --set": (["data.train=" + "p/" * 3000], GOOD_YAML, "data.train: string should have at most 4096 characters"),
    "5,000-digit index in --set": (["model.layers." + "9" * 5000 + "=3"], GOOD_YAML, "(5,000 characters) is not an index of it"),
    "key under a list entry": (["model.layers.1.x=3"], GOOD_YAML, "--set model.layers.1.x=3: model.layers.1 is a single value, not a section"),
    "!!int abc": (["training.epochs=!!int abc"], GOOD_YAML, "training.epochs: 'abc' is not a valid int (tagged !!int)"),
    "!!int with underscores": (["training.epochs=!!int 1_000"], GOOD_YAML, "'1_000' is not a valid int"),
    "!!int in Arabic-Indic digits": (["training.epochs=!!int \"\u0663\""], GOOD_YAML, "is not a valid int"),
    "!!null x": (["training.clip_norm=!!null x"], GOOD_YAML, "'x' is not a valid null"),
    "!!binary": (["data.target=!!binary AAAA"], GOOD_YAML, "could not determine a constructor for the tag 'tag:yaml.org,2002:binary'"),
    "!!set": (["data.target=!!set {a}"], GOOD_YAML, "could not determine a constructor for the tag 'tag:yaml.org,2002:set'"),
    "NUL in data.train": (['data.train="a\\0b"'], GOOD_YAML, "data.train: a path cannot contain a NUL character"),
    "a --set key of 1,000 dots": (["." * 1000 + "=1"], GOOD_YAML, "the key is nested more than 32 levels deep"),
}


@pytest.mark.parametrize("name", IN_PROCESS)
def test_hostile_config_in_process(tmp_path, name):
    overrides, text, fragment = IN_PROCESS[name]
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "c.yaml", overrides)
    message = str(error.value)
    assert fragment in message and len(message) < 1000, message


# --- in-process: what a subprocess cannot be given (argv holds at most 128 KiB per argument) ---
def test_a_10_mb_set_value_is_refused_quickly(tmp_path):
    (tmp_path / "c.yaml").write_text(GOOD_YAML)
    started = time.monotonic()
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "c.yaml", ["data.target=" + "z" * 10_000_000])
    assert time.monotonic() - started < 2
    message = str(error.value)
    assert "longer than a whole config may be (1 MiB" in message and len(message) < 300


@pytest.mark.parametrize("raw, fragment", [
    # a checkpoint's stored config is JSON: integers of up to 4,300 digits reach validation
    ({"training": {"class_weights": {"x": 10**400}}}, "the weight of class 'x' must be a number > 0 and at most 1e6 (got an integer of 1,329 bits)"),
    ({"model": {"layers": ["auto", 10**4000, "auto"]}}, "model.layers.1: expected a whole number of neurons >= 1 (below 2**63)"),
    ({"training": {"epochs": 10**4000}}, "training.epochs: input should be less than or equal to 100000 (got an integer of 13,288 bits)"),
    ({"training": {"learning_rate": 10**4000}}, "training.learning_rate: input should be a valid number (got an integer of 13,288 bits)"),
])
def test_stored_configs_with_huge_numbers(raw, fragment):
    with pytest.raises(ConfigError) as error:
        config_from_dict({"data": {"train": "d.csv"}, **raw}, ConfigSource(Path("run.ckpt")))
    assert fragment in str(error.value) and len(str(error.value)) < 300


@pytest.mark.parametrize("raw", ["x", [], None, 5])
def test_a_stored_config_that_is_not_a_mapping(raw):
    with pytest.raises(ConfigError, match="run.ckpt: the config is .*, expected a mapping of settings"):
        config_from_dict(raw, ConfigSource(Path("run.ckpt")), ["training.epochs=3"])


def test_messages_are_one_safe_line():
    assert one_line("a\nb\x1b[2J\u202ec\x00") == "a b\\x1b[2J\\u202ec\\x00"
    assert len(one_line("x" * 10_000_000)) <= 2000
    assert quoted("x" * 1000) == repr("x" * 63 + "…" + "x" * 16) + " (1,000 characters)"
    assert quoted("bell\x07") == "'bell\\x07'"
