"""`nncli plot MODEL DATA --codes` (issue 15): the points drawn are the PCA of what `nncli embed`
writes, coloured per class of --labels; PCA itself against scikit-learn; bad input one line, exit 2."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands import plot_data
from nncli.commands.plot import PlotRequest, plot
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core.pca import pca
from nncli.files.model import save_model
from nncli.plots.pictures import MAX_CODE_CLASSES, Codes
from nncli.plots.text import text
from tests.conftest import CONFIGS, DATASETS, small_digits_autoencoder

runner = CliRunner()
DIGITS = DATASETS / "digits.csv"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    # The shipped config's data, a small network of our own (the shipped one's layers may change).
    return small_digits_autoencoder(tmp_path_factory.mktemp("codes") / "ae.npz", "[auto,32,10,32,auto]")


def embedded(model, data, *args) -> tuple[list[str], np.ndarray]:
    """`nncli embed MODEL DATA --keep label`: each row's label and code, as a user gets them."""
    result = invoke("embed", model, data, "--keep", "label", *args)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))[1:]
    return [row[0] for row in rows], np.array([row[1:] for row in rows], dtype=np.float64)


def codes_of(*args, **options) -> Codes:
    return plot(PlotRequest([str(a) for a in args], terminal=True, codes=True, **options)).picture


# --- PCA --------------------------------------------------------------------------------------------
def test_pca_matches_scikit_learn_up_to_sign_and_fixes_the_sign():
    from sklearn.decomposition import PCA

    X = np.random.default_rng(0).normal(size=(300, 6)) @ np.random.default_rng(1).normal(size=(6, 6))
    ours, theirs = pca(X, 2), PCA(2).fit(X)
    np.testing.assert_allclose(ours.explained, theirs.explained_variance_ratio_, rtol=1e-10)
    for mine, other in zip(ours.components, theirs.components_):
        assert np.allclose(mine, other, atol=1e-10) or np.allclose(mine, -other, atol=1e-10)
        assert mine[np.abs(mine).argmax()] > 0  # the sign: the largest entry positive
    np.testing.assert_allclose(np.abs(ours.transform(X)), np.abs(theirs.transform(X)), atol=1e-9)
    flipped = pca(-X, 2)  # the same cloud mirrored: the same directions, not their negatives
    np.testing.assert_allclose(flipped.components, ours.components, atol=1e-10)


def test_pca_of_rows_that_do_not_vary_explains_nothing():
    projection = pca(np.ones((4, 3)), 2)
    assert projection.explained.tolist() == [0.0, 0.0]
    assert np.array_equal(projection.transform(np.ones((4, 3))), np.zeros((4, 2)))
    assert pca(np.array([[1.0, 2.0, 3.0]]), 2).transform(np.array([[1.0, 2.0, 3.0]])).shape == (1, 2)


# --- what is drawn ------------------------------------------------------------------------------------
def test_drawn_points_are_the_pca_of_embeds_codes_coloured_per_class(autoencoder, tmp_path):
    from nncli.plots.draw import COLOURS, figure

    labels, codes = embedded(autoencoder, DIGITS)
    expected = pca(codes, 2)
    picture = codes_of(autoencoder, DIGITS, labels="label")
    assert picture.rows == picture.shown == 1797 and picture.width == 10 and picture.layer == 2  # embed's default layer
    np.testing.assert_allclose(picture.points, expected.transform(codes), atol=1e-4)  # (embed writes float32's digits)
    assert picture.axis_labels == tuple(f"PC{i} ({100 * s:.1f} % of variance)" for i, s in zip((1, 2), expected.explained))
    fig = figure(picture)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == picture.axis_labels
    collections = ax.collections
    assert [c.get_label() for c in collections] == [str(d) for d in range(10)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(d) for d in range(10)]
    for digit, collection in enumerate(collections):
        mine = np.array(labels) == str(digit)
        np.testing.assert_allclose(collection.get_offsets(), expected.transform(codes[mine]), atol=1e-4)
        np.testing.assert_allclose(collection.get_facecolor()[0, :3], np.array([int(COLOURS[digit][i:i + 2], 16) for i in (1, 3, 5)]) / 255)
    assert "1,797 rows" in ax.get_title() and "hidden layer 2 (10 neurons)" in ax.get_title()


def test_layer_k_as_in_embed_and_no_labels_is_one_colour(autoencoder):
    _, codes = embedded(autoencoder, DIGITS, "--layer", "3")
    picture = codes_of(autoencoder, DIGITS, layer=3)
    assert picture.width == 32 and picture.labels is None and len(picture.groups()) == 1
    np.testing.assert_allclose(picture.points, pca(codes, 2).transform(codes), atol=1e-4)


