"""Autoencoders from a config: `data.target: inputs` trains the network to reproduce its scaled
features; resume, inspect, explain, predict and evaluate work on it as on any model."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.explain import explain
from nncli.commands.session import TrainRequest, open_session
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.errors import ConfigError, DataError, InterruptedRun
from nncli.files.model import load_model
from tests.conftest import CONFIGS, DATASETS
from tests.test_training import StopAt

runner = CliRunner()
AUTOENCODER = CONFIGS / "digits-autoencoder.yaml"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def small(write):
    """A 4-feature autoencoder config on 60 rows, with an id column it drops."""
    rows = ["id,a,b,c,d"] + [f"r{i},{i % 7},{(i * 3) % 5 - 2},{i * 0.1:.1f},{(i % 7) * 2}" for i in range(60)]
    write("rows.csv", "\n".join(rows) + "\n")
    return write("ae.yaml", """
        seed: 3
        data: {train: rows.csv, target: inputs, drop: [id]}
        model: {layers: [auto, 6, 2, 6, auto], activation: [tanh, identity, tanh], dtype: float64}
        training: {loss: mse, optimizer: adam, learning_rate: 0.01, epochs: 20, batch_size: 16}
        output: out/ae.npz
        """)


def test_targets_are_the_scaled_features(small):
    run = prepare_training(load_config(small))
    data = run.data
    assert data.features == data.targets == ["a", "b", "c", "d"]
    assert data.Y_train.tobytes() == data.X_train.tobytes()  # the network learns its own (scaled) inputs
    assert data.target_scaler is data.feature_scaler
    assert run.network.sizes == [4, 6, 2, 6, 4]  # both `auto`s: the feature count
    model = run.fit()
    assert model.autoencoder and model.config["data"]["target"] == "inputs"


def test_the_model_file_round_trips_and_predict_writes_reconstructions(small, tmp_path):
    assert invoke("train", small, "--quiet").exit_code == 0
    path = tmp_path / "out" / "ae.npz"
    model = load_model(path)
    assert model.autoencoder and model.targets == model.features
    result = invoke("predict", path, tmp_path / "rows.csv", "--keep", "id,a")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["id", "a", "reconstruction_a", "reconstruction_b", "reconstruction_c", "reconstruction_d"]
    # In the features' own units: the target scaler is the feature scaler, undone.
    X = np.loadtxt(tmp_path / "rows.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
    expected = model.feature_scaler.inverse(model.network.forward(model.feature_scaler.transform(X)))
    np.testing.assert_allclose(np.array(rows[1:], dtype=object)[:, 2:].astype(float), expected, rtol=1e-12)


def test_evaluate_reports_the_reconstruction_error_per_column(small, tmp_path):
    invoke("train", small, "--quiet")
    path = tmp_path / "out" / "ae.npz"
    result = invoke("evaluate", path, tmp_path / "rows.csv", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["reconstruction"] is True and [row["target"] for row in document["per_target"]] == ["a", "b", "c", "d"]
    model = load_model(path)
    X = np.loadtxt(tmp_path / "rows.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
    error = model.outputs(X) - X
    np.testing.assert_allclose([row["mse"] for row in document["per_target"]], (error**2).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(document["metrics"]["mse"], (error**2).mean(), rtol=1e-9)


@pytest.mark.parametrize("stop", [(2, 5)])
def test_resume_of_the_shipped_autoencoder_is_bit_exact(tmp_path, stop):
    common = ["training.epochs=3"]
    straight = open_session(TrainRequest(AUTOENCODER, common, output=str(tmp_path / "a.npz")))
    straight.train()
    first = open_session(TrainRequest(AUTOENCODER, common, output=str(tmp_path / "b.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, *stop))
    resumed = open_session(TrainRequest(resume=tmp_path / "b.ckpt.npz"))
    resumed.train()
    a, b = load_model(tmp_path / "a.npz"), load_model(tmp_path / "b.npz")
    assert b.autoencoder
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.network.parameters(), b.network.parameters()))


def test_explain_and_inspect_take_the_autoencoder_config(tmp_path):
    trace = explain(AUTOENCODER, rows=4).trace
    assert [layer.W.shape for layer in trace.layers] == [(64, 256), (256, 256), (256, 512), (512, 10),
                                                         (10, 512), (512, 256), (256, 256), (256, 64)]
    result = invoke("inspect", AUTOENCODER, "--json")
    assert result.exit_code == 0, result.stderr
    assert "64" in result.stdout


def test_the_shipped_config_trains_in_seconds_and_reconstructs(tmp_path):
    result = invoke("train", AUTOENCODER, "-o", tmp_path / "ae.npz", "--quiet", "--json")
    assert result.exit_code == 0, result.stderr
    evaluated = json.loads(invoke("evaluate", tmp_path / "ae.npz", DATASETS / "digits.csv", "--json").stdout)
    assert evaluated["metrics"]["loss"] < 0.5  # (standardised pixels: predicting the mean scores 1)


@pytest.mark.parametrize("override, expected", [
    ("training.loss=cross_entropy", "training.loss: cross_entropy predicts classes; data.target: inputs reconstructs"),
    ("data.normalize_target=standard", "data.normalize_target: does not apply to data.target: inputs"),
    ("data.categorical=[a]", "data.categorical: data.target: inputs reconstructs numeric features only"),
    ("data.in_memory=false", "data.target: inputs (an autoencoder) needs the data in memory"),
])
def test_settings_an_autoencoder_cannot_take_are_config_errors(small, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        prepare_training(load_config(small, [override]))


def test_a_text_feature_is_a_data_error(write):
    write("text.csv", "a,b\n1,x\n2,y\n3,z\n4,w\n5,v\n")
    config = write("t.yaml", "data: {train: text.csv, target: inputs}\ntraining: {loss: mse}\n")
    with pytest.raises(DataError, match=r"text.csv:2: column 'b': 'x' is not a number \(data.target: inputs reconstructs the features"):
        prepare_training(load_config(config))


def test_a_column_named_inputs_is_still_a_target_as_a_list(write):
    write("named.csv", "x,inputs\n" + "".join(f"{i},{2 * i}\n" for i in range(10)))
    config = write("n.yaml", "data: {train: named.csv, target: [inputs]}\ntraining: {loss: mse, epochs: 1}\n")
    run = prepare_training(load_config(config))
    assert run.data.features == ["x"] and run.data.targets == ["inputs"]
