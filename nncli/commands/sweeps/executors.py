"""Where trials run: in this process one after another (``--jobs 1``), in a pool of local
processes (``--jobs N``), or as Ray tasks (``--executor ray``). Each runs the same
:func:`~nncli.commands.sweeps.trial.run_trial` on the same specs, so results do not depend on
the executor; each yields outcomes as trials finish, and stops its workers when the caller
stops listening (Ctrl-C, an error): close the generator (``contextlib.closing``).

Ray is an optional extra, imported here only, when a sweep asks for it.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import signal
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

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


def _worker_start() -> None:
    # Ctrl-C at a terminal reaches the whole process group; the sweep decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One BLAS thread for the worker's whole life, not only for the trials' products (a trial
    # pins them): whatever else multiplies matrices cannot wake a second thread that would take
    # the core of the next worker. (Ray's workers get the same from OMP_NUM_THREADS=1.)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def local_pool(specs: list[TrialSpec], started: Started, jobs: int) -> Iterator[TrialOutcome]:
    """``jobs`` worker processes, each one trial at a time. Trials are handed out only as
    workers free up, so the ones in flight are the ones running (the table says so), and a
    worker that dies (the kernel's OOM killer) fails only those: the rest go to a new pool."""
    # spawn, not fork: a forked child inherits the parent's BLAS thread pool and locks.
    context = multiprocessing.get_context("spawn")
    pending, running, finished = deque(specs), {}, []
    pool, broken = None, False
    try:
        while pending or running or finished:
            if pending and (pool is None or (broken and not running)):
                if pool is not None:
                    pool.shutdown(wait=False)
                pool, broken = ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start), False
            while pending and not broken and len(running) < jobs:
                spec = pending.popleft()
                running[pool.submit(run_trial, spec)] = spec
                started(spec.name)
            # Only now the caller records the finished ones (disk writes, the table): the freed
            # workers have their next trial already, and never wait for the sweep's disk.
            yield from finished
            finished = []
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
        raise UsageError("--executor ray needs Ray: pip install 'nncli[ray]'") from None
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
