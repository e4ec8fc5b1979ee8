"""Where trials run: in this process one after another (``--jobs 1``), in a pool of local
processes (``--jobs N``), or as Ray tasks (``--executor ray``). Each runs the same
:func:`~nncli.commands.sweeps.trial.run_trial` on the same specs, so results do not depend on
the executor; each yields outcomes as trials finish, and stops its workers when the caller
stops listening (Ctrl-C, an error): close the generator (``contextlib.closing``).

Ray is an optional extra, imported here only, when a sweep asks for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from nncli.commands.extras import install_hint
from nncli.commands.sweeps.trial import WORKER_DIED, TrialOutcome, TrialSpec, run_trial
from nncli.errors import UsageError, one_line

Started = Callable[[str], None]  # told each trial's name as it is handed to a worker
STOP_SECONDS = 5.0  # how long stopped workers get to exit before they are killed
POLL_SECONDS = 0.5  # Ray's wait blocks in C++, where Ctrl-C waits until it returns


def in_process(specs: list[TrialSpec], started: Started) -> Iterator[TrialOutcome]:
    """One trial after another in this process: no process to start, nothing to copy."""
    for spec in specs:
        started(spec.name)
        yield run_trial(spec)


# What a trial imports on its first call and a forked worker would otherwise import again
# (numpy.random is loaded on first use; threadpoolctl pins the BLAS): imported before the fork.
FIRST_TRIAL_IMPORTS = ("numpy.random", "threadpoolctl")
# Libraries that may run thread pools of their own, which `threading` does not see: once one is
# loaded (a program that read Parquet, or used Ray, before its sweep), the workers are spawned.
THREADED_LIBRARIES = ("polars", "pyarrow", "ray")
STOPPING_SIGNALS = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal this process gets when its parent dies


def start_method() -> str:
    """How the local pool starts its workers: "fork" where that is safe, else "spawn".

    A forked worker is a copy of the sweep's process with NumPy and nncli already imported,
    ready in milliseconds; a spawned one starts an interpreter and imports them again (≈ 0.45 s
    of a core each, more than two digits trials). Forking is safe only while this process has
    one thread: the child gets a copy of every lock, and a lock another thread held stays held
    forever. So: on Linux only (macOS's system libraries are not fork-safe; Windows cannot
    fork), and only when no other Python thread (the live table's refresh thread, an earlier
    pool's manager thread) and no library with a thread pool of its own is running. OpenBLAS's
    threads do not count: OpenBLAS stops them around a fork (pthread_atfork) and starts them
    again when next needed.
    """
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    if sys.version_info < (3, 10, 5):  # before, a fork pool forked a worker per task, beside its own thread (gh-90622)
        return "spawn"
    if threading.active_count() > 1 or any(name in sys.modules for name in THREADED_LIBRARIES):
        return "spawn"
    return "fork"


def _worker_start(sweep_pid: int) -> None:
    # Ctrl-C at a terminal reaches the whole process group; the sweep decides what stops. A
    # forked worker inherits the sweep's handlers (SIGTERM raising KeyboardInterrupt): SIGTERM
    # is what stops a worker (_stop), so it gets the default, exit. Both were blocked across
    # the fork or spawn (_signals_blocked), so that none arrived before this point.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING_SIGNALS)
    _die_with(sweep_pid)
    # One BLAS thread for the worker's whole life, not only for the trials' products (a trial
    # pins them): whatever else multiplies matrices cannot wake a second thread that would take
    # the core of the next worker. (Ray's workers get the same from OMP_NUM_THREADS=1.)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _die_with(sweep_pid: int) -> None:
    """A worker whose sweep was killed (kill -9, the OOM killer) would wait for work forever,
    and a forked one would keep holding the sweep folder's lock: on Linux the kernel kills it
    when the sweep's process ends."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != sweep_pid:  # the sweep ended before the request above was made
        os._exit(1)


@contextlib.contextmanager
def _signals_blocked():
    """Ctrl-C and SIGTERM held back while workers are forked or spawned: they start with both
    blocked and unblock them once they have their own handlers (_worker_start). This process
    gets any that came meanwhile as soon as the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _new_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool with its workers running (forked or spawned: start_method). A fork pool starts
    all its processes at its first task, before its own manager thread, so a no-op task starts
    them now, while this process still has one thread."""
    method = start_method()
    if method == "fork":
        for name in FIRST_TRIAL_IMPORTS:
            importlib.import_module(name)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method), initializer=_worker_start,
                               initargs=(os.getpid(),))
    try:
        with _signals_blocked():
            pool.submit(os.getpid)
    except BaseException:  # Ctrl-C, held back during the fork, arrives as the block ends
        _stop(pool)
        raise
    return pool


