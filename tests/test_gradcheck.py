"""`nncli gradcheck`: backpropagation against central differences, through the CLI and the core."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.core import losses
from nncli.core.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from nncli.core.gradcheck import Objective, check_gradients
from nncli.core.losses import LOSSES, get_loss
from nncli.core.network import MLP
from tests.conftest import CONFIGS

runner = CliRunner()


def gradcheck(*args):
    return runner.invoke(app, ["gradcheck", *map(str, args)])


def _document(result) -> dict:
    return json.loads(result.stdout)


# Small data for every kind of loss: three classes, two classes, two regression targets.
DATA = {
    "one_hot": ("x1,x2,x3,label", lambda x, i: ("cat", "dog", "eel")[i % 3], "label"),
    "binary": ("x1,x2,x3,label", lambda x, i: ("no", "yes")[i % 2], "label"),
    "values": ("x1,x2,x3,y1,y2", lambda x, i: f"{x[0] - x[1]:.3f},{x[2] * 2:.3f}", "[y1, y2]"),
}


def _config(write, loss_name: str, activation: str, extra: str = "") -> "Path":  # noqa: F821
    header, target, target_key = DATA[get_loss(loss_name).kind.targets]
    rng = np.random.default_rng(5)
    rows = [header] + [",".join(f"{v:.3f}" for v in x) + f",{target(x, i)}" for i, x in enumerate(rng.standard_normal((12, 3)))]
    write("data.csv", "\n".join(rows) + "\n")
    return write("net.yaml", f"""
        seed: 2
        data:
          train: data.csv
          target: {target_key}
          validation_split: 0
        model:
          layers: [auto, 5, 4, auto]
          activation: {activation}
          dropout: 0.3
          dtype: float32
        training:
          loss: {loss_name}
          weight_decay: 0.01
        {extra}
        """)


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_every_activation_and_loss_passes(write, activation, loss_name):
    """Through the CLI on random rows, with dropout in the config (off for the check), weight
    decay, class weights for classification, and a float32 network (checked in float64)."""
    classification = get_loss(loss_name).classification
    config = _config(write, loss_name, activation, "  class_weights: balanced" if classification else "")
    result = gradcheck(config, "--random", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    document = _document(result)
    assert document["passed"] and document["max_rel_error"] <= 1e-6
    assert document["weight_decay"] == 0.01 and document["class_weights"] == classification
    assert [p["parameter"] for p in document["parameters"]] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(p["checked"] + p["skipped_at_kinks"] == np.prod(p["shape"]) for p in document["parameters"])


def _broken_tanh(da, a):
    da *= 1 - a  # should be 1 − a²
    return da


def test_a_broken_activation_derivative_fails_naming_its_layers(write, monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, "tanh", dataclasses.replace(ACTIVATIONS["tanh"], backward=_broken_tanh))
    result = gradcheck(_config(write, "cross_entropy", "tanh"), "--json")
    assert result.exit_code == 1
    # tanh follows layers 1 and 2: their gradients pass through its derivative, layer 3's do not.
    assert _document(result)["failed_layers"] == [1, 2]
    assert result.stderr.startswith("nncli: error: gradient check failed in layers 1, 2: ")
    assert result.stderr.count("\n") == 1


def test_a_broken_loss_gradient_fails_every_layer(write, monkeypatch):
    huber = LOSSES["huber"]
    monkeypatch.setitem(LOSSES, "huber", dataclasses.replace(huber, per_sample_gradient=lambda p, y, delta=1.0: np.clip(p - y, -delta, delta)))
    result = gradcheck(_config(write, "huber", "sigmoid"))
    assert result.exit_code == 1
    assert "FAILED in layers 1, 2, 3" in result.stdout
    assert "gradient check failed in layers 1, 2, 3" in result.stderr


def test_class_weights_are_part_of_the_check(monkeypatch):
    """Backpropagation that forgot the class weights fails: they are in the objective checked."""
    rng = np.random.default_rng(0)
    network = MLP.initialise([3, 4, 2], ["tanh", "softmax"], rng, dtype=np.float64)
    X, Y = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    objective = Objective(network, get_loss("cross_entropy"), X, Y, weights=rng.uniform(0.2, 3, 6))
    assert all(check.passes(1e-6) for check in check_gradients(objective))
    monkeypatch.setattr(losses, "_mean_gradient", lambda per_sample, weights: per_sample / len(per_sample))
    assert not any(check.passes(1e-6) for check in check_gradients(objective))


def test_weight_decay_is_part_of_the_check(monkeypatch):
    rng = np.random.default_rng(1)
    network = MLP.initialise([3, 4, 1], ["elu", "identity"], rng, dtype=np.float64)
    objective = Objective(network, get_loss("mse"), rng.standard_normal((5, 3)), rng.standard_normal((5, 1)), weight_decay=0.1)
    checks = check_gradients(objective)
    assert all(check.passes(1e-6) for check in checks)
    monkeypatch.setattr(MLP, "decay_mask", lambda self: [False] * len(self.parameters()))  # decay left out of the gradients
    assert [check.passes(1e-6) for check in check_gradients(objective)] == [False, True, False, True]  # W1, b1, W2, b2


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_entries_at_a_relu_kink_are_skipped_and_counted(write, activation):
    """A row of zeros with zero initial biases puts every first-layer unit exactly at 0: moving
    b1 by ±ε crosses the kink there. W1 never moves that row's units (its inputs are 0)."""
    write("data.csv", "a,b,y\n0,0,1\n1,2,3\n-1,0.5,2\n2,-1,0\n")
    config = write("kink.yaml", f"""
        seed: 0
        data: {{train: data.csv, target: y, validation_split: 0, normalize: none}}
        model: {{layers: [auto, 5, auto], activation: {activation}, dtype: float64}}
        training: {{loss: mse}}
        """)
    result = gradcheck(config, "--json")
    assert result.exit_code == 0, result.stderr
    by_name = {p["parameter"]: p for p in _document(result)["parameters"]}
    assert by_name["b1"]["skipped_at_kinks"] == 5 and by_name["b1"]["checked"] == 0 and by_name["b1"]["worst"] is None
    assert by_name["W1"]["skipped_at_kinks"] == 0 and by_name["W1"]["checked"] == 10
    assert _document(result)["skipped_at_kinks"] == 5
    text = gradcheck(config)
    assert "5 entries skipped: ±ε falls on both sides of a kink" in text.stdout
    assert text.stdout.splitlines()[-1].startswith("passed:")


