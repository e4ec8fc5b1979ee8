"""How many BLAS threads each matrix product of training and prediction runs on.

OpenBLAS (the BLAS inside NumPy's wheels) splits every product above about a million
multiply-adds between all cores, and a split product waits for its slowest thread. On an idle
machine that pays from there on; on a busy one the helper thread may wait a whole scheduler
time slice for a core, so a product of 30 µs takes milliseconds (we measured 100–400× on this
2-core machine with two other processes running), and the helper then keeps spinning, taking
CPU from everything else. Small products are better done on the calling thread alone.

The policy (see :func:`threads_for`): ``--threads N`` fixes N for every product. Otherwise
("auto") a product of ``m×k`` by ``k×n`` runs on one thread when ``m·k·n`` is below
:data:`SMALL_PRODUCT`, else on the default (the count the BLAS had when :func:`configure` was
called: every core, or ``OPENBLAS_NUM_THREADS``) — but never on more threads than there are
cores other processes leave free, when the caller gives :func:`configure` a way to measure
that (the command line does: commands/threads.py). The measurement is taken soon after
:func:`configure` and then at most once every :data:`LOOK_EVERY` seconds, so it costs nothing
per product but a clock read.

Choosing by load is only possible because the thread count changes no result: every product
goes through core/blas.py, which never hands OpenBLAS an inner dimension its threads would cut
differently, and the few products whose columns its threads cannot share exactly (float64,
a column count not a multiple of 8) run on one thread whatever the setting
(docs/performance.md, "Threads").

Only OpenBLAS is steered, through threadpoolctl (imported on the first :func:`configure`, so
``nncli --help`` never pays for it). With another BLAS (MKL, Accelerate), or none that
threadpoolctl can see, the policy does nothing. Until :func:`configure` is called (a library
user, a test), nothing here touches the BLAS either.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator, Optional

import numpy as np

from nncli.core.blas import bundled_openblas, exact_on_any_threads

# Multiply-adds (m·k·n) from which a product gets the default thread count. Measured on this
# 2-core machine (docs/performance.md, "Threads"): below 2**20 OpenBLAS runs on one thread
# anyway; from 2**20 to 2**23 two threads save 10–80 µs per product when the machine is idle,
# while a single stall for a busy core costs milliseconds; from 2**23 (≈ 180 µs on one thread)
# two threads save 45 %, and the product is long enough to be worth the risk.
SMALL_PRODUCT = 1 << 23
# When auto looks at the load: soon after the start (a run beside busy processes should not
# spend its first second on threads that wait for a core), then once a second — load changes
# on that scale, and a look (reading /proc/stat) costs tens of microseconds.
FIRST_LOOK = 0.1
LOOK_EVERY = 1.0

# Cores the other processes leave free, or None when unknown (commands/threads.py measures it).
FreeCores = Callable[[], Optional[float]]


def threads_for(m: int, k: int, n: int, setting: Optional[int], default: int,
                free_cores: Optional[float] = None, exact: bool = True) -> int:
    """Threads for an ``(m×k)·(k×n)`` product: one when splitting it would not be ``exact``
    (core/blas.py's :func:`~nncli.core.blas.exact_on_any_threads`); else ``setting`` when the
    user fixed one; else one thread below :data:`SMALL_PRODUCT` multiply-adds and from there on
    ``default`` — or as many as ``free_cores`` (the cores other processes left idle, when known)
    rounds to, at least one."""
    if not exact:
        return 1
    if setting is not None:
        return setting
    if m * k * n < SMALL_PRODUCT:
        return 1
    if free_cores is None:
        return default
    return max(1, min(default, int(free_cores + 0.5)))


class _Policy:
    """The setting in force, the free cores last measured, and the BLAS's current count (so it
    is only changed when the wanted count differs: a change costs ≈ 1 µs, a check well under)."""

    __slots__ = ("setting", "default", "current", "set_threads", "measure", "free_cores", "next_look")

    def __init__(self, setting: Optional[int], default: int, set_threads: Callable[[int], object],
                 measure: Optional[FreeCores], assumed_free: Optional[float] = None):
        self.setting = setting
        self.default = default  # also what reset() restores
        self.current = default
        self.set_threads = set_threads
        self.measure = measure if setting is None else None  # a fixed setting never looks
        self.free_cores: Optional[float] = assumed_free if self.measure is not None else None  # until the first look
        self.next_look = time.monotonic() + FIRST_LOOK

    def look(self) -> None:
        """Measure the free cores if a look is due."""
        now = time.monotonic()
        if now >= self.next_look:
            self.free_cores = self.measure()
            self.next_look = now + LOOK_EVERY


_policy: Optional[_Policy] = None


def configure(setting: Optional[int], free_cores: Optional[FreeCores] = None,
              assumed_free: Optional[float] = None) -> bool:
    """Steer the BLAS from now on: ``None`` chooses per product (and by ``free_cores()``, when
    given: called at most once a second; ``assumed_free`` until its first call), ``N ≥ 1`` runs
    every product on N threads. Returns whether there is a BLAS to steer (False: the policy
    does nothing)."""
    if setting is not None and setting < 1:
        raise ValueError(f"threads must be at least 1, not {setting}")
    reset()
    controller = _openblas()
    if controller is None:
        return False
    global _policy
    _policy = _Policy(setting, controller.get_num_threads(), controller.set_num_threads, free_cores, assumed_free)
    return True


def reset() -> None:
    """Stop steering; the BLAS gets back the thread count it had before :func:`configure`."""
    global _policy
    policy, _policy = _policy, None
    if policy is not None and policy.current != policy.default:
        policy.set_threads(policy.default)


@contextlib.contextmanager
def configured(setting: Optional[int], free_cores: Optional[FreeCores] = None,
               assumed_free: Optional[float] = None) -> Iterator[bool]:
    """:func:`configure` for the duration of a block, then :func:`reset`."""
    try:
        yield configure(setting, free_cores, assumed_free)
    finally:
        reset()


def for_product(m: int, k: int, n: int, dtype: Optional[np.dtype] = None) -> None:
    """Give the BLAS the thread count for the ``(m×k)·(k×n)`` product of ``dtype`` about to run.
    Called before every product of a batch, so it does as little as it can: only a product
    large enough to be split even asks whether a look at the load is due."""
    policy = _policy
    if policy is None:
        return
    if policy.measure is not None and m * k * n >= SMALL_PRODUCT:
        policy.look()
    exact = dtype is None or exact_on_any_threads(dtype, n)
    wanted = threads_for(m, k, n, policy.setting, policy.default, policy.free_cores, exact)
    if wanted != policy.current:
        policy.set_threads(wanted)
        policy.current = wanted


def _openblas():
    """threadpoolctl's controller for the OpenBLAS NumPy runs on, or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a dependency, but its absence must not stop training
        return None
    libraries = ThreadpoolController().select(internal_api="openblas").lib_controllers
    bundled = {os.path.realpath(path) for path in bundled_openblas()}
    ours = [lib for lib in libraries if os.path.realpath(lib.filepath) in bundled]
    if ours:
        return ours[0]
    # NumPy built against a system OpenBLAS: steer it when it is the only one loaded.
    return libraries[0] if len(libraries) == 1 else None
