"""Runs people script: signals, checkpoints, resume, kill -9, dry runs, the schema — through
the installed `nncli` as a real process."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml

from tests.conftest import CONFIGS
from tests.test_subprocess import NNCLI, run


def _arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


def _start(*args):
    return subprocess.Popen([str(NNCLI), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epoch_rows(proc, rows=1, timeout=60):
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < rows and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.strip()[:1].isdigit() and "%" in line:
            seen += 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_matches_an_uninterrupted_run(tmp_path, sig):
    common = ["--set", "training.epochs=40", "--set", "training.optimizer={name: adam}", "--set", "training.learning_rate=0.001"]
    straight = run("train", CONFIGS / "digits.yaml", "-o", tmp_path / "a.npz", "--quiet", *common)
    assert straight.returncode == 0, straight.stderr

    proc = _start("train", CONFIGS / "digits.yaml", "-o", tmp_path / "b.npz", *common)
    _wait_for_epoch_rows(proc, rows=2)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    checkpoint = tmp_path / "b.ckpt.npz"
    assert stderr.startswith("nncli: interrupted: stopped ") and stderr.count("\n") == 1
    assert f"checkpoint saved to {checkpoint}; resume with: nncli train --resume {checkpoint}" in stderr
    assert not (tmp_path / "b.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.config.yaml", "a.history.csv", "a.metrics.json", "a.npz", "b.ckpt.npz",
    ]  # no temp files

    resumed = run("train", "--resume", checkpoint, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a, b = _arrays(tmp_path / "a.npz"), _arrays(tmp_path / "b.npz")
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_second_interrupt_exits_at_once(tmp_path):
    proc = _start("train", CONFIGS / "digits.yaml", "-o", tmp_path / "m.npz", "--set", "training.epochs=100000",
                  "--set", "training.batch_size=1")
    _wait_for_epoch_rows(proc, rows=0)
    time.sleep(0.5)
    # Two signals in quick succession: the second lands while the first batch is finishing.
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.startswith("nncli: interrupted")
    assert not (tmp_path / "m.npz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kill_9_loses_at_most_the_epochs_since_the_last_checkpoint(tmp_path):
    proc = _start("train", CONFIGS / "digits.yaml", "-o", tmp_path / "m.npz", "--set", "training.epochs=100000",
                  "--set", "training.checkpoint_every=2")
    checkpoint = tmp_path / "m.ckpt.npz"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=60)
    from nncli.files.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)  # whole and readable: it was written atomically
    done = state.trainer_state["epoch"] - 1
    assert done >= 2 and done % 2 == 0 and state.trainer_state["batch"] == 0
    result = run("train", "--resume", checkpoint, "--set", f"training.epochs={done + 2}", "--json")
    assert result.returncode == 0, result.stderr
    history = json.loads(result.stdout)["history"]
    assert [r["epoch"] for r in history] == list(range(1, done + 3))


def test_dry_run_and_print_config_write_nothing(tmp_path):
    result = run("train", CONFIGS / "digits.yaml", "--dry-run", "-o", tmp_path / "m.npz")
    assert result.returncode == 0 and "64 × 128" in result.stdout and "nothing trained" in result.stdout
    assert list(tmp_path.iterdir()) == []
    printed = run("train", CONFIGS / "digits.yaml", "--print-config", "--set", "training.epochs=7")
    config = yaml.safe_load(printed.stdout)
    assert config["training"]["epochs"] == 7 and config["training"]["optimizer"] == {"name": "sgd", "momentum": 0.0, "nesterov": False}
    result = run("train", CONFIGS / "digits.yaml", "--dry-run", "-o", tmp_path / "x.npz", "--set", "model.layers=[3, 8, auto]")
    assert result.returncode == 2 and "model.layers.0: declares 3 inputs" in result.stderr


def test_schema_describes_the_config():
    import jsonschema

    result = run("schema")
    schema = json.loads(result.stdout)
    for name in ("digits", "seed-example", "xor", "diabetes", "iris"):
        jsonschema.validate(yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"data": {"train": "x.csv"}, "training": {"epochs": 0}}, schema)


def test_existing_outputs_need_force(tmp_path):
    args = ["train", CONFIGS / "xor.yaml", "-o", tmp_path / "m.npz", "--set", "training.epochs=1", "--quiet"]
    assert run(*args).returncode == 0
    stamp = os.stat(tmp_path / "m.npz").st_mtime_ns
    again = run(*args)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert os.stat(tmp_path / "m.npz").st_mtime_ns == stamp
    assert run(*args, "--force").returncode == 0


def test_a_table_marks_the_best_epochs(tmp_path):
    result = run("train", CONFIGS / "iris.yaml", "-o", tmp_path / "m.npz", "--set", "training.epochs=100",
                 "--set", "training.early_stopping={patience: 3}")  # stops early, near epoch 60
    assert result.returncode == 0
    rows = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit() and "%" in line]
    assert any(line.split()[0].endswith("*") for line in rows)
    assert "the model holds the best epoch" in result.stdout


def test_force_never_overwrites_the_runs_own_inputs(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text((CONFIGS.parent / "datasets" / "iris.csv").read_text())
    before = data.read_bytes()
    result = run("train", CONFIGS / "iris.yaml", "--set", f"data.train={data}", "-o", data, "--force")
    assert result.returncode == 2 and "is an input of this run" in result.stderr
    assert data.read_bytes() == before


def test_init_from_errors_name_the_option(tmp_path):
    result = run("train", CONFIGS / "digits.yaml", "--init-from", tmp_path / "missing.npz", "-o", tmp_path / "m.npz")
    assert result.returncode == 2
    assert result.stderr.startswith(f"nncli: error: --init-from {tmp_path / 'missing.npz'}: model.init_from: ")


def test_a_dry_run_never_refuses_for_existing_outputs_and_touches_nothing(tmp_path):
    model = tmp_path / "m.npz"
    assert run("train", CONFIGS / "xor.yaml", "-o", model, "--quiet").returncode == 0
    stale = tmp_path / ".m.npz.123.tmp"
    stale.write_text("left by a killed run")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    result = run("train", CONFIGS / "xor.yaml", "-o", model, "--dry-run")
    assert result.returncode == 0 and "nothing trained, nothing written" in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_log_every_still_prints_the_epoch_early_stopping_ended_on(tmp_path):
    result = run("train", CONFIGS / "iris.yaml", "-o", tmp_path / "m.npz", "--set", "training.epochs=200",
                 "--set", "training.early_stopping={patience: 2}", "--log-every", "50")
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.strip()[:1].isdigit() and "%" in line]
    last = json.loads((tmp_path / "m.metrics.json").read_text())["epochs"]
    assert last < 200 and last % 50 != 0  # it did stop early, off the --log-every grid
    assert rows and rows[-1].rstrip("*") == str(last)


def test_inspect_shows_the_parameters_of_activations_and_loss(tmp_path):
    model = tmp_path / "m.npz"
    assert run("train", CONFIGS / "diabetes.yaml", "-o", model, "--quiet", "--set", "model.activation=leaky_relu",
               "--set", "model.leaky_relu_slope=0.2", "--set", "training.loss=huber", "--set", "training.huber_delta=0.5",
               "--set", "training.epochs=2").returncode == 0
    text = run("inspect", model).stdout
    assert "leaky_relu (slope 0.2)" in text and "huber loss, delta 0.5" in text
    document = json.loads(run("inspect", model, "--json").stdout)
    assert document["loss_params"] == {"delta": 0.5} and document["layers"][0]["activation_params"] == {"slope": 0.2}


def test_a_sigint_ignored_at_start_stays_ignored_and_sigterm_still_stops(tmp_path):
    """A background job of a script starts with SIGINT ignored: nncli keeps ignoring it all
    run long (not only while the data loads), and SIGTERM still checkpoints and stops."""
    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    common = ["train", CONFIGS / "digits.yaml", "--set", "training.epochs=400", "--force"]
    proc = subprocess.Popen([str(NNCLI), *map(str, common), "-o", tmp_path / "a.npz"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint)
    _wait_for_epoch_rows(proc, rows=2)
    proc.send_signal(signal.SIGINT)
    _wait_for_epoch_rows(proc, rows=2)  # still training
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.startswith("nncli: interrupted: stopped "), stderr
