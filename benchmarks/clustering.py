"""`nncli cluster`'s k-means (issue 15) against scikit-learn's KMeans.

Quality: the digits features (datasets/digits.csv, 1,797 × 64), k = 10, n_init = 10, seeds
0–4, raw pixels (`--scale none`, where the issue's reference ARI 0.668 / NMI 0.742 comes from)
and standard-scaled (nncli cluster's default): mean inertia, ARI and NMI of each.

Speed: 100,000 × 64 rows (digits rows drawn with replacement, plus N(0, 0.5²) noise, so the
groups are real but no row repeats), k = 10, one k-means++ start (n_init = 1), seed = the
round; the whole fit, seeding included. The two stop by the same rule (tol 1e-4 of the mean
variance, or no row moving), but from different seeds they take different numbers of
iterations, so the time per Lloyd iteration is given too.

Codes (issue 15's second target): for seeds 0–4, the shipped autoencoder
(configs/digits-autoencoder.yaml) trained with that seed, then `nncli cluster MODEL digits --k 10
--seed S` on its codes — k-means alone, and with `--refine` (deep embedded clustering) — through
the command's own service, so the figures are the shipped path's; ARI and NMI against the
labels, beside k-means on the raw pixels (`--scale none`), and the seconds each step took.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.workloads import ROOT

DIGITS = ROOT / "datasets" / "digits.csv"
SEEDS = range(5)
ROWS, K = 100_000, 10


def _digits() -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(DIGITS, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def _standard(X: np.ndarray) -> np.ndarray:
    from nncli.core.preprocess import Scaler

    return Scaler.fit(X, "standard").transform(X)


def quality() -> dict:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from nncli.core.kmeans import kmeans

    X, y = _digits()
    out = {}
    for scaling, data in (("none", X), ("standard", _standard(X))):
        figures = {"nncli": [], "scikit-learn": []}
        for seed in SEEDS:
            ours = kmeans(data, K, np.random.default_rng(seed), n_init=10)
            theirs = KMeans(K, n_init=10, random_state=seed).fit(data)
            figures["nncli"].append((ours.inertia, adjusted_rand_score(y, ours.labels), normalized_mutual_info_score(y, ours.labels)))
            figures["scikit-learn"].append((theirs.inertia_, adjusted_rand_score(y, theirs.labels_),
                                            normalized_mutual_info_score(y, theirs.labels_)))
        means = {name: dict(zip(("inertia", "ari", "nmi"), map(float, np.mean(rows, axis=0)))) for name, rows in figures.items()}
        means["inertia_ratio"] = means["nncli"]["inertia"] / means["scikit-learn"]["inertia"]
        means["ari_difference"] = means["nncli"]["ari"] - means["scikit-learn"]["ari"]
        out[scaling] = means
    return out


def codes_quality() -> dict:
    """Mean ARI / NMI over seeds 0–4 of k-means on raw pixels, on the shipped autoencoder's codes,
    and on its codes refined (the cluster command's defaults), with the seconds of each step."""
    import io
    import tempfile
    from pathlib import Path

    from nncli.commands.cluster import ClusterRequest, cluster
    from nncli.commands.train import prepare_training
    from nncli.config import load_config
    from nncli.files.model import save_model

    rows: dict[str, list[tuple[float, float]]] = {"raw pixels": [], "codes": [], "codes + refine": []}
    seconds: dict[str, list[float]] = {"train autoencoder": [], "cluster codes": [], "cluster codes + refine": []}
    with tempfile.TemporaryDirectory() as folder:
        for seed in SEEDS:
            started = time.perf_counter()
            model = prepare_training(load_config(ROOT / "configs" / "digits-autoencoder.yaml", [f"seed={seed}"])).fit()
            seconds["train autoencoder"].append(time.perf_counter() - started)
            path = Path(folder) / f"ae{seed}.npz"
            save_model(path, model)
            raw = cluster(ClusterRequest([str(DIGITS)], "10", seed=seed, scale="none", labels="label", write_rows=False), io.StringIO())
            rows["raw pixels"].append((raw.scores["ari"], raw.scores["nmi"]))
            started = time.perf_counter()
            plain = cluster(ClusterRequest([str(path), str(DIGITS)], "10", seed=seed, labels="label", write_rows=False), io.StringIO())
            seconds["cluster codes"].append(time.perf_counter() - started)
            rows["codes"].append((plain.scores["ari"], plain.scores["nmi"]))
            started = time.perf_counter()
            refined = cluster(ClusterRequest([str(path), str(DIGITS)], "10", seed=seed, labels="label", write_rows=False,
                                             refine=True), io.StringIO())
            seconds["cluster codes + refine"].append(time.perf_counter() - started)
            rows["codes + refine"].append((refined.scores["ari"], refined.scores["nmi"]))
    return {"ari": {name: [ari for ari, _ in values] for name, values in rows.items()},
            "nmi": {name: [nmi for _, nmi in values] for name, values in rows.items()},
            "mean_ari": {name: statistics.mean(ari for ari, _ in values) for name, values in rows.items()},
            "mean_nmi": {name: statistics.mean(nmi for _, nmi in values) for name, values in rows.items()},
            "median_seconds": {name: statistics.median(values) for name, values in seconds.items()}}


def clustering(rounds: int) -> dict:
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        KMeans = None
    from nncli.core.kmeans import kmeans

    X, _ = _digits()
    rng = np.random.default_rng(0)
    big = X[rng.integers(len(X), size=ROWS)] + rng.normal(0, 0.5, (ROWS, X.shape[1]))
    times: dict[str, list[float]] = {"nncli": [], **({"scikit-learn": []} if KMeans else {})}
    iterations: dict[str, list[int]] = {name: [] for name in times}
    for seed in range(rounds):
        started = time.perf_counter()
        ours = kmeans(big, K, np.random.default_rng(seed), n_init=1)
        times["nncli"].append(time.perf_counter() - started)
        iterations["nncli"].append(ours.iterations)
        if KMeans:
            started = time.perf_counter()
            theirs = KMeans(K, n_init=1, random_state=seed).fit(big)
            times["scikit-learn"].append(time.perf_counter() - started)
            iterations["scikit-learn"].append(int(theirs.n_iter_))
    per_iteration = {name: statistics.median(t / i for t, i in zip(times[name], iterations[name])) for name in times}
    notes = [f"{name}: median {per_iteration[name] * 1000:.1f} ms per Lloyd iteration, "
             f"{statistics.mean(iterations[name]):.1f} iterations on average" for name in times]
    result = {"title": f"k-means, {ROWS:,} × 64 digits-like rows, k = {K}, n_init = 1 (whole fit)",
              "times": times, "iterations": iterations, "seconds_per_iteration": per_iteration, "notes": notes}
    if KMeans:
        result["reference"] = "scikit-learn"
        result["quality"] = quality()
        for scaling, q in result["quality"].items():
            notes.append(f"digits ({scaling} scaling), n_init 10, 5 seeds: inertia {q['inertia_ratio']:.4f} × scikit-learn's; "
                         f"ARI {q['nncli']['ari']:.3f} vs {q['scikit-learn']['ari']:.3f}, "
                         f"NMI {q['nncli']['nmi']:.3f} vs {q['scikit-learn']['nmi']:.3f}")
    codes = result["codes"] = codes_quality()
    for name, ari in codes["mean_ari"].items():
        notes.append(f"digits, {name}, k = 10, seeds 0-4: mean ARI {ari:.3f} "
                     f"(per seed {', '.join(f'{a:.3f}' for a in codes['ari'][name])}), mean NMI {codes['mean_nmi'][name]:.3f}")
    notes.append("median seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in codes["median_seconds"].items()))
    return result