def local_pool(specs: list[TrialSpec], started: Started, jobs: int) -> Iterator[TrialOutcome]:
    """``jobs`` worker processes, each one trial at a time. Trials are handed out only as
    workers free up, so the ones in flight are the ones running (the table says so), and a
    worker that dies (the kernel's OOM killer) fails only those: the rest go to a new pool.

    The workers are started before this returns (forked while this process has one thread:
    before the caller starts its live table), and stopped when the outcomes are closed."""
    outcomes = _pool_outcomes(specs, started, jobs)
    next(outcomes)  # up to its first yield: the pool is started, and closing it stops the pool
    return outcomes


def _pool_outcomes(specs: list[TrialSpec], started: Started, jobs: int) -> Iterator[TrialOutcome | None]:
    pending, running, finished = deque(specs), {}, []
    pool, broken = None, False
    try:
        if specs:
            pool = _new_pool(jobs)
        yield None
        while pending or running or finished:
            if pending and (pool is None or (broken and not running)):
                if pool is not None:
                    pool.shutdown(wait=False)
                pool, broken = _new_pool(jobs), False
            handed_out = []
            while pending and not broken and len(running) < jobs:
                spec = pending.popleft()
                try:
                    with _signals_blocked():
                        running[pool.submit(run_trial, spec)] = spec
                except BrokenProcessPool:  # a worker died between two trials (or as it started)
                    broken = True
                    finished.append(TrialOutcome(spec.name, WORKER_DIED))
                    break
                handed_out.append(spec.name)
            # Only now the caller records the finished ones (disk writes, the table): the freed
            # workers have their next trial already, and never wait for the sweep's disk. The
            # new ones are announced after them, so the table never counts more trials in
            # progress than there are workers.
            yield from finished
            finished = []
            for name in handed_out:
                started(name)
            if running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = running.pop(future)
                    try:
                        finished.append(future.result())
                    except BrokenProcessPool:
                        broken = True
                        finished.append(TrialOutcome(spec.name, WORKER_DIED))
        if pool is not None:
            pool.shutdown(wait=True)
        pool = None
    finally:
        if pool is not None:
            _stop(pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop at once: cancel what has not started, end the trials that have (their results are
    lost, the sweep keeps the finished ones). ``shutdown`` alone would wait for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # (Python 3.14: terminate_workers())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.kill()


def ray_tasks(address: str | None) -> Callable[[list[TrialSpec], Started], Iterator[TrialOutcome]]:
    """The Ray executor; Ray is imported now, so that a sweep without it stops before it starts."""
    return functools.partial(_on_ray, _import_ray(), address)


def _on_ray(ray, address: str | None, specs: list[TrialSpec], started: Started) -> Iterator[TrialOutcome]:
    """Every trial as a Ray task of one CPU; Ray runs as many at once as the cluster has CPUs.
    Connects to ``address``, else to what ray.init finds (RAY_ADDRESS, the last `ray start` on
    this machine), else starts a Ray instance here for the sweep; one already started in this
    process (a test) is used as is."""
    started_here = not ray.is_initialized()
    if started_here:
        _connect(ray, address)
    remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
    waiting = {}
    try:
        for spec in specs:
            waiting[remote.remote(spec)] = spec
            started(spec.name)
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                spec = waiting.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task's worker or node died
                    yield TrialOutcome(spec.name, f"Ray: {_first_line(exc)}")
    finally:
        for ref in waiting:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray: {install_hint('ray')}") from None
    return ray


def _connect(ray, address: str | None) -> None:
    # ray.init replaces the SIGTERM handler with one that exits at once; the sweep's own (stop
    # like Ctrl-C: record what finished, exit 130) is put back.
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "Ray"
        raise UsageError(f"--executor ray: cannot start or reach {where}: {_first_line(exc)}") from None
    finally:
        if on_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_sigterm)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return one_line(lines[0] if lines else type(exc).__name__)
