"""The train command through typer's CliRunner (in-process)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from tests.conftest import CONFIGS

runner = CliRunner()


def train(*args, env=None):
    return runner.invoke(app, ["train", *map(str, args)], env=env)


def _weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


def test_guide_worked_example_through_the_cli(tmp_path):
    out = tmp_path / "seed.npz"
    result = train(CONFIGS / "seed-example.yaml", "--output", out)
    assert result.exit_code == 0, result.stderr
    W1 = _weights(out)["W1"]
    assert W1.shape == (1, 1) and W1.dtype == np.float64
    assert abs(W1[0, 0] - 4.2) < 1e-12
    assert "8.0000" in result.stdout  # the loss ½(10 − 6)² of the one epoch


def test_guide_worked_example_converges_to_three(tmp_path):
    out = tmp_path / "seed.npz"
    result = train(CONFIGS / "seed-example.yaml", "-o", out, "--set", "training.epochs=80", "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    assert abs(_weights(out)["W1"][0, 0] - 3.0) < 1e-12


def test_digits_reaches_97_percent(tmp_path):
    result = train(CONFIGS / "digits.yaml", "-o", tmp_path / "d.npz", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["val_accuracy"] >= 0.97
    assert report["metrics"]["val_rows"] == 359 and report["classes"] == [str(d) for d in range(10)]
    assert [layer["weights"] for layer in report["architecture"]] == [[64, 128], [128, 10]]


def test_xor_reaches_100_percent(tmp_path):
    result = train(CONFIGS / "xor.yaml", "-o", tmp_path / "x.npz", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["train_accuracy"] == 1.0
    from nncli.files.model import load_model

    model = load_model(tmp_path / "x.npz")
    probabilities = model.outputs(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float))
    assert [model.classes[i] for i in probabilities.argmax(axis=1)] == ["0", "1", "1", "0"]


def test_json_is_one_document_with_config_history_and_metrics(tmp_path):
    out = tmp_path / "m.npz"
    result = train(CONFIGS / "iris.yaml", "--output", out, "--json", "--set", "training.epochs=3")
    assert result.exit_code == 0
    report = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert report["model"] == str(out)
    assert report["config"]["training"]["epochs"] == 3 and report["config"]["model"]["layers"] == [4, 16, 3]
    assert [row["epoch"] for row in report["history"]] == [1, 2, 3]
    assert set(report["history"][0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate", "best"}
    assert report["classes"] == ["setosa", "versicolor", "virginica"]


def test_overrides_change_the_run(tmp_path):
    out = tmp_path / "m.npz"
    result = train(
        CONFIGS / "digits.yaml", "-o", out, "--json", "--set", "training.epochs=5", "--set", "model.activation=tanh"
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert len(report["history"]) == 5 and report["architecture"][0]["activation"] == "tanh"


def test_regression_reports_r2(tmp_path):
    result = train(CONFIGS / "diabetes.yaml", "-o", tmp_path / "r.npz", "--json")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert 0.3 < metrics["val_r2"] <= 1 and "val_accuracy" not in metrics


def test_plain_output_when_not_a_terminal(tmp_path):
    result = train(CONFIGS / "iris.yaml", "-o", tmp_path / "m.npz", "--set", "training.epochs=3")
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["3"] for line in lines)  # one row per epoch
    assert f"Model saved to {tmp_path / 'm.npz'}" in lines
    assert lines[-1].startswith("Run files: ") and "m.history.csv" in lines[-1]


def test_bad_config_gives_one_line_and_exit_2(write):
    path = write("c.yaml", "data: {train: x.csv}\ntraining: {epochs: -1}\n")
    result = train(path)
    assert result.exit_code == 2
    assert result.stderr == f"nncli: error: {path}:2: training.epochs: input should be greater than or equal to 1 (got -1)\n"


def test_divergence_exits_1_and_writes_no_model(write, tmp_path):
    write("r.csv", "x,y\n" + "".join(f"{i},{3 * i}\n" for i in range(50)))
    path = write("c.yaml", "data: {train: r.csv, normalize: none}\ntraining: {loss: mse, learning_rate: 10}\n")
    out = tmp_path / "never.npz"
    result = train(path, "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith("nncli: error: training diverged") and result.stderr.count("\n") == 1
    assert not out.exists()


def test_output_under_a_file_is_refused_before_training(write, tmp_path):
    blocker = write("file", "x")
    result = train(CONFIGS / "iris.yaml", "-o", blocker / "m.npz")
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr


@pytest.mark.parametrize("flag", ["--version"])
def test_version(flag):
    result = runner.invoke(app, [flag])
    assert result.exit_code == 0 and result.stdout.startswith("nncli ")
