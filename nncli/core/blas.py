"""Every matrix product of training and prediction: ``C ← α·A·B + β·C`` (:func:`gemm_into`),
rounded the same whatever the number of BLAS threads, through the BLAS NumPy itself runs on.

**The same bits on any thread count.** OpenBLAS (the BLAS inside NumPy's wheels) hands rows
and columns of C to its threads, which changes no sum (but see below for float64); but once the inner dimension ``k`` is
longer than one block of its inner loop (the kernel's GEMM_Q: 448 in float32 and 384 in
float64 on SkylakeX, 320 and 256 on Haswell), its threaded driver cuts ``k`` at other points
than its single-threaded one, so the partial sums round differently (docs/performance.md,
"Threads"). :func:`gemm_into` therefore never hands it a ``k`` above :data:`K_BLOCK`: a longer
product is computed as a few products of at most that length, the first written into C and
each next one added into it (β = 1) — every call then sums all of its ``k`` in one block, in
the same order on one thread as on many. A product with ``k ≤ K_BLOCK`` is a single call, as
NumPy's ``matmul`` makes it. Rows and columns are not quite neutral either: a float64 product
whose column count is not a multiple of 8 rounds differently on 2 threads, so core/threads.py
runs those on one (:func:`exact_on_any_threads`).

**β = 1 through ctypes.** NumPy's ``matmul`` cannot add into an existing matrix: it writes to a
buffer (β = 0, which OpenBLAS starts by zeroing), and the addition is then a second,
single-threaded pass over two matrices that the GEMM has pushed out of cache — for the weight
update ``W ← W − Xᵀ·δ`` of an MNIST-sized first layer that pass cost more than a tenth of the
epoch. So this module calls the GEMM of the OpenBLAS that NumPy's wheels bundle
(``scipy_cblas_sgemm64_``; ``64_`` pins 64-bit integer arguments) through ctypes: the library
and kernel ``np.matmul`` uses, whose last step ``C + α·acc`` rounds like NumPy's
``C + acc`` / ``C − acc`` for α = ±1. The two routes thus give the same bits, and the update
with ``k ≤ K_BLOCK`` is bit-identical to ``matmul`` followed by ``-=``.

Anything else — another BLAS (conda's MKL, Apple's Accelerate), unusual strides, dtypes other
than float32/float64, or ``NNCLI_BLAS=numpy`` in the environment — takes NumPy's route, cut
into the same pieces: deterministic for a given thread count, but the promise that the thread
count cannot change a bit is only made for NumPy's bundled OpenBLAS. The model file records
whether the ctypes route was available (``blas.fused_update_available``).
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

# The longest inner dimension one BLAS call is given: no more than the smallest k-block of the
# kernels we know (Haswell's float64, 256), so no threaded driver ever cuts it. Each extra piece
# costs a pass over C and a call: MNIST's first layer (k = 784, four pieces) took 1.04 × its
# single call on one thread, 1.10–1.15 × on two (docs/performance.md, "Threads").
K_BLOCK = 256

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# Below this many elements of C, the matrices stay in cache, a separate addition is cheap, and
# ctypes' argument conversion (≈ 4 µs) costs more than it saves: NumPy's route is faster (and
# gives the same bits, see above).
FUSE_FROM_ELEMENTS = 16384
_SYMBOLS = {np.dtype(np.float32): "scipy_cblas_sgemm64_", np.dtype(np.float64): "scipy_cblas_dgemm64_"}


def bundled_openblas() -> list[str]:
    """Paths of the OpenBLAS shipped inside NumPy's wheel (Linux/Windows: numpy.libs,
    macOS: numpy/.dylibs). ctypes then opens the copy already loaded, not a second one (and
    core/threads.py steers the thread count of that same copy)."""
    package = os.path.dirname(np.__file__)
    patterns = [os.path.join(package, os.pardir, "numpy.libs", "libscipy_openblas64_*"),
                os.path.join(package, ".dylibs", "libscipy_openblas64_*")]
    return sorted(path for pattern in patterns for path in glob.glob(pattern))


@lru_cache(maxsize=None)
def _gemm(dtype: np.dtype):
    """The bundled ``cblas_?gemm`` for ``dtype``, or None when it cannot be used."""
    if os.environ.get("NNCLI_BLAS", "").strip().lower() == "numpy" or dtype not in _SYMBOLS:
        return None
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    for path in bundled_openblas():
        try:
            function = getattr(ctypes.CDLL(path), _SYMBOLS[dtype])
        except (OSError, AttributeError):
            continue
        integer, pointer = ctypes.c_int64, ctypes.c_void_p
        function.argtypes = [ctypes.c_int] * 3 + [integer] * 3 + [scalar, pointer, integer, pointer, integer,
                                                                  scalar, pointer, integer]
        function.restype = None
        return function
    return None


def gemm_into(C: np.ndarray, A: np.ndarray, B: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``C ← alpha·A·B + beta·C`` in place and returned, with ``A (m, k)``, ``B (k, n)``,
    ``C (m, n)`` and ``beta`` 0 or 1; ``A`` and ``B`` may be transposed views (``X.T``, ``W.T``).
    The BLAS is never given an inner dimension above :data:`K_BLOCK` (see above)."""
    if not (A.ndim == B.ndim == C.ndim == 2):
        raise ValueError("gemm_into needs matrices")
    m, k = A.shape
    n = B.shape[1]
    if B.shape[0] != k or C.shape != (m, n):
        raise ValueError(f"shapes {A.shape}·{B.shape} do not fit {C.shape}")
    if beta not in (0, 1):
        raise ValueError(f"beta must be 0 or 1, not {beta}")
    if k <= K_BLOCK and beta == 0:  # one fresh product: NumPy's own call
        _numpy_call(C, A, B, alpha, 0)
        return C
    pieces = max(1, -(-k // K_BLOCK))
    cuts = [k * piece // pieces for piece in range(pieces + 1)]  # equal pieces: 784 → 4 × 196
    blas = _blas_call(C, A, B) if C.size >= FUSE_FROM_ELEMENTS else None  # adding into C: BLAS if it can
    for piece in range(pieces):
        start, stop = cuts[piece], cuts[piece + 1]
        piece_beta = beta if piece == 0 else 1
        if blas is not None:
            blas(start, stop, alpha, piece_beta)
        else:
            _numpy_call(C, A[:, start:stop], B[start:stop], alpha, piece_beta)
    return C


def _numpy_call(C: np.ndarray, A: np.ndarray, B: np.ndarray, alpha: float, beta: float) -> None:
    """One piece by NumPy: written with ``matmul`` (β = 0), else added with a temporary."""
    if beta == 0:
        np.matmul(A, B, out=C)
        if alpha != 1:
            C *= alpha
    elif alpha == -1:
        C -= A @ B  # the same rounding as the BLAS's C + (−1)·acc
    elif alpha == 1:
        C += A @ B
    else:
        C += alpha * (A @ B)


def _blas_call(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> Optional[Callable[[int, int, float, float], None]]:
    """A function computing the product of ``A[:, start:stop]`` and ``B[start:stop]`` into C
    with the bundled GEMM, reading the arrays where they lie; None when it cannot. Called once
    per product, so only the cheap checks: one dtype, aligned, C writeable with contiguous
    rows, and C not overlapping A or B. (Each piece is then an offset into A and B: reading an
    array's address costs a microsecond, the GEMM call itself about two.)"""
    gemm = _gemm(C.dtype) if A.dtype == B.dtype == C.dtype and A.shape[1] else None
    if gemm is None or not (C.flags.writeable and C.flags.aligned and A.flags.aligned and B.flags.aligned):
        return None
    a_layout, b_layout, c_layout = _layout(A), _layout(B), _layout(C)
    if a_layout is None or b_layout is None or c_layout is None or c_layout[0] != _NO_TRANS:
        return None
    if np.may_share_memory(C, A) or np.may_share_memory(C, B):
        return None
    (trans_a, lda), (trans_b, ldb), ldc = a_layout, b_layout, c_layout[1]
    a, b, c = A.ctypes.data, B.ctypes.data, C.ctypes.data
    a_step, b_step = A.strides[1], B.strides[0]  # bytes from one k to the next
    m, n = C.shape

    def call(start: int, stop: int, alpha: float, beta: float) -> None:
        gemm(_ROW_MAJOR, trans_a, trans_b, m, n, stop - start, alpha, a + start * a_step, lda,
             b + start * b_step, ldb, beta, c, ldc)

    return call


def _layout(X: np.ndarray) -> Optional[tuple[int, int]]:
    """(transpose flag, leading dimension) under which a row-major BLAS reads ``X`` where it
    lies: rows of contiguous elements (a matrix or a block of its columns), or the transpose
    of such a matrix (``X.T``). None for any other strides."""
    item = X.itemsize
    rows, cols = X.shape
    row_step, col_step = X.strides
    if col_step == item and row_step % item == 0 and row_step >= cols * item:
        return _NO_TRANS, max(row_step // item, 1)
    if row_step == item and col_step % item == 0 and col_step >= rows * item:
        return _TRANS, max(col_step // item, 1)
    return None


def exact_on_any_threads(dtype: np.dtype, n: int) -> bool:
    """Whether OpenBLAS computes each column of an ``n``-column product the same however many
    threads share it. Its threads take a range of columns each, and for float64 a range that
    ends inside a block of 8 columns is finished by narrower kernel code that rounds
    differently: measured on the SkylakeX kernel, float64 products with ``n`` not a multiple of
    8 differed between 1 and 2 threads (414 of 1,077 shapes), and none with ``n`` a multiple of
    8, nor any float32 product (1,473 shapes, every ``n`` from 1 to 39 and others, transposed
    or not). core/threads.py runs the others on one thread."""
    multiple = _COLUMN_BLOCK.get(dtype)
    return multiple is None or n % multiple == 0


_COLUMN_BLOCK = {np.dtype(np.float64): 8}


def fused_available(dtype=np.float32) -> bool:
    """Whether :func:`gemm_into` reaches the bundled BLAS directly for ``dtype``."""
    return _gemm(np.dtype(dtype)) is not None
