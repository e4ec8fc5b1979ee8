import numpy as np
import pytest

from nncli.core.metrics import RunningAccuracy, RunningR2, accuracy, r2_score


def test_accuracy():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([[1, 0], [1, 0], [1, 0]])
    assert accuracy(p, y) == pytest.approx(2 / 3)


def test_r2_matches_the_definition_and_sklearn_conventions():
    y = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    p = np.array([[1.5, 5.0], [2.0, 5.0], [2.5, 5.0]])
    first = 1 - 0.5 / 2.0
    assert r2_score(p, y) == pytest.approx((first + 1.0) / 2)  # constant column predicted exactly: 1
    assert r2_score(p + [0, 1], y) == pytest.approx((first + 0.0) / 2)  # ... and missed: 0
    assert r2_score(np.array([[3.0]]), np.array([[6.0]])) is None  # one row: undefined


def test_running_metrics_equal_the_whole_array_versions():
    rng = np.random.default_rng(0)
    p, y = rng.random((10, 3)), np.eye(3)[rng.integers(0, 3, 10)]
    running = RunningAccuracy(y)
    running_r2 = RunningR2(y)
    for start in range(0, 10, 4):
        running.update(p[start : start + 4], y[start : start + 4])
        running_r2.update(p[start : start + 4], y[start : start + 4])
    assert running.result() == pytest.approx(accuracy(p, y))
    assert running_r2.result() == pytest.approx(r2_score(p, y))