@pytest.mark.parametrize("loss_name, target", [("mae", 0.0), ("huber", 1.0), ("huber", -1.0)])
def test_entries_at_a_loss_kink_are_skipped(loss_name, target):
    """Row 0's output is exactly 0 (zero inputs, zero bias): MAE's kink at a target of 0, Huber's
    at ±δ = ±1. Moving the bias crosses it; moving W does not move row 0's output."""
    rng = np.random.default_rng(3)
    network = MLP.initialise([2, 1], ["identity"], rng, dtype=np.float64)
    X = np.vstack([np.zeros(2), rng.standard_normal((4, 2))])
    Y = np.vstack([[[target]], rng.standard_normal((4, 1)) * 3])
    W, b = check_gradients(Objective(network, get_loss(loss_name), X, Y))
    assert (b.skipped, b.checked) == (1, 0)
    assert (W.skipped, W.checked) == (0, 2) and W.passes(1e-6)


def test_json_document(write):
    result = gradcheck(CONFIGS / "xor.yaml", "--json")
    assert result.exit_code == 0, result.stderr
    document = _document(result)
    assert set(document) == {
        "target", "weights", "rows", "dtype", "checked_in", "loss", "loss_params", "class_weights", "weight_decay",
        "dropout", "seed", "eps", "tol", "samples", "passed", "max_rel_error", "skipped_at_kinks", "failed_layers",
        "parameters"}
    assert document["weights"] == "initial" and document["rows"] == {"count": 4, "source": "training"}
    assert (document["eps"], document["tol"], document["samples"], document["failed_layers"]) == (1e-6, 1e-6, None, [])
    W1 = document["parameters"][0]
    assert set(W1) == {"layer", "parameter", "shape", "checked", "skipped_at_kinks", "max_abs_error", "max_rel_error",
                       "worst", "analytic", "numeric"}
    assert (W1["layer"], W1["parameter"], W1["shape"], W1["checked"]) == (1, "W1", [2, 8], 16)
    assert len(W1["worst"]) == 2 and abs(W1["analytic"] - W1["numeric"]) == pytest.approx(0, abs=1e-9)


