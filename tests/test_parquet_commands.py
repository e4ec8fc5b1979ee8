"""The commands on Parquet files: `train` gets the model the CSV of the same table gives, `predict`
writes the CSV output's rows as Parquet, `evaluate` names rows, `init` makes the CSV's guesses.
(Reading them: test_parquet.py; the writer: test_parquetsink.py.)"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands import init as init_module
from nncli.commands import train as train_module
from nncli.commands.evaluate import evaluate
from nncli.commands.parse_cache import ParseCache
from nncli.config import load_config
from nncli.core.model import TrainedModel
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler
from nncli.errors import ConfigError, DataError
from nncli.files.model import load_model, save_model
from tests.test_init import _mixed_table

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


def _table(rows: int = 160, seed: int = 0) -> pl.DataFrame:
    """An ID, numbers with gaps, a text column with gaps, a label and two quantities."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows).tolist()
    age = rng.integers(18, 80, rows).astype(float)
    income = rng.normal(50, 10, rows)
    return pl.DataFrame({
        "id": [f"u{i:04d}" for i in range(rows)],
        "age": [None if i % 17 == 3 else a for i, a in enumerate(age)],
        "colour": [None if i % 29 == 5 else c for i, c in enumerate(colour)],
        "income": income,
        "label": ["yes" if (c == "red") != (rng.random() < 0.05) else "no" for c in colour],
        "score": income * 0.3 + age * 0.1,
        "size": income * 2 - age,
    })


def _both(frame: pl.DataFrame, folder, stem: str) -> tuple:
    """The table as CSV (a null: an empty cell) and as Parquet."""
    frame.write_csv(folder / f"{stem}.csv")
    frame.write_parquet(folder / f"{stem}.parquet", row_group_size=50)
    return folder / f"{stem}.csv", folder / f"{stem}.parquet"


def _config(write, name: str, data: str, **extra) -> object:
    data_keys = ", ".join(f"{key}: {value}" for key, value in {"drop": "[id, score, size]", "missing": "mean", **extra}.items())
    return write(f"{name}.yaml", f"""
        seed: 3
        data: {{{data}, target: label, {data_keys}}}
        model: {{layers: [auto, 8, auto], dtype: float64}}
        training: {{epochs: 5, batch_size: 16, optimizer: adam, learning_rate: 0.02}}
        output: out/{name}.npz
        """)


def _trained(write, name: str, data: str, **extra) -> TrainedModel:
    config = _config(write, name, data, **extra)
    result = invoke("train", config)
    assert result.exit_code == 0, result.stderr
    return load_model(config.parent / "out" / f"{name}.npz")


# --- train -------------------------------------------------------------------------------------
@pytest.mark.parametrize("files", ["split", "validation file"])
def test_training_on_parquet_gives_the_model_the_csv_of_the_same_table_gives(write, tmp_path, files):
    csv, parquet = _both(_table(), tmp_path, "train")
    if files == "split":
        models = [_trained(write, kind, f"train: {path.name}, validation_split: 0.25") for kind, path in (("csv", csv), ("pq", parquet))]
    else:
        val_csv, val_parquet = _both(_table(60, seed=1), tmp_path, "val")
        models = [_trained(write, kind, f"train: {path.name}, validation: {val.name}")
                  for kind, path, val in (("csv", csv, val_csv), ("pq", parquet, val_parquet))]
    from_csv, from_parquet = models
    assert from_parquet.encoding == from_csv.encoding and from_csv.encoding.categorical == ["colour"]
    for a, b in zip(from_csv.network.parameters(), from_parquet.network.parameters()):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bit for bit
    history = [json.loads((tmp_path / "out" / f"{kind}.metrics.json").read_text()) for kind in ("csv", "pq")]
    assert history[0]["val_loss"] == history[1]["val_loss"]


