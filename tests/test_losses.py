import numpy as np
import pytest

from nncli.core.activations import get_activation
from nncli.core.losses import LOSSES, get_loss, output_delta
from tests.gradcheck import assert_gradients_close, numerical_gradient


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_matches_central_differences(name):
    rng = np.random.default_rng(2)
    loss = get_loss(name)
    if loss.kind.targets == "one_hot":
        p = get_activation("softmax").forward(rng.standard_normal((5, 3)))
        y = np.eye(3)[[0, 2, 1, 1, 0]]
    elif loss.kind.targets == "binary":
        p = rng.uniform(0.05, 0.95, (5, 1))
        y = np.array([[0.0], [1.0], [1.0], [0.0], [1.0]])
    else:
        p, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)) * 2
    assert_gradients_close(loss.gradient(p, y), numerical_gradient(lambda: loss.value(p, y), p))


def test_quadratic_is_half_squared_error_averaged_over_samples():
    p, y = np.array([[10.0], [0.0]]), np.array([[6.0], [1.0]])
    assert get_loss("quadratic").value(p, y) == pytest.approx((0.5 * 16 + 0.5 * 1) / 2)


def test_mse_averages_over_every_output():
    p, y = np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])
    assert get_loss("mse").value(p, y) == pytest.approx((1 + 4) / 2)


def test_cross_entropy_value():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    assert get_loss("cross_entropy").value(p, y) == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_at_extremes(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype)
    y = np.array([[0, 1, 0], [0, 1, 0]], dtype=dtype)  # first row confidently wrong
    softmax = get_activation("softmax")
    p = softmax.forward(z)
    loss = get_loss("cross_entropy")
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        value = loss.value(p, y)
        delta = output_delta(loss, softmax, p, y)
    assert np.isfinite(value) and value > 10
    np.testing.assert_allclose(delta, (p - y) / 2)
    assert np.isfinite(delta).all()


def test_mae_and_huber_values_by_hand():
    p, y = np.array([[0.5, 3.0]]), np.array([[0.0, 0.0]])
    assert get_loss("mae").value(p, y) == pytest.approx((0.5 + 3.0) / 2)
    # Huber, delta 1: ½·0.5² inside; 1·(3 − ½) outside.
    assert get_loss("huber").value(p, y) == pytest.approx((0.125 + 2.5) / 2)
    assert get_loss("huber", delta=4.0).value(p, y) == pytest.approx((0.125 + 4.5) / 2)


def test_binary_cross_entropy_value_and_fused_delta():
    p = np.array([[0.8], [0.3]])
    y = np.array([[1.0], [0.0]])
    loss = get_loss("binary_cross_entropy")
    assert loss.value(p, y) == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2)
    np.testing.assert_allclose(output_delta(loss, get_activation("sigmoid"), p, y), (p - y) / 2)


def test_weights_scale_each_samples_share():
    p, y = np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]])
    loss = get_loss("quadratic")
    assert loss.value(p, y, np.array([2.0, 0.0])) == pytest.approx(2 * 0.5 / 2)
    np.testing.assert_allclose(loss.gradient(p, y, np.array([2.0, 0.0])), [[1.0], [0.0]])
