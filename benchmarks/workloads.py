"""The workloads of the benchmark. Each returns a dict: ``times`` (variant -> seconds per run,
interleaved), plus what its table needs (work sizes, reference variant)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import interleave, scratch_folder
from nncli.core.losses import get_loss
from nncli.core.network import MLP
from nncli.core.optimizers import get_optimizer
from nncli.core.schedules import get_schedule
from nncli.core.trainer import Trainer, TrainingPlan

ROOT = Path(__file__).resolve().parent.parent
NNCLI = Path(sys.executable).parent / "nncli"


# --- helpers ---------------------------------------------------------------------------------
def synthetic(rows: int, features: int, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, features), dtype=np.float32)
    Y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, rows)]
    return X, Y


def epoch_flops(rows: int, sizes: list[int]) -> float:
    """Multiply-adds ×2 of one epoch: forward, weight gradients, and input gradients for every
    layer but the first (nncli, like PyTorch, never computes the gradient of the data)."""
    products = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2.0 * rows * (3 * products - sizes[0] * sizes[1])


def gemm_floor(X: np.ndarray, sizes: list[int], batch: int) -> float:
    """Exactly the matrix products of one epoch, into preallocated outputs: the time no MLP
    implementation on this BLAS can beat."""
    rng = np.random.default_rng(1)
    Ws = [rng.standard_normal((a, b)).astype(X.dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    outs = [np.empty((batch, b), X.dtype) for b in sizes[1:]]
    grads = [np.empty_like(W) for W in Ws]
    upstream = [np.empty((batch, a), X.dtype) for a in sizes[1:-1]]
    started = time.perf_counter()
    for start in range(0, len(X) - batch + 1, batch):
        acts = [X[start : start + batch]]
        for W, out in zip(Ws, outs):
            np.matmul(acts[-1], W, out=out)
            acts.append(out)
        delta = outs[-1]
        for layer in range(len(Ws) - 1, -1, -1):
            np.matmul(acts[layer].T, delta, out=grads[layer])
            if layer:
                np.matmul(delta, Ws[layer].T, out=upstream[layer - 1])
                delta = upstream[layer - 1]
    return time.perf_counter() - started


def nncli_epochs(X, Y, sizes, batch, epochs=1, lr=0.01, seed=1) -> float:
    activations = ["relu"] * (len(sizes) - 2) + ["softmax"]
    network = MLP.initialise(sizes, activations, np.random.default_rng(seed), dtype=X.dtype)
    plan = TrainingPlan(
        network=network,
        loss=get_loss("cross_entropy"),
        optimizer=get_optimizer("sgd", learning_rate=lr, decay_mask=network.decay_mask()),
        schedule=get_schedule("constant", lr, epochs),
        X=X, Y=Y, epochs=epochs, batch_size=batch, metric="accuracy",
    )
    trainer = Trainer(plan, np.random.default_rng(seed + 1), np.random.default_rng(seed + 2))
    started = time.perf_counter()
    trainer.run()
    return time.perf_counter() - started


def numpy_loop(X, Y, sizes, batch, epochs=1, lr=0.01, seed=1) -> float:
    """A bare, careful NumPy MLP doing the same arithmetic as nncli (and computing the loss)."""
    rng = np.random.default_rng(seed)
    Ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(X.dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, X.dtype) for b in sizes[1:]]
    started = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch):
            rows = order[start : start + batch]
            acts = [X[rows]]
            for W, b in zip(Ws[:-1], bs[:-1]):
                acts.append(np.maximum(acts[-1] @ W + b, 0))
            z = acts[-1] @ Ws[-1] + bs[-1]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            y = Y[rows]
            total += float(-np.sum(y * np.log(np.maximum(p, 1e-30))))
            delta = (p - y) / len(rows)
            for layer in range(len(Ws) - 1, -1, -1):
                gW, gb = acts[layer].T @ delta, delta.sum(0)
                if layer:
                    delta = (delta @ Ws[layer].T) * (acts[layer] > 0)
                Ws[layer] -= lr * gW
                bs[layer] -= lr * gb
    return time.perf_counter() - started


def pytorch_epoch(rows: int):
    """PyTorch CPU on the same job, timed inside its own process (see peer_torch.py)."""
    try:
        import torch  # noqa: F401  (only to know whether the peer can run)
    except ImportError:
        return None

    def run():
        result = subprocess.run([sys.executable, "-m", "benchmarks.peer_torch", str(rows)], cwd=ROOT,
                                capture_output=True, text=True, check=True)
        return float(result.stdout.strip().splitlines()[-1])

    return run


def sklearn_epoch(X, Y, sizes, batch, dtype, lr=0.01):
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    Xd, y = X.astype(dtype), Y.argmax(axis=1)

    def run():
        import warnings

        model = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", batch_size=batch, learning_rate_init=lr,
                              momentum=0.0, nesterovs_momentum=False, max_iter=1, shuffle=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "did not converge" after one epoch, by design
            started = time.perf_counter()
            model.fit(Xd, y)
            return time.perf_counter() - started

    return run


# --- workloads -------------------------------------------------------------------------------
def training(rounds: int, rows: int = 60000) -> dict:
    sizes, batch = [784, 256, 128, 10], 128
    X, Y = synthetic(rows, 784)
    variants = {
        "GEMM floor": lambda: gemm_floor(X, sizes, batch),
        "nncli": lambda: nncli_epochs(X, Y, sizes, batch),
        "NumPy loop": lambda: numpy_loop(X, Y, sizes, batch),
    }
    for name, run in (("PyTorch CPU", pytorch_epoch(rows)),
                      ("scikit-learn float32", sklearn_epoch(X, Y, sizes, batch, np.float32)),
                      ("scikit-learn float64", sklearn_epoch(X, Y, sizes, batch, np.float64))):
        if run is not None:
            variants[name] = run
    times = interleave(variants, rounds)
    return {"title": f"Training: one epoch, {rows:,} × 784 float32, 784-256-128-10 ReLU, softmax CE, SGD, batch 128",
            "times": times, "reference": "GEMM floor", "flops": epoch_flops(rows, sizes), "unit": "s/epoch"}


def small_data(rounds: int) -> dict:
    from nncli.commands.train import prepare_training
    from nncli.config import load_config

    run = prepare_training(load_config(ROOT / "configs" / "digits.yaml", ["data.validation_split=0"]))
    X, Y, sizes = run.data.X_train, run.data.Y_train, run.network.sizes
    variants = {
        "NumPy loop": lambda: numpy_loop(X, Y, sizes, 32, epochs=50, lr=0.1),
        "nncli": lambda: nncli_epochs(X, Y, sizes, 32, epochs=50, lr=0.1),
    }
    return {"title": f"Small data: digits ({len(X):,} × 64), {'-'.join(map(str, sizes))}, 50 epochs, batch 32",
            "times": interleave(variants, rounds), "reference": "NumPy loop", "unit": "s"}


def inference(rounds: int, rows: int = 60000) -> dict:
    sizes, batch = [784, 256, 128, 10], 8192
    X, _ = synthetic(rows, 784)
    network = MLP.initialise(sizes, ["relu", "relu", "softmax"], np.random.default_rng(0), dtype=np.float32)
    Ws = network.weights

    def floor():
        outs = [np.empty((batch, W.shape[1]), np.float32) for W in Ws]
        started = time.perf_counter()
        for start in range(0, rows - batch + 1, batch):
            a = X[start : start + batch]
            for W, out in zip(Ws, outs):
                a = np.matmul(a, W, out=out)
        full = (rows // batch) * batch
        return (time.perf_counter() - started) * rows / full

    def forward():
        started = time.perf_counter()
        for start in range(0, rows, batch):
            network.forward(X[start : start + batch])
        return time.perf_counter() - started

    times = interleave({"GEMM floor": floor, "nncli forward": forward}, rounds)
    return {"title": f"Inference: forward pass, {rows:,} × 784 float32 in batches of {batch}, 784-256-128-10",
            "times": times, "reference": "GEMM floor", "rows": rows, "unit": "s"}


def scaling(rounds: int) -> dict:
    table = []
    for rows, width in ((15000, 256), (30000, 256), (60000, 256), (60000, 128), (60000, 512), (60000, 1024)):
        sizes = [784, width, width, 10]
        X, Y = synthetic(rows, 784)
        times = interleave({"nncli": lambda: nncli_epochs(X, Y, sizes, 128)}, rounds)["nncli"]
        table.append({"rows": rows, "width": width, "sizes": sizes, "seconds": float(np.median(times)),
                      "gflop": epoch_flops(rows, sizes) / 1e9})
    return {"title": "Scaling: one epoch of 784-w-w-10, batch 128", "table": table}


def _discard(_result) -> None:
    return None  # timed as a whole call


def _write_csv(path: Path, X: np.ndarray, labels: np.ndarray, fmt: str) -> None:
    with open(path, "w") as f:
        f.write(",".join([f"c{i}" for i in range(X.shape[1])] + ["label"]) + "\n")
        np.savetxt(f, np.column_stack([X, labels]), fmt=fmt, delimiter=",")


def csv_ingestion(rounds: int, rows: int = 20000) -> dict:
    from nncli.tabular.source import read_csv

    folder = scratch_folder("nncli-bench-")
    rng = np.random.default_rng(0)
    files = {
        "integer pixels (784 columns)": (folder / "pixels.csv", rng.integers(0, 256, (rows, 784)), "%d"),
        "float text (100 columns)": (folder / "floats.csv", rng.standard_normal((rows, 100)), "%.17g"),
    }
    results = {}
    for label, (path, X, fmt) in files.items():
        _write_csv(path, X, rng.integers(0, 10, rows), fmt)
        variants = {
            "numpy.loadtxt": lambda p=path: _discard(np.loadtxt(p, delimiter=",", skiprows=1)),
            "nncli": lambda p=path: _discard(read_csv(p)),
        }
        try:
            import polars as pl

            variants["polars"] = lambda p=path: _discard(pl.read_csv(p).to_numpy())
        except ImportError:
            pass
        try:
            import pyarrow.csv as pacsv

            variants["pyarrow"] = lambda p=path: _discard(pacsv.read_csv(p))
        except ImportError:
            pass
        results[label] = {"times": interleave(variants, rounds), "megabytes": path.stat().st_size / 1e6}
    return {"title": f"CSV ingestion: {rows:,} rows, files in the page cache", "files": results, "reference": "numpy.loadtxt"}


def startup(rounds: int) -> dict:
    from nncli.commands.train import prepare_training
    from nncli.config import load_config
    from nncli.files.model import save_model

    folder = scratch_folder("nncli-bench-")
    model = prepare_training(load_config(ROOT / "configs" / "iris.yaml", ["training.epochs=1"])).fit()
    save_model(folder / "m.npz", model)
    (folder / "one.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")

    def command(*args):
        return lambda: _discard(subprocess.run([str(NNCLI), *map(str, args)], capture_output=True, check=True))

    variants = {
        "nncli --help": command("--help"),
        "nncli predict (1 row)": command("predict", folder / "m.npz", folder / "one.csv"),
        "python -c pass": lambda: _discard(subprocess.run([sys.executable, "-c", "pass"], check=True)),
    }
    return {"title": "Start-up: whole commands, wall time", "times": interleave(variants, rounds), "unit": "s"}


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), read while it runs.

    Not getrusage's ru_maxrss of the finished child: Linux carries the high-water mark of the
    address space a child had before exec — the benchmark's own, over 1 GB by the time this
    workload runs — into the child's figure."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:  # gone already, or not Linux
        return 0


def streaming_predict(megabytes: int) -> dict:
    """A digits-shaped CSV of about ``megabytes`` MB through `nncli predict`: throughput, peak
    memory (RSS of the process) and the time until the first row of output appears."""
    from nncli.commands.train import prepare_training
    from nncli.config import load_config
    from nncli.files.model import save_model

    folder = scratch_folder("nncli-bench-")
    model = prepare_training(load_config(ROOT / "configs" / "digits.yaml", ["training.epochs=2"])).fit()
    save_model(folder / "digits.npz", model)
    path = folder / "big.csv"
    rng = np.random.default_rng(0)
    block = np.column_stack([rng.integers(0, 17, (20000, 64)), rng.integers(0, 10, 20000)])
    text = "\n".join(",".join(map(str, row)) for row in block.tolist()) + "\n"
    with open(path, "w") as f:
        f.write(",".join([f"p{r}{c}" for r in range(8) for c in range(8)] + ["label"]) + "\n")
        while f.tell() < megabytes * 1e6:
            f.write(text)
    size = path.stat().st_size
    rows = sum(1 for _ in open(path, "rb")) - 1
    started = time.perf_counter()
    proc = subprocess.Popen([str(NNCLI), "predict", str(folder / "digits.npz"), str(path)], stdout=subprocess.PIPE)
    proc.stdout.readline()  # header
    proc.stdout.readline()  # first prediction
    first_row = time.perf_counter() - started
    peak = 0
    while proc.stdout.read(1 << 20):  # drain in blocks: the reader must not be the bottleneck
        peak = max(peak, _peak_rss_kib(proc.pid))
    proc.wait()
    seconds = time.perf_counter() - started
    path.unlink()
    return {"title": f"Streaming predict: {size / 1e6:,.0f} MB digits-shaped CSV ({rows:,} rows) to a pipe",
            "seconds": seconds, "first_row_seconds": first_row, "rows": rows, "megabytes": size / 1e6,
            "peak_rss_mb": peak / 1024}


# --- whole commands (issue: the run a user times) --------------------------------------------
def _run_with_peak(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command run to its end."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_kib(proc.pid))
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-500:]}")
    return seconds, peak / 1024


def _pixels_csv(folder: Path, rows: int, seed: int = 0) -> Path:
    """An MNIST-shaped integer-pixel CSV: 784 columns of 0..255, four in five of them 0 as in
    MNIST's background (20,000 rows ≈ 38 MB, like the MNIST CSVs), and a digit label."""
    path = folder / f"pixels-{rows}.csv"
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join([f"p{i}" for i in range(784)] + ["label"]) + "\n")
        for start in range(0, rows, 10000):
            n = min(10000, rows - start)
            pixels = rng.integers(1, 256, (n, 784)) * (rng.random((n, 784)) < 0.2)
            block = np.column_stack([pixels, rng.integers(0, 10, n)])
            f.write("\n".join(",".join(map(str, row)) for row in block.tolist()) + "\n")
    return path


