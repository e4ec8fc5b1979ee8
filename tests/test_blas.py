"""The fused gradient-descent product (core/blas.py) against plain NumPy."""

import numpy as np
import pytest

from nncli.core import blas
from nncli.core.blas import add_transposed_product, fused_available
from nncli.core.losses import get_loss
from nncli.core.network import MLP
from nncli.core.optimizers import SGD

# The wheels NumPy publishes for Linux bundle the OpenBLAS this path calls; elsewhere the
# NumPy route is taken and these tests check that route instead.
FUSED = fused_available(np.float32) and fused_available(np.float64)


@pytest.fixture(autouse=True)
def fuse_every_size(monkeypatch):
    """Small products normally take NumPy's route (cheaper below FUSE_FROM_ELEMENTS); these
    tests are about the fused call, so it takes every size here."""
    monkeypatch.setattr(blas, "FUSE_FROM_ELEMENTS", 0)


def _numpy_route(C, A, B, alpha):
    return C - A.T @ B if alpha == -1 else C + alpha * (A.T @ B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,m,n", [(128, 784, 256), (32, 64, 10), (1, 5, 3), (7, 1, 4), (9, 6, 1), (3, 1, 1)])
def test_minus_one_is_bit_identical_to_matmul_then_subtract(dtype, k, m, n):
    rng = np.random.default_rng(k * m + n)
    A, B, C = (rng.standard_normal(shape).astype(dtype) for shape in ((k, m), (k, n), (m, n)))
    expected = C - np.matmul(A.T, B)
    add_transposed_product(C, A, B, -1.0)
    if (m > 1 and n > 1) or not FUSED:  # a single row or column makes NumPy use GEMV instead
        assert np.array_equal(C, expected)
    np.testing.assert_allclose(C, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_other_alphas_scale_the_product(dtype):
    rng = np.random.default_rng(1)
    A, B, C = rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype), np.zeros((4, 3), dtype)
    add_transposed_product(C, A, B, 0.5)
    np.testing.assert_allclose(C, 0.5 * (A.T @ B), rtol=1e-6)


def test_awkward_arrays_take_the_numpy_route_and_stay_correct():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((8, 10)).astype(np.float32)
    B = rng.standard_normal((8, 6)).astype(np.float32)
    C = rng.standard_normal((10, 12)).astype(np.float32)
    cases = [
        (C[:, ::2], A, B),                          # strided output
        (C[:, :6], A, B),                           # rows not contiguous
        (np.asfortranarray(C[:, :6]), A, B),        # column-major output
        (C[:, :6].copy(), A[:, ::-1][:, :10], B),   # reversed input
        (C[:, :6].copy(), A.astype(np.float64), B), # mixed dtypes
        (C[:, :6].astype(np.float16), A.astype(np.float16), B.astype(np.float16)),  # no BLAS for float16
    ]
    for target, left, right in cases:
        before = target.copy()
        add_transposed_product(target, left, right, -1.0)
        np.testing.assert_allclose(target, before - left.astype(target.dtype).T @ right.astype(target.dtype),
                                   rtol=2e-3, atol=2e-3)


def test_an_output_overlapping_an_input_is_not_handed_to_blas():
    rng = np.random.default_rng(3)
    both = rng.standard_normal((6, 6))
    A, C = both[:, :3], both[:3, 3:]  # C lives inside the same buffer as A
    expected = C - A.T @ both[:, 3:].copy()
    add_transposed_product(C, A.copy(), both[:, 3:].copy(), -1.0)
    np.testing.assert_allclose(C, expected)
    shared = rng.standard_normal((4, 4))
    expected = shared - shared.T @ shared
    add_transposed_product(shared, shared, shared, -1.0)
    np.testing.assert_allclose(shared, expected)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        add_transposed_product(np.zeros((3, 2)), np.zeros((4, 3)), np.zeros((5, 2)), -1.0)
    with pytest.raises(ValueError, match="needs matrices"):
        add_transposed_product(np.zeros((3, 2)), np.zeros((4, 3)), np.zeros((4, 2, 1)), -1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_beyond_one_gemm_block_agree_to_rounding(dtype):
    """A batch longer than the GEMM's k-block is added into C block by block: the same sums,
    rounded at other points (so only closeness is promised there, not the same bits)."""
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((2000, 64)).astype(dtype), rng.standard_normal((2000, 32)).astype(dtype)
    C = rng.standard_normal((64, 32)).astype(dtype)
    expected = C.astype(np.float64) - A.astype(np.float64).T @ B.astype(np.float64)
    add_transposed_product(C, A, B, -1.0)
    tolerance = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(C, expected, rtol=tolerance, atol=tolerance)


def test_nncli_blas_numpy_switches_the_fused_path_off(monkeypatch):
    blas._gemm.cache_clear()
    monkeypatch.setenv("NNCLI_BLAS", "numpy")
    try:
        assert not fused_available(np.float32)
        C = np.ones((2, 2), np.float32)
        add_transposed_product(C, np.ones((3, 2), np.float32), np.ones((3, 2), np.float32), -1.0)
        assert np.array_equal(C, np.full((2, 2), -2, np.float32))
    finally:
        blas._gemm.cache_clear()


def _train(steps: int, seed: int = 0) -> MLP:
    rng = np.random.default_rng(seed)
    network = MLP.initialise([12, 16, 8, 4], ["relu", "tanh", "softmax"], rng)
    loss = get_loss("cross_entropy")
    for _ in range(steps):
        X = rng.random((32, 12), dtype=np.float32)
        Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 32)]
        SGD(0.1).minimize(network, loss, X, Y)
    return network


def test_training_steps_are_bit_identical_with_and_without_the_fused_product(monkeypatch):
    fused = _train(20)
    monkeypatch.setattr("nncli.core.optimizers.add_transposed_product", _numpy_route_in_place)
    plain = _train(20)
    for a, b in zip(fused.parameters(), plain.parameters()):
        assert np.array_equal(a, b)


def _numpy_route_in_place(C, A, B, alpha):
    C[...] = _numpy_route(C, A, B, alpha)


def test_descending_inside_backprop_equals_a_separate_sgd_step():
    """The folded step (rate in the delta, update in the product) against gradients first,
    then W ← W − ε·∂L/∂W, in float64 where the two orders of rounding agree closely."""
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((16, 5)), np.eye(3)[rng.integers(0, 3, 16)]
    make = lambda: MLP.initialise([5, 7, 3], ["sigmoid", "softmax"], np.random.default_rng(5), dtype=np.float64)
    loss = get_loss("cross_entropy")
    folded, separate = make(), make()
    SGD(0.3).minimize(folded, loss, X, Y)
    separate.loss_and_gradients(X, Y, loss)
    for p, g in zip(separate.parameters(), separate.gradients()):
        p -= 0.3 * g
    for a, b in zip(folded.parameters(), separate.parameters()):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert not np.allclose(folded.weights[0], make().weights[0])  # the step did move the weights