def test_samples_are_drawn_with_the_seed(write):
    config = _config(write, "cross_entropy", "tanh")
    first, second = gradcheck(config, "--samples", "3", "--json"), gradcheck(config, "--samples", "3", "--json")
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout
    checked = [p["checked"] for p in _document(first)["parameters"]]
    assert checked == [3, 3, 3, 3, 3, 3]  # W1 3×5, b1 5, W2 5×4, b2 4, W3 4×3, b3 3
    assert gradcheck(config, "--samples", "3").stdout == gradcheck(config, "--samples", "3").stdout


def test_float32_networks_are_checked_in_float64(write):
    """A float32 check could not resolve a relative error below ~1e-3; float64 gets ~1e-8."""
    result = gradcheck(_config(write, "mse", "tanh"), "--json")
    document = _document(result)
    assert (document["dtype"], document["checked_in"]) == ("float32", "float64")
    assert document["max_rel_error"] < 1e-6
    with pytest.raises(ValueError, match="float64"):
        check_gradients(Objective(MLP.initialise([2, 1], ["identity"], np.random.default_rng(0)), get_loss("mse"),
                                  np.zeros((1, 2)), np.zeros((1, 1))))


def test_a_trained_model_on_its_own_data(tmp_path):
    model = tmp_path / "xor.npz"
    assert runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "-o", str(model), "-q"]).exit_code == 0
    result = gradcheck(model)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Gradient check of {model}: trained weights\n4 training rows, cross_entropy loss\n")
    assert _document(gradcheck(model, "--json"))["weights"] == "trained"


@pytest.mark.parametrize("args, message", [
    (["--eps", "0"], "--eps 0.0: expected a step > 0"),
    (["--tol", "-1"], "--tol -1.0: expected a relative error ≥ 0"),
    (["--set", "training.loss=nope"], "training.loss"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = gradcheck(CONFIGS / "xor.yaml", *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.parametrize("option", ["--rows", "--samples"])
def test_counts_below_one_are_refused(option):
    # (typer refuses them; the installed command makes that one line, see the test below)
    result = gradcheck(CONFIGS / "xor.yaml", option, "0")
    assert result.exit_code == 2 and option in result.stderr


def test_a_model_whose_data_has_moved_exits_2(write, tmp_path):
    config = _config(write, "mse", "tanh")
    model = tmp_path / "net.npz"
    assert runner.invoke(app, ["train", str(config), "-o", str(model), "-q"]).exit_code == 0
    assert gradcheck(model).exit_code == 0
    (tmp_path / "data.csv").unlink()
    result = gradcheck(model)
    assert result.exit_code == 2 and "data.csv is no longer there" in result.stderr


def test_a_config_without_a_seed_is_checked_with_seed_0(write):
    config = _config(write, "mse", "tanh")
    config.write_text(config.read_text().replace("seed: 2", ""))
    first, second = gradcheck(config, "--json"), gradcheck(config, "--json")
    assert _document(first)["seed"] == 0 and first.stdout == second.stdout


def test_bad_files_exit_2(tmp_path):
    missing = gradcheck(tmp_path / "nothing.yaml")
    assert missing.exit_code == 2 and "config file not found" in missing.stderr
    model = tmp_path / "xor.npz"
    assert runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "-o", str(model), "-q"]).exit_code == 0
    assert "--set applies to a config" in gradcheck(model, "--set", "seed=1").stderr


def test_the_installed_command_is_a_ci_gate(tmp_path):
    """Real runs: exit 0 and plain text when piped; exit 1 with one stderr line naming the layer
    (a tolerance of 0 no central difference meets)."""
    command = [sys.executable, "-m", "nncli", "gradcheck", str(CONFIGS / "xor.yaml")]
    passed = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path)
    assert passed.returncode == 0 and passed.stderr == ""
    assert "\x1b" not in passed.stdout and passed.stdout.splitlines()[-1].startswith("passed: every relative error ≤ 1e-06")
    failed = subprocess.run([*command, "--tol", "0"], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.startswith("nncli: error: gradient check failed in layer") and failed.stderr.count("\n") == 1
    refused = subprocess.run([*command, "--rows", "0"], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("nncli: error: ") and "--rows" in refused.stderr and refused.stderr.count("\n") == 1


def test_rows_read_from_disk_are_the_rows_in_memory(write):
    """Data bigger than memory is read as training gathers a batch: the same first rows."""
    config = _config(write, "mse", "tanh")
    in_memory, on_disk = (gradcheck(config, "--json", "--set", f"data.in_memory={flag}") for flag in ("true", "false"))
    assert in_memory.exit_code == 0 and on_disk.exit_code == 0, on_disk.stderr
    assert in_memory.stdout == on_disk.stdout
