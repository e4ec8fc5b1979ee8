"""Fixes for what a new user ran into: resuming a run started with --force, init -o FOLDER/,
init's shortened lists, a data file where a model goes, --fail-under typos, a missing
checkpoint, the confusion matrix's caption, and inspect --layer's total."""

import signal

import pytest

from tests.conftest import CONFIGS
from tests.test_hostile_runs import edit
from tests.test_runs_cli import _start, _wait_for_epoch_rows
from tests.test_subprocess import assert_one_line_error, run


# --- 1. resuming a run that was started with --force over an older run's files ------------------
def _interrupted_forced_run(tmp_path):
    model = tmp_path / "r1.npz"
    first = run("train", CONFIGS / "digits.yaml", "--set", "training.epochs=2", "-o", model, "--quiet")
    assert first.returncode == 0, first.stderr
    proc = _start("train", CONFIGS / "digits.yaml", "--set", "training.epochs=4000", "-o", model, "--force")
    _wait_for_epoch_rows(proc, rows=1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    checkpoint = tmp_path / "r1.ckpt.npz"
    assert f"resume with: nncli train --resume {checkpoint}" in stderr
    return model, checkpoint


def test_resuming_a_run_started_with_force_replaces_the_older_runs_files(tmp_path):
    model, checkpoint = _interrupted_forced_run(tmp_path)
    old = model.read_bytes()
    resumed = run("train", "--resume", checkpoint, "--set", "training.epochs=3", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert model.read_bytes() != old
    history = (tmp_path / "r1.history.csv").read_text().splitlines()
    assert len(history) == 1 + 3  # the resumed run's history, not the older run's 2 epochs


def test_resuming_a_forced_run_still_refuses_files_changed_since(tmp_path):
    model, checkpoint = _interrupted_forced_run(tmp_path)
    model.write_bytes(model.read_bytes() + b"\0")  # another finished model arrived since
    resumed = run("train", "--resume", checkpoint, "--set", "training.epochs=3", "--quiet")
    assert_one_line_error(resumed, f"{model} already exists", "--force")


def test_a_checkpoints_replaces_field_is_validated(tmp_path):
    _, checkpoint = _interrupted_forced_run(tmp_path)
    bad = edit(checkpoint, tmp_path / "bad" / "r1.ckpt.npz", lambda meta: meta.__setitem__("replaces", {"../x": "0" * 64}))
    result = run("train", "--resume", bad, "--quiet")
    assert_one_line_error(result, str(bad), "checkpoint field replaces")


# --- 2. init -o FOLDER/ for a folder that does not exist yet ------------------------------------
def _table(rows=40):
    cities = ("Berlin", "Lisbon", "Madrid", "Paris", "Rome")
    return "age,income,score,city,y\n" + "".join(f"{20 + i % 30},{1000 + 7 * (i % 11)},{i % 4},{cities[i % 5]},{i % 2}\n"
                                                 for i in range(rows))


def test_init_output_ending_in_a_slash_is_a_folder_created_for_the_config(write, tmp_path):
    data = write("data.csv", _table())
    result = run("init", data, "--target", "y", "-o", f"{tmp_path / 'cfgs'}/")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cfgs").is_dir() and (tmp_path / "cfgs" / "data.yaml").is_file()
    assert result.stdout.startswith(f"Wrote {tmp_path / 'cfgs' / 'data.yaml'} ")


def test_init_output_folder_whose_name_is_a_file_is_refused(write, tmp_path):
    data = write("data.csv", _table())
    (tmp_path / "cfgs").write_text("not a folder")
    result = run("init", data, "--target", "y", "-o", f"{tmp_path / 'cfgs'}/")
    assert_one_line_error(result, "cfgs", "is a file")


# --- 3. init's shortened lists never hide a single item -----------------------------------------
def test_init_lists_show_a_last_item_instead_of_hiding_it(write, tmp_path):
    data = write("data.csv", _table())
    result = run("init", data, "--target", "y", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert "3 numbers (age, income, score)" in result.stdout
    assert "5 values (Berlin, Lisbon, Madrid, Paris, Rome)" in result.stdout
    assert "…" not in result.stdout
    from nncli.commands.init import _names
    assert _names(list("abcdef"), 3) == "a, b, c, … (6 in all)"
    assert _names(list("abcd"), 3) == "a, b, c, d"


# --- 4. a data file or a config where MODEL goes -------------------------------------------------
@pytest.mark.parametrize("name, looks", [("data.csv", "a CSV file"), ("data", "a CSV file"), ("c.yaml", "a YAML config")])
def test_predict_and_evaluate_say_what_the_model_argument_looks_like(write, name, looks):
    given = write(name, "a,b\n1,2\n3,4\n" if looks == "a CSV file" else "data:\n  train: d.csv\n")
    data = write("d.csv", "a,b\n1,2\n")
    for command in ("predict", "evaluate"):
        result = run(command, given, data)
        assert_one_line_error(result, f"{given}: looks like {looks}, not an .npz model file; the arguments are MODEL then DATA")


def test_a_parquet_file_as_model_is_named(tmp_path):
    import polars as pl

    path = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1, 2]}).write_parquet(path)
    assert_one_line_error(run("predict", path, path), f"{path}: looks like a Parquet file", "MODEL then DATA")


