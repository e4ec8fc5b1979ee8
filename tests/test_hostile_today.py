"""Hostile pass over the day's features: CSV read-ahead on a stdin pipe that stalls (an error in
the first chunk, Ctrl-C, SIGTERM) must end with the usual one line and exit code, promptly,
without the interpreter aborting at exit over the read-ahead thread's lock on stdin."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.files.model import save_model

NNCLI = Path(sys.executable).parent / "nncli"
STREAM_CHUNK = 2 << 20  # tabular/stream.py's CHUNK_BYTES: a pipe yields its first chunk after this much


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stall")
    rows = ["a,b,kind"] + [f"{i % 3 + 0.1 * (i % 5)},{(i % 3) * 2 - 0.05 * (i % 7)},{'xyz'[i % 3]}" for i in range(30)]
    (folder / "tiny.csv").write_text("\n".join(rows) + "\n")
    (folder / "tiny.yaml").write_text(
        "seed: 1\ndata: {train: tiny.csv, target: kind}\nmodel: {layers: [auto, 8, auto]}\n"
        "training: {loss: cross_entropy, learning_rate: 0.1, epochs: 2, batch_size: 8}\n")
    save_model(folder / "tiny.npz", prepare_training(load_config(folder / "tiny.yaml")).fit())
    return folder / "tiny.npz"


def _rows_then_stall(model: Path, first_row: str, *args: str) -> subprocess.Popen:
    """`nncli predict MODEL -` fed more than one chunk of rows through a pipe left open (the
    read-ahead thread then blocks reading the second chunk)."""
    body = "0.5,1.0\n" * (STREAM_CHUNK // 8 + 1000)
    proc = subprocess.Popen([str(NNCLI), "predict", str(model), "-", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=model.parent)
    proc.stdin.write(f"a,b\n{first_row}\n{body}".encode())
    proc.stdin.flush()
    return proc


def _finish(proc: subprocess.Popen, seconds: float) -> tuple[int | None, str]:
    """The exit code within ``seconds`` while stdin stays open (None: still running), and stderr."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    code = proc.poll()
    _, stderr = proc.communicate(timeout=60)  # (closes stdin: a process still waiting ends now)
    return code, stderr.decode()


def test_an_error_in_the_first_chunk_of_a_stalled_pipe_is_one_line_and_exit_2(model):
    # 1e308 parses as float64 but is refused by the float32 model while the next chunk is read
    proc = _rows_then_stall(model, "1e308,1.0")
    code, stderr = _finish(proc, 20)
    assert code == 2, stderr
    assert stderr.splitlines() == [stderr.splitlines()[0]] and "<stdin>:2: column 'a'" in stderr
    assert "Fatal Python error" not in stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stopping_a_stream_from_a_stalled_pipe_exits_130_and_writes_nothing(model, stop):
    output = model.parent / f"out-{stop.name}.csv"
    proc = _rows_then_stall(model, "0.5,1.0", "-o", str(output))
    time.sleep(3)  # the first chunk predicted, the read-ahead thread waiting on the silent pipe
    assert proc.poll() is None, _finish(proc, 0)
    proc.send_signal(stop)
    code, stderr = _finish(proc, 20)
    assert code == 130, stderr
    assert stderr.strip() == "nncli: interrupted"
    assert not output.exists()


def test_a_clusters_file_whose_scale_overflows_the_rows_is_refused_in_one_line(tmp_path):
    """A hand-made clusters file with a scale of 1e-308 passed the loader's checks, and predict
    printed NumPy overflow warnings and exit 0 with meaningless clusters."""
    import dataclasses

    import numpy as np

    from nncli.files.clusters import load_clusters, save_clusters

    data = tmp_path / "d.csv"
    data.write_text("x,y,note\n" + "".join(f"{i % 7},{i % 3},NA\n" for i in range(40)))
    made = subprocess.run([str(NNCLI), "cluster", str(data), "--k", "3", "--ignore", "note", "--save", str(tmp_path / "c.npz"),
                           "-o", str(tmp_path / "out.csv")], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    good = subprocess.run([str(NNCLI), "predict", str(tmp_path / "c.npz"), str(data), "--keep", "note"],
                          capture_output=True, text=True)
    assert good.returncode == 0 and good.stdout.splitlines()[1].startswith("NA,")  # kept as written
    clusters = load_clusters(tmp_path / "c.npz")
    tiny = dataclasses.replace(clusters.scaler, scale=np.full_like(clusters.scaler.scale, 1e-308))
    save_clusters(tmp_path / "bad.npz", dataclasses.replace(clusters, scaler=tiny))
    bad = subprocess.run([str(NNCLI), "predict", str(tmp_path / "bad.npz"), str(data)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "bad.npz: its scaling turns these rows into numbers that are not finite" in bad.stderr
    assert "Warning" not in bad.stderr and bad.stdout == ""
