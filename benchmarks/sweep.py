"""`nncli sweep` (issue 16): 24 digits trials (4 learning rates × 3 hidden widths × 2 seeds, the
shipped config's 30 epochs) one after another in one process (`--jobs 1`), in two local worker
processes (`--jobs 2`), and as Ray tasks on a local Ray instance of two CPUs.

Each variant runs the sweep service (commands/sweep.py) into a fresh folder, so nothing is
resumed; the local pool's time includes starting its worker processes. Ray's start-up (ray.init
of a new local instance, ≈ seconds) is timed apart from the sweep itself, since a cluster that
is already up does not pay it per sweep; Ray is started for its variant and shut down after, so
its background processes do not slow the others. Overhead per trial: the time over an ideal
two-way split of the sequential run (sequential / 2), divided by the 24 trials.

On a shared machine a two-way speed-up is capped by what the other users leave: each round also
times two busy-looping processes against one, and the sweeps' speed-ups are given as a share of
that round's figure too."""

from __future__ import annotations

import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from benchmarks.timing import interleave
from benchmarks.workloads import ROOT

GRID = ["training.learning_rate=0.02,0.05,0.1,0.2", "model.layers=[auto,32,auto],[auto,64,auto],[auto,128,auto]"]
SEEDS = 2
TRIALS = 4 * 3 * SEEDS


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run(executor: str, jobs: Optional[int], cpu: Optional[list[float]] = None) -> float:
    """Seconds of one sweep into a fresh folder; its CPU seconds appended to ``cpu``."""
    from nncli.commands.sweep import SweepRequest, sweep

    with tempfile.TemporaryDirectory(prefix="nncli-sweep-bench-") as folder:
        request = SweepRequest(ROOT / "configs" / "digits.yaml", grid=list(GRID), seeds=SEEDS, output=Path(folder) / "sw",
                               jobs=jobs, executor=executor)
        started, busy = time.perf_counter(), _cpu_seconds()
        result = sweep(request)
        seconds = time.perf_counter() - started
        if cpu is not None:
            cpu.append(_cpu_seconds() - busy)
    assert result.succeeded == TRIALS, result.failure_message
    return seconds


# The machine's own two-process speed-up, measured in the same rounds: two copies of a pure-Python
# loop at once against one. On a shared machine it is what the other users leave, the ceiling of
# any two-way speed-up in that round.
SPIN = "x = 0\nfor i in range(6_000_000): x += i"


def _spin(copies: int) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        processes = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(copies)]
        for process in processes:
            process.wait()
        return time.perf_counter() - started

    return run


def _on_ray(startups: list[float]) -> Callable[[], float]:
    def run() -> float:
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        startups.append(time.perf_counter() - started)
        try:
            return _run("ray", None)
        finally:
            ray.shutdown()

    return run


def sweep(rounds: int) -> dict:
    cpu: dict[str, list[float]] = {"sequential": [], "pool": []}  # (Ray's workers are not our children: not counted)
    variants: dict[str, Callable[[], float]] = {
        "sequential (--jobs 1)": lambda: _run("local", 1, cpu["sequential"]),
        "local pool (--jobs 2)": lambda: _run("local", 2, cpu["pool"]),
    }
    variants["ceiling: 1 busy process"] = _spin(1)
    variants["ceiling: 2 busy processes"] = _spin(2)
    startups: list[float] = []
    try:
        import ray  # noqa: F401
        variants["Ray, 2 CPUs (start-up apart)"] = _on_ray(startups)
    except ImportError:
        pass  # (pip install -e ".[ray]" adds the Ray row)
    times = interleave(variants, rounds)
    ceiling = [2 * one / two for one, two in zip(times.pop("ceiling: 1 busy process"), times.pop("ceiling: 2 busy processes"))]
    sequential = times["sequential (--jobs 1)"]
    swept = {name: samples for name, samples in times.items() if name != "sequential (--jobs 1)"}
    speedup = {name: statistics.median(s / t for s, t in zip(sequential, samples)) for name, samples in swept.items()}
    of_ceiling = {name: statistics.median(s / t / c for s, t, c in zip(sequential, samples, ceiling))
                  for name, samples in swept.items()}
    overhead = {name: statistics.median((t - s / 2) / TRIALS for s, t in zip(sequential, samples))
                for name, samples in swept.items()}
    notes = ["speed-up over sequential (median of per-round ratios): "
             + ", ".join(f"{name} {value:.2f}× (best round {max(s / t for s, t in zip(sequential, swept[name])):.2f}×)"
                         for name, value in speedup.items()),
             f"the machine's own 2-process speed-up in the same rounds (two pure-Python loops vs one): median "
             f"{statistics.median(ceiling):.2f}× ({min(ceiling):.2f}–{max(ceiling):.2f}×); the sweeps reached "
             + ", ".join(f"{name} {100 * value:.0f} %" for name, value in of_ceiling.items()) + " of it",
             "overhead per trial over an ideal 2-way split: "
             + ", ".join(f"{name} {1000 * value:.0f} ms" for name, value in overhead.items()),
             f"sequential: {1000 * statistics.median(sequential) / TRIALS:.0f} ms per trial",
             f"CPU seconds (this process and its workers; the machine's load hardly changes them): sequential "
             f"{statistics.median(cpu['sequential']):.2f}, local pool {statistics.median(cpu['pool']):.2f}; on an idle "
             f"machine the pool would take about half its CPU time, {statistics.median(cpu['pool']) / 2:.2f} s: "
             f"{statistics.median(cpu['sequential']) / (statistics.median(cpu['pool']) / 2):.2f}× the sequential CPU time"]
    if startups:
        notes.append(f"Ray start-up (ray.init of a local instance, 2 CPUs): median {statistics.median(startups):.1f} s "
                     f"({min(startups):.1f}–{max(startups):.1f} s), paid once per sweep without --address")
    return {"title": f"Sweep: {TRIALS} digits trials (4 learning rates × 3 widths × {SEEDS} seeds, 30 epochs), "
                     "one after another, 2 local processes, Ray with 2 CPUs",
            "times": times, "reference": "sequential (--jobs 1)", "speedup": speedup, "overhead_per_trial": overhead,
            "machine_two_process_speedup": ceiling, "share_of_machine_speedup": of_ceiling, "cpu_seconds": cpu,
            "ray_startup": startups, "notes": notes, "unit": "s"}
