"""The installed `nncli` entry point, run as a real process: exit codes, stderr, terminal manners."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CONFIGS, DATASETS

NNCLI = Path(sys.executable).parent / "nncli"


def run(*args, cwd=None, env=None, **kwargs):
    assert NNCLI.exists(), f"the nncli entry point is not installed next to {sys.executable}"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(NNCLI), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120, **kwargs)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("nncli: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


GOOD = "data:\n  train: data.csv\nmodel:\n  layers: [auto, 4, auto]\ntraining:\n  epochs: 2\n"

BAD_CONFIGS = {
    "syntax": ("data: [oops\n", ["c.yaml:2:", "YAML syntax error"]),
    "empty": ("", ["c.yaml: config is empty"]),
    "list": ("- 1\n", ["c.yaml:1: expected a mapping"]),
    "misspelt": (GOOD + "  learnig_rate: 0.1\n", ["c.yaml:7: training.learnig_rate: unknown key; did you mean 'learning_rate'?"]),
    "duplicate": (GOOD + "  epochs: 3\n", ["c.yaml:7: training.epochs: duplicate key (first set on line 6)"]),
    "python tag": ("data: !!python/object/apply:os.system ['touch pwned']\n", ["c.yaml:1:", "could not determine a constructor"]),
    "bool for int": (GOOD.replace("epochs: 2", "epochs: true"), ["c.yaml:6: training.epochs: input should be a valid integer (got true)"]),
    "yaml 1.1 boolean": (GOOD.replace("train: data.csv", "train: data.csv\n  shuffle: on"), ["c.yaml:3: data.shuffle: input should be a valid boolean (got 'on')"]),
    "duplicate section": (GOOD + "model:\n", ["c.yaml:7: model: duplicate key (first set on line 3)"]),
    "bad activation": (GOOD.replace("model:", "model:\n  activation: rleu"), ["c.yaml:4: model.activation: input should be 'identity', 'relu'", "(got 'rleu')"]),
    "loss/output mismatch": (GOOD.replace("layers: [auto, 4, auto]", "output_activation: relu"), ["c.yaml:4: model.output_activation: cross_entropy needs a softmax output"]),
    "layer mismatch": (GOOD.replace("[auto, 4, auto]", "[5, 4, auto]"), ["c.yaml:4: model.layers.0: declares 5 inputs but", "has 2 feature columns (a, b"]),
    "missing target": (GOOD.replace("train: data.csv", "train: data.csv\n  target: lable"), ["data.target: column 'lable' is not in", "did you mean 'label'?"]),
    "missing csv": (GOOD.replace("data.csv", "nope.csv"), ["nope.csv: file not found"]),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_configs(tmp_path, name):
    text, fragments = BAD_CONFIGS[name]
    (tmp_path / "data.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    (tmp_path / "c.yaml").write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("train", "c.yaml", cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, nothing executed


BAD_CSVS = {
    # (a text cell in a feature column makes it categorical: tests/test_hostile.py, test_columns_training.py)
    "empty cell": ("a,b,label\n1,,x\n3,4,y\n", "data.csv:2: column 'b': missing value; set data.missing to"),
    "NaN token": ("a,b,label\n1,2,x\nNaN,4,y\n", "data.csv:3: column 'a': missing value; set data.missing to"),
    "nan": ("a,b,label\n1,2,x\nnan,4,y\n", "data.csv:3: column 'a': 'nan' (NaN); expected a finite number"),
    "inf": ("a,b,label\n1,2,x\n3,-inf,y\n", "data.csv:3: column 'b': '-inf' is infinite"),
    "ragged": ("a,b,label\n1,2,x\n3,4\n", "data.csv:3: row has 2 fields but the header has 3 columns"),
    "empty file": ("", "data.csv: file is empty"),
    "header only": ("a,b,label\n", "data.csv: has a header but no data rows"),
    "one class": ("a,b,label\n1,2,x\n3,4,x\n", "column 'label' has a single class ('x')"),
    "no target": ("a,b,c\n1,2,x\n", "data.target: column 'label' is not in"),
    "semicolons": ("a;b;label\n1;2;x\n", "data.csv:1: the header is a single column containing semicolons"),
    "duplicate header": ("a,a,label\n1,2,x\n", "data.csv:1: column name 'a' appears twice"),
    "binary": (b"\x00\x01\x02\x03PK\x05", "data.csv:1: binary data"),
    "not utf-8": (b"\xff\xfe\x00a,b", "data.csv:1: not UTF-8 text"),
}


@pytest.mark.parametrize("name", BAD_CSVS)
def test_bad_csvs(tmp_path, name):
    content, fragment = BAD_CSVS[name]
    path = tmp_path / "data.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "c.yaml").write_text("data:\n  train: data.csv\n  target: label\n  validation_split: 0\ntraining:\n  epochs: 1\n")
    result = run("train", "c.yaml", cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train"], "give a CONFIG file to train from, or --resume CHECKPOINT"),
        (["trian", "x.yaml"], "No such command 'trian'. Did you mean 'train'?"),
        (["train", "x.yaml", "--bogus"], "No such option: --bogus"),
        (["train", "x.yaml", "--log-every", "0"], "Invalid value for '--log-every'"),
        (["train", "x.yaml", "extra"], "Got unexpected extra argument(s) (extra)"),
        (["predict", "m.npz"], "Missing argument 'DATA'."),
    ],
)
def test_bad_invocation_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert_one_line_error(result, message)


def test_bare_nncli_shows_help():
    result = run()
    assert result.returncode == 2 and "train" in result.stdout and "predict" in result.stdout


def test_output_to_a_device_writes_through_it(tmp_path):
    result = run("train", CONFIGS / "xor.yaml", "-o", "/dev/null", "--quiet", "--set", "training.epochs=2")
    assert result.returncode == 0
    assert Path("/dev/null").is_char_device()
    result = run("predict", CONFIGS.parent / "runs" / "none.npz", DATASETS / "iris.csv", "-o", "/dev/null")
    assert result.returncode == 2  # (no such model) — and /dev/null is still a device
    assert Path("/dev/null").is_char_device()


def test_output_through_a_symlink_replaces_its_target(tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    result = run("train", CONFIGS / "xor.yaml", "-o", link, "--quiet", "--set", "training.epochs=2", "--force")
    assert result.returncode == 0
    assert link.is_symlink() and np.load(link)["W1"].shape == (2, 8)


def test_piped_output_is_plain_and_json_parses(tmp_path):
    result = run("train", CONFIGS / "iris.yaml", "-o", tmp_path / "a.npz", "--set", "training.epochs=2")
    assert result.returncode == 0 and result.stderr == ""
    assert "\x1b" not in result.stdout and "epoch" in result.stdout
    result = run("train", CONFIGS / "iris.yaml", "-o", tmp_path / "b.npz", "--set", "training.epochs=2", "--json")
    assert json.loads(result.stdout)["metrics"]["epochs"] == 2


def test_no_color_on_a_terminal_is_plain(tmp_path):
    """Under a pseudo-terminal rich would colour; NO_COLOR must switch that off."""
    import pty

    def under_pty(no_color: bool):
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env.update(TERM="xterm-256color", **({"NO_COLOR": "1"} if no_color else {}))
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [str(NNCLI), "train", str(CONFIGS / "iris.yaml"), "-o", str(tmp_path / "t.npz"), "--set", "training.epochs=2", "--force"],
            stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        os.close(leader)
        return proc.returncode, b"".join(chunks).decode()

    code, coloured = under_pty(no_color=False)
    assert code == 0 and "\x1b[" in coloured  # a person at a terminal gets colour
    code, plain = under_pty(no_color=True)
    assert code == 0 and "\x1b[" not in plain and "Model saved to" in plain


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_and_leaves_no_model(tmp_path, sig):
    out = tmp_path / "m.npz"
    proc = subprocess.Popen(
        [str(NNCLI), "train", str(CONFIGS / "digits.yaml"), "-o", str(out), "--set", "training.epochs=100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    first = proc.stdout.readline()  # the network table: training is about to start
    assert first, proc.stderr.read()
    while "epoch" not in proc.stdout.readline() and time.monotonic() < deadline:
        pass
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.startswith("nncli: interrupted: stopped ") and stderr.count("\n") == 1
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["m.ckpt.npz"]


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "iris.npz"
    result = run("train", CONFIGS / "iris.yaml", "-o", path, "--set", "training.epochs=2", "--quiet")
    assert result.returncode == 0, result.stderr
    return path


def _bad_models(good: Path, folder: Path) -> dict[str, Path]:
    import pickle

    data = good.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "zero bytes": b"",
        "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
        "pickle": pickle.dumps({"W1": [[1.0]]}),
        "csv": b"sepal_length,sepal_width\n1,2\n",
    }
    paths = {}
    for name, content in files.items():
        path = folder / f"{name.replace(' ', '_')}.npz"
        path.write_bytes(content)
        paths[name] = path
    return paths


@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect"])
def test_bad_model_files_through_every_command(iris_model, tmp_path, command):
    for name, path in _bad_models(iris_model, tmp_path).items():
        args = [command, path] + ([] if command == "inspect" else [DATASETS / "iris.csv"])
        result = run(*args)
        assert_one_line_error(result, str(path))
        assert result.stdout == "", name


def test_predict_into_a_closed_pipe_exits_quietly(iris_model):
    big = "".join(f"{i % 7}.1,3.0,{i % 5}.2,0.{i % 9}\n" for i in range(200_000))
    shell = f"'{NNCLI}' predict '{iris_model}' - | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        input="sepal_length,sepal_width,petal_length,petal_width\n" + big,
        capture_output=True, text=True, timeout=120,
    )
    assert result.stdout == "prediction\n"
    assert result.stderr == "" and result.returncode == 0


def test_predict_pipes_into_evaluate_style_tools(iris_model):
    result = run("predict", iris_model, DATASETS / "iris.csv", "--keep", "species")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "species,prediction" and len(lines) == 151


def test_train_piped_into_head_still_saves_the_model(tmp_path):
    out = tmp_path / "m.npz"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{NNCLI}' train '{CONFIGS / 'digits.yaml'}' -o '{out}' | head -2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 2
    assert out.exists() and np.load(out)["W1"].shape == (64, 128)
