import numpy as np
import pytest

from nncli.core.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, get_activation
from tests.gradcheck import assert_gradients_close, numerical_gradient


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_matches_central_differences(name):
    activation = get_activation(name)
    rng = np.random.default_rng(1)
    # Keep away from the kinks of relu-like functions, where the derivative is undefined.
    z = rng.uniform(0.1, 2.0, (5, 4)) * rng.choice([-1.0, 1.0], (5, 4))
    upstream = rng.standard_normal((5, 4))

    def objective():
        return float((activation.forward(z.copy()) * upstream).sum())

    a = activation.forward(z.copy())
    analytic = activation.backward(upstream.copy(), a)
    assert_gradients_close(analytic, numerical_gradient(objective, z))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softmax", "softplus", "elu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_stay_finite(name, dtype):
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        a = get_activation(name).forward(z.copy())
        grad = get_activation(name).backward(np.ones_like(a), a)
    assert np.isfinite(a).all() and np.isfinite(grad).all()
    assert a.dtype == dtype


def test_sigmoid_and_softmax_saturate_correctly():
    sig = get_activation("sigmoid").forward(np.array([[-800.0, 0.0, 800.0]]))
    np.testing.assert_allclose(sig, [[0.0, 0.5, 1.0]], atol=1e-300)
    soft = get_activation("softmax").forward(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(soft, [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)


def test_relu_matches_definition():
    z = np.array([[-2.0, -0.0, 0.5, 3.0]])
    np.testing.assert_array_equal(get_activation("relu").forward(z.copy()), [[0, 0, 0.5, 3.0]])


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match="Expected one of: identity, relu"):
        get_activation("rleu")


def test_softmax_is_output_only():
    assert "softmax" not in HIDDEN_ACTIVATIONS
    assert {"relu", "tanh", "sigmoid", "identity"} <= set(HIDDEN_ACTIVATIONS)
