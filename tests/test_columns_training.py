"""Training on real tables (issue 12): choosing columns, categorical columns one-hot, missing
cells, and what the model file, inspect, resume and the dry run make of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.inspect import inspect
from nncli.commands.session import TrainRequest, open_session
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.errors import ConfigError, DataError, InterruptedRun, ModelFileError
from nncli.files.model import load_model, read_model, save_model
from nncli.files.npz import read_archive, write_archive
from nncli.tabular.dataset import load_training_data
from tests.test_training import StopAt

runner = CliRunner()
COLOURS, CITIES = ("red", "green", "blue"), ("Paris", "Lyon", "Nice", "Lille")


def mixed_rows(n: int = 120, seed: int = 0) -> list[list[str]]:
    """id, age (some empty), colour, city (one empty), income (some NA), label (from colour)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        colour, city = COLOURS[rng.integers(0, 3)], CITIES[rng.integers(0, 4)]
        age = "" if i % 17 == 3 else str(int(rng.integers(18, 80)))
        income = "NA" if i % 23 == 5 else f"{rng.normal(50, 10):.2f}"
        label = "yes" if (colour == "red") != (rng.random() < 0.05) else "no"
        rows.append([f"u{i:04d}", age, colour, "" if i == 7 else city, income, label])
    return rows


def csv_text(rows: list[list[str]], header: str = "id,age,colour,city,income,label") -> str:
    return header + "\n" + "".join(",".join(row) + "\n" for row in rows)


@pytest.fixture
def mixed(write):
    write("mixed.csv", csv_text(mixed_rows()))
    return write("mixed.yaml", """
        seed: 3
        data: {train: mixed.csv, target: label, drop: [id], missing: mean}
        model: {layers: [auto, 8, auto], dtype: float64}
        training: {epochs: 6, batch_size: 16, optimizer: adam, learning_rate: 0.02}
        """)


def _run(path, *overrides):
    return prepare_training(load_config(path, list(overrides)), writes=False)


def _error(exc_type, path, *overrides) -> str:
    with pytest.raises(exc_type) as info:
        _run(path, *overrides)
    return str(info.value)


def _column(rows, index):
    return [row[index] for row in rows]


# --- columns and categories --------------------------------------------------------------------
def test_an_id_dropped_two_text_columns_one_hot_and_gaps_filled(mixed):
    run = _run(mixed)
    encoding = run.data.encoding
    assert run.features == ["age", "colour", "city", "income"]
    assert encoding.categorical == ["colour", "city"]  # found by their text: nothing declared
    assert encoding.columns[1].categories == ("blue", "green", "red")  # sorted
    assert encoding.columns[2].categories == ("Lille", "Lyon", "Nice", "Paris")
    assert encoding.width == 1 + 3 + 4 + 1 and run.network.sizes[0] == 9
    assert encoding.input_names[1:4] == ["colour=blue", "colour=green", "colour=red"]
    one_hot = encoding.one_hot_inputs()
    scaler = run.data.feature_scaler
    assert (scaler.offset[one_hot] == 0).all() and (scaler.scale[one_hot] == 1).all()
    assert (scaler.scale[~one_hot] != 1).all()  # the numbers are standardised
    X = np.concatenate([run.data.X_train, run.data.validation[0]])
    assert np.isfinite(X).all()
    assert set(np.unique(X[:, one_hot])) == {0.0, 1.0}
    assert (X[:, 1:4].sum(axis=1) == 1).all()  # every row one colour


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent"])
def test_fill_values_come_from_the_training_rows(mixed, strategy):
    """With a validation file every row of the training file is a training row: the fills are
    its statistics, computed here by hand; a categorical column gets its most frequent category."""
    rows = mixed_rows()
    mixed.parent.joinpath("val.csv").write_text(csv_text(mixed_rows(30, seed=9)))
    run = _run(mixed, f"data.missing={strategy}", f"data.validation={mixed.parent / 'val.csv'}", "data.validation_split=0")
    age = np.array([float(v) for v in _column(rows, 1) if v])
    income = np.array([float(v) for v in _column(rows, 4) if v != "NA"])
    expected = {"mean": np.mean, "median": np.median,
                "most_frequent": lambda v: max(sorted(set(v)), key=list(v).count)}[strategy]
    fills = {column.name: column.fill for column in run.data.encoding.columns}
    assert fills["age"] == pytest.approx(expected(age), rel=1e-12)
    assert fills["income"] == pytest.approx(expected(income), rel=1e-12)
    cities = [city for city in _column(rows, 3) if city]
    most = max(sorted(set(cities)), key=cities.count)
    assert run.data.encoding.columns[2].categories[int(fills["city"])] == most
    assert run.data.rows_dropped == 0 and len(run.data.X_train) == 120