def test_training_from_disk_is_refused_for_parquet_in_one_line(write, tmp_path):
    _both(_table(), tmp_path, "train")
    result = invoke("train", _config(write, "c", "train: train.parquet, in_memory: false", missing="error", drop="[id, colour, age, score, size]"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "data.in_memory: training from disk reads a CSV file's parse cache, and " in result.stderr
    assert "train.parquet is a Parquet file, which nncli reads into memory; set data.in_memory: true (or auto)" in result.stderr


def test_auto_sizes_a_parquet_table_from_its_footer(write, tmp_path, monkeypatch):
    frame = pl.DataFrame({"a": np.arange(1000.0), "b": np.ones(1000), "label": ["x", "y"] * 500})
    frame.write_parquet(tmp_path / "t.parquet", compression="zstd")  # (a column of ones takes nothing on disk)
    config = load_config(_config(write, "c", "train: t.parquet", drop="[]", missing="error"))
    table_bytes = 1000 * 3 * 8
    monkeypatch.setattr(train_module, "available_memory", lambda: table_bytes)
    assert train_module._in_memory(config, ParseCache(config)) is True
    monkeypatch.setattr(train_module, "available_memory", lambda: table_bytes - 1)
    with pytest.raises(ConfigError, match=r"data.in_memory: is auto, and the data \(about 23.4 KiB in memory\) would not fit in "
                                          r"the 23.4 KiB this process may take; training from disk reads CSV files only, and .*t.parquet"):
        train_module._in_memory(config, ParseCache(config))


# --- predict -----------------------------------------------------------------------------------
def _same_as_csv(parquet_out, csv_text: str) -> pl.DataFrame:
    """The Parquet output, checked against the CSV output cell by cell: text as text (a null where
    the CSV has an empty cell), numbers as the same floats."""
    frame = pl.read_parquet(parquet_out)
    csv = pl.read_csv(io.StringIO(csv_text), infer_schema=False)  # (every column text; an empty cell null)
    assert frame.columns == csv.columns and frame.height == csv.height
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            assert frame[name].to_list() == csv[name].to_list(), name
        else:
            np.testing.assert_array_equal(frame[name].to_numpy(), csv[name].cast(dtype).to_numpy(), err_msg=name)
    return frame


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_predictions_as_parquet_are_the_csv_output(write, tmp_path, source):
    csv, parquet = _both(_table(), tmp_path, "train")
    _trained(write, "m", "train: train.csv")
    model, data = tmp_path / "out" / "m.npz", {"csv": csv, "parquet": parquet}[source]
    options = ["--proba", "--keep", "id", "--keep", "colour", "--keep", "age"]
    expected = invoke("predict", model, data, *options)
    assert expected.exit_code == 0, expected.stderr
    result = invoke("predict", model, data, *options, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 0 and result.stdout == "", result.stderr
    frame = _same_as_csv(tmp_path / "p.parquet", expected.stdout)
    assert frame.schema == {"id": pl.String, "colour": pl.String, "age": pl.String, "prediction": pl.String,
                            "proba_no": pl.Float64, "proba_yes": pl.Float64}
    assert frame["colour"].null_count() == 6 and set(frame["prediction"]) <= {"no", "yes"}
    assert sorted(os.listdir(tmp_path)) == ["m.yaml", "out", "p.parquet", "train.csv", "train.parquet"]  # (no spill left)


def test_regression_predictions_as_parquet_are_floats_of_the_models_dtype(write, tmp_path):
    _, parquet = _both(_table(), tmp_path, "train")
    config = write("r.yaml", """
        seed: 0
        data: {train: train.parquet, target: [score, size], drop: [id, label], missing: median, normalize_target: standard}
        model: {layers: [auto, 8, auto], dtype: float32}
        training: {loss: mse, epochs: 3}
        output: out/r.npz
        """)
    assert invoke("train", config).exit_code == 0
    expected = invoke("predict", tmp_path / "out" / "r.npz", parquet, "--keep", "id")
    result = invoke("predict", tmp_path / "out" / "r.npz", parquet, "--keep", "id", "-o", tmp_path / "p.PARQUET")
    assert result.exit_code == 0, result.stderr
    frame = _same_as_csv(tmp_path / "p.PARQUET", expected.stdout)
    assert frame.schema == {"id": pl.String, "prediction_score": pl.Float32, "prediction_size": pl.Float32}


def test_a_failed_parquet_prediction_leaves_the_old_file_and_nothing_else(write, tmp_path):
    csv, _ = _both(_table(), tmp_path, "train")
    _trained(write, "m", "train: train.csv")
    bad = _table(3000).with_columns(pl.when(pl.int_range(pl.len()) == 2500).then(pl.lit("mauve")).otherwise(pl.col("colour")).alias("colour"))
    bad.write_parquet(tmp_path / "new.parquet", row_group_size=1000)
    (tmp_path / "p.parquet").write_bytes(b"the old predictions")
    before = sorted(os.listdir(tmp_path))
    result = invoke("predict", tmp_path / "out" / "m.npz", tmp_path / "new.parquet", "-o", tmp_path / "p.parquet")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "new.parquet: row 2501: column 'colour': unknown category 'mauve'" in result.stderr
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "p.parquet").read_bytes() == b"the old predictions"


def test_the_output_may_not_be_the_input_parquet_file(write, tmp_path):
    _, parquet = _both(_table(), tmp_path, "train")
    _trained(write, "m", "train: train.parquet")
    result = invoke("predict", tmp_path / "out" / "m.npz", parquet, "-o", parquet)
    assert result.exit_code == 2 and f"--output {parquet}: is the input file; write the predictions elsewhere" in result.stderr


# --- evaluate ----------------------------------------------------------------------------------
def test_evaluate_names_the_row_of_an_unseen_label(write, tmp_path):
    _both(_table(), tmp_path, "train")
    _trained(write, "m", "train: train.parquet", missing="drop_rows")
    frame = _table(6).with_columns(pl.Series("label", ["yes", "no", "no", "maybe", "yes", "no"]),
                                   pl.Series("age", [None, 20.0, 30.0, 40.0, 50.0, 60.0]))
    frame.write_parquet(tmp_path / "v.parquet")  # (row 1 is dropped: the rows evaluated start at row 2)
    result = invoke("evaluate", tmp_path / "out" / "m.npz", tmp_path / "v.parquet")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "v.parquet: row 4: column 'label': label 'maybe' does not occur in the training data (classes: no, yes)" in result.stderr


def test_a_missing_column_names_the_parquet_file_not_a_line(write, tmp_path):
    _both(_table(), tmp_path, "train")
    _trained(write, "m", "train: train.parquet")
    _table(5).drop("label").write_parquet(tmp_path / "v.parquet")
    result = invoke("evaluate", tmp_path / "out" / "m.npz", tmp_path / "v.parquet")
    assert result.exit_code == 2 and f"{tmp_path / 'v.parquet'}: no target column 'label'; evaluation needs the labels" in result.stderr
    result = invoke("init", tmp_path / "train.parquet", "--target", "lable", "-o", "-")
    assert result.exit_code == 2 and f"{tmp_path / 'train.parquet'}: --target 'lable': no such column; did you mean 'label'?" in result.stderr


def test_evaluate_places_a_regression_overflow_at_the_chunks_first_row(tmp_path):
    network = MLP([np.full((2, 1), 1e200)], [np.zeros(1)], ["identity"])
    model = TrainedModel(network, "mse", ["a", "b"], ["y"], None, Scaler.fit(np.zeros((1, 2)), "none"))
    save_model(tmp_path / "m.npz", model)
    pl.DataFrame({"a": [1, 3], "b": [2, 4], "y": [3.0, 4.0]}).write_parquet(tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"^.*d\.parquet: row 1: in the 2 rows from here, the errors of .*m\.npz's predictions "
                                        r"\(up to 7e\+200\) against the targets \(up to 4\) overflow float64"):
        evaluate(tmp_path / "m.npz", str(tmp_path / "d.parquet"))


# --- init --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample_cells", [None, 8 * 50], ids=["whole file", "first 50 rows"])
def test_init_on_parquet_guesses_what_it_guesses_on_the_csv_and_the_config_trains(write, tmp_path, monkeypatch, sample_cells):
    monkeypatch.chdir(tmp_path)
    if sample_cells:
        monkeypatch.setattr(init_module, "SAMPLE_CELLS", sample_cells)
    write("t.csv", _mixed_table())
    pl.read_csv(tmp_path / "t.csv", infer_schema_length=None).write_parquet(tmp_path / "t.parquet", row_group_size=40)
    texts = {}
    for name in ("t.csv", "t.parquet"):
        result = invoke("init", name, "--target", "label", "-o", "-")
        assert result.exit_code == 0, result.stderr
        texts[name] = result.stdout
    words = {name: " ".join(text.split()) for name, text in texts.items()}  # (comments line up after longer names)
    assert words["t.parquet"] == words["t.csv"].replace("t.csv", "t.parquet")
    assert "missing: mean" in texts["t.parquet"] and "- colour" in texts["t.parquet"]
    assert ("from its first 50 rows" if sample_cells else "from its 150 rows") in texts["t.parquet"]
    result = invoke("init", "t.parquet", "--target", "label", "-o", "t.yaml")
    assert result.exit_code == 0, result.stderr
    result = invoke("train", "t.yaml", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.stderr


def test_init_refuses_a_column_nncli_cannot_read_in_one_line(tmp_path):
    pl.DataFrame({"x": [1.0, 2.0], "tags": [[1], [2]], "y": ["a", "b"]}).write_parquet(tmp_path / "t.parquet")
    result = invoke("init", tmp_path / "t.parquet", "--target", "y", "-o", "-")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "t.parquet: column 'tags' holds List values; nncli reads columns of numbers or text" in result.stderr
