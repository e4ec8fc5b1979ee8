"""Each optimizer's step worked out by hand (PyTorch's formulas), plus state save/restore."""

import math

import numpy as np
import pytest

from nncli.core.optimizers import OPTIMIZERS, clip_by_global_norm, get_optimizer


def _steps(optimizer, grads, w0=1.0, decay_mask=None):
    """Run the optimizer on one scalar weight with the given gradient sequence."""
    w = np.array([w0])
    for g in grads:
        optimizer.step([w], [np.array([g])])
    return w[0]


def test_plain_sgd():
    assert _steps(get_optimizer("sgd", learning_rate=0.1), [8.0], w0=5.0) == pytest.approx(4.2)


def test_sgd_momentum_and_nesterov():
    # v1 = 1, w = 1 - .1·1 = .9; v2 = .9·1 + 2 = 2.9, w = .9 - .29 = .61
    assert _steps(get_optimizer("sgd", learning_rate=0.1, momentum=0.9), [1.0, 2.0]) == pytest.approx(0.61)
    # Nesterov: step 1 uses g + μv = 1 + .9 = 1.9 → .81; v2 = 2.9, step 2 uses 2 + .9·2.9 = 4.61 → .349
    assert _steps(get_optimizer("sgd", learning_rate=0.1, momentum=0.9, nesterov=True), [1.0, 2.0]) == pytest.approx(0.349)


def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -1.0], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    assert _steps(get_optimizer("adam", learning_rate=lr), [0.5, -1.0]) == pytest.approx(w, rel=1e-12)


def test_adamw_decouples_weight_decay_and_adam_couples_it():
    lr, wd = 0.01, 0.1
    # AdamW, step 1: w ← w − lr·wd·w, then the Adam step of g alone (which is lr·sign(g) at t = 1).
    expected = (1.0 - lr * wd * 1.0) - lr * 0.5 / (0.5 + 1e-8)
    assert _steps(get_optimizer("adamw", learning_rate=lr, weight_decay=wd), [0.5]) == pytest.approx(expected, rel=1e-9)
    # Adam with L2: the gradient becomes g + wd·w = 0.6, and the first step is again lr·sign.
    assert _steps(get_optimizer("adam", learning_rate=lr, weight_decay=wd), [0.5]) == pytest.approx(1.0 - lr, rel=1e-6)


def test_rmsprop_by_hand():
    lr, rho, eps = 0.01, 0.9, 1e-8
    s = (1 - rho) * 4.0
    expected = 1.0 - lr * 2.0 / (math.sqrt(s) + eps)
    assert _steps(get_optimizer("rmsprop", learning_rate=lr), [2.0]) == pytest.approx(expected, rel=1e-12)


def test_weight_decay_skips_biases():
    opt = get_optimizer("sgd", learning_rate=0.5, weight_decay=0.1, decay_mask=[True, False])
    W, b = np.array([2.0]), np.array([2.0])
    opt.step([W, b], [np.array([0.0]), np.array([0.0])])
    assert W[0] == pytest.approx(2.0 - 0.5 * 0.1 * 2.0) and b[0] == 2.0


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_round_trip_continues_identically(name):
    params = {"momentum": 0.9} if name in ("sgd", "rmsprop") else {}
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(6)]
    a = get_optimizer(name, learning_rate=0.05, **params)
    wa = np.ones(3)
    for g in grads[:3]:
        a.step([wa], [g.copy()])
    scalars, arrays = a.state()
    b = get_optimizer(name, learning_rate=999, **params)
    wb = wa.copy()
    b.load_state(scalars, {k: v.copy() for k, v in arrays.items()}, [wb])
    for g in grads[3:]:
        a.step([wa], [g.copy()])
        b.step([wb], [g.copy()])
    assert wa.tobytes() == wb.tobytes()


def test_clip_by_global_norm():
    g1, g2 = np.array([3.0]), np.array([4.0])
    assert clip_by_global_norm([g1, g2], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([g1[0], g2[0]], [0.6, 0.8])
    g3 = np.array([0.3])
    clip_by_global_norm([g3], 1.0)
    assert g3[0] == 0.3  # under the limit: untouched