def test_a_two_neuron_layer_is_drawn_as_it_is(tmp_path):
    path = tmp_path / "two.npz"
    save_model(path, prepare_training(load_config(CONFIGS / "iris.yaml", ["training.epochs=2", "model.layers=[auto,2,auto]"])).fit())
    picture = codes_of(path, DATASETS / "iris.csv", labels="species")
    assert picture.axis_labels == ("code_1", "code_2")
    result = invoke("embed", path, DATASETS / "iris.csv")
    codes = np.array([row for row in csv.reader(io.StringIO(result.stdout))][1:], dtype=np.float64)
    np.testing.assert_allclose(picture.points, codes, atol=1e-5)
    assert [name for name, _ in picture.groups()] == ["setosa", "versicolor", "virginica"]


def test_large_inputs_are_an_evenly_spaced_sample_and_the_title_says_so(autoencoder, monkeypatch):
    monkeypatch.setattr(plot_data, "MAX_SCATTER_POINTS", 500)
    labels, codes = embedded(autoencoder, DIGITS)
    picture = codes_of(autoencoder, DIGITS, labels="label")
    stride = 4  # 1,797 rows: every 4th keeps 450 ≤ 500
    assert picture.shown == len(range(0, 1797, stride)) and picture.rows == 1797
    np.testing.assert_allclose(picture.points, pca(codes[::stride], 2).transform(codes[::stride]), atol=1e-4)
    assert picture.labels == labels[::stride]
    assert "450 of 1,797 rows shown (evenly spaced)" in picture.title


def test_more_classes_than_colours_share_one_grey_group():
    names = [str(i) for i in range(30)]
    labels = [name for i, name in enumerate(names) for _ in range(30 - i)]  # class 0 the most frequent
    picture = Codes(np.zeros((len(labels), 2)), ("PC1", "PC2"), 1, 3, "m", "d.csv", len(labels), "c", labels)
    groups = picture.groups()
    assert len(groups) == MAX_CODE_CLASSES and picture.has_other
    assert [name for name, _ in groups[:-1]] == names[:MAX_CODE_CLASSES - 1]
    assert groups[-1][0] == "11 other classes" and groups[-1][1].sum() == sum(30 - i for i in range(19, 30))


def test_terminal_chart_marks_each_cell_with_its_class(autoencoder):
    lines = text(codes_of(autoencoder, DIGITS, labels="label"), 80).splitlines()
    assert lines[0].startswith("Codes of ae at hidden layer 2 (10 neurons)")
    assert lines[-1] == "label: 0  1  2  3  4  5  6  7  8  9"
    grid = "".join(line.split("│", 1)[-1].split("┤", 1)[-1] for line in lines[3:23])
    assert set(grid) - {" "} <= set("0123456789") and len(set(grid)) > 5
    plain = text(codes_of(autoencoder, DIGITS), 80)
    assert "░▒▓█: fewer to more rows per character" in plain and "█" in plain


def test_the_same_inputs_give_the_same_bytes(autoencoder, tmp_path):
    for name in ("a.png", "b.png"):
        assert invoke("plot", autoencoder, DIGITS, "--codes", "--labels", "label", "-o", tmp_path / name).exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# --- errors: one line, exit 2 -------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--layer", "4"], "ae.npz has hidden layers 1 (32 wide), 2 (10 wide), 3 (32 wide); give --layer 1 to 3"),
    (["--labels", "digit"], "--labels column 'digit' is not in the file"),
    (["--confusion"], "--codes draws the rows' codes; it does not combine with --confusion"),
])
def test_bad_codes_requests_are_one_line_and_exit_2(autoencoder, args, message):
    result = invoke("plot", autoencoder, DIGITS, "--codes", "--terminal", *args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_codes_need_a_model_and_data(autoencoder, tmp_path):
    result = invoke("plot", autoencoder, "--codes", "--terminal")
    assert result.exit_code == 2 and result.stderr.startswith("nncli: error: --codes needs MODEL DATA")
    result = invoke("plot", autoencoder, DIGITS, "--labels", "label", "--terminal")
    assert result.exit_code == 2 and "give --codes too" in result.stderr
    clusters = tmp_path / "clusters.npz"
    assert invoke("cluster", DIGITS, "--k", "3", "--ignore", "label", "--save", clusters, "--n-init", "1", "-o", tmp_path / "c.csv").exit_code == 0
    result = invoke("plot", clusters, DIGITS, "--codes", "--terminal")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "a clusters file (nncli cluster --save) has centroids" in result.stderr


def test_even_sample_keeps_every_stride_th_row_across_chunks():
    sample = plot_data.EvenSample(100)
    rows = np.arange(1000, dtype=np.float64)
    for start, stop in ((0, 7), (7, 400), (400, 401), (401, 1000)):  # chunks of any size
        sample.add(rows[start:stop], [f"r{i}" for i in range(start, stop)])
    values, names = sample.columns
    assert sample.stride == 16 and sample.rows == 1000  # 1000 / 8 = 125 > 100 ≥ 1000 / 16
    assert values.tolist() == list(range(0, 1000, 16)) and names.tolist() == [f"r{i}" for i in range(0, 1000, 16)]
