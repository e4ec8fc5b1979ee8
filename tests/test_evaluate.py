"""evaluate: metrics computed by hand on a network whose answers we choose, and the CI gates."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.evaluate import evaluate_csv
from nncli.core.model import TrainedModel
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler
from nncli.files.model import save_model
from nncli.tabular.source import open_csv

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


@pytest.fixture
def pick_model(tmp_path):
    """Three classes; the network's answer is simply the largest of the columns a, b, c."""
    network = MLP([np.eye(3) * 50], [np.zeros(3)], ["softmax"])
    model = TrainedModel(network, "cross_entropy", ["a", "b", "c"], ["y"], ["cat", "dog", "eel"], Scaler.fit(np.zeros((1, 3)), "none"))
    path = tmp_path / "pick.npz"
    save_model(path, model)
    return model, path


ROWS = [  # (a, b, c) -> predicted class; y is the truth
    ("1,0,0", "cat"), ("1,0,0", "cat"), ("0,1,0", "cat"),  # cat: 2 right, 1 predicted dog
    ("0,1,0", "dog"), ("0,0,1", "dog"),  # dog: 1 right, 1 predicted eel
    ("0,0,1", "eel"), ("0,0,1", "eel"), ("0,0,1", "eel"),  # eel: 3 right
]


def _labelled(write, name="t.csv"):
    return write(name, "a,b,c,y\n" + "".join(f"{x},{y}\n" for x, y in ROWS))


def test_classification_metrics_by_hand(pick_model, write, block_parser):
    model, _ = pick_model
    with open_csv(_labelled(write), chunk_bytes=16) as stream:  # several chunks
        report = evaluate_csv(model, stream)
    assert report.rows == 8
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 3]]
    precision = [2 / 2, 1 / 2, 3 / 4]
    recall = [2 / 3, 1 / 2, 3 / 3]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert report.metrics["accuracy"] == pytest.approx(6 / 8)
    assert report.metrics["macro_precision"] == pytest.approx(np.mean(precision))
    assert report.metrics["macro_recall"] == pytest.approx(np.mean(recall))
    assert report.metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert report.metrics["weighted_f1"] == pytest.approx(np.dot(f1, [3, 2, 3]) / 8)
    assert [row["support"] for row in report.per_class] == [3, 2, 3]
    p_right = np.exp(50) / (np.exp(50) + 2)
    assert report.metrics["loss"] == pytest.approx(-(6 * np.log(p_right) + 2 * np.log(1 / (np.exp(50) + 2))) / 8)


def test_gates_pass_and_fail_with_exit_codes(pick_model, write):
    _, path = pick_model
    data = _labelled(write)
    result = invoke("evaluate", path, data, "--fail-under", "accuracy=0.75")
    assert result.exit_code == 0, result.stderr
    assert "confusion matrix" in result.stdout and "accuracy" in result.stdout
    result = invoke("evaluate", path, data, "--fail-under", "accuracy=0.8", "--fail-under", "macro_f1=0.5")
    assert result.exit_code == 1
    assert result.stderr == f"nncli: error: quality gate failed: accuracy 0.7500 < 0.8 ({path} on {data})\n"
    result = invoke("evaluate", path, data, "--fail-over", "loss=1")
    assert result.exit_code == 1 and "loss " in result.stderr and "> 1" in result.stderr


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--fail-under", "loss=0.1", "lower loss is better; use --fail-over loss=0.1"),
        ("--fail-over", "accuracy=0.1", "higher accuracy is better; use --fail-under accuracy=0.1"),
        ("--fail-under", "acuracy=0.9", "no metric 'acuracy' for this model; available: loss, accuracy"),
        ("--fail-under", "accuracy", "expected METRIC=VALUE"),
        ("--fail-under", "accuracy=high", "'high' is not a number"),
        ("--fail-under", "r2=0.5", "no metric 'r2' for this model"),
    ],
)
def test_bad_gates_are_usage_errors(pick_model, write, flag, value, message):
    _, path = pick_model
    result = invoke("evaluate", path, _labelled(write), flag, value)
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_json_report(pick_model, write):
    _, path = pick_model
    result = invoke("evaluate", path, _labelled(write), "--json", "--fail-under", "accuracy=0.9")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["gates"][0]["value"] == 0.75
    assert report["confusion_matrix"][2] == [0, 0, 3] and report["per_class"][0]["class"] == "cat"


