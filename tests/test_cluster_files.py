"""Clusters files where a model or a picture is expected, and cluster's report: `plot CLUSTERS
DATA --codes` (the refined codes, coloured by cluster), the one line inspect / embed give for a
clusters file, `cluster --save` refusing to replace a file without --force, the report's
wording, and Parquet piped into predict's stdin."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.plot import PlotRequest, plot
from nncli.files.clusters import load_clusters
from tests.conftest import three_groups_csv

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, [*map(str, args)], **kwargs)


def clusters_column(text: str) -> list[str]:
    return [row["cluster"] for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """60 rows in three groups, a tiny autoencoder trained on them, and three clusters files:
    of its codes refined, of its codes as they are, and of the rows' own columns."""
    folder = tmp_path_factory.mktemp("clusters")
    data = three_groups_csv(folder / "rows.csv")
    (folder / "ae.yaml").write_text(textwrap.dedent("""
        seed: 1
        data: {train: rows.csv, target: inputs, drop: [id, group], normalize: minmax}
        model: {layers: [auto, 8, 2, 8, auto], activation: [tanh, identity, tanh]}
        training: {loss: mse, optimizer: adam, learning_rate: 0.01, epochs: 30, batch_size: 16}
        output: ae.npz
        """))
    assert run("train", folder / "ae.yaml", "--quiet").exit_code == 0
    model = folder / "ae.npz"
    files = {"model": model, "data": data, "refined": folder / "refined.npz", "codes": folder / "codes.npz",
             "features": folder / "features.npz"}
    for args in ([model, data, "--k", "3", "--refine", "--refine-epochs", "20", "--save", files["refined"]],
                 [model, data, "--k", "3", "--save", files["codes"]],
                 [data, "--k", "3", "--ignore", "id,group", "--save", files["features"]]):
        result = run("cluster", *args, "--quiet")
        assert result.exit_code == 0, result.stderr
    return files


def codes_picture(first, data, **options):
    return plot(PlotRequest([str(first), str(data)], terminal=True, codes=True, **options)).picture


# --- 1. plot CLUSTERS DATA --codes -------------------------------------------------------------------
def test_plotting_refined_clusters_draws_the_refined_codes_coloured_by_cluster(made):
    picture = codes_picture(made["refined"], made["data"])
    assert "refined (refined.npz)" in picture.title and picture.layer == 2
    assigned = run("predict", made["refined"], made["data"])
    assert assigned.exit_code == 0, assigned.stderr
    # every row is shown (60 < the sample's size), each coloured by the cluster predict gives it
    assert picture.labels_column == "cluster" and picture.labels == clusters_column(assigned.stdout)
    assert sorted({name for name, _ in picture.groups()}) == ["0", "1", "2"]
    # through the refined encoder: not the model's own codes (2 neurons: the points are the codes)
    own = codes_picture(made["model"], made["data"])
    assert own.points.shape == picture.points.shape and not np.allclose(own.points, picture.points)
    encoder = load_clusters(made["refined"]).encoder
    assert not np.array_equal(encoder[0][0], np.load(made["model"])["W1"])


def test_plotting_unrefined_clusters_draws_the_model_s_codes_and_labels_win(made):
    picture = codes_picture(made["codes"], made["data"])
    own = codes_picture(made["model"], made["data"])
    assert "refined" not in picture.title and np.array_equal(picture.points, own.points)
    assert picture.labels == clusters_column(run("predict", made["codes"], made["data"]).stdout)
    labelled = codes_picture(made["refined"], made["data"], labels="group")
    assert labelled.labels_column == "group" and labelled.labels[:3] == ["x", "y", "z"]


def test_plotting_clusters_of_a_file_s_columns_says_what_would_work(made):
    result = run("plot", made["features"], made["data"], "--codes", "--terminal")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "a clusters file (nncli cluster --save) has centroids" in result.stderr
    assert "`nncli plot MODEL DATA --codes`" in result.stderr and f"`nncli predict {made['features']} DATA`" in result.stderr
    other = run("plot", made["refined"], made["data"], "--codes", "--layer", "1", "--terminal")
    assert other.exit_code == 2 and "holds clusters of the codes at layer 2" in other.stderr


# --- 2. a clusters file where a model belongs ----------------------------------------------------------
@pytest.mark.parametrize("command", ["inspect", "embed", "evaluate"])
def test_a_clusters_file_given_as_a_model_is_named_as_one(made, command):
    data = [] if command == "inspect" else [made["data"]]
    for name, described in (("refined", "3 centroids over 2 codes at layer 2 of "),
                            ("features", "3 centroids over 4 features;")):
        result = run(command, made[name], *data)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
        assert f"{made[name]} is a clusters file (nncli cluster --save): {described}" in result.stderr
        assert f"`nncli predict {made[name]} DATA` assigns rows to them" in result.stderr
    assert ", refined;" in run(command, made["refined"], *data).stderr
    assert "refined" not in run(command, made["codes"], *data).stderr


