"""Hostile runs, as a real `nncli` process each: edited and foreign checkpoints, checkpoints
that try to send a run's writes elsewhere, two runs on the same outputs, signals and kill -9
aimed at every step of the save, metrics that overflow, and --force against the run's own
inputs. Every refusal is exit 2 with one `nncli: error: …` line, no traceback, and nothing
written, changed or left behind."""

import io
import json
import os
import resource
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from nncli.commands.session import TrainRequest, open_session
from nncli.errors import InterruptedRun
from nncli.files.checkpoint import config_hash, layout_hash
from tests.conftest import CONFIGS
from tests.test_hostile import snapshot
from tests.test_subprocess import NNCLI
from tests.test_training import RUN_FOLDER_FILES, StopAt

MEMORY_CAP = 3 << 29  # 1.5 GiB: far more than any case here needs once it is refused


def nncli(*args, cwd=None, env=None, cap=None, timeout=120):
    limit = None if cap is None else (lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
    return subprocess.run([str(NNCLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, preexec_fn=limit)


def assert_refused(result, *fragments, code=2):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- a checkpoint to edit ----------------------------------------------------------------------
ITERATED = ["training.epochs=5", "training.early_stopping={patience: 50}", "training.optimizer={name: sgd, momentum: 0.9}"]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A checkpoint of iris stopped inside epoch 3 (early stopping on: best weights stored;
    momentum: optimizer slots stored; the epoch's row order stored)."""
    folder = tmp_path_factory.mktemp("original")
    session = open_session(TrainRequest(CONFIGS / "iris.yaml", ITERATED, output=str(folder / "m.npz")))
    with pytest.raises(InterruptedRun):
        session.train(StopAt(session.trainer, 3, 2))
    return folder / "m.ckpt.npz"


def edit(source: Path, target: Path, meta_change=None, arrays: dict | None = None, raw: dict | None = None) -> Path:
    """A copy of a checkpoint with its metadata changed, arrays replaced (name -> function of
    the array) or members replaced by raw .npy bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data, name = zin.read(info), info.filename[: -len(".npy")]
            if name == "meta" and meta_change is not None:
                meta = json.loads(str(np.lib.format.read_array(io.BytesIO(data))))
                meta_change(meta)
                data = _npy(np.array(json.dumps(meta)))
            elif arrays and name in arrays:
                data = _npy(arrays[name](np.lib.format.read_array(io.BytesIO(data))))
            if raw and name in raw:
                data = raw[name]
            zout.writestr(info.filename, data)
    return target


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def rehashed(change):
    """An edit whose author also recomputed the hashes (they are no secret)."""
    def apply(meta):
        change(meta)
        meta["config_sha256"] = config_hash(meta["config"]) if isinstance(meta["config"], dict) else None
        meta["files_sha256"] = layout_hash(meta["files"])
    return apply


def as_version_1(files: dict):
    """The previous format: absolute paths in `files`, no hash over them."""
    def apply(meta):
        meta["format_version"] = 1
        meta["files"] = files
        meta.pop("files_sha256")
    return apply


def _huge_order_header() -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (1 << 28,)})
    return header.getvalue() + bytes(64)  # declares 2 GiB; holds 64 bytes


def _declare_huge_order(meta):
    meta["arrays"]["order"] = [[1 << 28], "int64"]


# name: (meta change, array changes, raw members, fragments of the one stderr line)
EDITED = {
    # --- the files a resumed run writes ---
    "files redirected": (rehashed(lambda m: m["files"].update(model="../elsewhere/x.npz")), None, None,
                         ["checkpoint field files.model: '../elsewhere/x.npz' is not a plain file name"]),
    "files edited, hash kept": (lambda m: m["files"].update(model="other.npz"), None, None,
                                ["the checkpoint's files entry does not match its recorded hash"]),
    "files renamed within the folder": (rehashed(lambda m: m["files"].update(model="notes.txt")), None, None,
                                        ["the checkpoint was renamed (its run's checkpoint is notes.txt.ckpt.npz", "give --output MODEL or --run-dir"]),
    "files.model 5": (rehashed(lambda m: m["files"].update(model=5)), None, None, ["checkpoint field files.model: input should be a valid string"]),
    "files layout unknown": (rehashed(lambda m: m.update(files={"layout": "anywhere"})), None, None, ["checkpoint field files.layout"]),
    "version 1 pointing elsewhere": (as_version_1({"model": "/root/.bashrc", "checkpoint": "/root/.bashrc.ckpt.npz",
                                                   "history": "/root/h.csv", "metrics": "/root/m.json", "config": "/root/c.yaml"}),
                                     None, None, ["checkpoint field files: not the files of one run"]),
    "version 1 files.model 5": (as_version_1({"model": 5}), None, None, ["checkpoint field files.model: expected a path"]),
    # --- the config ---
    "config {}": (rehashed(lambda m: m.update(config={})), None, None, ["the checkpoint's config: data: required setting is missing"]),
    "config a list": (rehashed(lambda m: m.update(config=[1])), None, None, ["checkpoint metadata lacks 'config'"]),
    "config unresolved": (rehashed(lambda m: m["config"]["model"].update(layers=["auto", 16, "auto"])), None, None,
                          ["the checkpoint's config leaves model.layers unresolved"]),
    "config edited": (lambda m: m["config"]["training"].update(learning_rate=0.5), None, None, ["does not match its recorded hash"]),
    # --- the trainer's state ---
    "optimizer a string": (lambda m: m["trainer"].update(optimizer="adam"), None, None, ["checkpoint field trainer.optimizer: input should be a valid dictionary"]),
    "optimizer of another kind": (lambda m: m["trainer"]["optimizer"].update(name="adam"), None, None, ["checkpoint state is damaged (optimizer)"]),
    "optimizer slots of adam": (lambda m: m["trainer"]["optimizer"].update(slots=["m", "v"]), None, None, ["optimizer slots ['m', 'v']; sgd keeps ['velocity']"]),
    "optimizer steps negative": (lambda m: m["trainer"]["optimizer"].update(steps=-1), None, None, ["trainer.optimizer.steps: input should be greater than or equal to 0"]),
    "learning rate nan": (lambda m: m["trainer"]["optimizer"].update(learning_rate={"nonfinite": "nan"}), None, None, ["trainer.optimizer.learning_rate"]),
    "rng 2**200": (lambda m: m["trainer"]["shuffle_rng"]["state"].update(state=2**200), None, None, ["trainer.shuffle_rng.state.state: input should be less than"]),
    "rng of another kind": (lambda m: m["trainer"]["dropout_rng"].update(bit_generator="MT19937"), None, None, ["trainer.dropout_rng.bit_generator: input should be 'PCG64'"]),
    "epoch a string": (lambda m: m["trainer"].update(epoch="3"), None, None, ["trainer.epoch: input should be a valid integer"]),
    "batch beyond the epoch": (lambda m: m["trainer"].update(batch=999), None, None, ["checkpoint state is damaged (epoch 3, batch 999)"]),
    "history too short": (lambda m: m["trainer"].update(history=[]), None, None, ["0 history rows for 2 finished epochs"]),
    "history misnumbered": (lambda m: m["trainer"]["history"][1].update(epoch=7), None, None, ["the history's epochs are not numbered"]),
    "history extra key": (lambda m: m["trainer"]["history"][0].update(evil=1), None, None, ["trainer.history.0.evil: extra inputs are not permitted"]),
    "running counts": (lambda m: m["trainer"]["running"].update(count=10**6), None, None, ["running accuracy counts"]),
    "running of r2": (lambda m: m["trainer"].update(running={"residual": [1.0]}), None, None, ["trainer.running.correct: field required"]),
    "best epoch beyond history": (lambda m: m["trainer"]["early_stopping"].update(best_epoch=9), None, None, ["early-stopping best epoch 9 of 2"]),
    "early stopping dropped": (lambda m: m["trainer"].update(early_stopping=None), None, None, ["early-stopping state missing"]),
    "schedule state invented": (lambda m: m["trainer"].update(schedule={"current": 1.0}), None, None, ["schedule state for a schedule that keeps none"]),
    "stopped_early a number": (lambda m: m["trainer"].update(stopped_early=1), None, None, ["trainer.stopped_early: input should be a valid boolean"]),
    "data hash not a hash": (lambda m: m["data_sha256"].update({next(iter(m["data_sha256"])): 5}), None, None, ["is not a SHA-256"]),
    "data hashes dropped": (lambda m: m["data_sha256"].clear(), None, None, ["the checkpoint's data files are not the ones this run reads"]),
    # --- the arrays ---
    "best weights nan": (None, {"best.0": lambda a: a * np.nan}, None, ["checkpoint state is damaged (array best.0 holds NaN or infinite values)"]),
    "weights inf": (None, {"param.1": lambda a: a + np.inf}, None, ["weights param.1 holds NaN or infinite values"]),
    "momentum nan": (None, {"optimizer.velocity.0": lambda a: a * np.nan}, None, ["array optimizer.velocity.0 holds NaN"]),
    "momentum of another shape": (None, {"optimizer.velocity.0": lambda a: np.zeros((3, 3), a.dtype)}, None,
                                  ["array 'optimizer.velocity.0' has shape (3, 3), expected (4, 16)"]),
    "order too long": (None, {"order": lambda a: np.concatenate([a, a])}, None, ["array 'order' has shape (240,), expected (120,)"]),
    "order not a permutation": (None, {"order": lambda a: np.zeros_like(a)}, None, ["the epoch's row order is not a permutation"]),
    "order declares 2 GiB": (_declare_huge_order, None, {"order": _huge_order_header()}, ["array 'order' has shape (268435456,), expected (120,)"]),
}


@pytest.mark.parametrize("name", EDITED)
def test_edited_checkpoints_are_one_line_and_write_nothing(original, tmp_path, name):
    meta_change, arrays, raw, fragments = EDITED[name]
    checkpoint = edit(original, tmp_path / "run" / "m.ckpt.npz", meta_change, arrays, raw)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bashrc").write_text("export PS1='$ '\n")
    before = snapshot(tmp_path)
    started = time.monotonic()
    # --force: even allowed to overwrite, an edited checkpoint writes nothing anywhere.
    result = nncli("train", "--resume", checkpoint, "--force", cwd=tmp_path / "run", cap=MEMORY_CAP)
    assert_refused(result, str(checkpoint), *fragments)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["run", "m.ckpt.npz", "home", ".bashrc"])
    assert time.monotonic() - started < 30


def test_a_checkpoint_with_old_paths_writes_into_its_own_folder(original, tmp_path):
    """The issue's attack: a checkpoint (previous format: absolute paths) names another folder.
    Resuming writes the run's files beside the checkpoint, and nothing in that folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.npz").write_text("not a model: a file of someone else's\n")
    files = {kind: str(elsewhere / name) for kind, name in
             {"model": "m.npz", "checkpoint": "m.ckpt.npz", "history": "m.history.csv", "metrics": "m.metrics.json", "config": "m.config.yaml"}.items()}
    checkpoint = edit(original, tmp_path / "run" / "m.ckpt.npz", as_version_1(files))
    before = snapshot(elsewhere)
    result = nncli("train", "--resume", checkpoint, "--force", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert snapshot(elsewhere) == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["m.config.yaml", "m.history.csv", "m.metrics.json", "m.npz"]


def test_a_moved_checkpoint_and_a_renamed_run_folder_continue_where_they_are(original, tmp_path):
    moved = tmp_path / "moved" / "m.ckpt.npz"
    moved.parent.mkdir()
    shutil.copy(original, moved)
    before = snapshot(original.parent)
    assert nncli("train", "--resume", moved, "--quiet").returncode == 0
    assert snapshot(original.parent) == before
    assert sorted(p.name for p in moved.parent.iterdir()) == ["m.config.yaml", "m.history.csv", "m.metrics.json", "m.npz"]

    session = open_session(TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=3"], run_dir=tmp_path / "rd"))
    with pytest.raises(InterruptedRun):
        session.train(StopAt(session.trainer, 2, 1))
    (tmp_path / "rd").rename(tmp_path / "renamed")
    assert nncli("train", "--resume", tmp_path / "renamed" / "checkpoint.npz", "--quiet").returncode == 0
    assert not (tmp_path / "rd").exists()
    assert sorted(p.name for p in (tmp_path / "renamed").iterdir()) == RUN_FOLDER_FILES


def test_a_renamed_checkpoint_needs_to_be_told_where_to_write(original, tmp_path):
    renamed = tmp_path / "backup.npz"
    shutil.copy(original, renamed)
    assert_refused(nncli("train", "--resume", renamed, cwd=tmp_path), "the checkpoint was renamed", "give --output MODEL")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.npz"]
    assert nncli("train", "--resume", renamed, "-o", tmp_path / "new.npz", "--quiet").returncode == 0
    assert (tmp_path / "new.npz").exists() and renamed.exists()


# --- --force and the run's own inputs ---------------------------------------------------------
GOOD_CSV = "a,b,label\n" + "".join(f"{i % 5},{i % 3},{'xy'[i % 2]}\n" for i in range(20))
GOOD_YAML = "data:\n  train: data.csv\n  target: label\nmodel:\n  layers: [auto, 4, auto]\ntraining:\n  epochs: 2\n"

INPUTS = {
    "config as the model": (["train", "c.yaml", "-o", "c.yaml", "--force"], ["c.yaml: is an input of this run (the config file, c.yaml)"]),
    "config as the run's config file": (["train", "m.config.yaml", "-o", "m.npz", "--force"], ["m.config.yaml: is an input of this run (the config file"]),
    "data as the history": (["train", "c.yaml", "-o", "data", "--force"], None),  # data.history.csv is no input: accepted
    "init model as the model": (["train", "c.yaml", "--init-from", "init.npz", "-o", "init.npz", "--force"], ["init.npz: is an input of this run (model.init_from"]),
    "resumed checkpoint as the model": (["train", "--resume", "r.ckpt.npz", "-o", "r.ckpt.npz", "--force"],
                                        ["r.ckpt.npz: is an input of this run (the checkpoint it resumes from"]),
    "resumed checkpoint as another run's checkpoint": (["train", "--resume", "r.ckpt.npz", "--run-dir", "x", "--force"], None),
    "config through a link": (["train", "c.yaml", "-o", "link.npz", "--force"], ["link.npz: is an input of this run (the config file, c.yaml)"]),
}


@pytest.mark.parametrize("name", INPUTS)
def test_force_never_overwrites_what_the_run_reads(tmp_path, name):
    args, fragments = INPUTS[name]
    (tmp_path / "data.csv").write_text(GOOD_CSV)
    (tmp_path / "c.yaml").write_text(GOOD_YAML)
    (tmp_path / "m.config.yaml").write_text(GOOD_YAML)
    (tmp_path / "link.npz").symlink_to("c.yaml")
    assert nncli("train", "c.yaml", "-o", "init.npz", "-q", cwd=tmp_path).returncode == 0
    session = open_session(TrainRequest(tmp_path / "c.yaml", ["training.epochs=3"], output=str(tmp_path / "r.npz")))
    with pytest.raises(InterruptedRun):
        session.train(StopAt(session.trainer, 2, 1))
    before = snapshot(tmp_path)
    result = nncli(*args, "-q", cwd=tmp_path)
    if fragments is None:
        assert result.returncode == 0, result.stderr
        return
    assert_refused(result, *fragments)
    assert snapshot(tmp_path) == before


def test_an_output_name_too_long_for_its_temporary_file_is_refused_before_training(tmp_path):
    (tmp_path / "data.csv").write_text(GOOD_CSV)
    (tmp_path / "c.yaml").write_text(GOOD_YAML)
    for name in ("x" * 240 + ".npz", "y" * 300 + "/m.npz", "m" * 220 + ".npz"):  # the last: its history file's name
        result = nncli("train", "c.yaml", "-o", name, cwd=tmp_path)
        assert_refused(result, "bytes")
        assert len(result.stderr) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "data.csv"]
    assert nncli("train", "c.yaml", "-o", "m" * 200 + ".npz", "-q", cwd=tmp_path).returncode == 0


# --- metrics that overflow --------------------------------------------------------------------
def test_a_validation_loss_that_overflows_is_stored_as_null_and_the_model_saved(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 4},{i % 3}\n" for i in range(16)))
    (tmp_path / "v.csv").write_text("a,b,y\n1,2,1e30\n3,1,2\n")  # 1e30 fits float32; its square does not
    (tmp_path / "c.yaml").write_text(
        "seed: 3\ndata: {train: d.csv, validation: v.csv, target: y}\n"
        "training: {loss: mse, epochs: 3, checkpoint_every: 1, early_stopping: {monitor: val_loss, patience: 5}}\n"
    )
    result = nncli("train", "c.yaml", "-o", "m.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Model saved to m.npz" in result.stdout
    document = json.loads(nncli("train", "c.yaml", "-o", "j.npz", "--json", cwd=tmp_path).stdout)
    for metrics in (document["metrics"], json.loads((tmp_path / "m.metrics.json").read_text()), _meta(tmp_path / "m.npz")["metrics"]):
        assert metrics["val_loss"] is None and metrics["non_finite"]["val_loss"] == "inf"
        assert metrics["train_loss"] is not None
    history = _meta(tmp_path / "m.npz")["history"]
    assert [r["non_finite"]["val_loss"] for r in history] == ["inf"] * 3
    lines = (tmp_path / "m.history.csv").read_text().splitlines()
    assert lines[0].endswith(",non_finite") and all(",," in line and "val_loss=inf" in line for line in lines[1:])
    # The checkpoint holds the infinite values too (early stopping's best), and resumes.
    extended = nncli("train", "--resume", "m.ckpt.npz", "--set", "training.epochs=4", "--force", "--json", cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr
    assert len(json.loads(extended.stdout)["history"]) == 4


def _meta(model: Path) -> dict:
    with np.load(model, allow_pickle=False) as archive:
        return json.loads(str(archive["meta"]))


# --- two runs, one output ---------------------------------------------------------------------
def _start(*args, env=None, cwd=None):
    return subprocess.Popen([str(NNCLI), *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def _wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_second_run_on_the_same_outputs_fails_fast_naming_the_first(tmp_path):
    model = tmp_path / "r" / "m.npz"
    first = _start("train", CONFIGS / "digits.yaml", "-o", model, "--set", "training.epochs=100000")
    try:
        lock = tmp_path / "r" / ".m.npz.lock"
        _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid))
        before = snapshot(tmp_path)
        started = time.monotonic()
        second = nncli("train", CONFIGS / "xor.yaml", "-o", model, "--force")
        assert_refused(second, f"{model}: another nncli process (pid {first.pid}) is writing this run's files")
        assert time.monotonic() - started < 10
        assert snapshot(tmp_path) == before and first.poll() is None
    finally:
        first.kill()  # kill -9: the kernel releases the lock; its file stays behind
        first.communicate()
    assert lock.exists()
    third = nncli("train", CONFIGS / "xor.yaml", "-o", model, "--set", "training.epochs=1", "-q")
    assert third.returncode == 0, third.stderr
    assert not lock.exists()


def test_only_temporary_files_of_dead_processes_are_removed(tmp_path):
    (tmp_path / "data.csv").write_text(GOOD_CSV)
    (tmp_path / "c.yaml").write_text(GOOD_YAML)
    gone = subprocess.Popen(["true"])
    gone.wait()
    live = tmp_path / f".m.npz.{os.getpid()}-abcd1234.tmp"  # this test's process: alive, writing
    dead = tmp_path / f".m.history.csv.{gone.pid}-abcd1234.tmp"
    legacy = tmp_path / ".m.config.yaml.k2j4h5g6.tmp"  # named by nncli before owners were named
    unrelated = tmp_path / ".m.npz.notes.txt"
    for path in (live, dead, legacy, unrelated):
        path.write_text("x")
    assert nncli("train", "c.yaml", "-o", "m.npz", "-q", cwd=tmp_path).returncode == 0
    assert live.exists() and unrelated.exists() and not dead.exists() and not legacy.exists()


# --- the save: signals and kill -9 at every step -----------------------------------------------
PAUSE = 0.15  # seconds after each file is written and after each rename (NNCLI_TEST_SAVE_PAUSE)
SAVE_STEPS = 4 + 4  # history, metrics, config, model written; then renamed


def _run_set(folder: Path) -> int:
    """Check the four run files belong together; return the run's seed."""
    meta = _meta(folder / "m.npz")
    assert json.loads((folder / "m.metrics.json").read_text()) == meta["metrics"]
    config = yaml.safe_load((folder / "m.config.yaml").read_text())
    assert config == meta["config"]
    assert len((folder / "m.history.csv").read_text().splitlines()) == len(meta["history"]) + 1
    return config["seed"]


def _old_run_then_a_new_one_saving(tmp_path):
    common = ["-o", tmp_path / "m.npz", "--set", "training.epochs=2", "-q"]
    assert nncli("train", CONFIGS / "xor.yaml", *common, "--set", "seed=1").returncode == 0
    assert _run_set(tmp_path) == 1
    proc = _start("train", CONFIGS / "xor.yaml", *common, "--set", "seed=2", "--force", env={"NNCLI_TEST_SAVE_PAUSE": str(PAUSE)})
    _wait_for(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))  # the save has begun
    return proc


@pytest.mark.parametrize("step", range(0, SAVE_STEPS, 2))  # the last signals land before the save ends
def test_signals_during_the_save_cannot_split_the_run_files(tmp_path, step):
    proc = _old_run_then_a_new_one_saving(tmp_path)
    time.sleep(step * PAUSE)
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):  # Ctrl-C, Ctrl-C again, a CI's cancel
        proc.send_signal(sig)
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and stderr == ""  # training was over: the save finished
    assert _run_set(tmp_path) == 2
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("step", range(1, SAVE_STEPS))
def test_kill_9_during_the_save_leaves_a_set_the_next_run_completes(tmp_path, step):
    proc = _old_run_then_a_new_one_saving(tmp_path)
    time.sleep(step * PAUSE + PAUSE / 2)
    proc.kill()
    proc.communicate()
    record = tmp_path / ".m.npz.commit"
    if not record.exists():
        assert _run_set(tmp_path) in (1, 2)  # whole: the old set, or all of the new one
        finished = _run_set(tmp_path)
    else:
        finished = 2  # the renames had begun: the next run of these outputs finishes them
    again = nncli("train", CONFIGS / "xor.yaml", "-o", tmp_path / "m.npz")  # refuses to overwrite…
    assert_refused(again, "already exists")
    assert _run_set(tmp_path) == finished  # …but first completes the set
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.fixture
def sigint_as_at_start():
    """Ctrl-C as a fresh interpreter has it — KeyboardInterrupt, not blocked — whatever a test run
    earlier in this worker process left (the suite once saw this test's signal come to nothing)."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if handler is not None:  # (None: installed outside Python, cannot be put back)
        signal.signal(signal.SIGINT, handler)


@pytest.mark.parametrize("signalled_at", range(4))
def test_a_signal_at_every_rename_is_held_until_the_set_is_whole(tmp_path, monkeypatch, signalled_at, sigint_as_at_start):
    """In-process, a real SIGINT sent to ourselves right after one of a commit's renames."""
    from nncli.files import atomic

    names = [f"f{i}.txt" for i in range(4)]
    for name in names:
        (tmp_path / name).write_text("old")
    renamed, real_replace = [], os.replace

    def replace(src, dst):
        real_replace(src, dst)
        renamed.append(dst)
        if len(renamed) == signalled_at + 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt), atomic.FileSet(tmp_path / ".commit") as files:  # acted on once the commit is done
        for name in names:
            with files.write(tmp_path / name, "w") as f:
                f.write("new")
        monkeypatch.setattr(atomic.os, "replace", replace)
        files.commit()
    monkeypatch.undo()
    assert len(renamed) == 4 and [(tmp_path / n).read_text() for n in names] == ["new"] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temporary file, no record


def test_an_interrupted_write_changes_nothing(tmp_path):
    from nncli.files import atomic

    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic.FileSet(tmp_path / ".commit") as files:
        with files.write(tmp_path / "a.txt", "w") as f:
            f.write("new")
        with files.write(tmp_path / "b.txt", "w") as f:
            raise KeyboardInterrupt  # Ctrl-C while the second file is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_a_hand_made_commit_record_renames_and_removes_nothing_of_anyone_else(tmp_path):
    (tmp_path / "data.csv").write_text(GOOD_CSV)
    (tmp_path / "c.yaml").write_text(GOOD_YAML)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim, target = tmp_path / "victim.txt", outside / "target.txt"
    victim.write_text("mine")
    (outside / f".target.txt.{os.getpid() + 1}-abcd1234.tmp").write_text("theirs")
    target.write_text("kept")
    record = {
        "format": "nncli-commit",
        "replace": [[str(victim), str(tmp_path / "m.npz")],  # not a temporary file of m.npz
                    [str(outside / f".target.txt.{os.getpid() + 1}-abcd1234.tmp"), str(target)],  # not this run's folder
                    "junk", [1, 2]],
        "remove": [str(victim), str(target), 5],  # not files of this run
    }
    (tmp_path / ".m.npz.commit").write_text(json.dumps(record))
    assert nncli("train", "c.yaml", "-o", "m.npz", "-q", cwd=tmp_path).returncode == 0
    assert victim.read_text() == "mine" and target.read_text() == "kept"
    assert not (tmp_path / ".m.npz.commit").exists()
    (tmp_path / ".m.npz.commit").write_bytes(b'{"format": "nncli-commit", "replace": [[')  # cut short: no rename began
    assert nncli("train", "c.yaml", "-o", "m.npz", "-q", "--force", cwd=tmp_path).returncode == 0
    assert not (tmp_path / ".m.npz.commit").exists()