def test_inspect_of_a_data_file_says_what_inspect_takes(write):
    data = write("data.csv", "a,b\n1,2\n3,4\n")
    assert_one_line_error(run("inspect", data),
                          f"{data}: looks like a CSV file, not an .npz model file; inspect takes a model file or a YAML config")


def test_a_damaged_npz_still_says_it_is_no_archive(write):
    model = write("m.npz", "a,b\n1,2\n3,4\n")
    assert_one_line_error(run("predict", model, model), f"{model}: not a zip/.npz archive (it looks like a CSV file)")


# --- 5. a misspelt gate metric -------------------------------------------------------------------
def _pick_model(tmp_path):
    import numpy as np

    from nncli.core.model import TrainedModel
    from nncli.core.network import MLP
    from nncli.core.preprocess import Scaler
    from nncli.files.model import save_model

    network = MLP([np.eye(3) * 50], [np.zeros(3)], ["softmax"])
    model = TrainedModel(network, "cross_entropy", ["a", "b", "c"], ["y"], ["cat", "dog", "eel"], Scaler.fit(np.zeros((1, 3)), "none"))
    save_model(tmp_path / "pick.npz", model)
    return tmp_path / "pick.npz"


@pytest.mark.parametrize("flag, gate, close", [("--fail-under", "accuray=0.9", "accuracy"),
                                               ("--fail-over", "los=0.5", "loss"),
                                               ("--fail-under", "Macro_F1=0.5", "macro_f1")])
def test_a_misspelt_gate_names_the_option_and_the_metric_meant(tmp_path, write, flag, gate, close):
    data = write("d.csv", "a,b,c,y\n1,0,0,cat\n0,1,0,dog\n")
    result = run("evaluate", _pick_model(tmp_path), data, flag, gate)
    assert_one_line_error(result, f"{flag} {gate}: no metric {gate.split('=')[0]!r} for this model",
                          f"did you mean {close!r}?")


# --- 6. --resume with a checkpoint that is not there ---------------------------------------------
def test_a_missing_checkpoint_says_when_checkpoints_are_written(tmp_path):
    missing = tmp_path / "x.ckpt.npz"
    result = run("train", "--resume", missing)
    assert_one_line_error(result, f"{missing}: checkpoint not found", "interrupted", "training.checkpoint_every")
    from nncli.config.schema import TrainingConfig
    assert "checkpoint_every" in TrainingConfig.model_fields  # the key the hint names
    (tmp_path / "x.npz").write_bytes(b"")
    result = run("train", "--resume", missing)
    assert_one_line_error(result, f"{tmp_path / 'x.npz'} exists: that run finished")


# --- 7. the confusion matrix's caption at an 80-column terminal ----------------------------------
def test_the_confusion_matrix_caption_stays_on_one_line_above_a_narrow_matrix(tmp_path, write):
    data = write("d.csv", "a,b,c,y\n1,0,0,cat\n0,1,0,dog\n0,0,1,eel\n")
    result = run("evaluate", _pick_model(tmp_path), data, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    caption = lines.index("confusion matrix (rows: true class, columns: predicted)")
    assert lines[caption + 1].split() == ["true", "\\", "predicted", "cat", "dog", "eel"]


# --- 8. inspect --layer N: the total under one layer is the model's ------------------------------
def test_inspect_layer_labels_the_total_as_the_models(tmp_path):
    import numpy as np

    from nncli.core.model import TrainedModel
    from nncli.core.network import MLP
    from nncli.core.preprocess import Scaler
    from nncli.files.model import save_model

    network = MLP([np.ones((3, 4)), np.ones((4, 2))], [np.zeros(4), np.zeros(2)], ["relu", "softmax"])
    model = TrainedModel(network, "cross_entropy", ["a", "b", "c"], ["y"], ["n", "p"], Scaler.fit(np.zeros((1, 3)), "none"))
    save_model(tmp_path / "m.npz", model)
    one = run("inspect", tmp_path / "m.npz", "--layer", "2", env={"COLUMNS": "120"})
    assert one.returncode == 0, one.stderr
    rows = [line.split() for line in one.stdout.splitlines()]
    assert ["model", "total", "26"] in rows and not any(row[:1] == ["total"] for row in rows)
    whole = run("inspect", tmp_path / "m.npz", env={"COLUMNS": "120"})
    assert ["total", "26"] in [line.split() for line in whole.stdout.splitlines()]
