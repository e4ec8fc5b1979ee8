"""`nncli plot`: what is drawn is checked against the numbers it comes from (history.csv, the
model's weight columns, evaluate's confusion counts, predict's outputs), not just that a file
appears; files are byte-identical for the same inputs; the terminal chart against a golden copy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.plot import PlotRequest, curves_picture, plot, training_curves, weights_picture
from nncli.files.history import read_history
from nncli.files.model import load_model
from nncli.plots.pictures import Confusion, Mistakes, Scatter, WeightMatrix, WeightTiles
from nncli.plots.text import text
from tests.conftest import CONFIGS, DATASETS

pytest.importorskip("matplotlib")  # CI installs the plot extra; the terminal chart is tested without it below

runner = CliRunner()

# A small fixed run: early stopping kept epoch 3 (its last `best`), validation loss rising after it.
HISTORY = """\
epoch,train_loss,val_loss,seconds,learning_rate,best,train_accuracy,val_accuracy
1,1.0,1.2,0.01,0.1,True,0.5,0.4
2,0.6,0.8,0.01,0.1,True,0.7,0.6
3,0.4,0.7,0.01,0.1,True,0.8,0.7
4,0.3,0.75,0.01,0.1,False,0.85,0.7
5,0.25,0.8,0.01,0.1,False,0.9,0.65
6,0.2,0.9,0.01,0.1,False,0.95,0.6
"""



def invoke(*args):
    return runner.invoke(app, ["plot", *map(str, args)])


@pytest.fixture
def history_file(tmp_path):
    folder = tmp_path / "fixed"
    folder.mkdir()
    path = folder / "history.csv"
    path.write_text(HISTORY)
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A digits run folder (64 pixels → 128 → 10), trained once for the module."""
    folder = tmp_path_factory.mktemp("digits") / "run"
    result = runner.invoke(app, ["train", str(CONFIGS / "digits.yaml"), "--run-dir", str(folder), "-q"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diabetes") / "run"
    result = runner.invoke(app, ["train", str(CONFIGS / "diabetes.yaml"), "--run-dir", str(folder), "-q"])
    assert result.exit_code == 0, result.output
    return folder


def figure_of(picture):
    from nncli.plots.draw import figure

    return figure(picture)


def image_data(image) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(image.get_array(), dtype=np.float64), np.nan)


# --- start-up stays fast -------------------------------------------------------------------------
def test_nothing_at_start_up_imports_matplotlib():
    code = ("import sys, nncli.cli, nncli.commands.plot, nncli.commands.session; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- curves ----------------------------------------------------------------------------------------
def test_curves_lines_are_the_history_columns(history_file):
    fig = figure_of(curves_picture([str(history_file)]))
    loss, accuracy, rate = fig.axes[:3]
    records = read_history(history_file)
    column = {key: [r[key] for r in records] for key in records[0]}
    assert [ax.get_ylabel() for ax in (loss, accuracy, rate)] == ["loss", "accuracy", "learning rate"]
    assert rate.get_xlabel() == "epoch"
    assert fig.get_suptitle() == "Training curves: fixed"
    for ax, metric in ((loss, "loss"), (accuracy, "accuracy")):
        drawn = {line.get_label(): line for line in ax.get_lines()}
        for word, prefix in (("train", "train"), ("validation", "val")):
            assert list(drawn[word].get_xdata()) == column["epoch"]
            assert list(drawn[word].get_ydata()) == column[f"{prefix}_{metric}"]
        assert drawn["train"].get_linestyle() == "-" and drawn["validation"].get_linestyle() == "--"
    kept = [line for line in loss.get_lines() if line.get_label() == "weights kept: epoch 3"]
    assert len(kept) == 1 and list(kept[0].get_xdata()) == [3, 3]  # the restored epoch, marked
    assert list(rate.get_lines()[0].get_ydata()) == column["learning_rate"]


def test_a_model_file_and_its_history_csv_draw_the_same_lines(digits):
    from_csv = figure_of(curves_picture([str(digits / "history.csv")]))
    from_model = figure_of(curves_picture([str(digits / "model.npz")]))
    for a, b in zip(from_csv.axes, from_model.axes):
        assert [(list(l.get_xdata()), list(l.get_ydata())) for l in a.get_lines()] == \
               [(list(l.get_xdata()), list(l.get_ydata())) for l in b.get_lines()]
    assert len(from_csv.axes[0].get_lines()[0].get_xdata()) == 30


def test_several_runs_are_overlaid_and_labelled_by_name(tmp_path, history_file, digits):
    other = tmp_path / "other.history.csv"
    other.write_text(HISTORY.replace("1.0,1.2", "2.0,2.2"))
    fig = figure_of(curves_picture([str(history_file.parent), str(other), str(digits / "model.npz")]))
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert {"fixed train", "fixed validation", "other train", "other validation", "run train", "run validation"} <= set(labels)
    colours = {line.get_label().split()[0]: line.get_color() for line in fig.axes[0].get_lines()}
    assert len({colours["fixed"], colours["other"], colours["run"]}) == 3
    assert fig.get_suptitle() == "Training curves: fixed, other, run"


def test_two_runs_with_one_name_are_named_by_path(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "run").mkdir(parents=True)
        (tmp_path / name / "run" / "history.csv").write_text(HISTORY)
    picture = curves_picture([str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")])
    assert [run.label for run in picture.runs] == [str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")]


def test_a_run_without_early_stopping_marks_the_lowest_validation_loss(tmp_path):
    path = tmp_path / "h.history.csv"
    path.write_text(HISTORY.replace("True", "False"))
    assert curves_picture([str(path)]).runs[0].marked() == (3, "lowest val_loss: epoch 3")


def test_ten_thousand_epochs_draw_in_well_under_a_second(tmp_path):
    epochs = np.arange(1, 10_001)
    rows = "\n".join(f"{e},{1 / e},{1.1 / e},0.01,{0.1 * 0.9995 ** e},{e == 7000},{1 - 1 / e},{1 - 1.1 / e}" for e in epochs)
    path = tmp_path / "long.history.csv"
    path.write_text(HISTORY.splitlines()[0] + "\n" + rows + "\n")
    plot(PlotRequest([str(path)], str(tmp_path / "warm.png")))  # matplotlib imported (as any first plot does)
    started = time.perf_counter()
    result = plot(PlotRequest([str(path)], str(tmp_path / "long.png")))
    seconds = time.perf_counter() - started
    assert result.written.stat().st_size > 0
    assert seconds < 3.0, f"{seconds:.2f} s"  # ~0.4 s on a busy 2-core machine; the bound is for slow CI runners


@pytest.mark.parametrize("name", ["r", "a-run-with-a-rather-long-name-from-a-sweep-folder"])
def test_curves_margins_hold_every_label_and_legend_inside_the_figure(tmp_path, name):
    """The curves are laid out once from measured labels (not constrained layout): nothing may
    stick out of the figure or overlap the next panel, whatever the names and tick labels."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "history.csv").write_text(HISTORY.replace("0.1,", "123456.5,", 3))  # wide tick labels on the rate panel
    other = tmp_path / "other.history.csv"
    other.write_text(HISTORY)
    fig = figure_of(curves_picture([str(folder), str(other)]))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)  # the axes with its tick labels, axis labels and legend
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (ax.get_ylabel(), box, page)
    title = fig._suptitle.get_window_extent(renderer)
    assert title.y1 <= page.y1 and title.y0 >= fig.axes[0].get_window_extent(renderer).y1
    for upper, lower in zip(fig.axes, fig.axes[1:]):
        assert upper.get_window_extent(renderer).y0 > lower.get_window_extent(renderer).y1  # a gap between panels


def test_drawing_pauses_the_cycle_collector_and_skips_its_last_walk_at_exit(history_file, tmp_path):
    code = ("import atexit, gc, sys; atexit.register(lambda: print('frozen at exit', gc.get_freeze_count() > 0)); "
            "from nncli.commands.plot import PlotRequest, plot; print('frozen before', gc.get_freeze_count() > 0); "
            "plot(PlotRequest([sys.argv[1]], sys.argv[2])); print('collector on', gc.isenabled(), gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code, str(history_file), str(tmp_path / "c.png")], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["frozen before False", "collector on True False", "frozen at exit True"]


def test_a_decaying_learning_rate_is_on_a_log_axis_labelled_without_formulas(tmp_path):
    """Decades read 10⁻³ in plain text: matplotlib's formula parser (built by the first formula)
    would cost a long plot a fifth of a second."""
    path = tmp_path / "decay.history.csv"
    rows = "\n".join(f"{e},{1 / e},{1.1 / e},0.01,{0.1 * 0.99 ** e},False,0.5,0.5" for e in range(1, 501))
    path.write_text(HISTORY.splitlines()[0] + "\n" + rows + "\n")
    code = ("import io, sys; from nncli.commands.plot import curves_picture; from nncli.plots import draw; "
            "import matplotlib.mathtext as m; fig = draw.figure(curves_picture([sys.argv[1]])); "
            "fig.savefig(io.BytesIO(), format='png'); rate = fig.axes[-1]; "
            "low, high = rate.get_ylim(); shown = [t for t in rate.get_yticklabels() if low <= t.get_position()[1] <= high]; "
            "print(rate.get_yscale(), [t.get_text() for t in shown], m.MathTextParser._parser)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "log ['10⁻³', '10⁻¹'] None", out  # (every other decade: the panel is short, as matplotlib's own choice)


# --- weights -----------------------------------------------------------------------------------------
def test_first_layer_tiles_are_the_reshaped_weight_columns(digits):
    picture = weights_picture(digits / "model.npz", 1, None)
    assert isinstance(picture, WeightTiles) and picture.shape == (8, 8)  # 64 inputs form a square
    W = load_model(digits / "model.npz").network.weights[0]
    fig = figure_of(picture)
    image = fig.axes[0].images[0]
    mosaic = image_data(image)
    columns = 16  # 128 tiles: 16 × 8
    for j in range(128):
        r, c = divmod(j, columns)
        np.testing.assert_array_equal(mosaic[r * 9: r * 9 + 8, c * 9: c * 9 + 8], W[:, j].reshape(8, 8))
    assert np.isnan(mosaic[8, :]).all() and np.isnan(mosaic[:, 8]).all()  # the gaps between tiles
    low, high = image.get_clim()
    assert low == -high == -np.abs(W).max()  # a diverging scale centred on zero
    assert image.get_cmap().name.startswith("RdBu_r")
    assert fig.axes[0].get_title().startswith("W1: each of the 128 neurons' 64 incoming weights as 8×8 images")


def test_a_layer_whose_inputs_are_no_picture_is_a_heat_map(digits):
    picture = weights_picture(digits / "model.npz", 2, None)
    assert isinstance(picture, WeightMatrix)
    W = load_model(digits / "model.npz").network.weights[1]
    ax = figure_of(picture).axes[0]
    np.testing.assert_array_equal(image_data(ax.images[0]), W)
    assert ax.get_title() == "W2 (128 × 10): rows = from, columns = to"
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("from: layer 1's neurons", "to: outputs")
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in range(10)]  # the classes


def test_shape_declares_the_tiles(digits):
    picture = weights_picture(digits / "model.npz", 1, "4x16")
    assert picture.shape == (4, 16)
    np.testing.assert_array_equal(picture.tile(5), load_model(digits / "model.npz").network.weights[0][:, 5].reshape(4, 16))
    result = invoke(digits / "model.npz", "--weights", "--shape", "5x5", "--terminal")
    assert result.exit_code == 2
    assert result.stderr == "nncli: error: --shape 5x5: 5×5 is 25 pixels, but layer 1 has 64 inputs\n"


# --- a model on data ----------------------------------------------------------------------------------
def test_confusion_cells_are_evaluates_counts(digits, tmp_path):
    evaluated = json.loads(runner.invoke(app, ["evaluate", str(digits / "model.npz"), str(DATASETS / "digits.csv"), "--json"]).stdout)
    result = invoke(digits / "model.npz", DATASETS / "digits.csv", "--confusion", "-o", tmp_path / "c.png")
    assert result.exit_code == 0 and result.stdout == f"Wrote {tmp_path / 'c.png'} (confusion matrix)\n"
    picture = plot(PlotRequest([str(digits / "model.npz"), str(DATASETS / "digits.csv")], terminal=True)).picture
    assert isinstance(picture, Confusion)
    assert picture.counts.tolist() == evaluated["confusion_matrix"]
    ax = figure_of(picture).axes[0]
    np.testing.assert_array_equal(image_data(ax.images[0]), np.array(evaluated["confusion_matrix"]))
    assert [t.get_text() for t in ax.texts] == [f"{n:,}" for row in evaluated["confusion_matrix"] for n in row]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert f"accuracy {evaluated['metrics']['accuracy']:.1%}" in ax.get_title()


def test_normalized_confusion_rows_are_fractions_of_the_true_class(digits):
    picture = plot(PlotRequest([str(digits / "model.npz"), str(DATASETS / "digits.csv")], terminal=True, confusion=True, normalize=True)).picture
    values = image_data(figure_of(picture).axes[0].images[0])
    np.testing.assert_allclose(values.sum(axis=1), 1.0)
    np.testing.assert_allclose(values, picture.counts / picture.counts.sum(axis=1, keepdims=True))


def test_errors_are_the_most_confident_mistakes_with_their_pixels(digits):
    picture = plot(PlotRequest([str(digits / "model.npz"), str(DATASETS / "digits.csv")], terminal=True, errors=5)).picture
    assert isinstance(picture, Mistakes) and 0 < len(picture.truth) <= 5
    lines = (DATASETS / "digits.csv").read_text().splitlines()
    for image, truth, predicted, where in zip(picture.images, picture.truth, picture.predicted, picture.where):
        row = lines[int(where.rsplit(":", 1)[1]) - 1].split(",")
        np.testing.assert_array_equal(image, np.array(row[:64], dtype=float).reshape(8, 8))  # the row as read
        assert truth == row[64] and predicted != truth
    assert list(picture.confidence) == sorted(picture.confidence, reverse=True)
    fig = figure_of(picture)
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == [picture.caption(i) for i in range(len(picture.truth))]
    assert drawn[0].get_title().startswith(f"{picture.truth[0]} → {picture.predicted[0]} (")
    assert fig.get_suptitle() == (f"The {len(picture.truth)} most confident of {picture.wrong} mistakes in 1,797 rows of "
                                  f"{DATASETS / 'digits.csv'}\neach: true → predicted class (the probability the model gave it)")
    np.testing.assert_array_equal(image_data(drawn[0].images[0]), picture.images[0])


def test_errors_need_an_image_shape(tmp_path):
    out = tmp_path / "iris.npz"
    assert runner.invoke(app, ["train", str(CONFIGS / "iris.yaml"), "-o", str(out), "-q"]).exit_code == 0
    result = invoke(out, DATASETS / "iris.csv", "--errors", "3")
    assert result.exit_code == 2 and "no square: give its shape, e.g. --shape 8x8" in result.stderr
    assert invoke(out, DATASETS / "iris.csv", "--errors", "3", "--shape", "2x2", "--terminal").exit_code == 0


def test_regression_draws_predicted_against_true_with_evaluates_r2(diabetes):
    model = diabetes / "model.npz"
    picture = plot(PlotRequest([str(model), str(DATASETS / "diabetes.csv")], terminal=True)).picture
    assert isinstance(picture, Scatter)
    predicted = runner.invoke(app, ["predict", str(model), str(DATASETS / "diabetes.csv")]).stdout.split()[1:]
    truth = [line.split(",")[-1] for line in (DATASETS / "diabetes.csv").read_text().splitlines()[1:]]
    ax = figure_of(picture).axes[0]
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], np.array(truth, dtype=float))
    np.testing.assert_allclose(points[:, 1], np.array(predicted, dtype=float), rtol=1e-6)
    r2 = json.loads(runner.invoke(app, ["evaluate", str(model), str(DATASETS / "diabetes.csv"), "--json"]).stdout)["metrics"]["r2"]
    assert ax.get_title().startswith(f"progression: R² = {r2:.4f}")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true progression", "predicted progression")
    diagonal = ax.get_lines()[0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())  # predicted = true


def test_confusion_and_errors_are_for_classifiers(diabetes):
    result = invoke(diabetes / "model.npz", DATASETS / "diabetes.csv", "--confusion", "--terminal")
    assert result.exit_code == 2 and result.stderr.startswith("nncli: error: --confusion is for classification;")


# --- files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_the_same_inputs_give_the_same_bytes(history_file, tmp_path, suffix):
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    assert invoke(history_file, "-o", first).exit_code == 0
    assert invoke(history_file, "-o", second).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith({".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix])


def test_png_hash_is_the_same_in_two_processes(digits, tmp_path):
    digests = []
    for name in ("one.png", "two.png"):
        subprocess.run([sys.executable, "-m", "nncli", "plot", str(digits / "model.npz"), "--weights", "-o", str(tmp_path / name)],
                       check=True, capture_output=True)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_without_o_the_picture_is_named_for_what_it_shows(history_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(history_file)
    assert result.exit_code == 0 and result.stdout == "Wrote curves.png (training curves)\n"
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_names_that_look_like_formulas_are_drawn_as_text(tmp_path):
    folder = tmp_path / "$x^2$"
    folder.mkdir()
    (folder / "history.csv").write_text(HISTORY)
    assert invoke(folder, "-o", tmp_path / "f.png").exit_code == 0
    fig = figure_of(curves_picture([str(folder)]))
    from matplotlib.cbook import is_math_text

    assert fig.get_suptitle() == r"Training curves: \$x^2\$" and not is_math_text(fig.get_suptitle())  # text, not a formula


def test_names_with_control_characters_or_other_scripts_draw_without_a_warning(write, tmp_path):
    write("odd.csv", "a,b,label\n1,2,\x1b[31mx\n2,3,猫\n1,3,$y$\n")
    config = write("odd.yaml", """
        seed: 0
        data: {train: odd.csv, target: label, validation_split: 0}
        model: {layers: [auto, 3, auto]}
        training: {epochs: 2, batch_size: 2}
        output: odd.npz
        """)
    assert runner.invoke(app, ["train", str(config), "-q"]).exit_code == 0
    result = invoke(tmp_path / "odd.npz", tmp_path / "odd.csv", "-o", tmp_path / "odd.png")  # (a warning would fail the test)
    assert result.exit_code == 0 and result.stderr == ""
    chart = invoke(tmp_path / "odd.npz", tmp_path / "odd.csv", "--terminal").stdout
    assert "\x1b" not in chart and "\\x1b[31mx" in chart  # escaped, as in error messages
    labels = [t.get_text() for t in figure_of(plot(PlotRequest([str(tmp_path / "odd.npz"), str(tmp_path / "odd.csv")], terminal=True)).picture).axes[0].get_yticklabels()]
    assert labels == ["\\x1b[31mx", "\\$y\\$", "猫"]  # drawn literally: no formula, no escape sequence


def test_train_plot_writes_the_curves_and_a_run_folder_gets_curves_png(digits, tmp_path):
    records = load_model(digits / "model.npz").history
    folder = tmp_path / "run"
    folder.mkdir()
    written = training_curves(records, folder / "model.npz", tmp_path / "c.svg", run_folder=True)
    assert written == [tmp_path / "c.svg", folder / "curves.png"]
    assert (tmp_path / "c.svg").read_bytes().startswith(b"<?xml")
    (folder / "history.csv").write_bytes((digits / "history.csv").read_bytes())
    assert invoke(folder, "-o", tmp_path / "expected.png").exit_code == 0  # the folder's curves, as plot draws them
    assert (folder / "curves.png").read_bytes() == (tmp_path / "expected.png").read_bytes()
    assert training_curves([], folder / "model.npz", tmp_path / "d.png") == []  # no epoch finished: nothing to draw


def test_without_matplotlib_a_run_folder_simply_gets_no_curves(digits, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    records = load_model(digits / "model.npz").history
    assert training_curves(records, tmp_path / "model.npz", run_folder=True) == []
    assert not (tmp_path / "curves.png").exists()


# --- usage ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["{h}", "-o", "{t}/x.jpg"], "-o {t}/x.jpg: the file name must end in .png, .svg or .pdf (the format is taken from it)"),
    (["{h}", "-o", "{t}/x.png", "--terminal"], "--terminal prints the chart; it does not combine with -o (a file)"),
    (["{h}", "--normalize"], "--normalize applies to the confusion matrix (MODEL DATA, or --confusion)"),
    (["{h}", "--layer", "2"], "--layer applies to --weights and --codes"),
    (["{h}", "--confusion"], "--confusion needs MODEL DATA: a model file and a labelled CSV or Parquet file (or - for CSV on stdin)"),
    (["{h}", "{h}", "--weights"], "--weights draws one model; got 2 inputs"),
    (["{h}", "--errors", "500"], "--errors 500: at most 100 mistakes fit one picture"),
    (["data.csv", "model.npz"], "data.csv model.npz: the arguments are MODEL then DATA (the model file first)"),
])
def test_usage_errors_are_one_line_and_exit_2(history_file, tmp_path, args, message):
    fill = {"h": history_file, "t": tmp_path}
    result = invoke(*[a.format(**fill) for a in args])
    assert result.exit_code == 2
    assert result.stderr == f"nncli: error: {message.format(**fill)}\n"


def test_a_file_that_is_no_history_names_its_line(tmp_path):
    bad = tmp_path / "bad.history.csv"
    bad.write_text(HISTORY.replace("0.6,0.8", "0.6,oops"))
    result = invoke(bad, "--terminal")
    assert result.exit_code == 2
    assert result.stderr == f"nncli: error: {bad}:3: column 'val_loss': 'oops' is not a number\n"
    data = tmp_path / "data.history.csv"
    data.write_text("a,b\n1,2\n")
    assert "not a history file" in invoke(data, "--terminal").stderr


# --- the terminal chart ------------------------------------------------------------------------------
def test_terminal_chart_golden(history_file):
    assert text(curves_picture([str(history_file)]), width=40) == GOLDEN_CURVES


# What a terminal shows for the fixed run at 40 columns (regenerate only when the chart changes on purpose).
GOLDEN_CURVES = """\
Training curves: fixed

loss
  1.2 ┤○            ┆
      │             ┆
      │●            ┆
      │             ┆                  ○
      │      ○      ○     ○      ○
  0.7 ┤      ●      ┆
      │             ┆
      │             ●
      │             ┆     ●
  0.2 ┤             ┆            ●     ●
      └─────────────────────────────────
       1             epoch             6

accuracy
 0.95 ┤             ┆                  ●
      │             ┆            ●
      │             ●     ●
      │             ┆
      │      ●      ○     ○
0.675 ┤             ┆            ○
      │      ○      ┆                  ○
      │●            ┆
      │             ┆
  0.4 ┤○            ┆
      └─────────────────────────────────
       1             epoch             6

learning rate: 0.1 throughout

● train  ○ validation  ┆ weights kept: epoch 3
"""


def test_without_matplotlib_a_chart_in_the_terminal_or_one_line_for_a_file(history_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    result = invoke(history_file, "-o", tmp_path / "c.png")
    assert result.exit_code == 2
    assert result.stderr == f'nncli: error: -o {tmp_path / "c.png"}: drawing a picture file needs matplotlib; install it with: pip install "matplotlib>=3.8" (the plot extra; in a clone: pip install -e ".[plot]")\n'
    result = invoke(history_file)
    assert result.exit_code == 0 and result.stdout.startswith("Training curves: fixed\n")
    assert result.stderr == 'nncli: note: matplotlib is not installed, so the chart is text; for a picture file: pip install "matplotlib>=3.8" (the plot extra; in a clone: pip install -e ".[plot]")\n'
    assert not (tmp_path / "c.png").exists()


def test_train_plot_draws_the_runs_curves_and_a_run_folder_gets_curves_png(tmp_path):
    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "-o", str(tmp_path / "m.npz"), "--plot", str(out),
                                 "--set", "training.epochs=5", "-q"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    # the same picture as plot draws from the finished run's history.csv
    again = tmp_path / "again.png"
    assert invoke(tmp_path / "m.history.csv", "-o", again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()
    folder = tmp_path / "run"
    result = runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "--run-dir", str(folder), "--set", "training.epochs=3", "-q"])
    assert result.exit_code == 0 and (folder / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_train_plot_is_checked_before_the_data_is_read(tmp_path):
    result = runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "--dry-run", "--plot", str(tmp_path / "c.gif")])
    assert result.exit_code == 2
    assert f"--plot {tmp_path / 'c.gif'}: the file name must end in .png" in result.output  # (train's option, not plot's -o)
    assert not (tmp_path / "c.gif").exists()


def test_train_lists_the_pictures_it_drew_with_its_run_files(tmp_path):
    """The run-files line and --json name curves.png (a run folder's) and the --plot file."""
    import json

    folder = tmp_path / "run"
    args = ["train", str(CONFIGS / "xor.yaml"), "--run-dir", str(folder), "--set", "training.epochs=3"]
    shown = runner.invoke(app, [*args, "--plot", str(tmp_path / "c.svg")])
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("Run files:")]
    assert str(folder / "curves.png") in line and str(tmp_path / "c.svg") in line
    document = json.loads(runner.invoke(app, [*args, "--force", "--json"]).stdout)
    assert document["files"]["curves"] == str(folder / "curves.png") and "plot" not in document["files"]


def test_a_plot_file_that_is_the_run_folders_curves_is_named_once(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "run"
    for picture in (folder / "curves.png", folder.relative_to(tmp_path) / "curves.png"):  # (the same file, written another way too)
        result = runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "--run-dir", str(folder), "--set", "training.epochs=3",
                                     "--plot", str(picture), "--force", "--json"])
        assert result.exit_code == 0, result.output
        files = json.loads(result.stdout)["files"]
        assert list(files.values()).count(str(picture)) == 1 and sum("curves.png" in path for path in files.values()) == 1
