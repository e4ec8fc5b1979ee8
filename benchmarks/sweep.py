"""`nncli sweep` (issue 16): 24 digits trials (4 learning rates × 3 hidden widths × 2 seeds, the
shipped config's 30 epochs) one after another in one process (`--jobs 1`), in two local worker
processes (`--jobs 2`: forked, as the sweep does where it is safe, and spawned, its fallback), and
as Ray tasks on a local Ray instance of two CPUs.

Every variant runs in a fresh Python process (`python -m benchmarks.sweep VARIANT FOLDER`), as
`nncli sweep` does: nothing this benchmark loaded before (polars, Ray) changes how the pool starts
its workers, and the process's wall time is the whole command's (interpreter start-up, imports,
the sweep). The child also reports the sweep service's own seconds (without start-up and imports)
and the start method its pool used. Ray's start-up (ray.init of a new local instance, ≈ seconds)
is timed apart, since a cluster that is already up does not pay it per sweep.

Also measured, in fresh processes too: W, a pool's start-up — from creating the pool
(executors._new_pool) until both workers have run a task — for fork and spawn; S, a process
that only starts and imports what `nncli sweep` imports; and the CPU seconds of each variant
(the process and its workers, from the kernel's accounting). CPU seconds hardly depend on what
else the machine runs, so they also give what an idle two-core machine would show: the
sequential command's CPU time against S plus half the rest of the forked pool's.

On a shared machine a two-way speed-up is capped by what the other users leave: each round also
times two busy-looping processes against one, and the sweeps' speed-ups are given as a share of
that round's figure too."""

from __future__ import annotations

import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from benchmarks.timing import interleave

ROOT = Path(__file__).resolve().parent.parent  # (not benchmarks.workloads': the child imports no more than it needs)

GRID = ["training.learning_rate=0.02,0.05,0.1,0.2", "model.layers=[auto,32,auto],[auto,64,auto],[auto,128,auto]"]
SEEDS = 2
TRIALS = 4 * 3 * SEEDS
SEQUENTIAL, FORKED, SPAWNED, RAY = "sequential (--jobs 1)", "local pool, forked (--jobs 2)", "local pool, spawned", "Ray, 2 CPUs"
# The child's arguments for each variant: executor, jobs, the pool's start method ("" = the sweep's choice).
CHILD = {SEQUENTIAL: ("local", "1", ""), FORKED: ("local", "2", ""), SPAWNED: ("local", "2", "spawn"), RAY: ("ray", "", "")}
TASK_SECONDS = 0.1  # W's probe: two tasks this long, one per worker


