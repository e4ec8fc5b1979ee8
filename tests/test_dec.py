"""Deep embedded clustering (core/dec.py) and `nncli cluster MODEL DATA --refine`: the KL loss's
gradients against central differences, refinement sharpening a poor encoder's clusters, bit
reproducibility, the refined encoder saved and used by `predict`, and bad input."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.core.cluster_scores import adjusted_rand_index
from nncli.core.dec import (
    encoder_loss_and_gradients,
    kl_gradients,
    kl_loss,
    refine,
    soft_assignment,
    target_distribution,
)
from nncli.core.kmeans import kmeans
from nncli.core.network import MLP
from nncli.errors import ModelFileError
from nncli.files.clusters import load_clusters
from tests.conftest import three_groups_csv
from tests.gradcheck import numerical_gradient

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [*map(str, args)])


def test_soft_assignment_and_target_are_distributions_and_the_target_is_sharper():
    rng = np.random.default_rng(0)
    Z, mu = rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
    Q = soft_assignment(Z, mu)
    P = target_distribution(Q)
    assert np.allclose(Q.sum(axis=1), 1) and np.allclose(P.sum(axis=1), 1)
    # q of one row by hand: (1 + d²)^-1 normalised (α = 1)
    d2 = ((Z[0] - mu) ** 2).sum(axis=1)
    assert np.allclose(Q[0], (1 / (1 + d2)) / (1 / (1 + d2)).sum())
    # p of one row by hand: q² over the cluster's soft size f_j = Σ_i q_ij, normalised
    f = Q.sum(axis=0)
    assert np.allclose(P[0], (Q[0] ** 2 / f) / (Q[0] ** 2 / f).sum())
    assert kl_loss(Q, Q) == pytest.approx(0.0, abs=1e-15) and kl_loss(P, Q) > 0


def test_kl_gradients_in_codes_and_centroids_match_central_differences():
    rng = np.random.default_rng(1)
    Z, mu = rng.normal(size=(12, 3)), rng.normal(size=(4, 3))
    P = target_distribution(soft_assignment(rng.normal(size=(12, 3)), mu))  # fixed, as between updates

    def loss():
        return kl_loss(P, soft_assignment(Z, mu))

    dZ, dmu = kl_gradients(Z, mu, P)
    assert np.allclose(dZ, numerical_gradient(loss, Z), rtol=1e-6, atol=1e-9)
    assert np.allclose(dmu, numerical_gradient(loss, mu), rtol=1e-6, atol=1e-9)


def test_gradients_through_the_encoder_and_its_scaling_match_central_differences():
    rng = np.random.default_rng(2)
    encoder = MLP.initialise([5, 7, 3], ["tanh", "identity"], rng, dtype=np.float64, init="xavier")
    X, mu = rng.normal(size=(9, 5)), rng.normal(size=(4, 3))
    offset, scale = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    P = target_distribution(soft_assignment(rng.normal(size=(9, 3)), mu))

    def loss():
        return kl_loss(P, soft_assignment((encoder.forward(X) - offset) / scale, mu))

    value, dmu = encoder_loss_and_gradients(encoder, X, mu, P, offset, scale)
    assert value == pytest.approx(loss(), rel=1e-12)
    analytic = [g.copy() for g in encoder.gradients()]
    for parameter, gradient in zip(encoder.parameters(), analytic):
        assert np.allclose(gradient, numerical_gradient(loss, parameter), rtol=1e-5, atol=1e-9)
    assert np.allclose(dmu, numerical_gradient(loss, mu), rtol=1e-6, atol=1e-9)


def _blobs_and_a_poor_encoder(seed: int):
    """Three groups in two informative columns plus six noise columns, and a random tanh
    encoder to two codes, which mixes the noise in: k-means on its codes half finds the groups."""
    rng = np.random.default_rng(seed)
    n = 300
    truth = np.repeat(np.arange(3), n // 3)
    centres = np.array([[0, 0], [4, 0], [2, 3.5]])
    X = np.column_stack([centres[truth] + rng.normal(0, 0.7, (n, 2)), rng.normal(0, 0.5, (n, 6))])
    weights = [np.random.default_rng(100 + seed).normal(0, 0.5, (8, 8)), np.random.default_rng(200 + seed).normal(0, 0.5, (8, 2))]
    encoder = MLP(weights, [np.zeros(8), np.zeros(2)], ["tanh", "identity"])
    codes = encoder.forward(X)
    offset, scale = codes.mean(axis=0), codes.std(axis=0)
    start = kmeans((codes - offset) / scale, 3, np.random.default_rng(0), n_init=10)
    return X, truth, encoder, start, offset, scale


def _refined(seed: int):
    X, truth, encoder, start, offset, scale = _blobs_and_a_poor_encoder(seed)
    result = refine(encoder, X, start.centroids, np.random.default_rng(0), offset=offset, scale=scale,
                    epochs=100, batch_size=32, learning_rate=0.01)
    return truth, start, encoder, result


@pytest.mark.parametrize("seed", [0, 4, 5])
def test_refinement_increases_agreement_with_the_true_groups(seed):
    X, _, poor, _, offset, scale = _blobs_and_a_poor_encoder(seed)
    truth, start, encoder, result = _refined(seed)
    before, after = adjusted_rand_index(truth, start.labels), adjusted_rand_index(truth, result.labels)
    assert after > before + 0.09, (before, after)  # measured: 0.23 → 0.39, 0.35 → 0.53, 0.22 → 0.43
    assert result.converged and result.changed < 1e-3
    assert result.updates[0].iteration == 0 and result.updates[-1].iteration == result.iterations
    # the codes sharpened: their soft assignments are more confident than at the k-means start
    confidence_before = soft_assignment((poor.forward(X) - offset) / scale, start.centroids).max(axis=1).mean()
    confidence_after = soft_assignment((encoder.forward(X) - offset) / scale, result.centroids).max(axis=1).mean()
    assert confidence_after > confidence_before + 0.05, (confidence_before, confidence_after)


def test_refinement_is_bit_reproducible():
    _, _, first_encoder, first = _refined(0)
    _, _, second_encoder, second = _refined(0)
    assert first.centroids.tobytes() == second.centroids.tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first_encoder.parameters(), second_encoder.parameters()))
    assert (first.labels == second.labels).all() and first.iterations == second.iterations


def test_refine_stops_after_its_epochs_and_refuses_none():
    X, _, encoder, start, offset, scale = _blobs_and_a_poor_encoder(0)
    result = refine(encoder, X, start.centroids, np.random.default_rng(0), offset=offset, scale=scale,
                    epochs=2, batch_size=100, update_interval=3, tol=0.0)
    assert result.iterations == 6 and not result.converged and len(result.updates) == 3
    with pytest.raises(ValueError, match="epochs"):
        refine(encoder, X, start.centroids, np.random.default_rng(0), offset=offset, scale=scale, epochs=0)


def test_one_batch_per_pass_still_takes_several_steps_before_the_first_target_update():
    """Found by an attacker: 150 iris rows are one batch, so the first update came after a
    single step, found nothing changed and stopped as 'converged' without refining."""
    from nncli.core.dec import MIN_UPDATE_STEPS

    X, _, encoder, start, offset, scale = _blobs_and_a_poor_encoder(0)
    result = refine(encoder, X, start.centroids, np.random.default_rng(0), offset=offset, scale=scale,
                    epochs=50, batch_size=len(X))
    assert result.updates[1].iteration == MIN_UPDATE_STEPS > 1
    assert result.iterations >= MIN_UPDATE_STEPS


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def rows_and_autoencoder(write, tmp_path):
    """60 rows in three groups of 4 columns, and a tiny autoencoder trained on them."""
    data = three_groups_csv(tmp_path / "rows.csv")
    config = write("ae.yaml", """
        seed: 1
        data: {train: rows.csv, target: inputs, drop: [id, group], normalize: minmax}
        model: {layers: [auto, 8, 2, 8, auto], activation: [tanh, identity, tanh]}
        training: {loss: mse, optimizer: adam, learning_rate: 0.01, epochs: 30, batch_size: 16}
        output: ae.npz
        """)
    trained = run("train", config, "--quiet")
    assert trained.exit_code == 0, trained.stderr
    return data, tmp_path / "ae.npz"


def test_refine_reports_and_saves_the_encoder_that_predict_uses(rows_and_autoencoder, tmp_path):
    data, model = rows_and_autoencoder
    saved, out = tmp_path / "c.npz", tmp_path / "c.csv"
    result = run("cluster", model, data, "--k", "3", "--labels", "group", "--keep", "id", "--refine",
                 "--refine-epochs", "30", "--save", saved, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    refined = report["refine"]
    assert refined["iterations"] >= 1 and 0 <= refined["changed"] <= 1 and refined["epochs"] == 30
    assert set(refined["scores_before"]) == {"ari", "nmi", "purity"} and set(report["scores"]) == {"ari", "nmi", "purity"}
    assert refined["updates"][-1]["iteration"] == refined["iterations"]
    clusters = load_clusters(saved)
    assert clusters.encoder is not None and [W.shape for W, _ in clusters.encoder] == [(4, 8), (8, 2)]
    with np.load(saved, allow_pickle=False) as archive:
        assert json.loads(str(archive["meta"]))["format_version"] == 2
    # the refined encoder differs from the model's own: predict must use it to give the same clusters
    assigned = run("predict", saved, data, "--keep", "id")
    assert assigned.exit_code == 0, assigned.stderr
    assert assigned.stdout == out.read_text()
    assert [int(r["cluster"]) for r in csv.DictReader(io.StringIO(assigned.stdout))].count(0) == report["sizes"][0]


def test_refine_is_reproducible_from_the_command_line(rows_and_autoencoder):
    data, model = rows_and_autoencoder
    args = ("cluster", model, data, "--k", "3", "--ignore", "group", "--refine", "--refine-epochs", "10", "--json")
    first, second = run(*args), run(*args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout


def test_unrefined_clusters_files_stay_version_1(rows_and_autoencoder, tmp_path):
    data, model = rows_and_autoencoder
    saved = tmp_path / "c.npz"
    assert run("cluster", model, data, "--k", "3", "--save", saved, "--json").exit_code == 0
    with np.load(saved, allow_pickle=False) as archive:
        assert json.loads(str(archive["meta"]))["format_version"] == 1
    assert load_clusters(saved).encoder is None


def test_a_refined_file_whose_encoder_does_not_fit_is_refused(rows_and_autoencoder, tmp_path):
    data, model = rows_and_autoencoder
    saved = tmp_path / "c.npz"
    assert run("cluster", model, data, "--k", "3", "--refine", "--refine-epochs", "2", "--save", saved, "--json").exit_code == 0
    with np.load(saved, allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    meta = json.loads(str(members["meta"]))
    meta["encoder"]["sizes"] = [4, 8, 3]  # no longer ends at the 2 codes the centroids are in
    np.savez(saved, **{**members, "meta": np.array(json.dumps(meta))})
    with pytest.raises(ModelFileError, match="do not lead to the 2 codes"):
        load_clusters(saved)
    meta["encoder"]["sizes"], meta["format_version"] = [4, 8, 2], 1  # an encoder in a version-1 file
    np.savez(saved, **{**members, "meta": np.array(json.dumps(meta))})
    result = run("predict", saved, data)
    assert result.exit_code == 2 and "format version 2" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--k", "3", "--refine"], "--refine retrains a model's encoder: give MODEL DATA"),
    (["--k", "3", "--refine-epochs", "5"], "--refine-epochs applies to --refine"),
])
def test_refine_without_a_model_is_one_line_and_exit_2(rows_and_autoencoder, args, message):
    data, _ = rows_and_autoencoder
    result = run("cluster", data, "--ignore", "id,group", *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--k", "3", "--refine", "--refine-epochs", "0"], "--refine-epochs 0: expected at least 1"),
    (["--k", "61", "--refine"], "61 clusters but only 60 rows"),
    (["--k", "2..4", "--refine"], "--refine takes one number of clusters"),
])
def test_bad_refine_input_is_one_line_and_exit_2(rows_and_autoencoder, args, message):
    data, model = rows_and_autoencoder
    result = run("cluster", model, data, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_progress_is_a_line_per_target_update_at_a_terminal_only():
    from rich.console import Console

    from nncli.core.dec import TargetUpdate
    from nncli.render import refine_progress

    assert refine_progress(Console(file=io.StringIO())) is None  # a file or a pipe: the report says how it ended
    screen = io.StringIO()
    on_update = refine_progress(Console(file=screen, force_terminal=True, width=200))
    on_update(TargetUpdate(iteration=8, loss=0.0123, changed=0.25))
    on_update(TargetUpdate(iteration=16, loss=0.01, changed=0.0005))
    lines = screen.getvalue().splitlines()
    assert lines == ["refine: step 8, KL 0.0123, 25.00 % of rows changed cluster",
                     "refine: step 16, KL 0.0100, 0.05 % of rows changed cluster"]


def test_codes_are_computed_in_blocks_of_rows_with_the_same_result(monkeypatch):
    """Found in review: the codes of every row were computed at once, keeping every layer's
    activations for all rows (gigabytes for a million rows)."""
    import nncli.core.dec as dec

    _, _, _, whole = _refined(0)
    monkeypatch.setattr(dec, "FORWARD_BLOCK_VALUES", 64)  # a few rows at a time
    _, _, _, blocked = _refined(0)
    assert np.array_equal(whole.labels, blocked.labels) and whole.iterations == blocked.iterations
    assert np.allclose(whole.centroids, blocked.centroids, rtol=1e-6, atol=1e-9)
