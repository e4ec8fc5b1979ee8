"""explain: one step of gradient descent, traced, with the numbers train computes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.explain import LOSS_NOTATION, UPDATE_RULES, explain
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core.losses import LOSSES
from nncli.core.optimizers import OPTIMIZERS
from nncli.files.model import load_model, save_model
from tests.conftest import CONFIGS

runner = CliRunner()
SEED = CONFIGS / "seed-example.yaml"
XOR_232 = ["--set", "model.layers=[2,3,2]"]


def invoke(*args):
    return runner.invoke(app, ["explain", *map(str, args)])


# --- the guide's worked example ----------------------------------------------------------------
def test_seed_example_reads_as_the_guide():
    result = invoke(SEED)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for line in ("x = 2", "z1 = x·W1 = 2·5 = 10",  # prediction 10
                 "L = ½(10 − 6)² = 8",  # loss 8
                 "∂L/∂W1 = xᵀ·δ1 = 2·4 = 8",  # gradient 8
                 "W ← W − ε·∂L/∂W", "W1 ← 5 − 0.1·8 = 4.2",  # new weight 4.2
                 "L = ½(8.4 − 6)² = 2.88"):  # the loss after the step
        assert line in out, line
    assert out.index("1. Inputs") < out.index("2. Forward") < out.index("3. Loss") < out.index("4. Backward") < out.index("5. Update")


def test_seed_example_json_has_the_guides_numbers():
    result = invoke(SEED, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    layer = document["layers"][0]
    assert layer["x"] == [[2.0]] and layer["W"] == [[5.0]] and layer["z"] == [[10.0]] and layer["h"] == [[10.0]]
    assert document["loss"]["value"] == 8.0 and document["loss"]["rows"][0]["formula"] == "½(10 − 6)²"
    assert layer["delta"] == [[4.0]] and layer["grad_W"] == [[8.0]] and layer["W_after"] == [[4.2]]
    assert document["after"]["output"] == [[pytest.approx(8.4)]]
    assert document["after"]["loss"]["value"] == pytest.approx(2.88) and document["after"]["loss"]["rows"][0]["formula"] == "½(8.4 − 6)²"
    assert document["update"] == {"optimizer": "sgd", "rules": ["W ← W − ε·∂L/∂W"], "values": {"learning_rate": 0.1}, "steps": 1}
    assert document["inputs"]["names"] == ["x"] and document["targets"]["names"] == ["label"]
    adam = json.loads(invoke(SEED, "--set", "training.optimizer=adam", "--json").stdout)["layers"][0]
    assert adam["m_W"] == [[pytest.approx(0.8)]] and adam["v_W"] == [[pytest.approx(0.064)]]


@pytest.mark.parametrize("loss, line", [
    ("mse", "L = (10 − 6)² = 16"),
    ("mae", "L = |10 − 6| = 4"),
    ("huber", "L = 1·(|10 − 6| − ½·1) = 3.5"),
])
def test_each_regression_loss_is_written_out(loss, line):
    result = invoke(SEED, "--set", f"training.loss={loss}")
    assert result.exit_code == 0, result.stderr
    assert line in result.stdout


def test_adam_shows_its_moments():
    result = invoke(SEED, "--set", "training.optimizer=adam")
    assert result.exit_code == 0, result.stderr
    # m = 0.1·8, v = 0.001·8², and the bias-corrected step is ε·8/√64 = ε: 5 − 0.1
    for line in ("m ← β₁·m + (1 − β₁)·g", "t = 1", "m of W1 = 0.8", "v of W1 = 0.064", "W1 after the step = 4.9"):
        assert line in result.stdout, line


def test_every_loss_and_optimizer_has_a_notation():
    assert set(LOSS_NOTATION) == set(LOSSES)
    assert set(UPDATE_RULES) == set(OPTIMIZERS)


# --- the numbers are right, and they are train's ----------------------------------------------
def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


HAND = {  # hidden activation and its derivative, output activation, loss and dL/dz at the output
    "regression": (_sigmoid, lambda h: h * (1 - h), lambda z: z,
                   lambda p, y: (0.5 * ((p - y) ** 2).sum(axis=1)).mean(), lambda p, y: (p - y) / len(p)),
    "classification": (np.tanh, lambda h: 1 - h * h, _softmax,
                       lambda p, y: -(y * np.log(p)).sum(axis=1).mean(), lambda p, y: (p - y) / len(p)),
}


@pytest.mark.parametrize("task", sorted(HAND))
def test_two_layer_net_equals_a_hand_computation(write, task):
    write("data.csv", "a,b,c,t\n0.5,-1,2,1\n1.5,0.25,-0.5,0\n-1,2,0.75,2\n")
    loss, activation = ("quadratic", "sigmoid") if task == "regression" else ("cross_entropy", "tanh")
    config = write("net.yaml", f"""
        seed: 3
        data: {{train: data.csv, target: t, validation_split: 0, shuffle: false, normalize: none}}
        model: {{layers: [auto, 4, auto], activation: {activation}, dtype: float64, init: xavier}}
        training: {{loss: {loss}, learning_rate: 0.3, epochs: 1, batch_size: 3}}
        """)
    trace = explain(config, rows=3).trace
    hidden, derivative, output, mean_loss, output_delta = HAND[task]
    X, Y = trace.X, trace.Y
    (W1, b1), (W2, b2) = [(layer.W, layer.b) for layer in trace.layers]
    z1 = X @ W1 + b1
    h1 = hidden(z1)
    z2 = h1 @ W2 + b2
    p = output(z2)
    d2 = output_delta(p, Y)
    g_W2, g_b2 = h1.T @ d2, d2.sum(axis=0)
    passed = d2 @ W2.T
    d1 = passed * derivative(h1)
    g_W1, g_b1 = X.T @ d1, d1.sum(axis=0)
    first, second = trace.layers
    for ours, theirs in ((first.z, z1), (first.h, h1), (second.z, z2), (second.h, p), (second.delta, d2),
                         (second.grad_W, g_W2), (second.grad_b, g_b2), (first.grad_h, passed), (first.derivative, derivative(h1)),
                         (first.delta, d1), (first.grad_W, g_W1), (first.grad_b, g_b1),
                         (first.W_after, W1 - 0.3 * g_W1), (first.b_after, b1 - 0.3 * g_b1),
                         (second.W_after, W2 - 0.3 * g_W2), (second.b_after, b2 - 0.3 * g_b2)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert trace.loss == pytest.approx(mean_loss(p, Y), rel=1e-12)
    after = output(hidden(X @ first.W_after + first.b_after) @ second.W_after + second.b_after)
    assert trace.loss_after == pytest.approx(mean_loss(after, Y), rel=1e-12)


STEP_CASES = {  # (model, training) sections beyond the shared ones
    # Plain SGD with a 128 × 128 layer: train's update is fused into the BLAS product (core/blas.py).
    "sgd": ({"layers": ["auto", 128, 128, "auto"], "dtype": "float32"}, {"optimizer": "sgd"}),
    "adam": ({"layers": ["auto", 16, "auto"], "dtype": "float32"}, {"optimizer": {"name": "adam", "beta1": 0.8}}),
    "momentum, dropout, class weights": (
        {"layers": ["auto", 16, 8, "auto"], "dtype": "float64", "dropout": 0.3},
        {"optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True}, "weight_decay": 0.01, "class_weights": "balanced"}),
}


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_the_step_is_trains_first_step_to_the_last_bit(write, tmp_path, case):
    model, training = STEP_CASES[case]
    rows = ["a,b,c,kind"] + [f"{i * 0.37 % 2:.3f},{(i * 1.9) % 3 - 1:.3f},{i % 4},{'xyz'[i % 3]}" for i in range(7)]
    write("train.csv", "\n".join(rows) + "\n")
    config = write("step.yaml", json.dumps({  # (YAML reads JSON)
        "seed": 11, "data": {"train": "train.csv", "target": "kind", "validation_split": 0, "shuffle": False},
        "model": model, "training": {"learning_rate": 0.05, "epochs": 1, "batch_size": 7, **training}}))
    trained = runner.invoke(app, ["train", str(config), "-o", str(tmp_path / "one-step.npz"), "--quiet"])
    assert trained.exit_code == 0, trained.stderr
    network = load_model(tmp_path / "one-step.npz").network
    explained = explain(config, rows=7).trace
    for layer, W, b in zip(explained.layers, network.weights, network.biases):
        assert layer.W_after.dtype == W.dtype and layer.W_after.tobytes() == W.tobytes()
        assert layer.b_after.tobytes() == b.tobytes()
        assert not np.array_equal(layer.W_after, layer.W)  # a step was taken
    document = json.loads(invoke(config, "--rows", 7, "--json").stdout)  # --json prints them exactly
    for layer, W in zip(document["layers"], network.weights):
        assert np.array(layer["W_after"], dtype=W.dtype).tobytes() == W.tobytes()


def test_a_model_is_explained_from_its_weights(tmp_path):
    model = prepare_training(load_config(CONFIGS / "xor.yaml", ["training.epochs=20"])).fit()
    path = tmp_path / "xor.npz"
    save_model(path, model)
    result = invoke(path, "--row", 2, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rows"] == [2] and document["inputs"]["x"] == [[0.0, 1.0]]
    for layer, W in zip(document["layers"], model.network.weights):
        assert np.array(layer["W"]).tobytes() == W.tobytes()
    assert any("init-from" in note for note in document["notes"])


def test_a_model_whose_data_is_gone_is_one_clear_error(write, tmp_path):
    write("gone.csv", "x1,x2,label\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    config = write("gone.yaml", """
        seed: 0
        data: {train: gone.csv, target: label, validation_split: 0}
        model: {layers: [auto, 3, auto], dtype: float64}
        training: {epochs: 2, batch_size: 4}
        """)
    save_model(tmp_path / "gone.npz", prepare_training(load_config(config)).fit())
    (tmp_path / "gone.csv").unlink()
    result = invoke(tmp_path / "gone.npz")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "gone.csv (data.train), which is not there" in result.stderr


# --- the command line ---------------------------------------------------------------------------
def test_layer_shows_one_layer():
    result = invoke(CONFIGS / "xor.yaml", *XOR_232, "--row", 4, "--layer", 2)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "W2  (3 × 2)" in out and "∂L/∂W2 = h1ᵀ·δ2" in out and "W2 after the step" in out
    assert "W1" not in out and "δ1" not in out and "1. Inputs" not in out
    assert "h1  (1 × 3)" in out  # the layer's input, which the filter would otherwise hide
    document = json.loads(invoke(CONFIGS / "xor.yaml", *XOR_232, "--layer", 1, "--json").stdout)
    assert [layer["layer"] for layer in document["layers"]] == [1] and document["layer"] == 1


@pytest.mark.parametrize("args, message", [
    (["--row", 5], "--row 5: {} has 4 training rows (1–4)"),
    (["--row", 0], "--row 0: {} has 4 training rows (1–4)"),
    (["--rows", 9], "--rows 9: {} has 4 training rows"),
    (["--layer", 3], "--layer 3: {} has 2 layers (1–2)"),
    (["--rows", 1, "--row", 1], "give either --rows N (the first N training rows) or --row N (repeatable), not both"),
])
def test_out_of_range_is_one_line_and_exit_2(args, message):
    path = CONFIGS / "xor.yaml"
    result = invoke(path, *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"nncli: error: {message.format(path)}\n"


@pytest.mark.parametrize("args", [
    [SEED],
    [CONFIGS / "xor.yaml", *XOR_232, "--rows", 4],
    [CONFIGS / "iris.yaml", "--rows", 12, "--set", "training.optimizer=adam"],
    [CONFIGS / "digits.yaml", "--rows", 3],
    [CONFIGS / "diabetes.yaml", "--rows", 2, "--set", "training.loss=huber"],
])
def test_plain_output_fits_80_columns(args):
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    if args[0] != SEED:  # (whose numbers are all 1 × 1, written inline)
        assert any(re.search(r"\(\d+ × \d+\)", line) for line in lines)  # matrices say their shape


def test_the_installed_command_in_a_pipe():
    nncli = Path(sys.executable).parent / "nncli"
    piped = subprocess.run([str(nncli), "explain", str(SEED)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NO_COLOR": ""}, check=False)
    assert piped.returncode == 0 and piped.stderr == ""
    assert "W1 ← 5 − 0.1·8 = 4.2" in piped.stdout and "\x1b" not in piped.stdout
    wrong = subprocess.run([str(nncli), "explain", str(SEED), "--row", "2"], capture_output=True, text=True, timeout=120, check=False)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr == f"nncli: error: --row 2: {SEED} has 1 training row\n"


def test_a_step_that_diverges_is_one_line_and_exit_1():
    result = invoke(SEED, "--set", "training.learning_rate=1e300")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "nncli: error: the step diverged: the loss after it is inf; try a lower learning rate (now 1e+300)\n"
