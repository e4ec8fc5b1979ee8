"""Every matrix product (core/blas.py's gemm_into) and the fused gradient-descent update, against
plain NumPy. That the thread count changes no bit is tested in tests/test_threads.py."""

import numpy as np
import pytest

from nncli.core import blas
from nncli.core.blas import K_BLOCK, fused_available, gemm_into
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


def subtract_product(C, A, B):
    """The fused update's call: ``C ← C − Aᵀ·B`` with ``A (k, m)``, as optimizers.py makes it."""
    return gemm_into(C, A.T, B, alpha=-1.0, beta=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,m,n", [(128, 784, 256), (32, 64, 10), (1, 5, 3), (7, 1, 4), (9, 6, 1), (3, 1, 1),
                                   (K_BLOCK, 40, 30)])
def test_minus_one_is_bit_identical_to_matmul_then_subtract(dtype, k, m, n):
    rng = np.random.default_rng(k * m + n)
    A, B, C = (rng.standard_normal(shape).astype(dtype) for shape in ((k, m), (k, n), (m, n)))
    expected = C - np.matmul(A.T, B)
    subtract_product(C, A, B)
    if (m > 1 and n > 1) or not FUSED:  # a single row or column makes NumPy use GEMV instead
        assert np.array_equal(C, expected)
    np.testing.assert_allclose(C, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 100, K_BLOCK])
def test_products_within_one_block_are_exactly_numpys(dtype, k):
    """Forward ``X·W``, backward ``δ·Wᵀ`` and gradient ``Aᵀ·δ`` with ``k ≤ K_BLOCK``: one call,
    the one ``matmul`` makes, so small layers train exactly as they did before the cutting."""
    rng = np.random.default_rng(k)
    X, W = rng.standard_normal((50, k)).astype(dtype), rng.standard_normal((k, 30)).astype(dtype)  # forward
    delta, W_next = rng.standard_normal((50, k)).astype(dtype), rng.standard_normal((30, k)).astype(dtype)  # backward
    A, D = rng.standard_normal((k, 40)).astype(dtype), rng.standard_normal((k, 30)).astype(dtype)  # gradient
    for left, right in ((X, W), (delta, W_next.T), (A.T, D)):
        out = np.empty((left.shape[0], right.shape[1]), dtype)
        assert np.array_equal(gemm_into(out, left, right), np.matmul(left, right))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0, 1])
def test_a_long_product_is_the_sum_of_equal_pieces_of_at_most_k_block(dtype, beta):
    """k = 784 (MNIST's inputs) is cut into 4 × 196: the first piece written (or added), each
    next one added — the exact arithmetic, written out with NumPy (same bits, same order)."""
    rng = np.random.default_rng(7)
    X, W, C = rng.standard_normal((64, 784)).astype(dtype), rng.standard_normal((784, 32)).astype(dtype), rng.standard_normal((64, 32)).astype(dtype)
    expected = C.copy() if beta else np.zeros_like(C)
    for start in range(0, 784, 196):
        expected += X[:, start:start + 196] @ W[start:start + 196]
    exact = (C if beta else 0) + X.astype(np.float64) @ W
    assert np.array_equal(gemm_into(C, X, W, beta=beta), expected)
    np.testing.assert_allclose(C, exact, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_blas_and_numpy_routes_give_the_same_bits(dtype, monkeypatch):
    """The pieces are added by the BLAS (β = 1) above FUSE_FROM_ELEMENTS and by NumPy below it:
    ``C + (±1)·acc`` rounds like ``C ± acc``, so the threshold is a matter of speed only."""
    rng = np.random.default_rng(8)
    X, W, C = rng.standard_normal((70, 600)).astype(dtype), rng.standard_normal((600, 40)).astype(dtype), rng.standard_normal((70, 40)).astype(dtype)
    A = np.ascontiguousarray(X.T)
    results = []
    for threshold in (0, 10**9):
        monkeypatch.setattr(blas, "FUSE_FROM_ELEMENTS", threshold)
        results.append((gemm_into(np.empty_like(C), X, W), subtract_product(C.copy(), A, W)))
    for blas_route, numpy_route in zip(*results):
        assert np.array_equal(blas_route, numpy_route)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_other_alphas_scale_the_product(dtype):
    rng = np.random.default_rng(1)
    A, B, C = rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype), np.zeros((4, 3), dtype)
    gemm_into(C, A.T, B, alpha=0.5, beta=1)
    np.testing.assert_allclose(C, 0.5 * (A.T @ B), rtol=1e-6)
    np.testing.assert_allclose(gemm_into(np.empty_like(C), A.T, B, alpha=-2.0), -2 * (A.T @ B), rtol=1e-6)


