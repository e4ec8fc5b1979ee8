"""inspect: summary, weights, JSON, export, and the dry run on a config."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.files.model import save_model
from tests.conftest import CONFIGS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    model = prepare_training(load_config(CONFIGS / "digits.yaml", ["training.epochs=4"])).fit()
    path = tmp_path_factory.mktemp("m") / "digits.npz"
    save_model(path, model)
    return model, path


def test_summary_shows_shapes_statistics_and_record(digits_model):
    model, path = digits_model
    result = invoke("inspect", path)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "64 × 128" in out and "128 × 10" in out and "9,610" in out
    W1 = model.network.weights[0]
    assert f"{W1.mean():.4f}" in out and f"{W1.max():.4f}" in out
    assert "classes        10: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in out
    assert "features standard" in out and "4 epochs, seed 0" in out
    assert "train loss" in out and any(block in out for block in "▁▂▃▄▅▆▇█")


def test_weights_are_printed_with_names_and_elided(digits_model):
    model, path = digits_model
    result = invoke("inspect", path, "--layer", "2", "--weights")
    assert result.exit_code == 0
    assert "W2  (128 × 10)" in result.stdout and "W1  (" not in result.stdout
    assert "h1.1 " in result.stdout and "…" in result.stdout  # 128 rows: corners only
    assert f"{model.network.weights[1][0, 9]:.4f}" in result.stdout
    full = invoke("inspect", path, "--layer", "2", "--weights", "--full")
    assert "h1.64 " in full.stdout and "…" not in full.stdout.split("W2")[1]
    first = invoke("inspect", path, "--layer", "1", "--weights")
    assert "p00" in first.stdout  # layer 1 rows are the feature names


def test_json_has_every_array(digits_model):
    model, path = digits_model
    result = invoke("inspect", path, "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert set(document["arrays"]) == {"W1", "b1", "W2", "b2"}
    np.testing.assert_array_equal(np.array(document["arrays"]["W2"], dtype=np.float32), model.network.weights[1])
    assert document["classes"] == [str(d) for d in range(10)] and document["parameters"] == 9610
    assert len(document["history"]) == 4 and document["layers"][0]["statistics"]["near_zero"] >= 0


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_export_round_trips(digits_model, tmp_path, fmt):
    model, path = digits_model
    folder = tmp_path / "out"
    result = invoke("inspect", path, "--export", folder, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.{fmt}" for n in ("W1", "b1", "W2", "b2"))
    load = (lambda p: np.load(p, allow_pickle=False)) if fmt == "npy" else (lambda p: np.loadtxt(p, delimiter=",", dtype=np.float32))
    np.testing.assert_array_equal(load(folder / f"W1.{fmt}"), model.network.weights[0])
    np.testing.assert_array_equal(np.ravel(load(folder / f"b2.{fmt}")), model.network.biases[1])


def test_inspect_a_config_is_a_dry_run(tmp_path):
    result = invoke("inspect", CONFIGS / "digits.yaml")
    assert result.exit_code == 0
    assert "64 × 128" in result.stdout and "untrained" in result.stdout and "1,438 train, 359 validation" in result.stdout
    result = invoke("inspect", CONFIGS / "digits.yaml", "--set", "model.layers=[60,32,auto]")
    assert result.exit_code == 2 and "model.layers.0: declares 60 inputs" in result.stderr
    result = invoke("inspect", CONFIGS / "iris.yaml", "--json")
    assert json.loads(result.stdout)["architecture"][0]["weights"] == [4, 16]


def test_bad_layer_and_format(digits_model):
    _, path = digits_model
    assert "has 2 layers" in invoke("inspect", path, "--layer", "3").stderr
    result = invoke("inspect", path, "--export", "x", "--format", "xml")
    assert result.exit_code == 2 and "expected csv or npy" in result.stderr


def test_option_combinations_that_mean_nothing_are_refused(digits_model, tmp_path):
    _, path = digits_model
    for args, message in (
        (["--export", tmp_path / "x", "--json"], "does not combine with --weights or --json"),
        (["--format", "npy"], "--format applies to --export"),
        (["--full"], "--full applies to --weights"),
        (["--set", "seed=1"], "--set applies to a config"),
    ):
        result = invoke("inspect", path, *args)
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    result = invoke("inspect", CONFIGS / "iris.yaml", "--weights")
    assert result.exit_code == 2 and "--weights needs a model file" in result.stderr
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = invoke("inspect", path, "--export", blocker / "sub")
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr


def test_full_weights_print_every_number(digits_model):
    model, path = digits_model
    result = invoke("inspect", path, "--layer", "1", "--weights", "--full")
    assert result.exit_code == 0
    weights_part = result.stdout.split("W1  (64 × 128)")[1]
    assert "…" not in weights_part
    assert f"{model.network.weights[0][63, 127]:.4f}" in weights_part


def test_an_autoencoder_says_so_and_does_not_list_its_features_twice(tmp_path):
    model = prepare_training(load_config(CONFIGS / "digits-autoencoder.yaml", ["training.epochs=1"])).fit()
    path = tmp_path / "ae.npz"
    save_model(path, model)
    result = invoke("inspect", path)
    assert result.exit_code == 0, result.stderr
    assert "autoencoder (reproduces its 64 inputs)" in result.stdout
    assert "targets" not in result.stdout.replace("targets minmax", "").replace("targets standard", "")
    info = json.loads(invoke("inspect", path, "--json").stdout)
    assert info["autoencoder"] is True and info["task"] == "regression" and info["targets"] == info["features"]
    preview = invoke("inspect", CONFIGS / "digits-autoencoder.yaml")
    assert "targets: the inputs (autoencoder)" in preview.stdout and "p77" not in preview.stdout.splitlines()[-1]


def test_a_classifier_is_no_autoencoder(digits_model):
    _, path = digits_model
    info = json.loads(invoke("inspect", path, "--json").stdout)
    assert info["autoencoder"] is False
    assert "targets        label" in invoke("inspect", path).stdout
