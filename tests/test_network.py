import numpy as np
import pytest

from nncli.core.activations import HIDDEN_ACTIVATIONS
from nncli.core.losses import LOSSES, get_loss
from nncli.core.network import MLP
from nncli.core.optimizers import SGD
from tests.gradcheck import assert_gradients_close, numerical_gradient

OUTPUT_FOR_LOSS = {
    "cross_entropy": "softmax",
    "binary_cross_entropy": "sigmoid",
    "mse": "identity",
    "quadratic": "identity",
    "mae": "identity",
    "huber": "identity",
}


def _outputs(loss_name: str, classes: int = 3) -> int:
    return 1 if loss_name == "binary_cross_entropy" else classes


def _batch(loss_name: str, rng: np.random.Generator, n: int = 6, classes: int = 3, features: int = 4):
    X = rng.standard_normal((n, features))
    targets = get_loss(loss_name).kind.targets
    if targets == "one_hot":
        Y = np.eye(classes)[rng.integers(0, classes, n)]
    elif targets == "binary":
        Y = rng.integers(0, 2, (n, 1)).astype(float)
    else:
        Y = rng.standard_normal((n, classes)) * 2  # spread, so Huber sees both of its regimes
    return X, Y


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_network_gradients_match_central_differences(hidden, loss_name):
    """Every hidden activation × loss, through two hidden layers, in float64."""
    rng = np.random.default_rng(7)
    X, Y = _batch(loss_name, rng)
    net = MLP.initialise(
        [4, 5, 4, _outputs(loss_name)], [hidden, hidden, OUTPUT_FOR_LOSS[loss_name]], rng, init="xavier", dtype=np.float64
    )
    for b in net.biases:
        b[:] = rng.standard_normal(b.shape) * 0.1  # non-zero biases, so their gradients matter
    loss = get_loss(loss_name)
    net.loss_and_gradients(X, Y, loss)
    analytic = [g.copy() for g in net.gradients()]
    for param, grad in zip(net.parameters(), analytic):
        numeric = numerical_gradient(lambda: loss.value(net.forward(X), Y), param)
        assert_gradients_close(grad, numeric)


@pytest.mark.parametrize("output", ["sigmoid", "tanh", "softmax", "relu"])
@pytest.mark.parametrize("loss_name", ["mse", "quadratic", "mae", "huber"])
def test_regression_losses_through_non_identity_outputs(output, loss_name):
    rng = np.random.default_rng(3)
    X, Y = _batch(loss_name, rng)
    net = MLP.initialise([4, 6, 3], ["tanh", output], rng, init="xavier", dtype=np.float64)
    loss = get_loss(loss_name)
    net.loss_and_gradients(X, Y, loss)
    analytic = [g.copy() for g in net.gradients()]
    for param, grad in zip(net.parameters(), analytic):
        assert_gradients_close(grad, numerical_gradient(lambda: loss.value(net.forward(X), Y), param))


def test_guide_worked_example_one_step():
    """w = 5, x = 2, label 6, quadratic loss, lr 0.1: gradient 8, new weight 4.2."""
    net = MLP([np.array([[5.0]])], [None], ["identity"])
    X, Y = np.array([[2.0]]), np.array([[6.0]])
    loss_value, output = net.loss_and_gradients(X, Y, get_loss("quadratic"))
    assert output[0, 0] == 10.0  # w·x = 5·2
    assert loss_value == pytest.approx(8.0, abs=1e-12)  # ½ (10 − 6)²
    assert net.weight_grads[0][0, 0] == pytest.approx(8.0, abs=1e-12)
    SGD(0.1).step(net.parameters(), net.gradients())
    assert net.weights[0][0, 0] == pytest.approx(4.2, abs=1e-12)


def test_guide_worked_example_converges_to_three():
    net = MLP([np.array([[5.0]])], [None], ["identity"])
    X, Y = np.array([[2.0]]), np.array([[6.0]])
    optimizer = SGD(0.1)
    for _ in range(80):
        net.loss_and_gradients(X, Y, get_loss("quadratic"))
        optimizer.step(net.parameters(), net.gradients())
    assert net.weights[0][0, 0] == pytest.approx(3.0, abs=1e-12)


