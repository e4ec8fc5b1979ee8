"""Preparing arrays for a network: one-hot targets, column scaling, the validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nncli.core.tasks import LossKind


def one_hot(codes: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    out = np.zeros((len(codes), n_classes), dtype=dtype)
    out[np.arange(len(codes)), codes] = 1
    return out


def class_targets(codes: np.ndarray, n_classes: int, kind: LossKind, dtype) -> np.ndarray:
    """Class indices as the network's targets: one-hot rows, or for a binary loss one column
    that is 1 for the second class."""
    if kind.targets == "binary":
        return (codes == 1).astype(dtype)[:, None]
    return one_hot(codes, n_classes, dtype)


def class_probabilities(output: np.ndarray, kind: LossKind) -> np.ndarray:
    """The network's output as one probability column per class (a binary loss's single
    sigmoid column is P(second class))."""
    if kind.targets == "binary":
        return np.concatenate([1 - output, output], axis=1)
    return output


def network_output(probabilities: np.ndarray, kind: LossKind) -> np.ndarray:
    """The inverse of :func:`class_probabilities`: what the network itself put out."""
    return probabilities[:, 1:] if kind.targets == "binary" else probabilities


@dataclass
class Scaler:
    """``(x - offset) / scale`` per column; statistics come from the training split only."""

    method: str  # standard | minmax | none
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, method: str) -> "Scaler":
        """Statistics per column in float64 whatever ``X``'s dtype, reading the table in
        contiguous blocks of rows (no float64 copy of a float32 table, no strided gathers):
        the mean and the population standard deviation as sums taken row after row, so the
        result does not depend on the block size, nor on ``X``'s dtype when its values are the
        same numbers."""
        if method not in ("standard", "minmax", "none"):
            raise ValueError(f"unknown normalisation {method!r}")
        columns = X.shape[1]
        offset, scale = np.zeros(columns), np.ones(columns)
        if method == "standard" and len(X):
            offset = _sum_of_rows(X, len(X)) / len(X)
            scale = np.sqrt(_sum_of_rows(X, len(X), around=offset) / len(X))
        elif method == "minmax" and len(X):
            offset, high = np.full(columns, np.inf), np.full(columns, -np.inf)
            for start in range(0, len(X), _fit_rows(columns)):
                block = X[start : start + _fit_rows(columns)]
                np.minimum(offset, block.min(axis=0), out=offset)
                np.maximum(high, block.max(axis=0), out=high)
            offset, scale = offset.astype(np.float64), high.astype(np.float64) - offset.astype(np.float64)
        return cls(method, offset, _unit_if_constant(scale))

    def leaving_alone(self, columns: np.ndarray) -> "Scaler":
        """This scaler with ``columns`` (a bool per column) passed through as they are, offset 0
        and scale 1: a one-hot input stays 0 or 1, whatever share of the rows has the category
        (standardising it would only make rare categories large)."""
        if not columns.any():
            return self
        return Scaler(self.method, np.where(columns, 0.0, self.offset), np.where(columns, 1.0, self.scale))

    def transform(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        if self.method == "none":
            return X.astype(dtype, copy=False)
        return ((X - self.offset) / self.scale).astype(dtype, copy=False)

    def transform_into(self, X: np.ndarray, out: np.ndarray) -> None:
        """:meth:`transform` written into ``out`` (which may be ``X`` itself: scaling in place),
        a block of rows at a time in float64: the same values as ``transform(X, out.dtype)``,
        bit for bit, with no full-size temporary."""
        if self.method == "none":
            if out is not X:
                out[...] = X
            return
        step = max(1, TRANSFORM_BLOCK_BYTES // (8 * max(1, X.shape[1])))
        for start in range(0, len(X), step):
            rows = slice(start, start + step)
            out[rows] = (X[rows] - self.offset) / self.scale

    def inverse(self, Y: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return Y
        return Y * self.scale.astype(Y.dtype) + self.offset.astype(Y.dtype)

    def to_json(self) -> dict:
        return {"method": self.method, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "Scaler":
        return cls(data["method"], np.asarray(data["offset"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64))


def _unit_if_constant(scale: np.ndarray) -> np.ndarray:
    """A constant column carries no information; scaling it by 1 keeps it finite (0). A scale
    that overflowed (inf, NaN) stays so, for the caller to report."""
    return np.where((scale > 0) | ~np.isfinite(scale), scale, 1.0)


class ScalerFit:
    """:meth:`Scaler.fit` over rows that come a block at a time (data bigger than memory):
    statistics in float64, blocks merged with Chan's pairwise formulas, so the result does not
    depend on the block size beyond rounding."""

    def __init__(self, method: str, columns: int):
        if method not in ("standard", "minmax", "none"):
            raise ValueError(f"unknown normalisation {method!r}")
        self.method, self.rows = method, 0
        self.mean, self.m2 = np.zeros(columns), np.zeros(columns)
        self.low, self.high = np.full(columns, np.inf), np.full(columns, -np.inf)

    def add(self, block: np.ndarray) -> None:
        if not len(block) or self.method == "none":
            return
        values = np.asarray(block, dtype=np.float64)
        if self.method == "minmax":
            np.minimum(self.low, values.min(axis=0), out=self.low)
            np.maximum(self.high, values.max(axis=0), out=self.high)
            return
        m = len(values)
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        if self.rows == 0:  # (merging into nothing: 0 × an overflowed delta² would be NaN, not inf)
            self.mean, self.m2, self.rows = mean, m2, m
            return
        total = self.rows + m
        delta = mean - self.mean
        self.mean += delta * (m / total)
        self.m2 += m2 + delta**2 * (self.rows * m / total)
        self.rows = total

    def scaler(self) -> Scaler:
        columns = len(self.mean)
        if self.method == "standard":
            offset, scale = self.mean.copy(), np.sqrt(self.m2 / max(1, self.rows))
        elif self.method == "minmax":
            offset, scale = self.low.copy(), self.high - self.low
        else:
            offset, scale = np.zeros(columns), np.ones(columns)
        return Scaler(self.method, offset, _unit_if_constant(scale))


def parsed_codes(codes: np.ndarray, count: int) -> bool:
    """Whether ``codes`` are what a parse gives a text column of ``count`` distinct values:
    whole numbers from 0, each used, numbered in order of first appearance (a cache's codes,
    never trusted, are checked so: a swapped or invented label is caught)."""
    if not len(codes) or not np.isfinite(codes).all() or (codes % 1).any() or codes.min() < 0 or codes.max() >= count:
        return False
    found, first = np.unique(codes.astype(np.intp), return_index=True)
    return len(found) == count and bool((np.diff(first) > 0).all())


def chunked_permutation(n: int, block_rows: int, window_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """An epoch's row order for data read from disk: the blocks of ``block_rows`` consecutive
    rows in a random order, then the rows of each run of ``window_blocks`` blocks shuffled
    among themselves. A window's rows come from ``window_blocks`` blocks only, so it is read
    with that many sequential reads; the price is a little less randomness than a full
    permutation (two rows of one block always land in the same window). A last, shorter block
    stays last, so that every window but the last holds exactly ``window_blocks`` whole blocks."""
    blocks = -(-n // block_rows)
    full = n // block_rows
    block_order = np.concatenate([rng.permutation(full), np.arange(full, blocks)])
    order = np.empty(n, dtype=np.intp)
    position = 0
    for first in range(0, blocks, window_blocks):
        rows = np.concatenate([np.arange(b * block_rows, min((b + 1) * block_rows, n)) for b in block_order[first : first + window_blocks]])
        order[position : position + len(rows)] = rows[rng.permutation(len(rows))]
        position += len(rows)
    return order


# float64 working space of the scaler's blocks of rows. Statistics: contiguous blocks of rows
# (the strided column blocks they replaced read the table once per block: 235 → ~70 ms on
# 48,000 × 784 float32); scaling: small blocks stay in cache (1 MiB measured 2.6× faster than 16 MiB).
FIT_BLOCK_BYTES = 4 << 20
TRANSFORM_BLOCK_BYTES = 1 << 20


def _fit_rows(columns: int) -> int:
    return max(1, FIT_BLOCK_BYTES // (8 * max(1, columns)))


def _sum_of_rows(X: np.ndarray, n: int, around: np.ndarray | None = None) -> np.ndarray:
    """Σ rows of X (or of (X − around)², for the variance) in float64, added one row after
    another: each block is summed together with the running total as its first row, which is
    how NumPy adds up the rows of a wide table, and keeps the order whatever the block size."""
    columns = X.shape[1]
    step = _fit_rows(columns)
    buffer = np.empty((min(step, n) + 1, columns))
    total = np.zeros(columns)
    for start in range(0, n, step):
        block = X[start : start + step]
        rows = buffer[1 : len(block) + 1]
        rows[...] = block
        if around is not None:
            np.subtract(rows, around, out=rows)
            np.multiply(rows, rows, out=rows)
        buffer[0] = total
        total = buffer[: len(block) + 1].sum(axis=0)
    return total


def split_indices(
    n: int, fraction: float, rng: np.random.Generator, shuffle: bool, classes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices; the validation part is ``round(n * fraction)`` rows.

    The rows are put in one order first — a permutation drawn from ``rng`` when ``shuffle``,
    else file order — and both parts keep that order. Without ``classes`` the validation part
    is the first rows of that order. With ``classes`` (one class code per row) the split is
    stratified: the validation part takes the first ``quota`` rows of each class in that order,
    the quotas coming from :func:`validation_quotas`. The permutation is the only draw from
    ``rng`` either way.
    """
    order = rng.permutation(n) if shuffle else np.arange(n)
    n_validation = int(round(n * fraction))
    if classes is None:
        return order[n_validation:], order[:n_validation]
    classes = np.asarray(classes)
    if classes.shape != (n,):
        raise ValueError(f"expected one class per row ({n} rows), got classes of shape {classes.shape}")
    in_validation = _first_of_each_class(classes[order], n_validation)
    return order[~in_validation], order[in_validation]


