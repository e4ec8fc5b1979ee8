"""The thread policy on a busy machine (issue 11): the digits run (in-process, and as the
`nncli train configs/digits.yaml` command) and one 60k MNIST-shaped epoch, each with 1 BLAS
thread, 2, and auto (core/threads.py: by product size and by the cores other processes leave
free, as the command line measures them: commands/threads.py), on an idle machine and beside a
CPU hog (one busy-looping process per core, started for the variant and killed after it).
Variants are interleaved round by round as everywhere (timing.py)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from benchmarks.timing import interleave
from benchmarks.workloads import NNCLI, ROOT, nncli_epochs, synthetic
from nncli.commands.threads import IdleCores
from nncli.core import threads as blas_threads

SETTINGS = {"1 thread": 1, "2 threads": 2, "auto": None}


@contextmanager
def cpu_hog(processes: int) -> Iterator[None]:
    """``processes`` busy loops for the duration of the block (each killed by its own handle)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.2)  # let them reach the loop
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


def _timed(job: Callable[[Optional[int]], Optional[float]], setting: Optional[int], hog: int) -> Callable[[], Optional[float]]:
    def run() -> Optional[float]:
        with cpu_hog(hog) if hog else _nothing():
            return job(setting)

    return run


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _in_process(work: Callable[[], float]) -> Callable[[Optional[int]], float]:
    """``work`` under the setting, with auto measuring the load as the command line does."""
    def job(setting: Optional[int]) -> float:
        with blas_threads.configured(setting, IdleCores() if setting is None else None):
            return work()

    return job


def _digits_command(setting: Optional[int]) -> float:
    """The whole `nncli train configs/digits.yaml` (start-up, reading, 30 epochs, validation)."""
    with tempfile.TemporaryDirectory(prefix="nncli-threads-") as folder:
        command = [str(NNCLI), "train", str(ROOT / "configs" / "digits.yaml"), "-o", os.path.join(folder, "m.npz"),
                   "--force", "--quiet"]
        environment = {**os.environ, "NNCLI_THREADS": "auto" if setting is None else str(setting)}
        started = time.perf_counter()
        subprocess.run(command, env=environment, capture_output=True, check=True)
        return time.perf_counter() - started


def threads(rounds: int) -> dict:
    from nncli.commands.train import prepare_training
    from nncli.config import load_config

    run = prepare_training(load_config(ROOT / "configs" / "digits.yaml", ["data.validation_split=0"]))
    digits_X, digits_Y, digits_sizes = run.data.X_train, run.data.Y_train, run.network.sizes
    mnist_sizes = [784, 256, 128, 10]
    mnist_X, mnist_Y = synthetic(60000, 784)
    jobs = {
        "digits": _in_process(lambda: nncli_epochs(digits_X, digits_Y, digits_sizes, 32, epochs=50, lr=0.1)),
        "nncli train digits.yaml": _digits_command,
        "MNIST epoch": _in_process(lambda: nncli_epochs(mnist_X, mnist_Y, mnist_sizes, 128)),
    }
    cores = os.cpu_count() or 1
    variants = {f"{job}, {load}, {label}": _timed(work, setting, hog)
                for job, work in jobs.items()
                for load, hog in (("idle", 0), ("hog", cores))
                for label, setting in SETTINGS.items()}
    times = interleave(variants, rounds)
    # Within each job and load, per-round ratio to one thread (robust to slow spells).
    ratios = {}
    for name, samples in times.items():
        base = times[name.rsplit(", ", 1)[0] + ", 1 thread"]
        ratios[name] = statistics.median(t / b for t, b in zip(samples, base))
    return {"title": f"Threads: digits ({len(digits_X):,} × 64, {'-'.join(map(str, digits_sizes))}, 50 epochs, batch 32), "
                     f"`nncli train configs/digits.yaml` (whole command) and one 60,000 × 784 epoch "
                     f"(784-256-128-10, batch 128); 1 / 2 / auto BLAS threads, idle and beside {cores} busy-looping processes",
            "times": times, "ratio_to_one_thread": ratios, "small_product": blas_threads.SMALL_PRODUCT, "unit": "s"}