def _children_cpu() -> float:
    """CPU seconds of this process's finished children, and of theirs that they waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child(*args: str) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, the JSON it printed) of one fresh `python -m benchmarks.sweep`."""
    started, busy = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "benchmarks.sweep", *args], cwd=ROOT, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, _children_cpu() - busy
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks.sweep {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return seconds, cpu, json.loads(done.stdout.strip().splitlines()[-1])


def _variant(name: str, record: dict) -> Callable[[], float]:
    def run() -> float:
        with tempfile.TemporaryDirectory(prefix="nncli-sweep-bench-") as folder:
            seconds, cpu, reported = _child("sweep", *CHILD[name], folder)
        record["service"][name].append(reported["seconds"])
        record["cpu"][name].append(cpu)
        record["method"][name] = reported["method"]
        if "ray_startup" in reported:
            record["ray_startup"].append(reported["ray_startup"])
        return seconds

    return run


def _pool_startup(method: str, record: dict) -> Callable[[], float]:
    def run() -> float:
        _, cpu, reported = _child("startup", method)
        record["startup"][method].append(reported["seconds"])
        record["startup_cpu"][method].append(cpu)
        return reported["seconds"]

    return run


def _imports(record: dict) -> Callable[[], float]:
    def run() -> float:
        seconds, cpu, _ = _child("imports")
        record["imports_cpu"].append(cpu)
        return seconds

    return run


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


def sweep(rounds: int) -> dict:
    names = [SEQUENTIAL, FORKED, SPAWNED]
    try:
        import ray  # noqa: F401
        names.append(RAY)
    except ImportError:
        pass  # (pip install -e ".[ray]" adds the Ray row)
    record: dict = {"service": {name: [] for name in names}, "cpu": {name: [] for name in names}, "method": {},
                    "ray_startup": [], "startup": {"fork": [], "spawn": []}, "startup_cpu": {"fork": [], "spawn": []},
                    "imports_cpu": []}
    variants: dict[str, Callable[[], float]] = {name: _variant(name, record) for name in names}
    variants["ceiling: 1 busy process"] = _spin(1)
    variants["ceiling: 2 busy processes"] = _spin(2)
    variants["W: pool start-up, fork"] = _pool_startup("fork", record)
    variants["W: pool start-up, spawn"] = _pool_startup("spawn", record)
    variants["S: start-up and imports"] = _imports(record)
    times = interleave(variants, rounds)
    ceiling = [2 * one / two for one, two in zip(times.pop("ceiling: 1 busy process"), times.pop("ceiling: 2 busy processes"))]
    for method in ("fork", "spawn"):
        times.pop(f"W: pool start-up, {method}")
    startup = times.pop("S: start-up and imports")
    median = statistics.median
    sequential, service = times[SEQUENTIAL], record["service"]
    local = [FORKED, SPAWNED]
    speedup = {name: median(s / t for s, t in zip(sequential, times[name])) for name in local}
    service_speedup = {name: median(s / t for s, t in zip(service[SEQUENTIAL], service[name])) for name in names[1:]}
    of_ceiling = {name: median(s / t / c for s, t, c in zip(sequential, times[name], ceiling)) for name in local}
    overhead = {name: median((t - s / 2) / TRIALS for s, t in zip(service[SEQUENTIAL], service[name])) for name in names[1:]}
    cpu = {name: median(samples) for name, samples in record["cpu"].items()}
    s_cpu = median(record["imports_cpu"])
    idle_pool = s_cpu + (cpu[FORKED] - s_cpu) / 2
    notes = ["whole command (a fresh process: start-up, imports, the sweep), speed-up over sequential, median of per-round "
             "ratios: " + ", ".join(f"{name} {value:.2f}× (best round {max(s / t for s, t in zip(sequential, times[name])):.2f}×)"
                                     for name, value in speedup.items()),
             "the sweep service alone (no start-up or imports): "
             + ", ".join(f"{name} {value:.2f}×" for name, value in service_speedup.items()),
             f"the machine's own 2-process speed-up in the same rounds (two pure-Python loops vs one): median "
             f"{median(ceiling):.2f}× ({min(ceiling):.2f}–{max(ceiling):.2f}×); the whole commands reached "
             + ", ".join(f"{name} {100 * value:.0f} %" for name, value in of_ceiling.items()) + " of it",
             "pool start-up W (new pool until both workers have run a task): "
             + ", ".join(f"{method} {1000 * median(record['startup'][method]):.0f} ms "
                         f"({median(record['startup_cpu'][method]):.2f} CPU-s with the process that starts it)"
                         for method in ("fork", "spawn")),
             "start method the sweep chose: " + ", ".join(f"{name}: {method}" for name, method in record["method"].items()
                                                         if name != SEQUENTIAL),
             "overhead per trial over an ideal 2-way split (service times): "
             + ", ".join(f"{name} {1000 * value:.0f} ms" for name, value in overhead.items()),
             f"sequential: {1000 * median(service[SEQUENTIAL]) / TRIALS:.0f} ms per trial",
             f"S, start-up and imports alone: {median(startup):.2f} s ({median(record['imports_cpu']):.2f} CPU-s)",
             "CPU seconds of the whole command, its workers included (the machine's load hardly changes them): "
             + ", ".join(f"{name} {value:.2f}" for name, value in cpu.items() if name != RAY)
             + f"; so on an idle 2-core machine: sequential ≈ {cpu[SEQUENTIAL]:.2f} s, the forked pool ≈ S + half the rest "
             f"= {idle_pool:.2f} s, {cpu[SEQUENTIAL] / idle_pool:.2f}× (spawned: "
             f"{cpu[SEQUENTIAL] / (s_cpu + (cpu[SPAWNED] - s_cpu) / 2):.2f}×)"]
    if record["ray_startup"]:
        startups = record["ray_startup"]
        notes.append(f"Ray start-up (ray.init of a local instance, 2 CPUs): median {median(startups):.1f} s "
                     f"({min(startups):.1f}–{max(startups):.1f} s), paid once per sweep without --address; "
                     "the Ray row's wall time includes it, its service time does not")
    return {"title": f"Sweep: {TRIALS} digits trials (4 learning rates × 3 widths × {SEEDS} seeds, 30 epochs), "
                     "one after another, 2 local processes (forked, spawned), Ray with 2 CPUs; whole commands",
            "times": times, "reference": SEQUENTIAL, "speedup": speedup, "service_speedup": service_speedup,
            "overhead_per_trial": overhead, "machine_two_process_speedup": ceiling, "share_of_machine_speedup": of_ceiling,
            "service_seconds": service, "cpu_seconds": record["cpu"], "pool_startup_seconds": record["startup"],
            "pool_startup_cpu_seconds": record["startup_cpu"], "start_methods": record["method"],
            "imports_seconds": startup, "imports_cpu_seconds": record["imports_cpu"],
            "idle_estimate": {"sequential": cpu[SEQUENTIAL], "forked_pool": idle_pool, "speedup": cpu[SEQUENTIAL] / idle_pool},
            "ray_startup": record["ray_startup"], "notes": notes, "unit": "s"}


# --- the child: one sweep, or one pool start-up, in a fresh process ------------------------------
def _child_sweep(executor: str, jobs: str, method: str, folder: str) -> dict:
    from nncli.commands.sweep import SweepRequest
    from nncli.commands.sweep import sweep as run_sweep
    from nncli.commands.sweeps import executors

    if method:
        executors.start_method = lambda: method
    reported = {"method": executors.start_method() if jobs != "1" and executor == "local" else "-"}
    if executor == "ray":
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        reported["ray_startup"] = time.perf_counter() - started
    request = SweepRequest(ROOT / "configs" / "digits.yaml", grid=list(GRID), seeds=SEEDS, output=Path(folder) / "sw",
                           jobs=int(jobs) if jobs else None, executor=executor)
    started = time.perf_counter()
    result = run_sweep(request)
    reported["seconds"] = time.perf_counter() - started
    assert result.succeeded == TRIALS, result.failure_message
    return reported


def _child_startup(method: str) -> dict:
    from concurrent.futures import wait

    from nncli.commands.sweeps import executors

    executors.start_method = lambda: method
    started = time.perf_counter()
    pool = executors._new_pool(2)
    wait([pool.submit(time.sleep, TASK_SECONDS) for _ in range(2)])  # both workers up: one task each
    seconds = time.perf_counter() - started - TASK_SECONDS
    pool.shutdown()
    return {"seconds": seconds}


def _child_imports() -> dict:
    import nncli.cli  # noqa: F401
    import nncli.commands.sweep  # noqa: F401

    return {}


if __name__ == "__main__":
    kind, *arguments = sys.argv[1:]
    child = {"sweep": _child_sweep, "startup": _child_startup, "imports": _child_imports}[kind]
    print(json.dumps(child(*arguments)))