def test_drop_rows_drops_every_row_with_a_missing_used_cell_and_says_how_many(mixed):
    rows = mixed_rows()
    gaps = sum(1 for row in rows if "" in row[1:5] or "NA" in row[1:5])
    run = _run(mixed, "data.missing=drop_rows", "data.validation_split=0")
    assert run.data.rows_dropped == gaps > 0
    assert len(run.data.X_train) == len(rows) - gaps
    assert all(column.fill is None for column in run.data.encoding.columns)  # nothing to fill: predict refuses a gap
    assert any(f"left out {gaps} rows with a missing cell" in warning for warning in run.warnings)
    assert run.preview().rows["dropped"] == gaps


def test_drop_rows_in_the_train_commands_json(mixed, tmp_path):
    result = runner.invoke(app, ["train", str(mixed), "-o", str(tmp_path / "m.npz"), "--json", "--set", "data.missing=drop_rows"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["rows_dropped"] > 0
    assert "drop_rows left out" in result.stderr


def test_features_choose_the_inputs_in_their_order_and_categorical_reads_numbers_as_codes(write):
    write("d.csv", "zip,x,y,label\n" + "".join(f"{75000 + i % 3},{i},{i % 5},{'ab'[i % 2]}\n" for i in range(30)))
    path = write("c.yaml", "data: {train: d.csv, features: [y, zip], categorical: [zip]}\n")
    run = _run(path)
    assert run.features == ["y", "zip"] and run.data.encoding.input_names == ["y", "zip=75000", "zip=75001", "zip=75002"]


def test_text_further_down_than_the_first_rows_is_found_by_the_reader(write, monkeypatch):
    monkeypatch.setattr("nncli.tabular.parse.SNIFF_ROWS", 5)
    rows = [f"{i},{i % 3},{'ab'[i % 2]}" for i in range(40)]
    rows[30] = "30,x,b"
    write("d.csv", "a,b,label\n" + "\n".join(rows) + "\n")
    run = _run(write("c.yaml", "data: {train: d.csv}\n"))
    assert run.data.encoding.categorical == ["b"] and run.data.encoding.columns[1].categories == ("0", "1", "2", "x")


def test_a_category_keeps_no_surrounding_spaces(write):
    write("d.csv", "c,label\n" + "".join(f"{[' red', 'red ', 'blue'][i % 3]},{'ab'[i % 2]}\n" for i in range(12)))
    run = _run(write("c.yaml", "data: {train: d.csv}\n"))
    assert run.data.encoding.columns[0].categories == ("blue", "red")


def test_a_parquet_file_is_chosen_encoded_and_filled_as_a_csv_is(mixed, tmp_path):
    import polars as pl

    text = pl.read_csv(mixed.parent / "mixed.csv", infer_schema_length=0)  # every column text, as in the CSV
    text.with_columns(pl.col("age").replace("", None).cast(pl.Float64)).write_parquet(tmp_path / "mixed.parquet")
    from_csv = load_training_data(load_config(mixed), np.random.default_rng(0))
    from_parquet = load_training_data(load_config(mixed, [f"data.train={tmp_path / 'mixed.parquet'}"]), np.random.default_rng(0))
    assert from_parquet.encoding == from_csv.encoding
    assert np.array_equal(from_parquet.X_train, from_csv.X_train)


def test_all_numeric_data_take_the_plain_path(tiny_config):
    config = load_config(tiny_config)
    data = load_training_data(config, np.random.default_rng(0))
    assert data.encoding.is_plain and data.encoding.names == ["a", "b"]
    assert data.encoding.missing_values == ("", "NA", "NaN", "null")  # recorded: predict reads with them


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, value, expected", [
    ("data.drop", "[idd]", "data.drop: column 'idd' is not in"),
    ("data.features", "[age, colur]", "data.features: column 'colur' is not in"),
    ("data.categorical", "[citty]", "data.categorical: column 'citty' is not in"),
])
def test_a_name_not_in_the_file_names_the_key_the_file_and_a_close_match(mixed, key, value, expected):
    message = _error(ConfigError, mixed, f"{key}={value}")
    assert expected in message and "mixed.csv" in message and "did you mean" in message


