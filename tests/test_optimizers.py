"""Each optimizer's step worked out by hand (PyTorch's formulas), plus state save/restore."""

import math

import numpy as np
import pytest

from nncli.core.losses import get_loss
from nncli.core.network import MLP
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


def _batch_and_network(seed=0):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((16, 5)), np.eye(3)[rng.integers(0, 3, 16)]
    return X, Y, MLP.initialise([5, 7, 3], ["tanh", "softmax"], np.random.default_rng(seed + 1), dtype=np.float64)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_minimize_is_backprop_then_the_optimizers_step(name):
    """The trainer's one update path: minimize() equals gradients first, then step()."""
    X, Y, via_minimize = _batch_and_network()
    _, _, by_hand = _batch_and_network()
    loss = get_loss("cross_entropy")
    params = {"momentum": 0.9} if name == "sgd" else {}  # momentum: SGD's step outside backprop
    value, _ = get_optimizer(name, learning_rate=0.1, **params).minimize(via_minimize, loss, X, Y)
    expected, _ = by_hand.loss_and_gradients(X, Y, loss)
    get_optimizer(name, learning_rate=0.1, **params).step(by_hand.parameters(), by_hand.gradients())
    assert value == expected
    for a, b in zip(via_minimize.parameters(), by_hand.parameters()):
        np.testing.assert_array_equal(a, b)


def test_minimize_clips_before_the_step_and_then_skips_the_step_inside_backprop():
    X, Y, clipped = _batch_and_network()
    _, _, free = _batch_and_network()
    start = [p.copy() for p in clipped.parameters()]
    loss = get_loss("cross_entropy")
    get_optimizer("sgd", learning_rate=1.0).minimize(clipped, loss, X, Y, clip_norm=1e-3)
    get_optimizer("sgd", learning_rate=1.0).minimize(free, loss, X, Y)
    moved = np.sqrt(sum(float(((p - s) ** 2).sum()) for p, s in zip(clipped.parameters(), start)))
    assert moved == pytest.approx(1e-3, rel=1e-6)  # the whole step is the clipped gradient
    assert not np.allclose(clipped.weights[0], free.weights[0])
