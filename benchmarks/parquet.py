"""Parquet against CSV through `nncli predict` (issue 12): the same rows as a Parquet file and as
a CSV file, predicted to CSV (and to Parquet), interleaved; wall time, rows per second and the
peak resident memory of each run. The promise it checks: a Parquet file streams within the
memory bound of the CSV file of the same rows, and faster."""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.timing import interleave, scratch_folder
from benchmarks.workloads import NNCLI, _run_with_peak


def _table(rows: int, seed: int = 0):
    """20 float columns and a text label (`up`/`down`), as polars writes them."""
    import polars as pl

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 20))
    return pl.DataFrame({f"f{j}": X[:, j] for j in range(20)}).with_columns(
        pl.Series("label", np.where(X[:, 0] + X[:, 1] > 0, "up", "down")))


def parquet_predict(rounds: int, megabytes: int = 1000) -> dict:
    """A Parquet file of about ``megabytes`` MB (7 million rows a GB, in polars' own row groups
    of ~19 MB) and the CSV of the same rows (2.6 × its size), each through `nncli predict`."""
    from nncli.commands.train import prepare_training
    from nncli.config import load_config
    from nncli.files.model import save_model

    folder = scratch_folder("nncli-bench-parquet-")
    _table(5000, seed=1).write_csv(folder / "train.csv")
    (folder / "c.yaml").write_text("seed: 0\ndata: {train: train.csv, target: label}\n"
                                   "model: {layers: [auto, 32, auto]}\ntraining: {epochs: 2}\n")
    save_model(folder / "m.npz", prepare_training(load_config(folder / "c.yaml")).fit())
    rows = max(1000, int(megabytes * 1e6 / 154))  # (a row takes ~154 bytes of Parquet)
    frame = _table(rows)
    frame.write_parquet(folder / "data.parquet")
    frame.write_csv(folder / "data.csv")
    del frame
    sizes = {kind: (folder / f"data.{kind}").stat().st_size / 1e6 for kind in ("csv", "parquet")}
    model = str(folder / "m.npz")
    runs = {
        "csv -> csv": [model, str(folder / "data.csv"), "-o", str(folder / "out-a.csv")],
        "parquet -> csv": [model, str(folder / "data.parquet"), "-o", str(folder / "out-b.csv")],
        "parquet -> parquet": [model, str(folder / "data.parquet"), "-o", str(folder / "out-c.parquet")],
    }
    peaks: dict[str, list[float]] = {name: [] for name in runs}

    def variant(name: str):
        def run() -> float:
            seconds, peak = _run_with_peak([str(NNCLI), "predict", *runs[name]])
            peaks[name].append(peak)
            return seconds
        return run

    _, startup_rss = _run_with_peak([str(NNCLI), "--version"])
    times = interleave({name: variant(name) for name in runs}, rounds)
    same = (folder / "out-a.csv").read_bytes() == (folder / "out-b.csv").read_bytes()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return {"title": f"Predict: {sizes['parquet']:,.0f} MB Parquet vs {sizes['csv']:,.0f} MB CSV of the same {rows:,} rows "
                     "(20 floats + a text label)",
            "times": times, "reference": "csv -> csv", "rows": rows, "startup_rss_mb": startup_rss,
            "peaks_mb": {name: statistics.median(samples) for name, samples in peaks.items()},
            "same_predictions": same}
