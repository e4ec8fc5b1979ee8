"""The first hour of a new user (issue 12): the stumbles found by trying the README in order.

Each test names what a user hit: an old output hiding the real error, tables wider than an
80-column terminal, help text full of typer's placeholders, a progress bar that could not say
how long, a checkpoint or a CSV given where a model or a config belongs, YAML indentation
reported as parser jargon, `--set` spelt the way people spell it, absolute paths after resume.
"""

from __future__ import annotations

import io
import json
import re
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

from nncli import cli, render
from nncli.cli import app
from nncli.commands.session import TrainRequest, open_session
from nncli.core.trainer import EpochRecord
from nncli.files.model import load_model, save_model

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [*map(str, args)], env=env)


def files_and_contents(folder) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def terminal(width: int = 80) -> Console:
    """A console as a terminal of ``width`` columns gives one (boxes, colour, a live bar)."""
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system="standard", highlight=False, emoji=False)


def plain_lines(console: Console) -> list[str]:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue()).splitlines()


CUT_NUMBER = re.compile(r"\d…|[-.]…")  # `-0.0…`: a number rich had to shorten


def assert_fits(lines: list[str], width: int = 80) -> None:
    assert lines
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, too_wide
    cut = [line for line in lines if CUT_NUMBER.search(line)]
    assert not cut, cut


# --- 1. train checks the config and the data before refusing to overwrite -------------------
def test_a_data_mistake_is_reported_before_an_existing_output(tiny_config):
    assert invoke("train", tiny_config, "-q").exit_code == 0
    again = invoke("train", tiny_config, "--set", "data.target=kindd")
    assert again.exit_code == 2
    assert "kindd" in again.stderr and "already exists" not in again.stderr
    # A config mistake too, and only then the outputs.
    assert "training.epochs" in invoke("train", tiny_config, "--set", "training.epochs=0").stderr
    assert "already exists" in invoke("train", tiny_config).stderr


def test_a_resumed_run_reports_too_few_epochs_before_existing_outputs(tmp_path, tiny_config):
    assert invoke("train", tiny_config, "-q", "--set", "training.checkpoint_every=1").exit_code == 0
    checkpoint = tmp_path / "out" / "tiny.ckpt.npz"
    result = invoke("train", "--resume", checkpoint, "--set", "training.epochs=2")
    assert result.exit_code == 2 and "already trained 5 epochs" in result.stderr, result.stderr


