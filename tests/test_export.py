"""export: the ONNX graph, run in onnxruntime on the shipped datasets, gives what nncli gives
(TrainedModel.outputs, `nncli predict`): probabilities within 1e-5 in float32, labels identical."""

import csv
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from nncli.files.model import save_model
from tests.conftest import CONFIGS, DATASETS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

runner = CliRunner()
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}  # absolute, on probabilities
TOKENS = {"", "NA", "NaN", "null"}  # the default missing_values


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


def _trained(config, tmp_path, *overrides, name="model"):
    model = prepare_training(load_config(config, list(overrides))).fit()
    path = tmp_path / f"{name}.npz"
    save_model(path, model)
    return model, path


def _exported(path):
    result = invoke("export", path, "-o", path.with_suffix(".onnx"))
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(onnx.load(str(path.with_suffix(".onnx"))), full_check=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # (onnxruntime's own warnings are not ours)
    return ort.InferenceSession(str(path.with_suffix(".onnx")), options, providers=["CPUExecutionProvider"])


def _numbers(dataset, targets):
    """The feature columns of a numeric dataset (all but ``targets``), float64."""
    with open(DATASETS / dataset) as f:
        rows = list(csv.DictReader(f))
    names = [name for name in rows[0] if name not in targets]
    return np.array([[float(row[name]) for name in names] for row in rows])


def _check_classifier(model, session, X):
    probabilities, labels = session.run(["probabilities", "label"], {"features": X})
    expected = model.outputs(X)
    assert probabilities.dtype == model.network.dtype
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=TOLERANCE[model.network.dtype.name])
    assert labels.tolist() == [model.classes[i] for i in expected.argmax(axis=1)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_every_hidden_activation_in_both_dtypes(tmp_path, activation, dtype):
    model, path = _trained(CONFIGS / "iris.yaml", tmp_path, "training.epochs=3", f"model.dtype={dtype}",
                           f"model.activation={activation}", "model.layers=[auto, 8, 8, auto]")
    _check_classifier(model, _exported(path), _numbers("iris.csv", ["species"]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("normalize", ["standard", "minmax", "none"])
def test_digits_with_and_without_scaling(tmp_path, normalize, dtype):
    model, path = _trained(CONFIGS / "digits.yaml", tmp_path, "training.epochs=2", f"data.normalize={normalize}",
                           f"model.dtype={dtype}", "model.layers=[auto, 32, auto]")
    _check_classifier(model, _exported(path), _numbers("digits.csv", ["label"]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["binary_cross_entropy", "cross_entropy"])
def test_binary_classifiers(tmp_path, loss, dtype):
    model, path = _trained(CONFIGS / "xor.yaml", tmp_path, "training.epochs=50", f"training.loss={loss}", f"model.dtype={dtype}")
    assert model.network.sizes[-1] == (1 if loss == "binary_cross_entropy" else 2)
    _check_classifier(model, _exported(path), _numbers("xor.csv", ["label"]))


def test_leaky_relu_slope_and_no_bias(tmp_path):
    model, path = _trained(CONFIGS / "iris.yaml", tmp_path, "training.epochs=3", "model.activation=leaky_relu",
                           "model.leaky_relu_slope=0.3", "model.bias=false", "model.dtype=float64")
    _check_classifier(model, _exported(path), _numbers("iris.csv", ["species"]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output_activation", [name for name in ACTIVATIONS if name != "softmax"] + ["softmax"])
def test_multi_target_regression_in_original_units(tmp_path, output_activation, dtype):
    targets = ["progression", "bmi"]
    model, path = _trained(CONFIGS / "diabetes.yaml", tmp_path, "training.epochs=3", "data.target=[progression, bmi]",
                           f"model.output_activation={output_activation}", f"model.dtype={dtype}",
                           f"data.normalize_target={'minmax' if output_activation == 'sigmoid' else 'standard'}")
    X = _numbers("diabetes.csv", targets)
    (prediction,) = _exported(path).run(["prediction"], {"features": X})
    expected = model.outputs(X)
    assert prediction.dtype == model.network.dtype and prediction.shape == (len(X), 2)
    # In the targets' units (progression is in the hundreds): the float32 tolerance, relative.
    np.testing.assert_allclose(prediction, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("normalize_target", ["none", "minmax"])
def test_regression_target_scaling(tmp_path, normalize_target):
    model, path = _trained(CONFIGS / "diabetes.yaml", tmp_path, "training.epochs=3", f"data.normalize_target={normalize_target}")
    X = _numbers("diabetes.csv", ["progression"])
    (prediction,) = _exported(path).run(None, {"features": X})
    np.testing.assert_allclose(prediction, model.outputs(X), rtol=1e-5, atol=1e-5)


# -- categorical columns and missing cells: compared with `nncli predict` ------------------------

def _table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _named_inputs(session, rows):
    """One array per graph input, from CSV rows as predict reads them: a number or NaN for a
    missing cell; a category's text without its surrounding spaces."""
    feeds = {}
    for port in session.get_inputs():
        cells = [row[port.name].strip() for row in rows]
        if port.type == "tensor(string)":
            feeds[port.name] = np.array(cells, dtype=object)[:, None]
        else:
            feeds[port.name] = np.array([np.nan if cell in TOKENS else float(cell) for cell in cells])[:, None]
    return feeds


def _predicted(model_path, data, classes):
    result = invoke("predict", model_path, data, "--proba")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    return [row["prediction"] for row in rows], np.array([[float(row[f"proba_{c}"]) for c in classes] for row in rows])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("missing", ["mean", "median", "most_frequent"])
def test_penguins_categories_and_missing_cells_as_predict(tmp_path, missing, dtype):
    model, path = _trained(CONFIGS / "penguins.yaml", tmp_path, "training.epochs=3", f"data.missing={missing}", f"model.dtype={dtype}")
    session = _exported(path)
    assert [port.name for port in session.get_inputs()] == model.features
    probabilities, labels = session.run(["probabilities", "label"], _named_inputs(session, _table(DATASETS / "penguins.csv")))
    expected_labels, expected = _predicted(path, DATASETS / "penguins.csv", model.classes)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=TOLERANCE[dtype])
    assert labels.tolist() == expected_labels


def _penguins_with(tmp_path, edits):
    """penguins.csv's first rows with ``edits`` ({row: {column: cell}}) written in."""
    rows = _table(DATASETS / "penguins.csv")[:20]
    for row, cells in edits.items():
        rows[row].update(cells)
    path = tmp_path / "edited.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, rows


def test_unknown_categories_ignored_and_spaces_and_tokens(tmp_path):
    model, path = _trained(CONFIGS / "penguins.yaml", tmp_path, "training.epochs=3", "data.unknown_category=ignore")
    data, rows = _penguins_with(tmp_path, {0: {"island": "Atlantis"}, 1: {"sex": " NA "}, 2: {"island": "  Dream "}})
    session = _exported(path)
    probabilities, labels = session.run(None, _named_inputs(session, rows))
    expected_labels, expected = _predicted(path, data, model.classes)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert labels.tolist() == expected_labels


def test_rows_predict_refuses_are_nan_with_an_empty_label(tmp_path):
    """missing: error and unknown_category: error: predict stops at such a row; the graph cannot
    raise, so that row's probabilities are NaN and its label is empty; the other rows are as predict."""
    model, path = _trained(CONFIGS / "penguins.yaml", tmp_path, "training.epochs=3", "data.missing=drop_rows")
    _, rows = _penguins_with(tmp_path, {3: {"island": "Atlantis"}, 5: {"sex": ""}, 7: {"bill_depth_mm": "NA"}, 9: {"year": "1e400"}})
    session = _exported(path)
    probabilities, labels = session.run(None, _named_inputs(session, rows))
    refused = [i for i, row in enumerate(rows) if i in (3, 9) or "" in row.values() or "NA" in row.values()]
    assert np.isnan(probabilities[refused]).all() and set(labels[refused]) == {""}
    kept = [i for i in range(len(rows)) if i not in refused]
    kept_path = tmp_path / "kept.csv"
    with open(kept_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([rows[i] for i in kept])
    expected_labels, expected = _predicted(path, kept_path, model.classes)
    np.testing.assert_allclose(probabilities[kept], expected, rtol=0, atol=1e-5)
    assert labels[kept].tolist() == expected_labels


def test_a_numeric_model_refuses_nan_and_overflow_rows(tmp_path):
    model, path = _trained(CONFIGS / "iris.yaml", tmp_path, "training.epochs=3")
    X = _numbers("iris.csv", ["species"])[:5]
    X[1, 2], X[3, 0] = np.nan, 1e39  # missing with no fill; beyond float32
    probabilities, labels = _exported(path).run(None, {"features": X})
    assert np.isnan(probabilities[[1, 3]]).all() and labels[[1, 3]].tolist() == ["", ""]
    np.testing.assert_allclose(probabilities[[0, 2, 4]], model.outputs(X[[0, 2, 4]]), rtol=0, atol=1e-5)


def test_the_docs_serving_examples(tmp_path, monkeypatch):
    """docs/export.md's two ways to serve a model, run as written (onnxruntime; plain NumPy)."""
    text = (DATASETS.parent / "docs" / "export.md").read_text()
    with_onnxruntime, with_numpy = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    model, path = _trained(CONFIGS / "iris.yaml", tmp_path, "training.epochs=3", name="iris")
    _exported(path)
    monkeypatch.chdir(tmp_path)
    served = {}
    exec(with_onnxruntime, served)  # noqa: S102 (our own docs, run as a reader would)
    np.testing.assert_allclose(served["probabilities"], model.outputs(served["X"]), rtol=0, atol=1e-5)
    by_hand = {"X": _numbers("iris.csv", ["species"])}
    exec(with_numpy, by_hand)  # noqa: S102
    by_hand["model"].close()  # (the snippet leaves its NpzFile open, as a script may)
    np.testing.assert_allclose(by_hand["probabilities"], model.outputs(by_hand["X"]), rtol=0, atol=1e-5)
    assert by_hand["label"].tolist() == [model.classes[i] for i in model.outputs(by_hand["X"]).argmax(1)]


def test_every_activation_has_a_graph():
    from nncli.files.onnxexport import ACTIVATIONS as GRAPHS

    assert set(GRAPHS) == set(ACTIVATIONS)


@pytest.mark.parametrize("missing", ["mean", "median"])
def test_a_numeric_model_fills_missing_cells(tmp_path, missing):
    model, path = _trained(CONFIGS / "diabetes.yaml", tmp_path, "training.epochs=3", f"data.missing={missing}")
    assert model.plan.columns[0].fill is not None and not model.plan.categorical
    X = _numbers("diabetes.csv", ["progression"])[:40]
    X[::3, 0], X[1::4, 5] = np.nan, np.nan
    (prediction,) = _exported(path).run(None, {"features": X})
    np.testing.assert_allclose(prediction, model.outputs(X), rtol=1e-5, atol=1e-5)


def test_metadata_names_the_columns(tmp_path):
    model, path = _trained(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    _exported(path)
    proto = onnx.load(str(path.with_suffix(".onnx")))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["features"]) == model.features and json.loads(props["classes"]) == model.classes
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", 17), ("ai.onnx.ml", 3)}
    assert proto.ir_version == 8 and props["source"] == "model.npz"


# -- the command ----------------------------------------------------------------------------

@pytest.fixture
def iris_model(tmp_path):
    return _trained(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")[1]


def test_default_output_is_beside_the_model_and_json_describes_the_graph(iris_model):
    result = invoke("export", iris_model, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["path"] == str(iris_model.with_suffix(".onnx")) and iris_model.with_suffix(".onnx").exists()
    assert document["opset"] == {"ai.onnx": 17, "ai.onnx.ml": 3}
    assert [(p["name"], p["type"], p["shape"]) for p in document["inputs"]] == [("features", "float64", ["rows", 4])]
    assert [(p["name"], p["type"]) for p in document["outputs"]] == [("probabilities", "float32"), ("label", "string")]


def test_an_existing_file_needs_force(iris_model, tmp_path):
    target = tmp_path / "out.onnx"
    target.write_bytes(b"keep me")
    result = invoke("export", iris_model, "-o", target)
    assert result.exit_code == 2 and "already exists" in result.stderr and "--force" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and target.read_bytes() == b"keep me"
    assert invoke("export", iris_model, "-o", target, "--force").exit_code == 0
    onnx.checker.check_model(onnx.load(str(target)))
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_never_over_the_model_file(iris_model):
    result = invoke("export", iris_model, "-o", iris_model, "--force")
    assert result.exit_code == 2 and "is the model file" in result.stderr
    assert iris_model.read_bytes()[:2] == b"PK"  # still the .npz archive


@pytest.mark.parametrize("model", ["missing.npz", "data"])
def test_bad_model_files_are_one_line(tmp_path, model):
    path = tmp_path / model
    if model == "data":
        path.write_text("a,b\n1,2\n")
    result = invoke("export", path, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and result.stderr.startswith("nncli: error:")
    assert not (tmp_path / "m.onnx").exists()


def test_without_the_onnx_extra_one_line_and_exit_2(iris_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails, as when it is not installed
    monkeypatch.delitem(sys.modules, "nncli.files.onnxexport", raising=False)
    monkeypatch.delattr("nncli.files.onnxexport", raising=False)  # (else `from nncli.files import` finds it)
    result = invoke("export", iris_model)
    assert result.exit_code == 2
    assert result.stderr == ('nncli: error: nncli export needs onnx and onnxruntime: pip install "onnx>=1.15" "onnxruntime>=1.17" '
                             '(the onnx extra; in a clone: pip install -e ".[onnx]")\n')
    assert not iris_model.with_suffix(".onnx").exists()


def test_help_stays_free_of_onnx():
    code = "import sys; from nncli.cli import app; assert 'onnx' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
