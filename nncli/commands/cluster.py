"""The `cluster` service: k-means on a file's rows (their scaled numeric columns) or on a
model's codes for them, a cluster per row out, sizes and scores in the result; and the
assignment of new rows to saved centroids (`nncli predict clusters.npz new.csv`, commands/assign.py).

Every row is held in memory (k-means visits them all on every iteration); the k-means itself
works in bounded blocks of rows (core/kmeans.py).

With ``--refine`` (a model's codes, one k) the k-means centroids are the start of deep embedded
clustering (core/dec.py): the model's layers up to the code layer are retrained so that the
codes sharpen toward their clusters, and the clusters are those of the refined codes. The
encoder's inputs for every row are then held in memory too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from nncli.commands.assign import check_finite, check_named
from nncli.commands.predict import output_file, writes_parquet
from nncli.core.cluster_scores import (
    SILHOUETTE_SAMPLE,
    adjusted_rand_index,
    normalized_mutual_info,
    purity,
    sample_rows,
    silhouette,
)
from nncli.core.dec import TargetUpdate, refine
from nncli.core.kmeans import KMeansResult, assign, kmeans
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler
from nncli.errors import DataError, UsageError
from nncli.files.atomic import atomic_write
from nncli.files.clusters import Clusters, ModelSource, save_clusters
from nncli.files.filehash import file_hash
from nncli.files.model import MODEL_THEN_DATA, load_model
from nncli.files.paths import check_writable, is_device, same_file
from nncli.tabular.columns import check_columns, chunk_features, kept_fields, text_columns_for
from nncli.tabular.embedding import chunk_bytes_for_codes, code_columns, embedding_layer, stream_codes
from nncli.tabular.parse import NotANumber
from nncli.tabular.stream import Chunk
from nncli.tabular.tables import open_table
from nncli.tabular.write import csv_field

# --refine's defaults (measured on the digits, docs/clustering.md): Adam's rate, rows per step,
# and the share of rows changing cluster between target updates below which refinement stops.
REFINE_EPOCHS = 100
REFINE_LEARNING_RATE = 1e-3
REFINE_BATCH = 256
REFINE_TOL = 1e-3
MAX_K = 10_000  # a scan of k values runs k-means once per value: 2..10000 is already hours
_RANGE = re.compile(r"^\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?$")


@dataclass
class ClusterRequest:
    inputs: list[str]  # [DATA] or [MODEL, DATA]
    k: str  # "10" or "2..15"
    n_init: int = 10
    max_iter: int = 300
    seed: int = 0
    scale: str = "standard"
    layer: int | None = None
    labels: str | None = None
    keep: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    output: str | None = None
    save: str | None = None
    sample: int = SILHOUETTE_SAMPLE
    write_rows: bool = True  # False with --json and no -o: the report alone
    refine: bool = False  # deep embedded clustering of a model's codes (core/dec.py)
    refine_epochs: int | None = None  # None: REFINE_EPOCHS
    force: bool = False  # --save may replace an existing clusters file
    on_update: Callable[[TargetUpdate], None] | None = None  # progress, once per target update


@dataclass
class ScanPoint:
    k: int
    inertia: float
    silhouette: float | None  # None for k = 1 (no second cluster to compare with)
    iterations: int


@dataclass
class ClusterResult:
    rows: int
    space: str  # what was clustered: "8 scaled features" or "codes at layer 2 of model.npz"
    dimensions: int
    k: int
    sizes: list[int]
    inertia: float
    silhouette: float | None
    sample: int  # rows in the silhouette sample
    iterations: int
    scan: list[ScanPoint]  # one point per k tried (one when --k is a number)
    scores: dict | None  # ari, nmi, purity against --labels
    labels_column: str | None
    saved: str | None
    output: str | None
    refined: dict | None = None  # with --refine: iterations, changed, converged, updates, scores before

    @property
    def scanned(self) -> bool:
        return len(self.scan) > 1

    def to_json(self) -> dict:
        return {
            "rows": self.rows, "space": self.space, "dimensions": self.dimensions, "k": self.k,
            "chosen_by": "silhouette" if self.scanned else "given",
            "sizes": self.sizes, "inertia": self.inertia, "silhouette": self.silhouette,
            "silhouette_sample": self.sample, "iterations": self.iterations,
            "scan": [vars(point) for point in self.scan] if self.scanned else [],
            "scores": self.scores, "labels": self.labels_column, "saved": self.saved, "output": self.output,
            "refine": self.refined,
        }


@dataclass
class _Table:
    X: np.ndarray  # (rows, dimensions): features or codes, before scaling
    names: list[str]  # the feature columns read (for codes: the model's features)
    kept: list[list[str]]  # per --keep column, its cells as CSV fields
    truth: np.ndarray | None  # the --labels column, as text
    model: ModelSource | None
    network: MLP | None = None  # with --refine: the model's network …
    inputs: np.ndarray | None = None  # … and its inputs for every row


def parse_k(text: str) -> list[int]:
    """--k 10 -> [10]; --k 2..15 -> [2, 3, …, 15]."""
    match = _RANGE.match(text)
    if not match:
        raise UsageError(f"--k {text}: expected a number of clusters (e.g. 10) or a range (e.g. 2..15)")
    low, high = int(match[1]), int(match[2] or match[1])
    if low < 1 or high < low:
        raise UsageError(f"--k {text}: the number of clusters must be at least 1, and a range must go up (2..15)")
    if high > MAX_K:
        raise UsageError(f"--k {text}: at most {MAX_K:,} clusters")
    return list(range(low, high + 1))


def cluster(request: ClusterRequest, stdout: TextIO) -> ClusterResult:
    ks = parse_k(request.k)
    if len(request.inputs) not in (1, 2):
        raise UsageError("give DATA, or MODEL DATA (a model file, then the data whose codes to cluster)")
    _check_refine(request, ks)
    destination = _checked_output(request)
    save = _checked_save(request)
    table = _read(request)
    n = len(table.X)
    if max(ks) > n:
        raise DataError(f"--k {request.k}: {max(ks)} clusters but only {n:,} rows in {request.inputs[-1]}")
    if n and np.ptp(table.X, axis=0).max(initial=0.0) == 0.0:
        raise DataError(f"{request.inputs[-1]}: every row has the same values; there is nothing to cluster")
    scaler = Scaler.fit(table.X, request.scale)
    Z = scaler.transform(table.X)
    sample = sample_rows(n, request.sample, np.random.default_rng(request.seed))
    runs, scan = {}, []
    for k in ks:
        # A fresh generator per k: `--k 10` and the k = 10 of `--k 2..15` are the same clustering.
        result = kmeans(Z, k, np.random.default_rng(request.seed), request.n_init, request.max_iter)
        runs[k] = result
        scan.append(ScanPoint(k, result.inertia, _silhouette(Z, result.labels, sample), result.iterations))
    best = max(scan, key=lambda p: -np.inf if p.silhouette is None else p.silhouette) if len(scan) > 1 else scan[0]
    chosen = runs[best.k]
    scores = _scores(table.truth, chosen.labels)
    refined, encoder = None, None
    if request.refine:
        chosen, encoder, refined, Z = _refine(request, table, scaler, chosen)
        refined["scores_before"] = scores
        scores = _scores(table.truth, chosen.labels)
        best = ScanPoint(best.k, chosen.inertia, _silhouette(Z, chosen.labels, sample), chosen.iterations)
    if save is not None:
        record = {"rows": n, "inertia": chosen.inertia, "seed": request.seed, "n_init": request.n_init}
        if refined is not None:
            record.update(refine_iterations=refined["iterations"], refine_changed=refined["changed"])
        save_clusters(save, Clusters(chosen.centroids, table.names, scaler, table.model, record, encoder))
    if request.write_rows:
        _write(destination, stdout, request.keep, table.kept, chosen.labels)
    scaling = "not scaled" if request.scale == "none" else f"{request.scale} scaling"
    space = (f"{Z.shape[1]} features, {scaling}" if table.model is None
             else f"{Z.shape[1]} codes at layer {table.model.layer} of {request.inputs[0]}, {scaling}")
    if refined is not None:
        space += ", refined (deep embedded clustering)"
    return ClusterResult(n, space, Z.shape[1], best.k, chosen.sizes.tolist(), chosen.inertia, best.silhouette,
                         len(sample), chosen.iterations, scan, scores, request.labels,
                         request.save, request.output, refined)


def _check_refine(request: ClusterRequest, ks: list[int]) -> None:
    if request.refine_epochs is not None and not request.refine:
        raise UsageError("--refine-epochs applies to --refine")
    if not request.refine:
        return
    if len(request.inputs) != 2:
        raise UsageError("--refine retrains a model's encoder: give MODEL DATA (e.g. an autoencoder, "
                         "nncli train configs/digits-autoencoder.yaml)")
    if len(ks) > 1:
        raise UsageError(f"--refine takes one number of clusters, not the range {request.k} (scan without --refine first)")
    if request.refine_epochs is not None and request.refine_epochs < 1:
        raise UsageError(f"--refine-epochs {request.refine_epochs}: expected at least 1 pass over the rows")


def _scores(truth: np.ndarray | None, labels: np.ndarray) -> dict | None:
    if truth is None:
        return None
    return {"ari": adjusted_rand_index(truth, labels), "nmi": normalized_mutual_info(truth, labels),
            "purity": purity(truth, labels)}


def _refine(request: ClusterRequest, table: _Table, scaler: Scaler, start: KMeansResult):
    """Deep embedded clustering from the k-means ``start``: (the clustering of the refined codes
    as a KMeansResult, the refined encoder's (W, b) per layer, the report's ``refine`` entry,
    the refined codes scaled)."""
    network, layer = table.network, table.model.layer
    # Copies: the model's own arrays stay as they were loaded.
    encoder = MLP([W.copy() for W in network.weights[:layer]],
                  [None if b is None else b.copy() for b in network.biases[:layer]], network.activations[:layer])
    result = refine(encoder, table.inputs, start.centroids, np.random.default_rng(request.seed),
                    offset=scaler.offset, scale=scaler.scale, epochs=request.refine_epochs or REFINE_EPOCHS,
                    batch_size=REFINE_BATCH, learning_rate=REFINE_LEARNING_RATE, tol=REFINE_TOL,
                    on_update=request.on_update)
    centroids = result.centroids.astype(np.float64)
    Z = scaler.transform(encoder.forward(table.inputs).astype(np.float64))
    labels, distances = assign(Z, centroids)  # the nearest centroid: what predict gives a new row
    # (its iterations stay the Lloyd iterations of the start; refinement's steps are in the report)
    chosen = KMeansResult(centroids, labels, float(distances.sum()), start.iterations,
                          np.bincount(labels, minlength=len(centroids)))
    passes = result.iterations / -(-len(table.inputs) // REFINE_BATCH)  # (a pass: every row once, in batches)
    report = {"iterations": result.iterations, "passes": passes, "epochs": request.refine_epochs or REFINE_EPOCHS,
              "changed": result.changed, "converged": result.converged,
              "updates": [vars(update) for update in result.updates]}
    return chosen, list(zip(encoder.weights, encoder.biases)), report, Z


def _silhouette(Z: np.ndarray, labels: np.ndarray, sample: np.ndarray) -> float | None:
    picked = labels[sample]
    if not 2 <= len(np.unique(picked)) <= len(sample) - 1:
        return None
    return silhouette(Z[sample], picked)


def _checked_output(request: ClusterRequest) -> Path | None:
    if request.output is None:
        return None
    destination = output_file(request.output)
    if writes_parquet(destination):
        raise UsageError(f"--output {request.output}: cluster writes CSV; name the file .csv")
    check_writable(destination)
    for source in request.inputs:
        if source != "-" and same_file(destination, Path(source)):
            raise UsageError(f"--output {request.output}: is an input file; write the clusters elsewhere")
    return destination


def _checked_save(request: ClusterRequest) -> Path | None:
    """--save FILE, before any work: writable, not an input, and not replacing a file without
    --force (as train, init and export: nncli never overwrites a model-like file silently)."""
    if request.save is None:
        return None
    save = output_file(request.save)
    check_writable(save)
    for source in request.inputs:
        if source != "-" and same_file(save, Path(source)):
            raise UsageError(f"--save {request.save}: is an input file; save the clusters elsewhere")
    output = None if request.output is None else output_file(request.output)
    if output is not None and (save.resolve() == output.resolve() or same_file(save, output)):
        raise UsageError(f"--save {request.save}: is also --output; give the clusters file its own name")
    if (save.is_symlink() or save.exists()) and not is_device(save) and not request.force:
        raise UsageError(f"{save}: already exists; nncli cluster does not overwrite it (--force replaces it)")
    return save


def _read(request: ClusterRequest) -> _Table:
    data = request.inputs[-1]
    extra = list(dict.fromkeys([*request.keep, *([request.labels] if request.labels else [])]))
    if len(request.inputs) == 2:
        return _read_codes(Path(request.inputs[0]), data, request.layer, request.keep, extra, request.labels, request.refine)
    if request.layer is not None:
        raise UsageError("--layer picks a model's layer: give MODEL DATA")
    return _read_features(data, request.keep, extra, request.labels, request.ignore)


def _read_features(data: str, keep: list[str], extra: list[str], labels: str | None, ignore: list[str]) -> _Table:
    with open_table(data) as stream:
        header = stream.header
        check_named(stream.name, header, {"--keep": keep, "--labels": [labels] if labels else [], "--ignore": ignore})
        left_out = {*extra, *ignore}
        names = [name for name in header if name not in left_out]
        if not names:
            raise UsageError(f"{stream.name}: no feature columns left to cluster (every column is kept, labels or ignored)")
        skip = [name for name in ignore if name not in extra]
        positions = [header.index(name) for name in names]
        blocks, kept, truth = [], [[] for _ in keep], []
        try:
            for chunk in stream.chunks(extra, skip):
                X = chunk.values[:, positions]
                check_finite(X, chunk, names)
                blocks.append(X)
                _collect(chunk, header, keep, labels, kept, truth)
        except NotANumber as exc:
            raise DataError(f"{exc}; cluster takes numeric columns: --ignore {exc.column} leaves it out "
                            "(a model's codes one-hot categories: nncli cluster MODEL DATA)") from None
    X = np.concatenate(blocks) if blocks else np.empty((0, len(names)))
    return _Table(X, names, kept, np.array(truth, dtype=object) if labels else None, None)


def _read_codes(model_path: Path, data: str, layer: int | None, keep: list[str], extra: list[str], labels: str | None,
                with_inputs: bool = False) -> _Table:
    model = load_model(model_path, MODEL_THEN_DATA)
    layer = embedding_layer(model, layer)
    with open_table(data, chunk_bytes_for_codes(model, layer)) as stream:
        check_columns(model, stream, extra)
        blocks, kept, truth, inputs = [], [[] for _ in keep], [], []
        text_columns = text_columns_for(model, stream.header, extra)
        for chunk, codes in stream_codes(model, stream, text_columns, layer, extra):
            blocks.append(codes.astype(np.float64))
            if with_inputs and len(codes):  # (the codes came out: the same rows make inputs without error)
                inputs.append(model.inputs(chunk_features(model, stream, chunk, text_columns)))
            _collect(chunk, stream.header, keep, labels, kept, truth)
    width = len(code_columns(model, layer))
    X = np.concatenate(blocks) if blocks else np.empty((0, width))
    source = ModelSource(str(model_path.resolve()), file_hash(model_path), layer)
    network_inputs = np.concatenate(inputs) if inputs else np.empty((0, model.network.sizes[0]), model.network.dtype)
    return _Table(X, list(model.features), kept, np.array(truth, dtype=object) if labels else None, source,
                  model.network if with_inputs else None, network_inputs if with_inputs else None)


def _collect(chunk: Chunk, header: list[str], keep: list[str], labels: str | None, kept: list[list[str]], truth: list) -> None:
    for cells, name in zip(kept, keep):
        cells.extend(kept_fields(chunk, header, name))
    if labels:
        truth.extend("" if cell is None else cell for cell in chunk.text_column(header, labels))


def _write(destination: Path | None, stdout: TextIO, keep: list[str], kept: list[list[str]], labels: np.ndarray) -> None:
    if "cluster" in keep:
        raise UsageError("--keep cluster: the output already has a column of that name")

    def rows(out: TextIO) -> None:
        out.write(",".join(csv_field(name) for name in [*keep, "cluster"]) + "\n")
        step = 65536
        for start in range(0, len(labels), step):
            columns = [cells[start : start + step] for cells in kept] + [labels[start : start + step].astype(str).tolist()]
            out.write("".join(",".join(parts) + "\n" for parts in zip(*columns)))
        out.flush()

    if destination is None:
        rows(stdout)
    else:
        with atomic_write(destination, "w") as f:
            rows(f)
