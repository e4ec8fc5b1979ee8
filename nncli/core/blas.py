"""``C += alpha · Aᵀ·B`` in one BLAS call, through the BLAS NumPy itself runs on.

Gradient descent on a dense layer is ``W ← W − Xᵀ·δ`` (the rate already in δ). NumPy's
``matmul`` can only write ``Xᵀ·δ`` to a buffer — a GEMM with β = 0, which OpenBLAS starts by
zeroing that buffer — and the subtraction is then a second, single-threaded pass over two
matrices that the GEMM has pushed out of cache. For the first layer of an MNIST-sized network
that pass cost more than a tenth of the epoch. GEMM can add into ``W`` itself (β = 1), but
NumPy does not expose α and β, so this module calls the GEMM of the OpenBLAS that NumPy's
wheels bundle (``scipy_cblas_sgemm64_``; the ``64_`` suffix pins 64-bit integer arguments)
through ctypes. It is the library and kernel ``np.matmul`` uses, and with α = −1 the kernel's
last step ``C + α·acc`` rounds exactly like ``W − acc``: while the batch fits in one of the
GEMM's blocks along k (a few hundred rows: 320 in float32 and 256 in float64 with the Haswell
kernel), the result is bit-identical to ``matmul`` followed by ``-=``. Larger batches are
added into ``W`` block by block, which rounds differently in the last bit; either route is
deterministic, and the model file records whether this route was available
(``blas.fused_update_available``).

Anything else — another BLAS (conda's MKL, Apple's Accelerate), unusual strides, dtypes other
than float32/float64, or ``NNCLI_BLAS=numpy`` in the environment — takes that NumPy route.
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# Below this many elements of C, the matrices stay in cache, the separate pass is cheap, and
# ctypes' argument conversion (≈ 4 µs) costs more than it saves: NumPy's route is faster.
# (Within one GEMM k-block of rows, both routes give the same bits; see above.)
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


def add_transposed_product(C: np.ndarray, A: np.ndarray, B: np.ndarray, alpha: float) -> None:
    """``C += alpha · Aᵀ·B`` in place, with ``A (k, m)``, ``B (k, n)``, ``C (m, n)``.

    Runs once per layer and batch, so the checks are the cheap ones: BLAS is called only for
    C-contiguous, aligned, writeable arrays of one dtype that do not overlap ``C``.
    """
    if not (A.ndim == B.ndim == C.ndim == 2):
        raise ValueError("add_transposed_product needs matrices")
    k, m = A.shape
    n = B.shape[1]
    if B.shape[0] != k or C.shape != (m, n):
        raise ValueError(f"shapes {A.shape}ᵀ·{B.shape} do not fit {C.shape}")
    gemm = _gemm(C.dtype) if A.dtype == B.dtype == C.dtype and C.size >= FUSE_FROM_ELEMENTS else None
    if (gemm is None or k == 0 or not (A.flags.carray and B.flags.carray and C.flags.carray)
            or np.may_share_memory(C, A) or np.may_share_memory(C, B)):
        if alpha == -1:
            C -= A.T @ B  # exactly what the fused call computes
        else:
            C += alpha * (A.T @ B)
        return
    gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k, alpha, A.ctypes.data, m, B.ctypes.data, n, 1.0, C.ctypes.data, n)


def fused_available(dtype=np.float32) -> bool:
    """Whether :func:`add_transposed_product` reaches BLAS directly for ``dtype``."""
    return _gemm(np.dtype(dtype)) is not None