def _first_of_each_class(classes: np.ndarray, n_validation: int) -> np.ndarray:
    """Per position, whether it is among the first ``quota`` positions of its class."""
    _, codes, counts = np.unique(classes, return_inverse=True, return_counts=True)
    quotas = validation_quotas(counts, n_validation)
    grouped = np.argsort(codes, kind="stable")  # positions class by class, in order within each
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(codes), dtype=np.intp)  # a position's place among its class's positions
    rank[grouped] = np.arange(len(codes)) - np.repeat(starts, counts)
    return rank < quotas[codes]


def validation_quotas(counts: np.ndarray, n_validation: int) -> np.ndarray:
    """Validation rows per class, ``n_validation`` in all, proportional to the classes' sizes.

    Every class keeps a training row (a class the network never trains on cannot be learned:
    a class of a single row goes to training). A class of two or more rows also gets a
    validation row when the split holds enough rows for one of each; when it does not, the
    largest classes get one each (a class missing from validation only goes unmeasured).
    Within those bounds the shares follow the largest remainders of ``n_validation * count / n``;
    a tie goes to the class counted first (the lower class code). Raises ValueError when the
    split leaves fewer training rows than classes. No validation rows at all asks for no
    validation, and gives none.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if n_validation == 0:
        return np.zeros_like(counts)
    n = int(counts.sum())
    highest = counts - 1
    if n_validation > highest.sum():
        raise ValueError(
            f"a validation split of {n_validation} of {n} rows leaves {n - n_validation} training rows "
            f"for {len(counts)} classes; every class needs a training row"
        )
    lowest = (counts >= 2).astype(np.int64)
    if n_validation < lowest.sum():  # room for one row of the largest classes only
        return np.isin(np.arange(len(counts)), np.argsort(-counts, kind="stable")[:n_validation]).astype(np.int64)
    ideal = n_validation * counts / n
    quotas = np.clip(np.floor(ideal).astype(np.int64), lowest, highest)
    # One row at a time to the class furthest below its ideal share (or from the one furthest
    # above it): the floors and the bounds are off by at most one row per class, so this loop
    # runs at most once per class.
    while (gap := n_validation - int(quotas.sum())) != 0:
        if gap > 0:
            quotas[np.argmax(np.where(quotas < highest, ideal - quotas, -np.inf))] += 1
        else:
            quotas[np.argmax(np.where(quotas > lowest, quotas - ideal, -np.inf))] -= 1
    return quotas