@pytest.mark.parametrize("k", [8, 3 * K_BLOCK + 5])
def test_awkward_arrays_take_the_numpy_route_and_stay_correct(k):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((k, 10)).astype(np.float32)
    B = rng.standard_normal((k, 6)).astype(np.float32)
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
        subtract_product(target, left, right)
        np.testing.assert_allclose(target, before - left.astype(target.dtype).T @ right.astype(target.dtype),
                                   rtol=2e-3, atol=2e-3 * k)


def test_an_output_overlapping_an_input_is_not_handed_to_blas():
    rng = np.random.default_rng(3)
    both = rng.standard_normal((6, 6))
    A, C = both[:, :3], both[:3, 3:]  # C lives inside the same buffer as A
    expected = C - A.T @ both[:, 3:].copy()
    subtract_product(C, A.copy(), both[:, 3:].copy())
    np.testing.assert_allclose(C, expected)
    shared = rng.standard_normal((4, 4))
    expected = shared - shared.T @ shared
    subtract_product(shared, shared, shared)
    np.testing.assert_allclose(shared, expected)


def test_mismatched_shapes_and_other_betas_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        subtract_product(np.zeros((3, 2)), np.zeros((4, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="needs matrices"):
        subtract_product(np.zeros((3, 2)), np.zeros((4, 3)), np.zeros((4, 2, 1)))
    with pytest.raises(ValueError, match="beta must be 0 or 1"):
        gemm_into(np.zeros((3, 2)), np.zeros((3, 4)), np.zeros((4, 2)), beta=0.5)


def test_an_empty_inner_dimension_gives_zeros_or_leaves_c_alone():
    assert np.array_equal(gemm_into(np.full((2, 3), 7.0), np.zeros((2, 0)), np.zeros((0, 3))), np.zeros((2, 3)))
    assert np.array_equal(subtract_product(np.full((2, 3), 7.0), np.zeros((0, 2)), np.zeros((0, 3))), np.full((2, 3), 7.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_beyond_one_block_agree_to_rounding(dtype):
    """A batch longer than K_BLOCK is added into C piece by piece: the same sums, rounded at
    other points than one call would (so only closeness to matmul is promised there)."""
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((2000, 64)).astype(dtype), rng.standard_normal((2000, 32)).astype(dtype)
    C = rng.standard_normal((64, 32)).astype(dtype)
    expected = C.astype(np.float64) - A.astype(np.float64).T @ B.astype(np.float64)
    subtract_product(C, A, B)
    tolerance = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(C, expected, rtol=tolerance, atol=tolerance)


def test_nncli_blas_numpy_switches_the_fused_path_off(monkeypatch):
    blas._gemm.cache_clear()
    monkeypatch.setenv("NNCLI_BLAS", "numpy")
    try:
        assert not fused_available(np.float32)
        C = np.ones((2, 2), np.float32)
        subtract_product(C, np.ones((3, 2), np.float32), np.ones((3, 2), np.float32))
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
    monkeypatch.setattr("nncli.core.optimizers.gemm_into", _numpy_route)
    plain = _train(20)
    for a, b in zip(fused.parameters(), plain.parameters()):
        assert np.array_equal(a, b)


def _numpy_route(C, A, B, alpha, beta):
    assert (alpha, beta) == (-1, 1)  # the only call optimizers.py makes
    C -= A @ B


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
