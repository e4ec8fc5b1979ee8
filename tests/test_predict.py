"""predict: CSV in, CSV out, equal to the in-memory predictions of the trained model."""

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.errors import DataError
from nncli.files.model import save_model
from nncli.tabular.source import open_csv
from tests.conftest import CONFIGS, DATASETS

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [*map(str, args)], input=input)


def _train(config, tmp_path, *overrides):
    model = prepare_training(load_config(config, list(overrides))).fit()
    path = tmp_path / "model.npz"
    save_model(path, model)
    return model, path


def _shuffled_csv(source, target, tmp_path, rows=200, seed=0):
    """The first rows of ``source`` with columns in a random order; returns (path, features)."""
    with open(source) as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1 : rows + 1]
    order = np.random.default_rng(seed).permutation(len(header))
    path = tmp_path / "shuffled.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([header[i] for i in order])
        writer.writerows([[row[i] for i in order] for row in body])
    X = np.array([[float(v) for name, v in zip(header, row) if name != target] for row in body])
    return path, X


@pytest.mark.parametrize("normalize", ["standard", "minmax", "none"])
def test_classification_round_trip_with_shuffled_columns(tmp_path, normalize):
    model, path = _train(CONFIGS / "digits.yaml", tmp_path, "training.epochs=3", f"data.normalize={normalize}")
    data, X = _shuffled_csv(DATASETS / "digits.csv", "label", tmp_path)
    result = invoke("predict", path, data, "--proba")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = model.outputs(X)
    assert [r["prediction"] for r in rows] == [model.classes[i] for i in expected.argmax(axis=1)]
    probabilities = np.array([[float(r[f"proba_{c}"]) for c in model.classes] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(probabilities, expected)  # bit-exact after the text round trip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_round_trip_with_normalised_target(tmp_path, dtype):
    model, path = _train(CONFIGS / "diabetes.yaml", tmp_path, "training.epochs=3", f"model.dtype={dtype}")
    data, X = _shuffled_csv(DATASETS / "diabetes.csv", "progression", tmp_path, seed=1)
    result = invoke("predict", path, data)
    assert result.exit_code == 0, result.stderr
    values = np.array([float(r["prediction"]) for r in csv.DictReader(io.StringIO(result.stdout))], dtype=dtype)
    np.testing.assert_array_equal(values, model.outputs(X)[:, 0])


def test_multi_target_regression_has_one_column_per_target(write, tmp_path):
    write("m.csv", "x1,x2,y1,y2\n" + "".join(f"{i},{i % 3},{2 * i},{-i}\n" for i in range(30)))
    config = write("c.yaml", "data: {train: m.csv, target: [y1, y2]}\ntraining: {loss: mse, epochs: 2}\n")
    model, path = _train(config, tmp_path)
    result = invoke("predict", path, write("in.csv", "x2,x1\n1,2\n"))
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header == "prediction_y1,prediction_y2"
    np.testing.assert_array_equal(np.array(row.split(","), dtype=np.float32), model.outputs(np.array([[2.0, 1.0]]))[0])


def test_keep_columns_stdin_and_string_labels(write, tmp_path):
    model, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=2")
    text = 'name,petal_width,sepal_length,sepal_width,petal_length\n"Smith, J",0.2,5.1,3.5,1.4\nplain,2.3,6.9,3.1,5.4\n'
    result = invoke("predict", path, "-", "--keep", "name,petal_width", input=text)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "name,petal_width,prediction"
    assert lines[1].startswith('"Smith, J",0.2,') and lines[2].startswith("plain,2.3,")
    expected = model.outputs(np.array([[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.3]]))
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == [model.classes[i] for i in expected.argmax(axis=1)]


def test_a_kept_feature_is_read_by_the_same_rules_as_any_feature(tmp_path, write):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    data = write("k.csv", "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6_9,3.1,5.4,2.3\n")
    for keep in ([], ["--keep", "sepal_length"]):
        result = invoke("predict", path, data, *keep)
        assert result.exit_code == 2 and "k.csv:3: column 'sepal_length': '6_9' is not a number" in result.stderr, keep


def test_output_file_is_written_atomically(tmp_path):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    out = tmp_path / "preds" / "p.csv"
    result = invoke("predict", path, DATASETS / "iris.csv", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert len(out.read_text().splitlines()) == 151
    bad = tmp_path / "bad.csv"
    bad.write_text("sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n5,6,x,8\n")
    result = invoke("predict", path, bad, "-o", tmp_path / "preds" / "q.csv")
    assert result.exit_code == 2 and "bad.csv:3: column 'petal_length': 'x' is not a number" in result.stderr
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == ["p.csv"]  # no partial file, no temp


def test_missing_features_and_unknown_keep_columns(tmp_path, write):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    result = invoke("predict", path, write("x.csv", "sepal_length,petal_width\n1,2\n"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"nncli: error: {tmp_path / 'x.csv'}:1: missing feature column(s) 'sepal_width', 'petal_length'; "
        "the model needs all 4 features it was trained on\n"
    )
    result = invoke("predict", path, DATASETS / "iris.csv", "--keep", "idd")
    assert result.exit_code == 2 and "--keep column(s) 'idd' not in the file" in result.stderr


def test_proba_needs_a_classifier(tmp_path):
    _, path = _train(CONFIGS / "diabetes.yaml", tmp_path, "training.epochs=1")
    result = invoke("predict", path, DATASETS / "diabetes.csv", "--proba")
    assert result.exit_code == 2 and "--proba needs a classification model" in result.stderr


def test_header_only_input_gives_header_only_output(tmp_path, write):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    result = invoke("predict", path, write("h.csv", "sepal_length,sepal_width,petal_length,petal_width\n"))
    assert result.exit_code == 0 and result.stdout == "prediction\n"


def test_chunks_report_the_right_line_across_chunk_boundaries(write, block_parser):
    rows = "".join(f"{i},{i * 2}\n" for i in range(1000))
    path = write("c.csv", "a,b\n" + rows + "7,oops\n" + rows)
    with open_csv(path, chunk_bytes=100) as stream:
        seen = 0
        with pytest.raises(DataError, match=r"c\.csv:1002: column 'b': 'oops' is not a number"):
            for chunk in stream.chunks():
                seen += len(chunk.values)
    assert 900 < seen <= 1000  # the chunks before the bad one were delivered


def test_chunked_values_equal_a_whole_read(write, block_parser):
    path = write("c.csv", "a,b,t\n" + "".join(f"{i}.5,{-i},\"x,{i % 3}\"\n" for i in range(500)))
    with open_csv(path, chunk_bytes=64) as stream:
        parts = [(c.values[:, :2], c.text_column(stream.header, "t")) for c in stream.chunks(["t"])]
    assert len(parts) > 10
    values = np.concatenate([p[0] for p in parts])
    np.testing.assert_array_equal(values[:, 0], np.arange(500) + 0.5)
    assert sum((p[1] for p in parts), []) == [f"x,{i % 3}" for i in range(500)]


def test_a_float32_model_streams_exact_chunks_in_float32_with_the_same_outputs(tmp_path, block_parser):
    """Integer pixels are exactly float32s: a float32 model's chunks come as float32 from polars
    (half the memory and copying), as float64 otherwise; the probabilities are the same bits."""
    from nncli.files.model import load_model
    from nncli.tabular.columns import model_chunks, text_columns_for

    _, path = _train(CONFIGS / "digits.yaml", tmp_path, "training.epochs=2", "model.dtype=float32")
    model = load_model(path)
    data, X = _shuffled_csv(DATASETS / "digits.csv", "label", tmp_path, rows=600)
    with open_csv(data, chunk_bytes=4096) as stream:
        chunks = list(model_chunks(model, stream, text_columns_for(model, stream.header, [])))
    assert len(chunks) > 3
    assert {chunk.values.dtype for chunk in chunks} == {np.dtype(np.float32 if block_parser == "polars" else np.float64)}
    result = invoke("predict", path, data, "--proba")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    probabilities = np.array([[float(r[f"proba_{c}"]) for c in model.classes] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(probabilities, model.outputs(X))


def test_values_that_are_not_float32s_stay_float64_in_chunks_and_kept_features(tmp_path, write, block_parser):
    """A float32 model is applied to the numbers as written (scaled in float64, then rounded),
    whether a chunk's values are float32s or not, and when a feature is also kept (read as text)."""
    from nncli.files.model import load_model
    from nncli.tabular.columns import model_chunks, text_columns_for

    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=2", "model.dtype=float32")
    model = load_model(path)
    rng = np.random.default_rng(0)
    X = np.round(rng.uniform(0.1, 8, (400, 4)), 3)  # 0.1 and most others are not float32s
    data = write("f.csv", "sepal_length,sepal_width,petal_length,petal_width\n" + "".join(",".join(map(repr, row.tolist())) + "\n" for row in X))
    with open_csv(data, chunk_bytes=2048) as stream:
        dtypes = {chunk.values.dtype for chunk in model_chunks(model, stream, text_columns_for(model, stream.header, []))}
    assert dtypes == {np.dtype(np.float64)}
    expected = [model.classes[i] for i in model.outputs(X).argmax(axis=1)]
    for keep in ([], ["--keep", "sepal_length"]):
        result = invoke("predict", path, data, "--proba", *keep)
        assert result.exit_code == 0, result.stderr
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [r["prediction"] for r in rows] == expected, keep
        probabilities = np.array([[float(r[f"proba_{c}"]) for c in model.classes] for r in rows], dtype=np.float32)
        np.testing.assert_array_equal(probabilities, model.outputs(X))


def test_a_kept_feature_that_is_no_float32_keeps_its_value_in_a_float32_chunk(tmp_path, write):
    """Kept columns are read as text, so a chunk of otherwise integer features is float32 while
    the kept feature's 5.1 is no float32: the model must still see 5.1, not float32(5.1)."""
    from nncli.files.model import load_model
    from nncli.tabular.columns import model_chunks, text_columns_for

    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=2", "model.dtype=float32")
    model = load_model(path)
    rng = np.random.default_rng(1)
    X = np.column_stack([np.round(rng.uniform(4, 8, 300), 1), rng.integers(1, 8, (300, 3))]).astype(np.float64)
    data = write("k.csv", "sepal_length,sepal_width,petal_length,petal_width\n"
                 + "".join(f"{row[0]:.1f},{int(row[1])},{int(row[2])},{int(row[3])}\n" for row in X))
    import nncli.tabular.fast as fast

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast, "FAST_PATH_BYTES", 0)  # polars' path, whose chunks can be float32
        keep = ["sepal_length"]
        with open_csv(data, chunk_bytes=1024) as stream:
            dtypes = {chunk.values.dtype for chunk in model_chunks(model, stream, text_columns_for(model, stream.header, keep), keep)}
        assert dtypes == {np.dtype(np.float32)}  # the scenario: float32 chunks, the kept feature as text
        result = invoke("predict", path, data, "--proba", "--keep", "sepal_length")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    probabilities = np.array([[float(r[f"proba_{c}"]) for c in model.classes] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(probabilities, model.outputs(X))


def test_a_value_beyond_float32_is_one_error_line_even_when_warnings_are_errors(tmp_path, write, block_parser):
    """3.5e38 is no float32 (it rounds to inf): the chunk stays float64 without a warning, and the
    model refuses the value in one line (a RuntimeWarning turned error was a traceback, exit 1)."""
    import warnings

    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1", "model.dtype=float32")
    data = write("o.csv", "sepal_length,sepal_width,petal_length,petal_width\n"
                 + "".join(f"{i % 7 + 1}.5,{i % 5 + 1},{i % 3 + 1},1\n" for i in range(200)) + "3.5e38,1,1,1\n")  # (x.5: float32s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = invoke("predict", path, data)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "o.csv:202: column 'sepal_length'" in result.stderr and "too large" in result.stderr


def test_json_model_path_error_is_one_line(tmp_path, write):
    result = invoke("predict", write("notamodel.npz", "a,b\n1,2\n"), DATASETS / "iris.csv")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "not a zip/.npz archive" in result.stderr
    json.dumps(result.stderr)  # plain text


def test_stray_quotes_are_plain_text_and_fast(tmp_path, write):
    """A quote inside an unquoted field is text (RFC 4180): `12" ruler` must not swallow the file."""
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    rows = "".join(f"{i},5.1,3.5,1.4,0.2\n" for i in range(20000))
    data = write("s.csv", 'note,sepal_length,sepal_width,petal_length,petal_width\n12" ruler,5.1,3.5,1.4,0.2\n' + rows)
    result = invoke("predict", path, data, "--keep", "note")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 20002 and lines[1].startswith('"12"" ruler",')


def test_multi_line_fields_keep_line_numbers_right(tmp_path, write):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    data = write(
        "ml.csv",
        'note,sepal_length,sepal_width,petal_length,petal_width\n"a\nb",5.1,3.5,1.4,0.2\n"c\nd",5.1,3.5,1.4,0.2\nok,5.1,abc,1.4,0.2\n',
    )
    result = invoke("predict", path, data)
    assert result.exit_code == 2 and "ml.csv:6: column 'sepal_width': 'abc' is not a number" in result.stderr
    unclosed = write("u.csv", 'note,sepal_length,sepal_width,petal_length,petal_width\nok,1,2,3,4\n"never closed,1,2,3,4\n' + "x,1,2,3,4\n" * 70000)
    result = invoke("predict", path, unclosed)
    assert result.exit_code == 2 and "u.csv:3: a quoted field opened here is never closed" in result.stderr


def test_values_too_large_for_a_float32_model(tmp_path, write):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    data = write("o.csv", "sepal_length,sepal_width,petal_length,petal_width,species\n5,3,1,0.2,setosa\n\n1e39,3,1,0.2,setosa\n")
    for command in (["predict", path, data], ["evaluate", path, data]):
        result = invoke(*command)
        assert result.exit_code == 2
        assert "o.csv:4: column 'sepal_length': 1e+39 is too large for this float32 model" in result.stderr


def test_output_must_not_be_the_input_or_the_model(tmp_path):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    copy = tmp_path / "in.csv"
    copy.write_text((DATASETS / "iris.csv").read_text())
    before = copy.read_text()
    assert "is the input file" in invoke("predict", path, copy, "-o", copy).stderr
    assert "is the model file" in invoke("predict", path, copy, "-o", path).stderr
    assert copy.read_text() == before
    result = invoke("predict", path, copy, "-o", str(tmp_path / "newdir") + "/")
    assert result.exit_code == 2 and "names a folder" in result.stderr


def test_keep_copies_text_exactly_and_refuses_clashes(tmp_path, write):
    _, path = _train(CONFIGS / "iris.yaml", tmp_path, "training.epochs=1")
    data = write("k.csv", 'id,sepal_length,sepal_width,petal_length,petal_width\n  spaced  ,5,3,1,0.2\n"  quoted ",5,3,1,0.2\n')
    result = invoke("predict", path, data, "--keep", "id,id")
    assert result.stdout.splitlines()[0] == "id,prediction"
    assert [line.rsplit(",", 1)[0] for line in result.stdout.splitlines()[1:]] == ['"  spaced  "', '"  quoted "']
    result = invoke("predict", path, write("c.csv", "prediction,sepal_length,sepal_width,petal_length,petal_width\n1,5,3,1,0.2\n"), "--keep", "prediction")
    assert result.exit_code == 2 and "the output already has a column of that name" in result.stderr