@pytest.mark.parametrize("overrides, expected", [
    (["data.features=[age, label]"], "data.features: names 'label', a target; targets are never features"),
    (["data.features=[age, city]", "data.drop=[city]"], "data.drop: names 'city', which data.features lists too"),
    (["data.drop=[id, id]"], "data.drop: names 'id' twice"),
    (["data.categorical=[id]", "data.drop=[id]"], "data.categorical: names 'id', which data.drop drops"),
    (["data.max_categories=0"], "data.max_categories"),
    (["data.max_categories=10001"], "data.max_categories"),
    (["data.missing=zero"], "data.missing"),
])
def test_contradictory_column_settings_are_config_errors(mixed, overrides, expected):
    assert expected in _error(ConfigError, mixed, *overrides)


def test_the_default_target_cannot_be_a_dropped_column(write):
    write("d.csv", "a,b,id\n1,2,3\n")
    message = _error(ConfigError, write("c.yaml", "data: {train: d.csv, drop: [id]}\n"))
    assert "data.target: is not set, so the target is the last column" in message and "data.drop lists" in message


def test_an_id_column_with_too_many_categories_is_called_an_id(mixed):
    message = _error(DataError, mixed, "data.drop=[]")
    assert "mixed.csv: column 'id' has 120 distinct values, more than data.max_categories (100)" in message
    assert "every value distinct: looks like an ID; add it to data.drop" in message


def test_a_category_too_long_for_the_model_file_is_called_free_text(write):
    from nncli.files.model import MAX_NAME_CHARS
    from nncli.tabular.selection import MAX_CATEGORY_CHARS

    assert MAX_CATEGORY_CHARS == MAX_NAME_CHARS  # what train writes, the model file's reader takes
    write("d.csv", "a,b,label\n1,2,x\n1,3,y\n1," + "q" * 70_000 + ",y\n")
    message = _error(DataError, write("c.yaml", "data: {train: d.csv}\n"))
    assert "d.csv:4: column 'b': 'qqq" in message and "(70,000 characters) is too long for a category" in message


def test_a_column_of_numbers_with_a_stray_word_says_so(write):
    write("d.csv", "a,label\n" + "".join(f"{i if i != 50 else 'oops'},{'ab'[i % 2]}\n" for i in range(150)) + "1,a\n")
    message = _error(DataError, write("c.yaml", "data: {train: d.csv}\n"))
    assert "column 'a' has 150 distinct values" in message and "text such as 'oops'" in message


def test_missing_error_names_the_first_missing_cell(mixed):
    message = _error(DataError, mixed, "data.missing=error")
    assert message.endswith("mixed.csv:5: column 'age': missing value; set data.missing to mean, median, most_frequent or drop_rows")


def test_a_missing_target_is_an_error_unless_rows_are_dropped(write):
    write("d.csv", "a,y\n1,2.5\n2,\n3,4.5\n4,5\n")
    path = write("c.yaml", "data: {train: d.csv, missing: mean, validation_split: 0}\ntraining: {loss: mse}\n")
    message = _error(DataError, path)
    assert "d.csv:3: column 'y': missing target value (data.missing: mean fills features only)" in message
    assert _run(path, "data.missing=drop_rows").data.rows_dropped == 1


def test_a_column_with_no_value_at_all_is_named(write):
    write("d.csv", "a,b,label\n" + "".join(f"{i},NA,{'xy'[i % 2]}\n" for i in range(10)))
    for strategy in ("mean", "error", "drop_rows"):
        message = _error(DataError, write("c.yaml", "data: {train: d.csv}\n"), f"data.missing={strategy}")
        assert "d.csv: column 'b': every value is missing; add the column to data.drop" in message


