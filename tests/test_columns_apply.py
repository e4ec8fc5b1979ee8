"""predict and evaluate on real data: categorical features one-hot, missing cells filled (or
refused, or their rows dropped), applied exactly as a hand-encoded reference, chunk by chunk."""

import csv
import io
import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.evaluate import evaluate_csv
from nncli.commands.predict import predict_csv
from nncli.core import model as model_module
from nncli.core.encoding import Encoding, FeatureColumn, MissingCell
from nncli.core.model import TrainedModel
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler
from nncli.errors import DataError
from nncli.tabular.columns import chunk_bytes_for, chunk_features, model_chunks, text_columns_for
from nncli.tabular.source import open_csv

COLOURS = ("blue", "green", "red")
FEATURES = ["x", "colour", "size"]  # inputs: x, colour=blue, colour=green, colour=red, size
FILLS = {"x": 2.1, "colour": 1.0, "size": 10.3}  # colour's fill: green; x, size: not float32 numbers
# Standard scaling of the numbers; the one-hot inputs are left alone (offset 0, scale 1).
OFFSET, SCALE = np.array([1.0, 0, 0, 0, 8.0]), np.array([2.0, 1, 1, 1, 4.0])
TOKENS = ("", "NA")


def make_model(missing="mean", unknown="error", dtype="float64", task="classification", tokens=TOKENS) -> TrainedModel:
    fills = missing not in ("error", "drop_rows")
    columns = tuple(FeatureColumn(name, COLOURS if name == "colour" else None, FILLS[name] if fills else None) for name in FEATURES)
    rng = np.random.default_rng(7)
    outputs = 2 if task == "classification" else 1
    network = MLP(
        [rng.normal(size=(5, 4)).astype(dtype), rng.normal(size=(4, outputs)).astype(dtype)],
        [rng.normal(size=4).astype(dtype), rng.normal(size=outputs).astype(dtype)],
        ["tanh", "softmax" if task == "classification" else "identity"],
    )
    scaler = Scaler("standard", OFFSET, SCALE)
    if task == "classification":
        return TrainedModel(network, "cross_entropy", FEATURES, ["y"], ["no", "yes"], scaler,
                            encoding=Encoding(columns, missing, unknown, tokens))
    return TrainedModel(network, "mse", FEATURES, ["y"], None, scaler, Scaler("standard", np.array([3.0]), np.array([2.0])),
                        encoding=Encoding(columns, missing, unknown, tokens))


def reference(model: TrainedModel, rows: list[tuple]) -> np.ndarray:
    """The model's outputs for (x, colour, size) rows encoded by hand (None: missing, filled)."""
    encoded = []
    for x, colour, size in rows:
        x = FILLS["x"] if x is None else x
        colour = COLOURS[int(FILLS["colour"])] if colour is None else colour
        size = FILLS["size"] if size is None else size
        encoded.append([x, *(float(colour == c) for c in COLOURS), size])
    X = ((np.array(encoded) - OFFSET) / SCALE).astype(model.network.dtype)
    out = model.network.forward(X)
    return out if model.target_scaler is None else model.target_scaler.inverse(out)


def predict(model: TrainedModel, path, keep=(), chunk_bytes=1 << 20) -> list[dict]:
    out = io.StringIO()
    with open_csv(path, chunk_bytes) as stream:
        predict_csv(model, stream, out, list(keep), proba=model.is_classification)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def probabilities(model: TrainedModel, rows: list[dict]) -> np.ndarray:
    return np.array([[float(row[f"proba_{c}"]) for c in model.classes] for row in rows], dtype=model.network.dtype)


def evaluate(model: TrainedModel, path, chunk_bytes=1 << 20):
    with open_csv(path, chunk_bytes) as stream:
        return evaluate_csv(model, stream)


