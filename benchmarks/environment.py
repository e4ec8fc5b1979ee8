"""What machine the figures come from: BLAS, kernel, threads, and the environment variables
that are known to change NumPy's speed (reported, never changed)."""

from __future__ import annotations

import os
import platform

import numpy as np


def describe() -> dict:
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_") or k.endswith("_NUM_THREADS")},
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


def summary_line(info: dict) -> str:
    blas = info["blas"]
    if isinstance(blas, list) and blas:
        b = blas[0]
        text = f"{b['internal_api']} {b['version']}, kernel {b['architecture']}, {b['num_threads']} threads"
    else:
        text = str(blas)
    env = ", ".join(f"{k}={v}" for k, v in sorted(info["env"].items())) or "no OPENBLAS_*/thread variables set"
    return f"Python {info['python']}, NumPy {info['numpy']}, {info['cpus']} CPUs; BLAS: {text}; {env}"
