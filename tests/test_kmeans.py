"""k-means and the clustering scores: a case worked by hand, scikit-learn's results on
digits, reproducibility, bounded-memory blocks, empty clusters."""

from pathlib import Path

import numpy as np
import pytest

from nncli.core.cluster_scores import adjusted_rand_index, normalized_mutual_info, purity, sample_rows, silhouette
from nncli.core.kmeans import assign, kmeans, kmeans_plus_plus, lloyd

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

DIGITS = Path(__file__).resolve().parent.parent / "datasets" / "digits.csv"


@pytest.fixture(scope="module")
def digits():
    table = np.loadtxt(DIGITS, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def test_two_pairs_worked_by_hand():
    # Two pairs of points 10 apart: the centroids are the pairs' midpoints, each point 0.5
    # from its own, so the inertia is 4 × 0.5² = 1.
    X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    result = kmeans(X, 2, np.random.default_rng(0), n_init=3)
    order = np.argsort(result.centroids[:, 0])
    np.testing.assert_allclose(result.centroids[order], [[0.0, 0.5], [10.0, 0.5]])
    assert result.inertia == pytest.approx(1.0)
    assert result.labels[0] == result.labels[1] != result.labels[2] == result.labels[3]
    assert result.sizes.tolist() == [2, 2]


def test_one_lloyd_step_by_hand():
    # Seeds at 0 and 4 on a line of 0, 1, 3, 4, 9: rows 0, 1 go to the first, 3, 4, 9 to the
    # second; the means are 0.5 and 16/3, and the second step moves no row (3 is 2.5 from 0.5,
    # 7/3 from 16/3), so those are the centroids. Inertia: 2 × 0.5² + (7² + 4² + 11²) / 3².
    X = np.array([[0.0], [1.0], [3.0], [4.0], [9.0]])
    result = lloyd(X, np.array([[0.0], [4.0]]), 100, 0.0, 2, np.einsum("ij,ij->i", X, X))
    np.testing.assert_allclose(result.centroids.ravel(), [0.5, 16 / 3])
    assert result.labels.tolist() == [0, 0, 1, 1, 1]
    assert result.inertia == pytest.approx(0.5 + 186 / 9)
    assert result.iterations == 2


def test_inertia_and_ari_match_scikit_learn_on_digits(digits):
    X, y = digits
    ours = [kmeans(X, 10, np.random.default_rng(seed), n_init=10) for seed in range(3)]
    theirs = [KMeans(10, n_init=10, random_state=seed).fit(X) for seed in range(3)]
    ratio = np.mean([r.inertia for r in ours]) / np.mean([t.inertia_ for t in theirs])
    assert abs(ratio - 1) < 0.01
    ari = np.mean([adjusted_rand_score(y, r.labels) for r in ours])
    assert abs(ari - np.mean([adjusted_rand_score(y, t.labels_) for t in theirs])) < 0.02


def test_same_seed_same_bits(digits):
    X, _ = digits
    a = kmeans(X, 8, np.random.default_rng(7), n_init=3)
    b = kmeans(X, 8, np.random.default_rng(7), n_init=3)
    assert a.centroids.tobytes() == b.centroids.tobytes()
    assert np.array_equal(a.labels, b.labels) and a.inertia == b.inertia


def test_blocks_of_rows_change_nothing_but_rounding(digits):
    X, _ = digits
    small = kmeans(X, 10, np.random.default_rng(1), n_init=2, chunk_rows=100)
    whole = kmeans(X, 10, np.random.default_rng(1), n_init=2, chunk_rows=len(X))
    assert np.array_equal(small.labels, whole.labels)
    assert small.iterations == whole.iterations
    np.testing.assert_allclose(small.centroids, whole.centroids, rtol=1e-12, atol=1e-12)
    assert small.inertia == pytest.approx(whole.inertia, rel=1e-12)


def test_an_empty_cluster_is_reseeded_at_the_farthest_row():
    X = np.array([[0.0], [1.0], [10.0], [12.0]])
    # The third seed is far from every row: it would end empty; it takes the farthest row
    # from its centroid instead (12, 1 from the mean 11 of 10 and 12).
    result = lloyd(X, np.array([[0.5], [11.0], [100.0]]), 100, 0.0, 3, np.einsum("ij,ij->i", X, X))
    assert (result.sizes > 0).all()
    assert sorted(result.centroids.ravel().tolist()) == [0.5, 10.0, 12.0]
    assert result.inertia == pytest.approx(0.5)


def test_fewer_distinct_rows_than_k_still_gives_k_centroids():
    X = np.array([[1.0, 1.0]] * 5 + [[2.0, 2.0]] * 5)
    result = kmeans(X, 3, np.random.default_rng(0), n_init=2)
    assert len(result.centroids) == 3 and result.inertia == pytest.approx(0.0)


def test_k_plus_plus_seeds_are_rows(digits):
    X, _ = digits
    seeds = kmeans_plus_plus(X, 5, np.random.default_rng(0))
    assert all((X == seed).all(axis=1).any() for seed in seeds)


@pytest.mark.parametrize("k", [0, 11])
def test_k_outside_1_to_rows_is_refused(k):
    with pytest.raises(ValueError, match="between 1 and the number of rows"):
        kmeans(np.zeros((10, 2)), k, np.random.default_rng(0))


def test_assign_matches_brute_force(digits):
    X, _ = digits
    centroids = X[:7]
    labels, distances = assign(X, centroids, chunk_rows=333)
    brute = ((X[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    assert np.array_equal(labels, brute.argmin(axis=1))
    np.testing.assert_allclose(distances, brute.min(axis=1), atol=1e-8)


def test_scores_match_scikit_learn(digits):
    X, y = digits
    predicted = kmeans(X, 10, np.random.default_rng(0), n_init=2).labels
    assert adjusted_rand_index(y, predicted) == pytest.approx(adjusted_rand_score(y, predicted), abs=1e-12)
    assert normalized_mutual_info(y, predicted) == pytest.approx(normalized_mutual_info_score(y, predicted), abs=1e-12)
    rows = sample_rows(len(X), 500, np.random.default_rng(0))
    assert silhouette(X[rows], predicted[rows]) == pytest.approx(silhouette_score(X[rows], predicted[rows]), abs=1e-9)


def test_scores_on_small_cases():
    truth = np.array(["a", "a", "b", "b", "b", "c"])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(truth, predicted) == pytest.approx(adjusted_rand_score(truth, predicted))
    assert normalized_mutual_info(truth, predicted) == pytest.approx(normalized_mutual_info_score(truth, predicted))
    assert purity(truth, predicted) == pytest.approx(5 / 6)  # cluster 2 holds one b and one c
    assert adjusted_rand_index(truth, truth) == 1.0 and normalized_mutual_info(predicted, predicted) == pytest.approx(1.0)
    assert adjusted_rand_index(np.zeros(4), np.zeros(4)) == 1.0
    X = np.array([[0.0], [0.1], [5.0], [5.2], [9.0]])
    labels = np.array([0, 0, 1, 1, 2])  # a singleton cluster counts 0
    assert silhouette(X, labels) == pytest.approx(silhouette_score(X, labels))