# --- 3. cluster --save never replaces a file silently ------------------------------------------------------
def test_save_refuses_an_existing_file_before_any_work_unless_forced(made, tmp_path):
    saved, out = tmp_path / "c.npz", tmp_path / "rows.csv"
    saved.write_bytes(b"precious")
    args = ("cluster", made["data"], "--k", "3", "--ignore", "id,group", "--save", saved, "-o", out)
    refused = run(*args)
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert f"{saved}: already exists; nncli cluster does not overwrite it (--force replaces it)" in refused.stderr
    assert saved.read_bytes() == b"precious" and not out.exists()  # nothing was clustered or written
    forced = run(*args, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert load_clusters(saved).centroids.shape == (3, 4)
    # -o replaces its CSV as predict's -o does (rows, not a model); --save still wants --force
    out.write_text("old\n")
    again = run("cluster", made["data"], "--k", "3", "--ignore", "id,group", "-o", out)
    assert again.exit_code == 0 and clusters_column(out.read_text())


@pytest.mark.parametrize("target, message", [("data", "is an input file"), ("output", "is also --output")])
def test_save_is_neither_an_input_nor_the_output(made, tmp_path, target, message):
    save = made["data"] if target == "data" else tmp_path / "same.csv"
    result = run("cluster", made["data"], "--k", "3", "--ignore", "id,group", "--save", save, "-o", tmp_path / "same.csv", "--force")
    assert result.exit_code == 2 and message in result.stderr
    assert made["data"].read_text().startswith("id,a,b")


# --- 4. the report's wording ------------------------------------------------------------------------------------
def test_the_report_says_not_scaled_and_counts_steps_and_passes(made):
    plain = run("cluster", made["data"], "--k", "3", "--ignore", "id,group", "--scale", "none", "-o", "/dev/null")
    assert "k-means on 60 rows, 4 features, not scaled\n" in plain.stderr
    assert "4 features, standard scaling" in run("cluster", made["data"], "--k", "3", "--ignore", "id,group", "-o", "/dev/null").stderr
    # 60 rows are one batch of 256: a pass is one step, and 3 passes end before the first 8-step target update
    refined = run("cluster", made["model"], made["data"], "--k", "3", "--refine", "--refine-epochs", "3", "-o", "/dev/null")
    assert refined.exit_code == 0, refined.stderr
    assert "refined in 3 steps (3 passes; " in refined.stderr
    report = json.loads(run("cluster", made["model"], made["data"], "--k", "3", "--refine", "--refine-epochs", "3", "--json").stdout)
    assert report["refine"]["iterations"] == 3 and report["refine"]["passes"] == 3


@pytest.mark.parametrize("k, hint", [
    ("2..3", "best silhouette at k = 3: using it (the top of the range: try larger k)\n"),
    ("3..6", "best silhouette at k = 3: using it (the bottom of the range: try smaller k)\n"),
    ("2..5", "best silhouette at k = 3: using it\n"),
])
def test_a_scan_s_best_k_at_an_end_of_the_range_says_so(made, k, hint):
    result = run("cluster", made["data"], "--k", k, "--ignore", "id,c,d,group", "-o", "/dev/null")
    assert result.exit_code == 0 and hint in result.stderr, result.stderr


def test_a_best_k_of_2_at_the_bottom_asks_for_nothing_smaller(write):
    rows = ["x"] + [str(v) for v in (0.0, 0.1, 0.2, 9.0, 9.1, 9.2)]
    result = run("cluster", write("two.csv", "\n".join(rows) + "\n"), "--k", "2..3", "-o", "/dev/null")
    assert "best silhouette at k = 2: using it\n" in result.stderr, result.stderr


# --- 5. Parquet on stdin ----------------------------------------------------------------------------------------
def test_parquet_piped_to_predict_is_named_as_parquet(made, tmp_path):
    parquet = tmp_path / "rows.parquet"
    assert run("predict", made["model"], made["data"], "--keep", "a", "-o", parquet).exit_code == 0
    assert parquet.read_bytes()[:4] == b"PAR1"
    expected = "nncli: error: <stdin>: standard input holds a Parquet file; give its path instead (stdin is read as CSV)\n"
    result = run("predict", made["model"], "-", input=parquet.read_bytes())
    assert result.exit_code == 2 and result.stderr == expected
    # a real pipe (peeked, not consumed) through the installed entry point
    with parquet.open("rb") as stdin:
        process = subprocess.run(["nncli", "predict", str(made["model"]), "-"], stdin=stdin, capture_output=True, text=True)
    assert process.returncode == 2 and process.stderr == expected and process.stdout == ""