# Columns in another order than the model's, an ID column, missing cells written both ways.
MIXED = "id,size,colour,x\n1,6.7,red,1.3\n2,NA,blue,3\n3,12,,-0.5\n4,8,green,NA\n5,,red,\n"
MIXED_ROWS = [(1.3, "red", 6.7), (3.0, "blue", None), (-0.5, None, 12.0), (None, "green", 8.0), (None, "red", None)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predictions_equal_a_hand_encoded_reference(write, dtype):
    model = make_model("mean", dtype=dtype)
    rows = predict(model, write("m.csv", MIXED))
    expected = reference(model, MIXED_ROWS)
    np.testing.assert_array_equal(probabilities(model, rows), expected)  # bit-exact after the text round trip
    assert [row["prediction"] for row in rows] == [model.classes[i] for i in expected.argmax(axis=1)]


def test_regression_predictions_are_in_the_targets_units(write):
    model = make_model("median", task="regression")
    rows = predict(model, write("m.csv", MIXED))
    np.testing.assert_array_equal([float(row["prediction"]) for row in rows], reference(model, MIXED_ROWS)[:, 0])


def test_an_unknown_category_is_an_error_or_all_zeros(write):
    data = write("u.csv", "x,colour,size\n1,red,6\n2,mauve,8\n")
    with pytest.raises(DataError) as caught:
        predict(make_model("mean", "error"), data)
    assert str(caught.value) == (
        f"{data}:3: column 'colour': unknown category 'mauve' (the model knows 3: blue, green, red; "
        "train with data.unknown_category: ignore to accept unseen values)"
    )
    model = make_model("mean", "ignore")
    rows = predict(model, data)
    encoded = np.array([[1.0, 0, 0, 1, 6], [2, 0, 0, 0, 8]])  # mauve: no colour at all
    expected = model.network.forward(((encoded - OFFSET) / SCALE).astype(model.network.dtype))
    np.testing.assert_array_equal(probabilities(model, rows), expected)


def test_categories_are_matched_without_surrounding_spaces(write):
    """As training reads them ("a, red" holds the category "red"), and as class labels are."""
    model = make_model("mean")
    rows = predict(model, write("s.csv", 'x,colour,size\n1, red ,6\n2,"  blue",8\n'), keep=["colour"])
    np.testing.assert_array_equal(probabilities(model, rows), reference(model, [(1.0, "red", 6.0), (2.0, "blue", 8.0)]))
    assert [row["colour"] for row in rows] == [" red ", "  blue"]  # --keep still copies the cell as written
    with pytest.raises(DataError, match=r"column 'colour': unknown category 'mauve' "):
        predict(model, write("u.csv", "x,colour,size\n1, mauve ,6\n"))


@pytest.mark.parametrize("missing, why", [
    ("error", "which fills nothing"),
    ("drop_rows", "which only trained on complete rows, so it has no values to fill in"),
])
def test_a_missing_cell_without_a_fill_names_its_line_and_column(write, missing, why):
    data = write("m.csv", "x,colour,size\n1,red,6\n\n2,blue,NA\n")
    with pytest.raises(DataError) as caught:
        predict(make_model(missing), data)
    assert str(caught.value) == (
        f"{data}:4: column 'size': missing value (the model was trained with data.missing: {missing}, {why}; "
        "give the cell a value, or train with data.missing: mean, median or most_frequent)"
    )
    with pytest.raises(DataError, match=r"m\.csv:2: column 'colour': missing value"):
        predict(make_model(missing), write("m.csv", "x,colour,size\n1,,6\n"))


def test_a_missing_value_token_is_the_models_own(write):
    """The model reads with the tokens it was trained with: "?" is missing only if they say so."""
    data = write("q.csv", "x,colour,size\n?,red,6\n")
    with pytest.raises(DataError, match=r"q\.csv:2: column 'x': '\?' is not a number"):
        predict(make_model("mean"), data)
    model = make_model("mean", tokens=("?",))
    np.testing.assert_array_equal(probabilities(model, predict(model, data)), reference(model, [(None, "red", 6.0)]))


def test_evaluate_with_drop_rows_leaves_out_and_counts_incomplete_rows(write):
    model = make_model("drop_rows", task="regression")
    rows = "x,colour,size,y\n1.5,red,6,1\n3,blue,NA,2\n-0.5,green,12,NA\n2,,8,4\n0,blue,9,5\n1,red,7,6\n"
    report = evaluate(model, write("d.csv", rows))
    complete = evaluate(model, write("c.csv", "x,colour,size,y\n1.5,red,6,1\n0,blue,9,5\n1,red,7,6\n"))
    assert (report.rows, report.rows_dropped, complete.rows_dropped) == (3, 3, 0)
    assert report.metrics == complete.metrics
    assert report.to_json()["rows_dropped"] == 3
    with pytest.raises(DataError, match=r"every one of its 2 rows has a missing cell and was dropped"):
        evaluate(model, write("n.csv", "x,colour,size,y\nNA,red,6,1\n1,red,6,\n"))


def test_evaluate_with_drop_rows_for_a_classifier_across_chunks(write):
    model = make_model("drop_rows")
    lines = [f"{i % 4},{COLOURS[i % 3]},{i % 7},{('no', 'yes')[i % 2]}" for i in range(60)]
    for i in range(0, 60, 5):
        lines[i] = lines[i].replace(f",{COLOURS[i % 3]},", ",NA,") if i % 10 else lines[i].rsplit(",", 1)[0] + ","
    report = evaluate(model, write("d.csv", "x,colour,size,y\n" + "\n".join(lines) + "\n"), chunk_bytes=40)
    kept = [line for i, line in enumerate(lines) if i % 5]
    complete = evaluate(model, write("c.csv", "x,colour,size,y\n" + "\n".join(kept) + "\n"))
    assert (report.rows, report.rows_dropped) == (48, 12)
    assert report.metrics == pytest.approx(complete.metrics) and report.confusion == complete.confusion


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_missing_target_is_an_error_unless_rows_are_dropped(write, task):
    target = "yes" if task == "classification" else "1"
    data = write("t.csv", f"x,colour,size,y\n1,red,6,{target}\n2,blue,8,NA\n")
    with pytest.raises(DataError) as caught:
        evaluate(make_model("mean", task=task), data)
    assert str(caught.value) == (
        f"{data}:3: column 'y': missing target value; evaluate needs every row's target "
        "(only a model trained with data.missing: drop_rows leaves such rows out)"
    )


def test_missing_features_are_filled_in_evaluate_too(write):
    model = make_model("mean", task="regression")
    report = evaluate(model, write("e.csv", "x,colour,size,y\n1.5,red,6,1\n3,blue,NA,2\n-0.5,,12,0\n"))
    prediction = reference(model, [(1.5, "red", 6.0), (3.0, "blue", None), (-0.5, None, 12.0)])[:, 0]
    assert report.rows == 3 and report.rows_dropped == 0
    assert report.metrics["mae"] == pytest.approx(np.mean(np.abs(prediction - [1, 2, 0])))


def _big_mixed(rows=400, seed=3) -> tuple[str, list[tuple]]:
    rng = np.random.default_rng(seed)
    lines, expected = [], []
    for i in range(rows):
        x = None if rng.random() < 0.1 else float(rng.integers(-8, 8)) / 4
        colour = None if rng.random() < 0.1 else COLOURS[rng.integers(3)]
        size = None if rng.random() < 0.1 else float(rng.integers(0, 20))
        cells = ["NA" if x is None else repr(x), "" if colour is None else colour, "" if size is None else repr(size)]
        lines.append(f"{i},{','.join(cells)},{('no', 'yes')[i % 2]}\n")
        expected.append((x, colour, size))
    return "id,x,colour,size,y\n" + "".join(lines), expected


def raw_matrix(model: TrainedModel, path, chunk_bytes: int) -> np.ndarray:
    with open_csv(path, chunk_bytes) as stream:
        text_columns = text_columns_for(model, stream.header, [])
        return np.concatenate([chunk_features(model, stream, chunk, text_columns) for chunk in model_chunks(model, stream, text_columns)])


def test_chunk_boundaries_and_parsers_give_identical_results(write, block_parser):
    model = make_model("mean", dtype="float32")
    text, rows = _big_mixed()
    data = write("big.csv", text)
    whole = raw_matrix(model, data, 1 << 20)
    np.testing.assert_array_equal(raw_matrix(model, data, 50), whole)  # chunks of a line or two
    np.testing.assert_array_equal(model.encoding.encode(whole)[:, 1:4].argmax(axis=1),
                                  [COLOURS.index(COLOURS[int(FILLS["colour"])] if c is None else c) for _, c, _ in rows])
    predicted = predict(model, data, chunk_bytes=50)
    np.testing.assert_array_equal(probabilities(model, predict(model, data)), reference(model, rows))
    # (the same inputs; a product of a single row may still differ from the same row among
    # others in its last bit, as BLAS computes it another way)
    np.testing.assert_allclose(probabilities(model, predicted), reference(model, rows), rtol=1e-6)
    assert evaluate(model, data, chunk_bytes=50).metrics == pytest.approx(evaluate(model, data).metrics)


def test_the_network_runs_in_passes_and_errors_name_the_right_line(write, monkeypatch):
    monkeypatch.setattr(model_module, "FORWARD_BLOCK_VALUES", 16)  # three rows a pass (5 inputs)
    model = make_model("mean")
    text, rows = _big_mixed(40)
    np.testing.assert_array_equal(probabilities(model, predict(model, write("p.csv", text))), reference(model, rows))
    strict = make_model("error")
    lines = text.splitlines()
    body = [line for line in lines[1:] if ",NA," not in line and ",," not in line and not line.endswith(",")]
    body[13] = body[13].replace(",blue,", ",NA,").replace(",green,", ",NA,").replace(",red,", ",NA,")
    with pytest.raises(DataError, match=r"q\.csv:15: column 'colour': missing value"):
        predict(strict, write("q.csv", lines[0] + "\n" + "\n".join(body) + "\n"))


def test_keep_copies_a_categorical_column_and_a_kept_feature_is_still_filled(write):
    model = make_model("mean")
    data = write("m.csv", MIXED)
    plain = predict(model, data)
    kept = predict(model, data, keep=["colour", "id", "size"])
    assert list(kept[0]) == ["colour", "id", "size", "prediction", "proba_no", "proba_yes"]
    assert [row["colour"] for row in kept] == ["red", "blue", "", "green", "red"]
    assert [row["size"] for row in kept] == ["6.7", "NA", "12", "8", ""]  # copied as written: "NA" too, an empty cell empty
    assert [{k: row[k] for k in plain[0]} for row in kept] == plain


def test_values_too_large_for_a_float32_model_name_their_column(write):
    data = write("o.csv", "x,colour,size\n1,red,6\n1,blue,2e39\n")  # 5e38 once scaled
    with pytest.raises(DataError) as caught:
        predict(make_model("mean", dtype="float32"), data)
    assert str(caught.value) == f"{data}:3: column 'size': 2e+39 is too large for this float32 model (after normalisation)"


def numeric_model(encoding: Encoding | None) -> TrainedModel:
    rng = np.random.default_rng(5)
    network = MLP([rng.normal(size=(3, 2))], [rng.normal(size=2)], ["softmax"])
    scaler = Scaler("standard", np.array([1.0, 2, 8]), np.array([2.0, 3, 4]))
    return TrainedModel(network, "cross_entropy", FEATURES, ["y"], ["no", "yes"], scaler, encoding=encoding)


def test_an_encoding_that_fills_nothing_here_gives_the_plain_outputs_exactly(write):
    """Encoded in float64 then scaled: the numbers are rounded to float32 once, as the plain path does."""
    plain = numeric_model(None)
    filled = numeric_model(Encoding(tuple(FeatureColumn(name, None, 0.1) for name in FEATURES), "mean", "error", TOKENS))
    for model in (plain, filled):
        model.network.weights = [W.astype(np.float32) for W in model.network.weights]
        model.network.biases = [b.astype(np.float32) for b in model.network.biases]
    X = np.random.default_rng(1).normal(size=(50, 3)) * 1e3  # no float32 is any of these numbers
    np.testing.assert_array_equal(filled.outputs(X), plain.outputs(X))


def test_a_model_from_before_encodings_reads_as_it_always_did(write):
    old, plain = numeric_model(None), numeric_model(Encoding.numeric(FEATURES))
    data = write("n.csv", "x,colour,size\n1,2,3\n4,5,6\n")
    assert predict(old, data) == predict(plain, data)
    X = np.array([[1.0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(old.outputs(X), plain.outputs(X))
    # no missing-value tokens: an empty cell or "NA" is not a number, as before
    with pytest.raises(DataError, match=r"e\.csv:2: column 'size': empty cell; expected a number"):
        predict(old, write("e.csv", "x,colour,size\n1,2,\n"))
    with pytest.raises(DataError, match=r"a\.csv:3: column 'x': 'NA' is not a number"):
        predict(old, write("a.csv", "x,colour,size\n1,2,3\nNA,2,3\n"))


def test_a_plain_encoding_with_missing_tokens_refuses_a_missing_cell(write):
    model = numeric_model(Encoding(tuple(FeatureColumn(name) for name in FEATURES), "error", "error", TOKENS))
    assert model.encoding.is_plain
    with pytest.raises(MissingCell) as caught:
        model.outputs(np.array([[1.0, 2, 3], [4, np.nan, 6]]))
    assert (caught.value.row, caught.value.column) == (1, 1)
    with pytest.raises(DataError, match=r"p\.csv:3: column 'colour': missing value \(the model was trained with data.missing: error"):
        predict(model, write("p.csv", "x,colour,size\n1,2,3\n4,NA,6\n"))


def test_drop_rows_on_an_all_numeric_model(write):
    """Such a model has no fills and no categories (its raw matrix is its inputs): rows with a
    missing cell are still dropped by evaluate and refused by predict."""
    model = numeric_model(Encoding(tuple(FeatureColumn(name) for name in FEATURES), "drop_rows", "error", TOKENS))
    report = evaluate(model, write("d.csv", "x,colour,size,y\n1,2,3,no\n4,,6,yes\n7,8,9,\n"))
    assert (report.rows, report.rows_dropped) == (1, 2)
    with pytest.raises(DataError, match=r"d\.csv:3: column 'colour': missing value \(the model was trained with data.missing: drop_rows"):
        predict(model, write("d.csv", "x,colour,size\n1,2,3\n4,,6\n"))


def test_chunks_are_sized_for_rows_of_empty_cells(monkeypatch):
    monkeypatch.setattr(model_module, "FORWARD_BLOCK_VALUES", 1000)  # 500 rows of two outputs a block
    assert chunk_bytes_for(make_model("mean")) == 500 * 3  # ",,\n": a byte per feature
    assert chunk_bytes_for(make_model("mean", tokens=("NA",))) == 500 * 5  # "1,,1\n": only colour may be empty


# --- end to end: train → predict → evaluate through the CLI, the model file in between --------
def _mixed_files(write) -> None:
    rng = np.random.default_rng(11)
    lines = []
    for i in range(240):
        age = "" if i % 17 == 0 else str(int(rng.integers(18, 70)))
        city = ("Oslo", "Lima", "Pune")[int(rng.integers(3))]
        colour = "NA" if i % 23 == 0 else ("red", "blue")[int(rng.integers(2))]
        income = round(float(rng.uniform(10, 90)), 1)
        bought = "yes" if (city == "Oslo") != (income > 50) else "no"
        lines.append(f"{i},{age},{city},{colour},{income},{bought}\n")
    header = "id,age,city,colour,income,bought\n"
    write("train.csv", header + "".join(lines[:160]))
    write("val.csv", header + "".join(lines[160:]))


@pytest.mark.parametrize("missing", ["median", "drop_rows"])
def test_train_predict_evaluate_a_mixed_csv_through_the_cli(write, tmp_path, missing):
    def invoke(*args):
        return CliRunner().invoke(app, [*map(str, args)])

    _mixed_files(write)
    config = write("c.yaml", f"""
        seed: 1
        data: {{train: train.csv, validation: val.csv, target: bought, drop: [id], missing: {missing}}}
        model: {{layers: [auto, 8, auto]}}
        training: {{epochs: 4}}
        output: out/m.npz
        """)
    result = invoke("train", config)
    assert result.exit_code == 0, result.stderr
    model, trained = tmp_path / "out" / "m.npz", json.loads((tmp_path / "out" / "m.metrics.json").read_text())

    # evaluate on the validation file measures exactly what training measured on it
    result = invoke("evaluate", model, tmp_path / "val.csv", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    incomplete = sum(1 for line in (tmp_path / "val.csv").read_text().splitlines()[1:] if ",," in line or ",NA," in line)
    dropped = incomplete if missing == "drop_rows" else 0
    assert (report["rows"], report["rows_dropped"]) == (80 - dropped, dropped) and trained["val_rows"] == 80 - dropped
    assert report["metrics"]["loss"] == trained["val_loss"] and report["metrics"]["accuracy"] == trained["val_accuracy"]
    # and so it does from the same rows in Parquet (text columns as strings, a null for a missing cell)
    frame = pl.read_csv(tmp_path / "val.csv", infer_schema_length=0)  # (an empty cell: null)
    frame.with_columns(pl.col("income").cast(pl.Float64)).write_parquet(tmp_path / "val.parquet")
    result = invoke("evaluate", model, tmp_path / "val.parquet", "--json")
    assert result.exit_code == 0, result.stderr
    assert {k: v for k, v in json.loads(result.stdout).items() if k != "data"} == {k: v for k, v in report.items() if k != "data"}

    result = invoke("predict", model, tmp_path / "val.csv", "--keep", "id,city")
    if missing == "drop_rows":  # trained on complete rows only: no values to fill a missing cell with
        assert result.exit_code == 2 and result.stderr.count("\n") == 1
        assert "val.csv:3: column 'colour': missing value (the model was trained with data.missing: drop_rows" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "id,city,prediction" and len(lines) == 81
    assert [line.split(",")[1] for line in lines[1:4]] == [line.split(",")[2] for line in (tmp_path / "val.csv").read_text().splitlines()[1:4]]
    result = invoke("predict", model, write("u.csv", "id,age,city,colour,income\n1,30,Rome,red,20\n"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "u.csv:2: column 'city': unknown category 'Rome' (the model knows 3: Lima, Oslo, Pune;" in result.stderr