def test_a_regression_target_holding_text_keeps_its_error(write):
    write("d.csv", "a,y\n1,2\n2,x\n")
    message = _error(DataError, write("c.yaml", "data: {train: d.csv}\ntraining: {loss: mse}\n"))
    assert "'x' is not a number" in message and "regression target" in message


# --- the validation file -------------------------------------------------------------------------
def test_an_unknown_category_in_the_validation_file(mixed):
    val = [row[:] for row in mixed_rows(20, seed=4)]
    val[6][2] = "mauve"
    mixed.parent.joinpath("val.csv").write_text(csv_text(val))
    overrides = [f"data.validation={mixed.parent / 'val.csv'}", "data.validation_split=0"]
    message = _error(DataError, mixed, *overrides)
    assert "val.csv:8: column 'colour': category 'mauve' does not occur in the training file" in message
    assert "data.unknown_category: ignore" in message
    run = _run(mixed, *overrides, "data.unknown_category=ignore")
    assert (run.data.validation[0][6, 1:4] == 0).all()  # all-zero one-hot


def test_a_validation_file_with_text_in_a_numeric_feature(mixed):
    val = mixed_rows(20, seed=4)
    val[3][4] = "lots"
    mixed.parent.joinpath("val.csv").write_text(csv_text(val))
    message = _error(DataError, mixed, f"data.validation={mixed.parent / 'val.csv'}", "data.validation_split=0")
    assert "column 'income'" in message and "a numeric feature in the training file" in message


# --- the model file, inspect, resume, dry run --------------------------------------------------
def test_the_encoding_is_stored_and_read_back(mixed, tmp_path):
    result = runner.invoke(app, ["train", str(mixed), "-o", str(tmp_path / "m.npz"), "--quiet"])
    assert result.exit_code == 0, result.output
    model, meta = read_model(tmp_path / "m.npz")
    assert meta.format_version == 3 and model.encoding is not None
    assert model.encoding.categorical == ["colour", "city"] and model.network.sizes[0] == model.encoding.width
    report = inspect(tmp_path / "m.npz")
    columns = {column["name"]: column for column in report.info["encoding"]["columns"]}
    assert columns["colour"]["kind"] == "categorical" and columns["colour"]["inputs"] == 3
    assert columns["age"]["kind"] == "number" and isinstance(columns["age"]["fill"], float)
    assert columns["city"]["fill"] in CITIES  # a category's fill is shown by name
    assert report.info["encoding"]["missing"] == "mean" and report.info["encoding"]["unknown_category"] == "error"
    shown = runner.invoke(app, ["inspect", str(tmp_path / "m.npz"), "--json"])
    assert json.loads(shown.stdout)["encoding"]["inputs"] == 9


def test_a_numeric_model_is_still_format_version_2(tiny_config, tmp_path):
    result = runner.invoke(app, ["train", str(tiny_config), "-o", str(tmp_path / "m.npz"), "--quiet"])
    assert result.exit_code == 0, result.output
    model, meta = read_model(tmp_path / "m.npz")
    assert meta.format_version == 2 and model.encoding.is_plain


def _edit(path, target, change):
    meta, arrays = read_archive(path, kind="model file", error=ModelFileError, parse_meta=lambda data: data,
                                expected=lambda meta: {})
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "meta"}
    change(meta)
    write_archive(target, meta, arrays)
    return target


def test_an_encoding_that_does_not_fit_the_network_is_a_model_file_error(mixed, tmp_path):
    runner.invoke(app, ["train", str(mixed), "-o", str(tmp_path / "m.npz"), "--quiet"])
    fewer = _edit(tmp_path / "m.npz", tmp_path / "w.npz", lambda m: m["encoding"]["columns"][1]["categories"].pop())
    with pytest.raises(ModelFileError, match="encoding makes 8 inputs of the features for the 9 of the first layer"):
        load_model(fewer)
    renamed = _edit(tmp_path / "m.npz", tmp_path / "n.npz", lambda m: m["encoding"]["columns"][0].update(name="x"))
    with pytest.raises(ModelFileError, match="its 4 columns are not the model's 4 features"):
        load_model(renamed)
    bad = _edit(tmp_path / "m.npz", tmp_path / "b.npz", lambda m: m["encoding"].update(missing="guess"))
    with pytest.raises(ModelFileError, match="metadata field encoding"):
        load_model(bad)