def test_one_sgd_step_by_hand():
    """A 2-2-1 sigmoid network, every number of one step worked out with plain arithmetic."""
    W1 = np.array([[0.1, -0.2], [0.3, 0.4]])
    b1 = np.array([0.05, -0.05])
    W2 = np.array([[0.5], [-0.6]])
    b2 = np.array([0.1])
    x, y = np.array([[1.0, 2.0]]), np.array([[1.0]])
    net = MLP([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid", "identity"])
    net.loss_and_gradients(x, y, get_loss("quadratic"))
    SGD(0.5).step(net.parameters(), net.gradients())

    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h1 = sig(1 * 0.1 + 2 * 0.3 + 0.05)
    h2 = sig(1 * -0.2 + 2 * 0.4 - 0.05)
    out = h1 * 0.5 + h2 * -0.6 + 0.1
    d_out = out - 1.0  # d/d out of ½(out − y)²
    d_h1, d_h2 = d_out * 0.5 * h1 * (1 - h1), d_out * -0.6 * h2 * (1 - h2)
    np.testing.assert_allclose(net.weights[1], W2 - 0.5 * d_out * np.array([[h1], [h2]]), rtol=1e-14)
    np.testing.assert_allclose(net.biases[1], b2 - 0.5 * d_out, rtol=1e-14)
    np.testing.assert_allclose(
        net.weights[0], W1 - 0.5 * np.array([[1 * d_h1, 1 * d_h2], [2 * d_h1, 2 * d_h2]]), rtol=1e-14
    )
    np.testing.assert_allclose(net.biases[0], b1 - 0.5 * np.array([d_h1, d_h2]), rtol=1e-14)


def test_batch_gradient_is_the_mean_of_sample_gradients():
    rng = np.random.default_rng(0)
    X, Y = _batch("cross_entropy", rng, n=8)
    net = MLP.initialise([4, 5, 3], ["relu", "softmax"], rng, dtype=np.float64)
    net.loss_and_gradients(X, Y, get_loss("cross_entropy"))
    batch = net.weight_grads[0].copy()
    per_sample = []
    for i in range(len(X)):
        net.loss_and_gradients(X[i : i + 1], Y[i : i + 1], get_loss("cross_entropy"))
        per_sample.append(net.weight_grads[0].copy())
    np.testing.assert_allclose(batch, np.mean(per_sample, axis=0), rtol=1e-12, atol=1e-15)


def test_weight_shapes_follow_the_guide():
    net = MLP.initialise([64, 32, 10], ["relu", "softmax"], np.random.default_rng(0))
    assert [W.shape for W in net.weights] == [(64, 32), (32, 10)]
    assert [b.shape for b in net.biases] == [(32,), (10,)]
    assert net.parameter_count() == 64 * 32 + 32 + 32 * 10 + 10
    assert net.dtype == np.float32


def test_same_seed_same_weights_different_seed_different():
    make = lambda seed: MLP.initialise([8, 4, 2], ["relu", "softmax"], np.random.default_rng(seed))  # noqa: E731
    a, b, c = make(1), make(1), make(2)
    assert all(np.array_equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not np.array_equal(a.weights[0], c.weights[0])


def _check_all_gradients(net, objective):
    analytic = [g.copy() for g in net.gradients()]
    for param, grad in zip(net.parameters(), analytic):
        assert_gradients_close(grad, numerical_gradient(objective, param))


@pytest.mark.parametrize("loss_name", ["cross_entropy", "binary_cross_entropy", "mse", "huber"])
def test_sample_weighted_gradients(loss_name):
    rng = np.random.default_rng(11)
    X, Y = _batch(loss_name, rng)
    weights = rng.uniform(0.2, 3.0, len(X))
    net = MLP.initialise([4, 5, _outputs(loss_name)], ["tanh", OUTPUT_FOR_LOSS[loss_name]], rng, init="xavier", dtype=np.float64)
    loss = get_loss(loss_name)
    net.loss_and_gradients(X, Y, loss, weights)
    _check_all_gradients(net, lambda: loss.value(net.forward(X), Y, weights))


@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
def test_dropout_gradients_with_a_fixed_mask(hidden):
    """The same seed draws the same mask, so the dropped network is a fixed function to check."""
    rng = np.random.default_rng(5)
    X, Y = _batch("cross_entropy", rng)
    net = MLP.initialise([4, 6, 5, 3], [hidden, hidden, "softmax"], rng, init="xavier", dropout=[0.3, 0.5], dtype=np.float64)
    loss = get_loss("cross_entropy")
    net.loss_and_gradients(X, Y, loss, dropout_rng=np.random.default_rng(42))
    _check_all_gradients(net, lambda: loss.value(net.forward(X, dropout_rng=np.random.default_rng(42)), Y))


def test_dropout_is_off_at_prediction_and_scales_survivors():
    rng = np.random.default_rng(0)
    net = MLP.initialise([3, 2000, 1], ["identity", "identity"], rng, init="constant", init_params={"value": 1.0}, dropout=[0.25], dtype=np.float64)
    X = np.ones((1, 3))
    assert net.forward(X)[0, 0] == 3 * 2000  # no dropout without a generator
    dropped = net.forward(X, keep=True, dropout_rng=np.random.default_rng(1))[0, 0]
    assert dropped != 3 * 2000 and abs(dropped / (3 * 2000) - 1) < 0.05  # inverted: same expectation
    hidden = net._cache[0][1]
    assert set(np.unique(hidden)) == {0.0, 3 / 0.75}


def test_per_layer_activations():
    net = MLP.initialise([2, 3, 3, 1], ["relu", "tanh", "identity"], np.random.default_rng(0))
    assert net.activation_names == ["relu", "tanh", "identity"]