def test_a_dry_run_writes_nothing_and_never_refuses_for_existing_outputs(tmp_path, tiny_config):
    before = files_and_contents(tmp_path)
    dry = invoke("train", tiny_config, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert files_and_contents(tmp_path) == before  # not even the output folder
    assert invoke("train", tiny_config, "-q").exit_code == 0
    trained = files_and_contents(tmp_path)
    dry = invoke("train", tiny_config, "--dry-run")
    assert dry.exit_code == 0 and "already exists" not in dry.stderr
    assert files_and_contents(tmp_path) == trained


def test_a_dry_run_checks_the_thread_setting(tiny_config):
    result = invoke("train", tiny_config, "--dry-run", env={"NNCLI_THREADS": "abc"})
    assert result.exit_code == 2 and "NNCLI_THREADS='abc'" in result.stderr
    assert invoke("train", tiny_config, "--dry-run", "--threads", "0").exit_code == 2


# --- 2. tables fit an 80-column terminal -------------------------------------------------------
EXTREME_EPOCHS = [
    EpochRecord(1, 1.2345e10, 0.5, -9.8765e-12, 1.0, 1234.567, 1.25e-5, best=True),
    EpochRecord(99999, 0.1234, 1.0, 123456.7, 0.0, 0.001, 0.000123),
]


@pytest.mark.parametrize("metric", ["accuracy", "r2"])
@pytest.mark.parametrize("console", [terminal, lambda: Console(file=io.StringIO(), width=80, color_system=None)], ids=["terminal", "plain"])
def test_the_epoch_table_fits_80_columns(console, metric):
    console = console()
    with render.TrainingDisplay(console, metric, epochs=99999, batches=45) as display:
        for record in EXTREME_EPOCHS:
            display.on_epoch_end(record)
    lines = plain_lines(console)
    assert_fits(lines)
    assert any("1.234e+10" in line and "1234.567" in line and "1.25e-05" in line for line in lines)
    assert any(line.lstrip().startswith("99999") for line in lines)


@pytest.fixture
def wide_model(tmp_path, write):
    """A model whose tables are wide: long feature names, a parametrised activation, 40
    hidden neurons, and weights in the hundreds (numbers of 9 characters)."""
    names = ["sepal_length_in_centimetres", "sepal_width_in_centimetres", "petal_length_in_centimetres", "x"]
    rows = [",".join(names + ["species"])]
    for i in range(60):
        rows.append(",".join(f"{(i * (j + 3)) % 7 + 0.5 * j:.2f}" for j in range(4)) + "," + ("setosa", "versicolor", "virginica")[i % 3])
    write("wide.csv", "\n".join(rows) + "\n")
    config = write("wide.yaml", """
        seed: 3
        data: {train: wide.csv, target: species}
        model: {layers: [auto, 40, auto], activation: leaky_relu, leaky_relu_slope: 0.02}
        training: {epochs: 2, batch_size: 16}
        """)
    session = open_session(TrainRequest(config, output=str(tmp_path / "wide.npz")))
    session.train()
    model = load_model(tmp_path / "wide.npz")
    for W in model.network.weights:
        W *= 300.0
    save_model(tmp_path / "wide.npz", model)
    return tmp_path / "wide.npz"


def test_inspect_fits_80_columns_by_leaving_columns_out(monkeypatch, wide_model):
    console = terminal(80)
    monkeypatch.setattr(render, "make_console", lambda stderr=False: console)
    result = invoke("inspect", wide_model, "--weights")
    assert result.exit_code == 0, result.stderr
    lines = plain_lines(console)
    assert_fits(lines)
    text = "\n".join(lines)
    assert "leaky_relu (slope 0.02)" in text and "std" in text and "bias b" not in text  # left out, not cut
    W1 = load_model(wide_model).network.weights[0]
    assert f"{W1[0, 0]:.4f}" in text and f"{W1[0, -1]:.4f}" in text  # the first and last columns, whole
    assert "W1  (4 × 40)" in text and "…" in text.split("W1  (4 × 40)")[1]


def test_inspect_keeps_every_column_where_there_is_room(wide_model):
    plain = invoke("inspect", wide_model, "--weights")  # a pipe: every column, as before
    assert plain.exit_code == 0
    assert "bias b" in plain.stdout and "near 0" in plain.stdout and "parameters" in plain.stdout
    assert "h1.6 " in plain.stdout and "h1.38" in plain.stdout


def test_the_untrained_network_fits_80_columns(tiny_config):
    console = terminal(80)
    from nncli.commands.session import dry_run

    render.untrained_network(console, dry_run(TrainRequest(tiny_config)), "Network", with_config=True)
    assert_fits(plain_lines(console))


# --- 3. --help ------------------------------------------------------------------------------
def test_help_in_a_pipe_is_plain_with_no_placeholders():
    result = invoke("inspect", "--help")
    assert result.exit_code == 0
    out = result.stdout
    assert "╭" not in out and "\x1b" not in out
    assert "Usage: nncli inspect [OPTIONS] MODEL|CONFIG" in out and "{" not in out
    assert "<bool>" not in out and "<path>" not in out and "<str>" not in out
    assert "--format csv|npy" in out and "--layer N" in out


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "inspect", "schema", "init"])
def test_help_on_a_terminal_has_no_placeholders_and_wraps_to_its_width(monkeypatch, command):
    monkeypatch.setattr(cli, "plain_output", lambda: False)
    result = invoke(command, "--help", env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "╭" in result.stdout  # typer's rich panels
    assert all(len(line) <= 100 for line in lines)
    assert "<bool>" not in result.stdout and "{" not in result.stdout
    usage = next(line for line in lines if "Usage:" in line)
    assert "[OPTIONS]" in usage
    if command == "predict":  # the docstring's paragraphs flow: no line ends where the source's did
        assert any("(or `prediction_<target>` per target), then" in line for line in lines), result.stdout


def test_help_choices_and_value_names():
    assert "--format csv|npy" in invoke("inspect", "--help").stdout
    out = invoke("train", "--help").stdout
    assert "-o, --output FILE" in out and "--log-every N" in out and "[CONFIG]" in out


# --- 4. the progress bar --------------------------------------------------------------------
def test_the_bar_knows_every_batch_of_the_run_and_the_time_left():
    console = terminal(80)
    with render.TrainingDisplay(console, "accuracy", epochs=5, batches=7, epoch=2, batch=3) as display:
        task = display.progress.tasks[0]
        assert task.total == 35 and task.completed == 10  # a resumed run: 1 epoch and 3 batches done
        display.progress.refresh()
    bar = [line for line in plain_lines(console) if "batch 3/7" in line]
    assert bar and "epoch 2/5" in bar[0] and "left" in bar[0], plain_lines(console)


def test_train_gives_the_bar_its_batches_before_the_first_one(monkeypatch, tiny_config):
    console = terminal(80)
    monkeypatch.setattr(render, "make_console", lambda stderr=False: console)
    result = invoke("train", tiny_config)
    assert result.exit_code == 0, result.stderr
    text = "\n".join(plain_lines(console))
    assert "epoch 1/5" in text and "batch 0/3" in text and "left" in text  # 24 training rows, batches of 8


# --- 5. the wrong file, and the wrong spelling ---------------------------------------------
@pytest.mark.parametrize("command", [["predict"], ["evaluate"], ["inspect"]])
def test_a_checkpoint_given_as_a_model_says_what_to_do(tmp_path, tiny_config, tiny_csv, command):
    assert invoke("train", tiny_config, "-q", "--set", "training.checkpoint_every=1").exit_code == 0
    checkpoint = tmp_path / "out" / "tiny.ckpt.npz"
    args = [*command, checkpoint] + ([tiny_csv] if command[0] != "inspect" else [])
    result = invoke(*args)
    assert result.exit_code == 2
    assert f"{checkpoint}: this is a checkpoint; use `nncli train --resume {checkpoint}`" in result.stderr
    assert f"({tmp_path / 'out' / 'tiny.npz'})" in result.stderr


def test_a_csv_given_as_a_config_says_so(tmp_path, tiny_csv):
    result = invoke("train", tiny_csv)
    assert result.exit_code == 2
    assert f"{tiny_csv}: looks like a CSV file, not a YAML config; pass it in the config's data.train" in result.stderr
    renamed = tmp_path / "data.txt"  # by its content, whatever its name
    renamed.write_bytes(tiny_csv.read_bytes())
    assert "looks like a CSV file" in invoke("train", renamed).stderr


def test_a_model_or_parquet_given_as_a_config_says_so(tmp_path, tiny_config):
    assert invoke("train", tiny_config, "-q").exit_code == 0
    assert "an .npz archive (an nncli model or checkpoint), not a YAML config" in invoke("train", tmp_path / "out" / "tiny.npz").stderr
    parquet = tmp_path / "data.parquet"
    parquet.write_bytes(b"PAR1" + bytes(20))
    assert "looks like a Parquet file, not a YAML config" in invoke("train", parquet).stderr


@pytest.mark.parametrize("text, line, words", [
    ("data:\n  train: a.csv\n   target: y\n", 3, "indented by 3 spaces, more than line 2 (2 spaces)"),
    ("data:\n  train: a.csv\n target: y\n", 3, "indented by 1 space, which lines up with no section above it"),
    ("data:\n  train: a.csv\nmodel:\n    layers: [auto, 4, auto]\n  dtype: float64\n", 5, "indented by 2 spaces"),
    ("data:\n\ttrain: a.csv\n", 2, "indented with a tab; YAML indents with spaces only"),
    ("data:\n  - train: a.csv\n  target: y\n", 3, "like the list item on line 2"),
])
def test_yaml_indentation_is_a_sentence_about_indentation(write, text, line, words):
    path = write("bad.yaml", text)
    result = invoke("train", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"nncli: error: {path}:{line}: bad indentation: "), result.stderr
    assert words in result.stderr and "<block" not in result.stderr


def test_other_yaml_syntax_errors_keep_their_place(write):
    path = write("bad.yaml", "data: {train: a.csv\n")
    assert f"{path}:2:1: YAML syntax error" in invoke("train", path).stderr


@pytest.mark.parametrize("override, expected", [
    ("epochs=5", "--set epochs=5: epochs: unknown key; did you mean training.epochs?"),
    ("model.learning_rate=0.1", "model.learning_rate: unknown key; did you mean training.learning_rate?"),
    ("training.seed=1", "did you mean seed (at the top level)?"),
    ("patience=3", "did you mean training.schedule.patience or training.early_stopping.patience?"),
    ("training.epoch=3", "training.epoch: unknown key; did you mean 'epochs'?"),  # its own section first
])
def test_a_key_in_the_wrong_section_is_named_with_its_section(tiny_config, override, expected):
    result = invoke("train", tiny_config, "--set", override)
    assert result.exit_code == 2 and expected in result.stderr, result.stderr


def test_set_with_a_space_says_to_write_key_equals_value(tiny_config, monkeypatch, capsys):
    # typer sees `5` as an extra argument: nncli's own message, not typer's
    monkeypatch.setattr(sys, "argv", ["nncli", "train", str(tiny_config), "--set", "training.epochs", "5"])
    assert cli._run() == 2
    error = capsys.readouterr().err
    assert error == ("nncli: error: --set training.epochs: write KEY=VALUE as one argument, with no space "
                     "around '=' (e.g. --set training.epochs=VALUE)\n")
    # `5` taken as the CONFIG: the --set mistake is still the one reported
    result = invoke("train", "--set", "training.epochs", "5")
    assert result.exit_code == 2 and "write KEY=VALUE as one argument" in result.stderr


# --- 6. paths after --resume ----------------------------------------------------------------
def test_a_resumed_run_shows_paths_as_a_normal_run_does(tmp_path, write, monkeypatch):
    write("data/d.csv", "a,b,y\n" + "".join(f"{i % 5},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    write("configs/c.yaml", "data: {train: ../data/d.csv}\ntraining: {epochs: 2, checkpoint_every: 1}\noutput: ../runs/c.npz\n")
    monkeypatch.chdir(tmp_path)
    cache = f"data.cache={tmp_path / 'cache'}"  # a cache folder: --json names the CSV it read
    first = invoke("train", "configs/c.yaml", "--json", "--set", cache)
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["data_cache"][0]["source"] == "data/d.csv"
    resumed = invoke("train", "--resume", "runs/c.ckpt.npz", "--set", "training.epochs=3", "--force", "--json", "--set", cache)
    assert resumed.exit_code == 0, resumed.stderr
    document = json.loads(resumed.stdout)
    assert document["data_cache"][0]["source"] == "data/d.csv"
    assert document["files"]["model"] == "runs/c.npz"
    shown = invoke("train", "--resume", "runs/c.ckpt.npz", "--set", "training.epochs=4", "--force", "--set", cache)
    assert "Resuming runs/c.ckpt.npz at epoch 4" in shown.stdout and "Model saved to runs/c.npz" in shown.stdout
    assert str(tmp_path) not in shown.stdout + shown.stderr