def end_to_end(rounds: int, sizes: tuple[int, ...] = (20000, 60000)) -> dict:
    """`nncli train` (one epoch; first run, and with its parse cache), `predict` and `evaluate`
    as a user runs them, against a fresh process's polars read of the same file plus the epoch
    itself (predict and evaluate: against the read alone); peak RSS of each."""
    from nncli.commands.train import prepare_training
    from nncli.config import load_config
    from nncli.files.model import save_model

    folder = scratch_folder("nncli-bench-")
    results = {}
    startup_seconds, startup_rss = _run_with_peak([str(NNCLI), "--version"])
    # `nncli --version` loads no library; "the interpreter and libraries" a run needs is this:
    _, libraries_rss = _run_with_peak([sys.executable, "-c", "import polars, nncli.commands.session, nncli.commands.predict"])
    for rows in sizes:
        data = _pixels_csv(folder, rows)
        config = folder / f"c{rows}.yaml"
        config.write_text(f"seed: 0\ndata: {{train: {data.name}, target: label}}\nmodel: {{layers: [auto, 256, 128, auto]}}\n"
                          "training: {epochs: 1, batch_size: 128, learning_rate: 0.01}\n")
        model = folder / f"m{rows}.npz"
        save_model(model, prepare_training(load_config(config, ["data.cache=off"])).fit())
        read = [sys.executable, "-c", f"import polars as pl; pl.read_csv({str(data)!r}).to_numpy()"]
        train = [str(NNCLI), "train", str(config), "-o", str(folder / "out.npz"), "--force", "--quiet"]
        commands = {
            "nncli train (1 epoch)": [*train, "--set", "data.cache=off"],  # a first run: the CSV parsed
            "nncli train (cached)": [*train, "--set", f"data.cache={folder / 'cache'}"],  # the parse cache read
            "nncli predict": [str(NNCLI), "predict", str(model), str(data), "-o", str(folder / "p.csv")],
            "nncli evaluate": [str(NNCLI), "evaluate", str(model), str(data), "--json"],
            "polars read (fresh process)": read,
        }
        _run_with_peak(commands["nncli train (cached)"])  # writes the cache the timed runs read
        times: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, float] = {}
        epochs: dict[str, list[float]] = {"nncli train (1 epoch)": [], "nncli train (cached)": []}
        for _ in range(rounds):
            for name, args in commands.items():
                seconds, peak = _run_with_peak(args)
                times[name].append(seconds)
                peaks[name] = max(peaks.get(name, 0), peak)
                if name in epochs:
                    epochs[name].append(history_seconds(folder / "out.history.csv"))
        times["polars read + epoch"] = [r + e for r, e in zip(times["polars read (fresh process)"], epochs["nncli train (1 epoch)"])]
        reads = float(np.median(times["polars read (fresh process)"]))
        train_bytes = rows * 0.8 * 784 * 4  # the float32 training features
        results[f"{rows:,} × 784 integer pixels, {data.stat().st_size / 1e6:.0f} MB"] = {
            "times": times, "peak_rss_mb": peaks, "epoch_seconds": epochs, "training_array_mb": train_bytes / 1e6,
            "rss_over_startup_per_array": {name: (peaks[name] - startup_rss) / (train_bytes / 2**20) for name in epochs},
            "rss_over_libraries_per_array": {name: (peaks[name] - libraries_rss) / (train_bytes / 2**20) for name in epochs},
            "ratio_to_read": {name: float(np.median(times[name])) / reads for name in ("nncli predict", "nncli evaluate")},
            "cache_read_over_parse": _cache_read_over_parse(data, folder / "cache", rounds),
        }
        data.unlink()
    return {"title": "Whole commands: wall time and peak RSS (one epoch for train)", "files_e2e": results,
            "startup_rss_mb": startup_rss, "libraries_rss_mb": libraries_rss, "reference": "polars read + epoch"}


def _cache_read_over_parse(data: Path, cache: Path, rounds: int) -> float:
    """Loading the parse cache (mapped, every value checked) over parsing the CSV, in-process
    and interleaved: the issue's "≤ 0.1× the CSV parse"."""
    from nncli.config.schema import DataConfig
    from nncli.files.datacache import ParseRequest, fingerprint, read_cache
    from nncli.tabular.parse import read_header
    from nncli.tabular.source import read_csv

    [location] = cache.glob(f"{data.stem}-*.nncli-cache")
    tokens = DataConfig.model_fields["missing_values"].default_factory()  # what train asked for
    request = ParseRequest(("label",), "float32", tuple(tokens))

    def load():
        return read_cache(location, fingerprint(data), request, 1 << 25, read_header(data)).values  # read and checked

    times = interleave({"parse": lambda: _discard(read_csv(data, ["label"], np.float32, tokens)), "cache": lambda: _discard(load())}, rounds)
    return float(np.median(times["cache"]) / np.median(times["parse"]))


def history_seconds(history: Path) -> float:
    """The epoch's own seconds, as the run recorded them in history.csv."""
    import csv

    with open(history) as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f))
