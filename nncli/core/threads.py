"""How many BLAS threads each matrix product of training and prediction runs on.

OpenBLAS (the BLAS inside NumPy's wheels) splits every product above about a million
multiply-adds between all cores, and a split product waits for its slowest thread. On an idle
machine that pays from there on; on a busy one the helper thread may wait a whole scheduler
time slice for a core, so a product of 30 µs takes milliseconds (we measured 100–400× on this
2-core machine with two other processes running), and the helper then keeps spinning, taking
CPU from everything else. Small products are better done on the calling thread alone.

The policy (see :func:`threads_for`): a product of ``m×k`` by ``k×n`` runs on one thread when
``m·k·n`` is below :data:`SMALL_PRODUCT`, else on the default (the count the BLAS had when
:func:`configure` was called: every core, or ``OPENBLAS_NUM_THREADS``); ``--threads N`` fixes
N for every product. The choice is a function of the shapes and the setting only — never of
the load — so a given config and setting always does the same arithmetic.

Bit-identical results across thread counts: OpenBLAS splits a product's rows and columns
between threads, which does not change any sum, but its threaded driver also cuts the inner
dimension ``k`` into blocks differently from its single-threaded one once ``k`` is larger
than one block (448 in float32, 384 in float64 on the SkylakeX kernel), so such products
differ in the last bits between 1 thread and 2 (docs/performance.md, "Threads").

Only OpenBLAS is steered, through threadpoolctl (imported on the first :func:`configure`, so
``nncli --help`` never pays for it). With another BLAS (MKL, Accelerate), or none that
threadpoolctl can see, the policy does nothing. Until :func:`configure` is called (a library
user, a test), nothing here touches the BLAS either.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, Optional

# Multiply-adds (m·k·n) from which a product gets the default thread count. Measured on this
# 2-core machine (docs/performance.md, "Threads"): below 2**20 OpenBLAS runs on one thread
# anyway; from 2**20 to 2**23 two threads save 10–80 µs per product when the machine is idle,
# while a single stall for a busy core costs milliseconds; from 2**23 (≈ 180 µs on one thread)
# two threads save 45 %, and the product is long enough to be worth the risk.
SMALL_PRODUCT = 1 << 23


def threads_for(m: int, k: int, n: int, setting: Optional[int], default: int) -> int:
    """Threads for an ``(m×k)·(k×n)`` product: ``setting`` when the user fixed one, else one
    thread below :data:`SMALL_PRODUCT` multiply-adds and ``default`` from there on."""
    if setting is not None:
        return setting
    return 1 if m * k * n < SMALL_PRODUCT else default


class _Policy:
    """The setting in force and the BLAS's current count (so it is only changed when the
    wanted count differs: a change costs ≈ 1 µs, a check well under that)."""

    __slots__ = ("setting", "default", "current", "set_threads")

    def __init__(self, setting: Optional[int], default: int, set_threads: Callable[[int], object]):
        self.setting = setting
        self.default = default  # also what reset() restores
        self.current = default
        self.set_threads = set_threads


_policy: Optional[_Policy] = None


def configure(setting: Optional[int]) -> bool:
    """Steer the BLAS from now on: ``None`` chooses per product, ``N ≥ 1`` runs every product on
    N threads. Returns whether there is a BLAS to steer (False: the policy does nothing)."""
    if setting is not None and setting < 1:
        raise ValueError(f"threads must be at least 1, not {setting}")
    reset()
    controller = _openblas()
    if controller is None:
        return False
    global _policy
    _policy = _Policy(setting, controller.get_num_threads(), controller.set_num_threads)
    return True


def reset() -> None:
    """Stop steering; the BLAS gets back the thread count it had before :func:`configure`."""
    global _policy
    policy, _policy = _policy, None
    if policy is not None and policy.current != policy.default:
        policy.set_threads(policy.default)


@contextlib.contextmanager
def configured(setting: Optional[int]) -> Iterator[bool]:
    """:func:`configure` for the duration of a block, then :func:`reset`."""
    try:
        yield configure(setting)
    finally:
        reset()


def for_product(m: int, k: int, n: int) -> None:
    """Give the BLAS the thread count for the ``(m×k)·(k×n)`` product about to run. Called
    before every product of a batch, so it does as little as it can."""
    policy = _policy
    if policy is None:
        return
    wanted = policy.setting or (1 if m * k * n < SMALL_PRODUCT else policy.default)
    if wanted != policy.current:
        policy.set_threads(wanted)
        policy.current = wanted


def _openblas():
    """threadpoolctl's controller for the OpenBLAS NumPy runs on, or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a dependency, but its absence must not stop training
        return None
    from nncli.core.blas import bundled_openblas

    libraries = ThreadpoolController().select(internal_api="openblas").lib_controllers
    bundled = {os.path.realpath(path) for path in bundled_openblas()}
    ours = [lib for lib in libraries if os.path.realpath(lib.filepath) in bundled]
    if ours:
        return ours[0]
    # NumPy built against a system OpenBLAS: steer it when it is the only one loaded.
    return libraries[0] if len(libraries) == 1 else None