def test_unseen_label_and_missing_target(pick_model, write):
    _, path = pick_model
    result = invoke("evaluate", path, write("u.csv", "a,b,c,y\n1,0,0,cat\n0,1,0,fox\n"))
    assert result.exit_code == 2
    assert "u.csv:3: column 'y': label 'fox' does not occur in the training data (classes: cat, dog, eel)" in result.stderr
    result = invoke("evaluate", path, write("n.csv", "a,b,c\n1,0,0\n"))
    assert result.exit_code == 2 and "n.csv:1: no target column 'y'; evaluation needs the labels" in result.stderr
    result = invoke("evaluate", path, write("e.csv", "a,b,c,y\n"))
    assert result.exit_code == 2 and "no data rows" in result.stderr


def test_regression_metrics_by_hand(tmp_path, write):
    # prediction = 2·x1 (first target) and x2 − 1 (second target), exactly.
    network = MLP([np.array([[2.0, 0.0], [0.0, 1.0]])], [np.array([0.0, -1.0])], ["identity"])
    model = TrainedModel(network, "mse", ["x1", "x2"], ["u", "v"], None, Scaler.fit(np.zeros((1, 2)), "none"))
    path = tmp_path / "r.npz"
    save_model(path, model)
    X = np.array([[1.0, 2.0], [2.0, 0.0], [3.0, 5.0], [4.0, 1.0]])
    Y = np.array([[2.5, 1.0], [4.0, -2.0], [5.0, 4.0], [9.0, 0.5]])
    data = write("r.csv", "v,x2,x1,u\n" + "".join(f"{y[1]},{x[1]},{x[0]},{y[0]}\n" for x, y in zip(X, Y)))
    result = invoke("evaluate", path, data, "--json", "--fail-under", "r2_u=0.5")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    P = X * [2, 1] + [0, -1]
    for j, name in enumerate(["u", "v"]):
        row = report["per_target"][j]
        assert row["target"] == name
        assert row["mse"] == pytest.approx(np.mean((P[:, j] - Y[:, j]) ** 2))
        assert row["mae"] == pytest.approx(np.mean(np.abs(P[:, j] - Y[:, j])))
        r2 = 1 - np.sum((P[:, j] - Y[:, j]) ** 2) / np.sum((Y[:, j] - Y[:, j].mean()) ** 2)
        assert row["r2"] == pytest.approx(r2)
    assert report["metrics"]["loss"] == pytest.approx(np.mean((P - Y) ** 2))
    result = invoke("evaluate", path, data)
    assert result.exit_code == 0 and "per target" in result.stdout


def test_r2_stays_exact_for_targets_with_a_huge_mean(tmp_path, write):
    """Σy² − (Σy)²/n cancels to nothing at 1e12; the streamed mean/M2 merge does not."""
    network = MLP([np.array([[3.0]])], [np.array([1e12])], ["identity"])
    model = TrainedModel(network, "mse", ["x"], ["y"], None, Scaler.fit(np.zeros((1, 1)), "none"))
    path = tmp_path / "big.npz"
    save_model(path, model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, 3000)
    y = 1e12 + 3 * x + rng.normal(0, 5, 3000)
    data = write("b.csv", "x,y\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y)))
    with open_csv(data, chunk_bytes=1024) as stream:
        report = evaluate_csv(model, stream)
    prediction = 1e12 + 3 * x
    expected = 1 - np.sum((prediction - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert report.metrics["r2"] == pytest.approx(expected, abs=1e-6) and expected > 0.99


def test_fraction_gates_reject_percentages(pick_model, write):
    _, path = pick_model
    result = invoke("evaluate", path, _labelled(write), "--fail-under", "accuracy=95")
    assert result.exit_code == 2 and "accuracy is a fraction from 0 to 1 (95% is 0.95)" in result.stderr


def test_macro_averages_skip_classes_absent_from_data_and_predictions(pick_model, write):
    model, _ = pick_model
    with open_csv(write("one.csv", "a,b,c,y\n1,0,0,cat\n")) as stream:
        report = evaluate_csv(model, stream)
    assert report.metrics["macro_f1"] == 1.0 and report.metrics["accuracy"] == 1.0
