"""What machine the figures come from: BLAS, kernel, threads, and the environment variables
that are known to change NumPy's speed (reported, never changed)."""

from __future__ import annotations

import compileall
import os
import platform
from pathlib import Path

import numpy as np

import nncli


def describe() -> dict:
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith("OPENBLAS_") or k.endswith("_NUM_THREADS") or k == "PYTHONDONTWRITEBYTECODE"},
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for pool in threadpool_info()
            if pool.get("user_api") == "blas"
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed (pip install -e '.[bench]')"
    return info


def compile_bytecode() -> bool:
    """Compile nncli's modules to bytecode before anything is timed, as a user's install has
    them (pip compiles them; an editable install writes them on its first run). Where
    PYTHONDONTWRITEBYTECODE is set (some CI and sandbox shells), Python never writes them, and
    every timed command would compile ~40 modules first: +70 ms for `nncli predict`, +140 ms
    for `nncli train`, a cost no user pays. Returns whether every module compiled."""
    return bool(compileall.compile_dir(Path(nncli.__file__).parent, quiet=1))


def summary_line(info: dict) -> str:
    blas = info["blas"]
    if isinstance(blas, list) and blas:
        b = blas[0]
        text = f"{b['internal_api']} {b['version']}, kernel {b['architecture']}, {b['num_threads']} threads"
    else:
        text = str(blas)
    env = ", ".join(f"{k}={v}" for k, v in sorted(info["env"].items())) or "no OPENBLAS_*/thread variables set"
    return f"Python {info['python']}, NumPy {info['numpy']}, {info['cpus']} CPUs; BLAS: {text}; {env}"
