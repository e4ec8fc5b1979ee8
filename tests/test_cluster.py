"""`nncli cluster` and `nncli predict clusters.npz` through typer's CliRunner, plus one real
run of the installed entry point."""

import csv
import io
import json
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.errors import ModelFileError
from nncli.files.clusters import load_clusters
from tests.conftest import CONFIGS, DATASETS

runner = CliRunner()
DIGITS = DATASETS / "digits.csv"


def run(*args):
    return runner.invoke(app, [*map(str, args)])


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def blobs(write):
    """Three tight groups of 20 rows around (0, 0), (10, 0), (0, 10), with an id and a label."""
    rng = np.random.default_rng(0)
    lines = ["id,x,y,group"]
    for i in range(60):
        g = i % 3
        x, y = np.array([(0, 0), (10, 0), (0, 10)][g]) + rng.normal(0, 0.3, 2)
        lines.append(f"r{i},{x:.4f},{y:.4f},{'abc'[g]}")
    return write("blobs.csv", "\n".join(lines) + "\n")


def test_rows_get_their_cluster_and_the_report_goes_to_stderr(blobs):
    result = run("cluster", blobs, "--k", "3", "--keep", "id", "--labels", "group")
    assert result.exit_code == 0, result.stderr
    out = rows(result.stdout)
    assert list(out[0]) == ["id", "cluster"] and len(out) == 60
    by_group = {}
    for i, row in enumerate(out):
        by_group.setdefault("abc"[i % 3], set()).add(row["cluster"])
    assert all(len(clusters) == 1 for clusters in by_group.values())  # each group one cluster
    assert len(set().union(*by_group.values())) == 3
    assert "adjusted Rand index 1.0000" in result.stderr and "purity 1.0000" in result.stderr


def test_json_report_with_a_scan_picks_the_best_silhouette(blobs, tmp_path):
    out = tmp_path / "clusters.csv"
    result = run("cluster", blobs, "--k", "2..5", "--ignore", "id,group", "--json", "-o", out)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["k"] == 3 and report["chosen_by"] == "silhouette"
    assert [p["k"] for p in report["scan"]] == [2, 3, 4, 5]
    best = max(report["scan"], key=lambda p: p["silhouette"])
    assert best["k"] == 3 and report["silhouette"] == best["silhouette"]
    assert sum(report["sizes"]) == 60
    assert len(rows(out.read_text())) == 60


def test_json_without_output_prints_the_report_alone(blobs):
    result = run("cluster", blobs, "--k", "3", "--ignore", "id,group", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["rows"] == 60


def test_the_same_k_in_a_scan_or_alone_is_the_same_clustering(blobs):
    alone = run("cluster", blobs, "--k", "4", "--ignore", "id,group", "--json")
    scan = run("cluster", blobs, "--k", "2..4", "--ignore", "id,group", "--json")
    point = json.loads(scan.stdout)["scan"][-1]
    assert point["inertia"] == json.loads(alone.stdout)["inertia"]


def test_saved_clusters_assign_new_rows_as_the_clustering_did(blobs, tmp_path):
    saved = tmp_path / "c.npz"
    first = run("cluster", blobs, "--k", "3", "--keep", "id", "--ignore", "group", "--save", saved)
    assert first.exit_code == 0, first.stderr
    again = run("predict", saved, blobs, "--keep", "id")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == first.stdout
    clusters = load_clusters(saved)
    assert clusters.centroids.shape == (3, 2) and clusters.features == ["x", "y"]
    assert clusters.model is None and clusters.scaler.method == "standard"


def test_a_model_s_codes_can_be_clustered_and_saved(tmp_path):
    model = tmp_path / "iris.npz"
    trained = run("train", CONFIGS / "iris.yaml", "-o", model, "--quiet", "--set", "training.epochs=5")
    assert trained.exit_code == 0, trained.stderr
    saved = tmp_path / "c.npz"
    result = run("cluster", model, DATASETS / "iris.csv", "--k", "3", "--labels", "species", "--save", saved, "--json", "-o", tmp_path / "c.csv")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dimensions"] == 16 and report["scores"]["ari"] > 0.4
    assert load_clusters(saved).model.layer == 1
    assigned = run("predict", saved, DATASETS / "iris.csv")
    assert assigned.exit_code == 0, assigned.stderr
    assert assigned.stdout == (tmp_path / "c.csv").read_text()
    # a changed model no longer gives the codes the centroids were made from
    model.write_bytes(model.read_bytes() + b"\0")
    changed = run("predict", saved, DATASETS / "iris.csv")
    assert changed.exit_code == 2 and "has changed" in changed.stderr


@pytest.mark.parametrize("args, message", [
    (["--k", "0"], "at least 1"),
    (["--k", "61", "--ignore", "id,group"], "61 clusters but only 60 rows"),
    (["--k", "5..2"], "a range must go up"),
    (["--k", "ten"], "expected a number of clusters"),
    (["--k", "3", "--labels", "nope"], "--labels column 'nope' is not in the file"),
    (["--k", "3", "--ignore", "id"], "'a' is not a number; cluster takes numeric columns: --ignore group leaves it out"),
    (["--k", "3", "--scale", "log"], "--scale log"),
    (["--k", "3", "--layer", "1", "--ignore", "id,group"], "--layer picks a model's layer"),
])
def test_bad_input_is_one_line_and_exit_2(blobs, args, message):
    result = run("cluster", blobs, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_constant_data_is_refused(write):
    data = write("same.csv", "a,b\n1,2\n1,2\n1,2\n")
    result = run("cluster", data, "--k", "2")
    assert result.exit_code == 2 and "every row has the same values" in result.stderr


def test_a_missing_cell_is_named(write):
    data = write("gap.csv", "a,b\n1,2\n3,\n5,6\n")
    result = run("cluster", data, "--k", "2")
    assert result.exit_code == 2 and "gap.csv:3" in result.stderr


def test_a_clusters_file_with_a_bad_scaler_is_refused(blobs, tmp_path):
    saved = tmp_path / "c.npz"
    assert run("cluster", blobs, "--k", "2", "--ignore", "id,group", "--save", saved, "--json").exit_code == 0
    with np.load(saved, allow_pickle=False) as archive:
        meta, centroids = json.loads(str(archive["meta"])), archive["centroids"]
    meta["scaler"]["scale"] = [0.0, 1.0]
    np.savez(saved, meta=np.array(json.dumps(meta)), centroids=centroids)
    with pytest.raises(ModelFileError, match="zero scale"):
        load_clusters(saved)
    result = run("predict", saved, blobs)
    assert result.exit_code == 2 and "zero scale" in result.stderr


def test_digits_match_the_classes_about_as_scikit_learn_does():
    result = run("cluster", DIGITS, "--k", "10", "--labels", "label", "--scale", "none", "--json")
    scores = json.loads(result.stdout)["scores"]
    assert scores["ari"] > 0.6 and scores["nmi"] > 0.7  # scikit-learn, mean of 5 seeds: 0.668, 0.742


def test_installed_entry_point(blobs):
    done = subprocess.run(["nncli", "cluster", str(blobs), "--k", "3", "--ignore", "group", "--keep", "id"],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("id,cluster\n")
    assert "inertia" in done.stderr
    bad = subprocess.run(["nncli", "cluster", str(blobs), "--k", "0"], check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("nncli: error: ") and bad.stderr.count("\n") == 1