def test_a_model_from_before_encodings_loads_as_before(tiny_config, tmp_path):
    runner.invoke(app, ["train", str(tiny_config), "-o", str(tmp_path / "m.npz"), "--quiet"])
    old = _edit(tmp_path / "m.npz", tmp_path / "old.npz", lambda m: m.pop("encoding"))
    model = load_model(old)
    assert model.encoding is None and model.plan.is_plain and model.plan.missing_values == ()
    save_model(tmp_path / "again.npz", model)  # (and is written back without one)
    assert "encoding" not in json.loads(str(np.load(tmp_path / "again.npz")["meta"]))


def test_round_trip_keeps_the_encoding_exactly(mixed, tmp_path):
    run = _run(mixed)
    model = run.fit()
    save_model(tmp_path / "m.npz", model)
    assert load_model(tmp_path / "m.npz").encoding == model.encoding == run.data.encoding


def test_resume_with_categories_and_missing_cells_is_bit_exact(mixed, tmp_path):
    common = ["training.epochs=4", "data.missing=median"]
    straight = open_session(TrainRequest(mixed, common, output=str(tmp_path / "a.npz")))
    straight.train()
    first = open_session(TrainRequest(mixed, common, output=str(tmp_path / "b.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, 2, 3))
    resumed = open_session(TrainRequest(resume=tmp_path / "b.ckpt.npz"))
    resumed.train()
    a, b = load_model(tmp_path / "a.npz"), load_model(tmp_path / "b.npz")
    assert a.encoding == b.encoding and not a.encoding.is_plain
    for x, y in zip(a.network.parameters(), b.network.parameters()):
        assert x.tobytes() == y.tobytes()
    for x, y in zip((a.feature_scaler.offset, a.feature_scaler.scale), (b.feature_scaler.offset, b.feature_scaler.scale)):
        assert x.tobytes() == y.tobytes()


def test_the_dry_run_counts_the_inputs_the_encoding_makes(mixed):
    result = runner.invoke(app, ["train", str(mixed), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    preview = json.loads(result.stdout)
    assert preview["architecture"][0]["weights"] == [9, 8]
    assert [c["name"] for c in preview["encoding"]["columns"]] == ["age", "colour", "city", "income"]
    message = _error(ConfigError, mixed, "model.layers=[4, 8, auto]")
    assert "declares 4 inputs but" in message and "which make 9 inputs (one per category of colour, city)" in message


# --- training from disk ------------------------------------------------------------------------
def test_from_disk_refuses_categories_and_fills_and_auto_chooses_memory(mixed, monkeypatch):
    message = _error(ConfigError, mixed, "data.in_memory=false", "data.cache=cache")
    assert "data.in_memory: training from disk reads numeric features only: data.missing: mean needs the data in memory" in message
    message = _error(ConfigError, mixed, "data.in_memory=false", "data.cache=cache", "data.missing=error")
    assert "data.in_memory:" in message and "column 'colour' holds text" in message
    monkeypatch.setattr("nncli.commands.train.available_memory", lambda: 1000)  # auto would choose the disk
    run = _run(mixed, "data.cache=cache", "data.missing=error", "data.drop=[id, age, city, income]")
    assert run.resolved_config()["data"]["in_memory"] is True and run.data.encoding.categorical == ["colour"]


def test_from_disk_a_missing_cell_is_named(write):
    write("d.csv", "a,b,label\n" + "".join(f"{i},{'' if i == 6 else i % 4},{'xy'[i % 2]}\n" for i in range(20)))
    path = write("c.yaml", "data: {train: d.csv, in_memory: false, cache: cache}\n")
    message = _error(DataError, path)
    assert "d.csv:8: column 'b': missing value; training from disk (data.in_memory: false) takes none" in message


def test_from_disk_a_dropped_text_column_may_hold_anything(write):
    write("d.csv", "id,a,b,label\n" + "".join(f"user {i},{i % 5},{i % 3},{'xy'[i % 2]}\n" for i in range(30)))
    run = _run(write("c.yaml", "data: {train: d.csv, in_memory: false, cache: cache, drop: [id]}\n"))
    assert run.resolved_config()["data"]["in_memory"] is False and run.features == ["a", "b"]
    assert run.data.encoding.is_plain and run.network.sizes[0] == 2
