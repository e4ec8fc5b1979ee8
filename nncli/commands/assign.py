"""`nncli predict clusters.npz DATA`: each new row's nearest saved centroid (the clusters file
of `nncli cluster --save`), as a `cluster` column after the --keep columns, streamed chunk by
chunk as predict streams.

(predict dispatches here by the file's format; this module imports neither predict nor
cluster, so that the dispatch makes no import circle.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from nncli.core.kmeans import assign
from nncli.errors import DataError, ModelFileError, UsageError, quoted
from nncli.files.atomic import atomic_write
from nncli.files.clusters import Clusters, load_clusters
from nncli.files.filehash import file_hash
from nncli.files.model import load_model
from nncli.files.paths import check_writable, same_file
from nncli.tabular.columns import check_columns, kept_fields, text_columns_for
from nncli.tabular.embedding import chunk_bytes_for_codes, stream_codes
from nncli.tabular.parse import NotANumber, listed
from nncli.tabular.stream import CHUNK_BYTES, Chunk
from nncli.tabular.tables import header_place, open_table
from nncli.tabular.write import write_csv_rows


def assign_rows(clusters_path: Path, data: str, destination: Path | None, keep: list[str], proba: bool, stdout: TextIO) -> int:
    """Write ``keep`` columns + ``cluster`` for every row of ``data`` to ``destination`` (atomically,
    CSV) or ``stdout``; returns the number of rows."""
    if proba:
        raise UsageError(f"--proba needs a classification model; {clusters_path} holds cluster centroids")
    if destination is not None and destination.suffix.lower() == ".parquet":
        raise UsageError(f"--output {destination}: cluster assignments are written as CSV; name the file .csv")
    clusters = load_clusters(clusters_path)
    keep = list(dict.fromkeys(keep))
    if "cluster" in keep:
        raise UsageError("--keep cluster: the output already has a column of that name")
    model = saved_model(clusters_path, clusters)
    if destination is not None:
        check_writable(destination)
        for source in (Path(data), clusters_path):
            if str(source) != "-" and same_file(destination, source):
                raise UsageError(f"--output {destination}: is an input file; write the clusters elsewhere")
    chunk_bytes = CHUNK_BYTES if model is None else chunk_bytes_for_codes(model, clusters.model.layer)
    with open_table(data, chunk_bytes) as stream:
        if destination is None:
            return _write(clusters_path, clusters, model, stream, keep, stdout)
        with atomic_write(destination, "w") as f:
            return _write(clusters_path, clusters, model, stream, keep, f)


def _write(path: Path, clusters: Clusters, model, stream, keep: list[str], out: TextIO) -> int:
    return write_csv_rows(out, [*keep, "cluster"],
                          ([kept_fields(chunk, stream.header, name) for name in keep]
                           + [nearest_clusters(path, clusters, X, stream.name).astype(str).tolist()]
                           for chunk, X in _blocks(clusters, model, stream, keep)))


def nearest_clusters(path: Path, clusters: Clusters, X: np.ndarray, source: str) -> np.ndarray:
    """Each row's cluster: the nearest centroid to its features or codes ``X`` (before scaling),
    scaled as the clustering scaled them. ``source``: the data's name, for the error."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = clusters.scaler.transform(X)
    if not np.isfinite(scaled).all():  # (a damaged file's scale of 1e-308, say)
        raise ModelFileError(f"{path}: its scaling turns these rows into numbers that are not finite "
                             f"(a scale too small, or an offset too large, for {source}); cluster again")
    return assign(scaled, clusters.centroids)[0]


def saved_model(path: Path, clusters: Clusters):
    """The model whose codes the centroids are in, checked to be the very file that was clustered,
    with the refined encoder in place of its first layers when the clusters have one (None for
    clusters of a file's own columns). `plot CLUSTERS DATA --codes` draws its codes too."""
    if clusters.model is None:
        return None
    source = Path(clusters.model.path)
    if not source.is_file():
        raise ModelFileError(f"{path}: clusters of the codes of {source}, which no longer exists")
    if file_hash(source) != clusters.model.sha256:
        raise ModelFileError(f"{path}: clusters of the codes of {source}, which has changed since (its SHA-256 differs); cluster again")
    model = load_model(source)
    if clusters.encoder is not None:
        use_refined_encoder(path, model, clusters)
    return model


def use_refined_encoder(path: Path, model, clusters: Clusters) -> None:
    """Put the encoder `cluster --refine` saved in place of the model's layers up to the code
    layer (in memory: the model file is untouched), so that its codes are the refined ones."""
    network, layer = model.network, clusters.model.layer
    sizes = [clusters.encoder[0][0].shape[0], *(W.shape[1] for W, _ in clusters.encoder)]
    biased = [b is not None for _, b in clusters.encoder] == [b is not None for b in network.biases[:layer]]
    if sizes != network.sizes[: layer + 1] or not biased or clusters.encoder[0][0].dtype != network.dtype:
        raise ModelFileError(f"{path}: the refined encoder ({sizes}, {clusters.encoder[0][0].dtype}) does not fit the layers "
                             f"{network.sizes[: layer + 1]} ({network.dtype}) of {clusters.model.path}")
    for i, (W, b) in enumerate(clusters.encoder):
        network.weights[i], network.biases[i] = W, b


def _blocks(clusters: Clusters, model, stream, keep: list[str]) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Each chunk with its rows in the centroids' space before scaling: features or codes."""
    if model is not None:
        check_columns(model, stream, keep)
        for chunk, codes in stream_codes(model, stream, text_columns_for(model, stream.header, keep), clusters.model.layer, keep):
            yield chunk, codes.astype(np.float64)
        return
    header, features = stream.header, clusters.features
    missing = [name for name in features if name not in stream.positions]
    if missing:
        raise DataError(f"{header_place(stream.name)}: missing feature column {quoted(missing[0])}; the clusters were made "
                        f"from {len(features):,} columns: {listed(features)}")
    check_named(stream.name, header, {"--keep": keep})
    used = {*features, *keep}
    skip = [name for name in header if name not in used]
    kept_features = set(keep) & set(features)  # read as text (to copy as written), and as numbers
    try:
        for chunk in stream.chunks(keep, skip):
            if not len(chunk.values):
                continue
            X = np.column_stack([chunk.numbers(header, name, stream.name, keep) if name in kept_features
                                 else chunk.column(header, name) for name in features])
            check_finite(X, chunk, features)
            yield chunk, X
    except NotANumber as exc:
        raise DataError(f"{exc}; the clusters were made from numbers in this column") from None


def check_named(name: str, header: list[str], options: dict[str, list[str]]) -> None:
    """Every column an option names is in the file."""
    present = set(header)
    for option, columns in options.items():
        unknown = [column for column in columns if column not in present]
        if unknown:
            raise DataError(f"{header_place(name)}: {option} column {quoted(unknown[0])} is not in the file (columns: {listed(header)})")


def check_finite(X: np.ndarray, chunk: Chunk, names: list[str]) -> None:
    """k-means needs a number in every cell: the first missing or infinite one is named."""
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        raise DataError(f"{chunk.where(row)}: column {quoted(names[column])} is not a finite number; "
                        "clustering needs a value in every cell (leave the column out with --ignore)")
