"""`nncli init`: the guesses on synthetic tables, the refusals, and configs that train as written."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands import init as init_module
from nncli.config import load_config
from tests.conftest import CONFIGS, DATASETS

runner = CliRunner()

# Every shipped dataset with its natural target (penguins: text columns, an ID, empty cells).
SHIPPED = [("penguins", "species"), ("iris", "species"), ("diabetes", "progression"), ("digits", "label"),
           ("xor", "label"), ("seed-example", "label")]


def init(*args):
    return runner.invoke(app, ["init", *map(str, args)])


def _csv(rows: list[list[object]]) -> str:
    return "".join(",".join(map(str, row)) + "\n" for row in rows)


def _mixed_table(rows: int = 150) -> str:
    """One column of each kind the guesses tell apart, and a text target."""
    header = ["id", "code", "note", "colour", "constant", "size", "count", "label"]
    body = []
    for i in range(rows):
        size = "" if i % 50 == 7 else f"{1.5 + (i % 13) * 0.25}"
        body.append([i + 1, f"P-{i:04d}", f"note {i % 120}", ("red", "green", "blue")[i % 3], 7, size, i % 9,
                     ("yes", "no")[(i // 3) % 2]])
    return _csv([header, *body])


def _guesses(config) -> dict:
    data = config.data
    return {"drop": data.drop, "categorical": data.categorical, "missing": data.missing, "features": data.features}


# --- the guesses ------------------------------------------------------------------------------
def test_each_kind_of_column_gets_its_guess(write, tmp_path):
    data = write("shop.csv", _mixed_table())
    result = init(data, "--target", "label")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "shop.yaml").read_text()
    config = load_config(tmp_path / "shop.yaml")
    assert _guesses(config) == {"drop": ["id", "code", "note", "constant"], "categorical": ["colour"],
                                "missing": "mean", "features": None}
    assert config.training.loss == "cross_entropy" and config.data.target == "label"
    lines = {line.split("#")[0].strip(): line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line[1:]}
    assert lines["- id"] == "a different number in every row, in order: looks like an ID"
    assert lines["- code"] == "a different value in every row: looks like an ID"
    assert lines["- note"] == "free text: more than 100 distinct values (data.max_categories)"
    assert lines["- constant"] == "the same value ('7') in every row: nothing to learn from"
    assert lines["- colour"] == "text, 3 values (blue, green, red)"
    assert lines["missing: mean"].startswith("empty cells in size: each filled with its column's mean")
    assert lines["target: label"] == "text labels, 2 values (no, yes): classification"
    assert lines["features: null"] == "the other columns: 2 numbers (size, count) and 1 text (colour)"


def test_different_whole_numbers_out_of_order_are_a_measurement(write):
    rows = [["price", "row", "y"]] + [[(i * 7919) % 1000 + 1000, 100 - i, i % 2] for i in range(50)]
    result = init(write("t.csv", _csv(rows)), "--target", "y", "-o", "-")
    assert "  drop:\n    - row " in result.stdout and "1 number (price)" in result.stdout  # row falls: an ID


@pytest.mark.parametrize("values, loss", [
    (["1.5", "2.25", "3"], "mse"),  # fractional numbers: a quantity
    ([str(i % 5) for i in range(3)], "cross_entropy"),  # few whole numbers: class labels
    ([str(i) for i in range(3)], "cross_entropy"),
    (["cat", "dog", "7"], "cross_entropy"),  # any text: labels
], ids=["fractions", "few-integers", "integers", "text"])
def test_classification_or_regression_from_the_target(write, values, loss):
    rows = [["x", "y"]] + [[i % 7, values[i % len(values)]] for i in range(60)]
    result = init(write("t.csv", _csv(rows)), "--target", "y", "-o", "-")
    assert result.exit_code == 0, result.stderr
    assert f"  loss: {loss} " in result.stdout
    assert ("normalize_target: standard" in result.stdout) == (loss == "mse")


def test_many_distinct_whole_numbers_are_a_quantity(write):
    rows = [["x", "y"]] + [[i % 7, i * 3 % 41] for i in range(60)]
    result = init(write("t.csv", _csv(rows)), "--target", "y", "-o", "-")
    assert "  loss: mse " in result.stdout and "numbers, 41 distinct values: regression" in result.stdout


def test_an_empty_target_cell_drops_rows(write, tmp_path):
    rows = [["x", "y"]] + [[i % 7, "" if i == 5 else i % 2] for i in range(30)]
    assert init(write("t.csv", _csv(rows)), "--target", "y").exit_code == 0
    config = load_config(tmp_path / "t.yaml")
    assert config.data.missing == "drop_rows"


def test_a_small_table_keeps_every_row_and_column(write, tmp_path):
    write("s.csv", "a,b,y\n1,x,0\n2,z,1\n3,w,0\n")
    assert init(tmp_path / "s.csv", "--target", "y").exit_code == 0
    config = load_config(tmp_path / "s.yaml")
    assert config.data.validation_split == 0 and config.training.early_stopping is None
    assert config.data.drop == [] and config.data.categorical == ["b"]  # 3 rows: no ID guessed


def test_a_big_file_is_guessed_from_its_first_rows(write, tmp_path, monkeypatch):
    monkeypatch.setattr(init_module, "SAMPLE_CELLS", 60)  # 20 rows of 3 columns
    rows = [["a", "b", "y"]] + [[i % 5, 0 if i < 40 else 1, i % 2] for i in range(100)]
    result = init(write("big.csv", _csv(rows)), "--target", "y", "-o", "-")
    assert result.exit_code == 0, result.stderr
    assert "from its first 20 rows" in result.stdout
    assert "  epochs: 10 " in result.stdout and "  batch_size: 256 " in result.stdout
    assert "\n  drop:" not in result.stdout  # b is 0 in the first rows only: not dropped as constant
    assert "a fifth of the rows held out" in result.stdout


def test_awkward_names_are_quoted(write, tmp_path):
    names = ["yes", "a: b", "#n", "1st", "naïve", "null", "y"]
    rows = [names] + [[i, "ab"[i % 2], i % 4, i % 5, "cd"[i % 2], i % 3, i % 2] for i in range(30)]
    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "t t.csv").write_text(_csv(rows))
    assert init(folder / "t t.csv", "--target", "y").exit_code == 0
    config = load_config(folder / "t t.yaml")
    assert config.data.categorical == ["a: b", "naïve"] and config.data.target == "y"
    assert config.data.train == "t t.csv"


# --- refusals ---------------------------------------------------------------------------------
def test_an_existing_config_is_kept_without_force(write, tmp_path):
    data = write("t.csv", _mixed_table())
    existing = write("t.yaml", "# mine\n")
    result = init(data, "--target", "label")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"nncli: error: {existing}: already exists; nncli init does not overwrite it (--force replaces it)\n"
    assert existing.read_text() == "# mine\n"
    assert init(data, "--target", "label", "--force").exit_code == 0
    assert existing.read_text().startswith("# A starter config for t.csv")


def test_dash_prints_the_config_and_writes_nothing(write, tmp_path):
    data = write("t.csv", _mixed_table())
    result = init(data, "--target", "label", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout.startswith("# A starter config for t.csv") and "\ndata:\n" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_folder_as_output_gets_the_usual_name(write, tmp_path):
    data = write("t.csv", _mixed_table())
    (tmp_path / "configs").mkdir()
    result = init(data, "--target", "label", "-o", tmp_path / "configs")
    assert result.exit_code == 0 and result.stdout.startswith(f"Wrote {tmp_path / 'configs' / 't.yaml'} from the 150 rows")
    assert load_config(tmp_path / "configs" / "t.yaml").data.train == "../t.csv"


@pytest.mark.parametrize("given, hint", [
    ("lable", "did you mean 'label'?"),
    ("LABEL", "did you mean 'label'?"),
    ("zzz", "columns are: id, code, note, colour, constant, size, count, label"),
])
def test_a_target_not_in_the_file_is_one_line_with_close_matches(write, given, hint):
    data = write("t.csv", _mixed_table())
    result = init(data, "--target", given)
    assert result.exit_code == 2
    assert result.stderr == f"nncli: error: {data}:1: --target '{given}': no such column; {hint}\n"


@pytest.mark.parametrize("text, message", [
    ("", "file is empty; expected a CSV file with a header row"),
    ("a,y\n", "no data rows after the header; nncli init guesses the config from the data"),
])
def test_an_empty_file_is_refused(write, text, message):
    data = write("e.csv", text)
    result = init(data, "--target", "y")
    assert result.exit_code == 2 and result.stderr == f"nncli: error: {data}: {message}\n"


@pytest.mark.parametrize("text, message", [
    ("a,y\n1,2\n3\n", ":3: row has 1 field but the header has 2 columns"),
    ("a,y\n1,\n2,\n", ": --target 'y': every cell is empty in the 2 rows; nothing to learn"),
    ("a,y\n1,b\n2,b\n", ": --target 'y': one label ('b') in the 2 rows; a classifier needs two or more"),
    ("id,y\n" + "".join(f"{i},{i % 2}\n" for i in range(30)), ": no column is left to learn 'y' from ('id': a different number in every row, in order: looks like an ID)"),
])
def test_data_init_cannot_guess_from_is_one_line(write, text, message):
    data = write("d.csv", text)
    result = init(data, "--target", "y")
    assert result.exit_code == 2 and result.stderr == f"nncli: error: {data}{message}\n"
    assert not (data.parent / "d.yaml").exists()


# --- the configs train as written ------------------------------------------------------------
@pytest.mark.parametrize("name, target", SHIPPED, ids=[name for name, _ in SHIPPED])
def test_the_config_for_each_shipped_dataset_trains_as_written(tmp_path, monkeypatch, name, target):
    (tmp_path / "data").mkdir()
    shutil.copy(DATASETS / f"{name}.csv", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    result = init(f"data/{name}.csv", "--target", target)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"Every guess is explained in the file. Next: nncli train data/{name}.yaml"
    trained = runner.invoke(app, ["train", f"data/{name}.yaml", "--json"])
    assert trained.exit_code == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["model"] == f"runs/{name}.npz" and (tmp_path / "runs" / f"{name}.npz").exists()
    if name == "penguins":
        assert report["metrics"]["val_accuracy"] >= 0.95


def test_the_shipped_penguins_config_is_what_init_writes(tmp_path, monkeypatch):
    for folder in ("datasets", "configs"):
        (tmp_path / folder).mkdir()
    shutil.copy(DATASETS / "penguins.csv", tmp_path / "datasets")
    monkeypatch.chdir(tmp_path)
    assert init("datasets/penguins.csv", "--target", "species", "-o", "configs/penguins.yaml").exit_code == 0
    assert (tmp_path / "configs/penguins.yaml").read_text() == (CONFIGS / "penguins.yaml").read_text()
