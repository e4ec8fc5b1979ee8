"""A million MNIST-shaped rows (≈ 2 GB of CSV, 3 GB as float32): `nncli train` in memory
(first run, then from its parse cache) and from disk — with no limit, and under a memory limit
of half the table, so that the data is twice the memory the run may use.

    python -m benchmarks.run --only big_data          # ≈ 5–10 minutes, ≈ 6 GB of disk

The limit is a memory control group (cgroup v1 or v2, as root or where delegated) when one
can be made — it counts the page cache, as a small machine's memory would — else the address
space (`ulimit -v`), which does not, and the result says which.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.workloads import NNCLI, _peak_rss_kib, history_seconds

LAYERS = "[auto, 256, 128, auto]"


def big_data(rounds: int, rows: int = 1_000_000) -> dict:
    del rounds  # one run of each: minutes each, and the ratios of interest are large
    folder = Path(tempfile.mkdtemp(prefix="nncli-big-"))
    try:
        data = _pixels_csv(folder / "pixels.csv", rows)
        config = folder / "big.yaml"
        config.write_text(f"seed: 0\ndata: {{train: pixels.csv, target: label, cache: cache}}\n"
                          f"model: {{layers: {LAYERS}}}\ntraining: {{epochs: 1, batch_size: 128}}\n")
        train = [str(NNCLI), "train", str(config), "-o", str(folder / "m.npz"), "--force", "--quiet"]
        table_mb = rows * 785 * 4 / 2**20
        limit_mb = int(table_mb / 2)
        runs = {}
        runs["in memory, first run (CSV parsed, cache written)"] = _run(train + ["--set", "data.in_memory=true"], folder)
        runs["in memory, cached"] = _run(train + ["--set", "data.in_memory=true"], folder)
        runs["from disk, cached"] = _run(train + ["--set", "data.in_memory=false"], folder)
        how, wrapper, group = _memory_limit(limit_mb)
        runs[f"from disk, cached, {how} {limit_mb:,} MB (auto)"] = _run(wrapper(train), folder)
        shutil.rmtree(folder / "cache")
        runs[f"from disk, first run (CSV streamed into the cache), {how} {limit_mb:,} MB (auto)"] = _run(wrapper(train), folder)
        return {"title": f"Big data: {rows:,} × 784 integer pixels, {data.stat().st_size / 1e9:.2f} GB CSV, "
                         f"{table_mb / 1024:.1f} GiB as float32; one epoch of {LAYERS}, batch 128",
                "big_runs": runs, "limit": how, "limit_mb": limit_mb, "table_mb": table_mb}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if "group" in locals() and group is not None:
            os.rmdir(group)


def _run(args: list[str], folder: Path) -> dict:
    """Wall seconds, the epoch's own seconds and the peak RSS of one run."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_kib(_innermost(proc.pid)))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.read().decode()[-500:]}")
    return {"seconds": seconds, "epoch_seconds": history_seconds(folder / "m.history.csv"), "peak_rss_mb": peak / 1024}


def _innermost(pid: int) -> int:
    """The nncli process itself when ``pid`` is the shell that put it in its control group."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        return int(children[0]) if children else pid
    except OSError:
        return pid


def _memory_limit(megabytes: int):
    """(how, a function wrapping a command to run under the limit, the control group made or None)."""
    group = _make_cgroup(megabytes)
    if group is not None:
        return "cgroup memory limit", lambda args: ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *args], group
    kib = megabytes * 1024
    return "ulimit -v", lambda args: ["sh", "-c", f'ulimit -v {kib} && exec "$@"', "sh", *args], None


def _make_cgroup(megabytes: int) -> str | None:
    """A child of this process's memory control group, limited to ``megabytes`` (None where
    the group cannot be made: not root, no delegation)."""
    from nncli.budgets import memory_cgroups

    for folder, limit_file, _ in memory_cgroups():
        group = os.path.join(folder, f"nncli-bench-{os.getpid()}")
        try:
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, limit_file), "w") as f:
                f.write(str(megabytes << 20))
            return group
        except OSError:
            continue
    return None


def _pixels_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """Like workloads._pixels_csv (four in five pixels 0, a digit label), written by polars."""
    import polars as pl

    rng = np.random.default_rng(seed)
    names = [f"p{i}" for i in range(784)] + ["label"]
    with open(path, "wb") as f:
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            pixels = (rng.integers(1, 256, (n, 784)) * (rng.random((n, 784)) < 0.2)).astype(np.int32)
            block = np.column_stack([pixels, rng.integers(0, 10, n).astype(np.int32)])
            pl.DataFrame(block, schema=names, orient="row").write_csv(f, include_header=start == 0)
    return path
