"""Interleaved timing: every variant of a workload runs once per round, round after round, so
a slow spell of a shared machine hits all variants alike; figures are medians of the rounds."""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable


def interleave(variants: dict[str, Callable[[], float | None]], rounds: int) -> dict[str, list[float]]:
    """Run each variant ``rounds`` times, interleaved. A variant returns its own measured
    seconds (to exclude set-up), or None to be timed as a whole call."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            started = time.perf_counter()
            measured = run()
            times[name].append(measured if measured is not None else time.perf_counter() - started)
    return times


def stats(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def ratios(times: dict[str, list[float]], reference: str) -> dict[str, float]:
    """Per-round ratios to the reference variant, then their median (robust to slow spells)."""
    base = times[reference]
    return {
        name: statistics.median(t / b for t, b in zip(samples, base)) for name, samples in times.items()
    }


def scratch_folder(prefix: str) -> Path:
    """A temporary folder for a workload's files, removed when the benchmark exits (its CSVs
    and parse caches reach hundreds of megabytes)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
