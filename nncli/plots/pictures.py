"""What each plot shows, as plain arrays and labels: the one description that both drawers read
(draw.py with matplotlib, text.py in Unicode characters), so a picture file and its terminal
chart cannot disagree, and tests can compare what was drawn with the numbers it came from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

LOSS = "loss"
SPLITS = (("train", "train"), ("val", "validation"))  # history column prefix, the legend's word
MAX_LABEL_CHARS = 40  # a class or file name in a title or tick label: enough to recognise it
METRIC_LABELS = {"r2": "R²"}  # a history's metric name as an axis shows it (others as they are)


def short(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A user's name (file, class, feature) cut in the middle to fit a label."""
    text = str(text)
    if len(text) <= limit:
        return text
    tail = limit // 4
    return text[: max(0, limit - tail - 1)] + "…" + (text[-tail:] if tail else "")


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


# --- training curves -------------------------------------------------------------------------
@dataclass
class History:
    """One run's history: a column of values per epoch (NaN where a value was missing or not finite)."""

    label: str  # the run's name in a legend: its folder or file name
    epochs: np.ndarray
    columns: dict[str, np.ndarray]
    kept_epoch: int | None = None  # the epoch whose weights early stopping kept (its last `best`)

    @classmethod
    def from_records(cls, label: str, records: list[dict]) -> History:
        names = list(dict.fromkeys(key for record in records for key in record))
        numeric = [n for n in names if n == "learning_rate" or n.startswith(("train_", "val_"))]
        columns = {name: np.array([_number(r.get(name)) for r in records], dtype=np.float64) for name in numeric}
        epochs = np.array([_number(r.get("epoch")) for r in records], dtype=np.float64)
        if np.isnan(epochs).any():  # a record without its number: count from 1, as training does
            epochs = np.arange(1, len(records) + 1, dtype=np.float64)
        kept = [int(e) for e, r in zip(epochs, records) if r.get("best") is True]
        return cls(label, epochs, columns, kept[-1] if kept else None)

    def series(self, name: str) -> np.ndarray | None:
        """The column, or None when the run has no finite value of it (no validation set, say)."""
        values = self.columns.get(name)
        return None if values is None or np.isnan(values).all() else values

    @property
    def metrics(self) -> list[str]:
        """loss first, then each metric the history has (accuracy, r2, …)."""
        names = [name.split("_", 1)[1] for name in self.columns if name.startswith(("train_", "val_"))]
        return list(dict.fromkeys([LOSS, *names]))

    def marked(self) -> tuple[int, str] | None:
        """The epoch to mark and why: the one whose weights were kept (early stopping), else the
        one with the lowest validation (or training) loss, which tells where overfitting begins."""
        if self.kept_epoch is not None:
            return self.kept_epoch, f"weights kept: epoch {self.kept_epoch}"
        for name in ("val_loss", "train_loss"):
            values = self.series(name)
            if values is not None:
                epoch = int(self.epochs[int(np.nanargmin(values))])
                return epoch, f"lowest {name}: epoch {epoch}"
        return None


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


@dataclass
class Line:
    run: int  # index into Curves.runs (the drawers colour by run)
    split: str  # "train" or "validation"
    label: str
    x: np.ndarray
    y: np.ndarray


@dataclass
class Curves:
    runs: list[History]

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(name for run in self.runs for name in run.metrics))

    def lines(self, metric: str) -> list[Line]:
        """The metric's train and validation lines of every run (those it has)."""
        lines = []
        for i, run in enumerate(self.runs):
            for prefix, word in SPLITS:
                values = run.series(f"{prefix}_{metric}")
                if values is not None:
                    label = word if len(self.runs) == 1 else f"{short(run.label)} {word}"
                    lines.append(Line(i, word, label, run.epochs, values))
        return lines

    def learning_rates(self) -> list[Line]:
        return [Line(i, "train", short(run.label), run.epochs, run.series("learning_rate"))
                for i, run in enumerate(self.runs) if run.series("learning_rate") is not None]

    @property
    def title(self) -> str:
        names = ", ".join(short(run.label) for run in self.runs[:4]) + (f" and {len(self.runs) - 4} more" if len(self.runs) > 4 else "")
        return f"Training curves: {names}"


# --- weights -----------------------------------------------------------------------------------
@dataclass
class WeightTiles:
    """Layer ``layer``'s incoming weights of each neuron (a column of W) as an image of ``shape``."""

    layer: int
    weights: np.ndarray  # W (fan_in, fan_out), float64
    shape: tuple[int, int]

    def tile(self, neuron: int) -> np.ndarray:
        return self.weights[:, neuron].reshape(self.shape)

    @property
    def limit(self) -> float:
        """The colour scale's bound: ±max |w|, so that zero sits in the middle of the map."""
        return float(np.abs(self.weights).max()) or 1.0

    def mosaic(self, columns: int) -> np.ndarray:
        """The tiles on a grid ``columns`` wide, row by row, one NaN pixel apart (drawn as the
        background): one image instead of a plot per neuron, so 1,000 neurons draw at once."""
        h, w = self.shape
        n = self.weights.shape[1]
        rows = -(-n // columns)
        tiles = np.full((rows * columns, h + 1, w + 1), np.nan)
        tiles[:n, :h, :w] = self.weights.T.reshape(n, h, w)  # tile j is column j, row by row
        return tiles.reshape(rows, columns, h + 1, w + 1).transpose(0, 2, 1, 3).reshape(rows * (h + 1), columns * (w + 1))[:-1, :-1]

    @property
    def title(self) -> str:
        h, w = self.shape
        fan_in, fan_out = self.weights.shape
        return f"W{self.layer}: each of the {fan_out:,} neurons' {fan_in:,} incoming weights as {h}×{w} images (neuron 1 top left, row by row)"


@dataclass
class WeightMatrix:
    """Layer ``layer``'s W as a heat map: rows = from (inputs), columns = to (neurons)."""

    layer: int
    weights: np.ndarray
    row_names: Sequence[str]  # inputs' names (features, `column=category`) or `h1.1 …` (made when looked up)
    column_names: Sequence[str]
    is_output: bool = False  # the last layer: its columns are the classes or targets

    @property
    def limit(self) -> float:
        return float(np.abs(self.weights).max()) or 1.0

    @property
    def title(self) -> str:
        fan_in, fan_out = self.weights.shape
        return f"W{self.layer} ({fan_in:,} × {fan_out:,}): rows = from, columns = to"


def grid_columns(n: int) -> int:
    """Columns of a grid of ``n`` tiles: an exact divisor a little wider than tall when there is
    one (128 → 16 × 8, 10 → 5 × 2), else the square root rounded up."""
    root = math.sqrt(n)
    for columns in range(math.ceil(root), int(2 * root) + 1):
        if n % columns == 0:
            return columns
    return max(1, math.ceil(root))


def shrink(matrix: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``matrix`` averaged over blocks so that it has at most ``rows`` × ``columns`` cells (a
    picture of a 4,096 × 4,096 layer needs no more cells than it has pixels)."""
    out = matrix
    for axis, most in ((0, rows), (1, columns)):
        n = out.shape[axis]
        if n > most:
            edges = np.linspace(0, n, most + 1).astype(int)
            out = np.add.reduceat(out, edges[:-1], axis=axis) / np.diff(edges).reshape((-1, 1) if axis == 0 else (1, -1))
    return out


# --- a model on data ------------------------------------------------------------------------------
@dataclass
class Confusion:
    counts: np.ndarray  # (classes, classes): rows = true class, columns = predicted
    classes: list[str]
    source: str  # the data's name
    normalize: bool = False  # show each true class's row as fractions of it

    @property
    def values(self) -> np.ndarray:
        if not self.normalize:
            return self.counts
        totals = self.counts.sum(axis=1, keepdims=True)
        return self.counts / np.maximum(totals, 1)

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.counts) / max(1, self.counts.sum()))

    @property
    def title(self) -> str:
        how = ", normalised by true class" if self.normalize else ""
        return f"Confusion matrix{how}: {short(self.source)}, {self.counts.sum():,} rows, accuracy {self.accuracy:.1%}"


@dataclass
class Mistakes:
    """The most confident wrong predictions, with their inputs as images."""

    images: np.ndarray  # (n, h, w): the rows' features as read (before scaling)
    truth: list[str]
    predicted: list[str]
    confidence: np.ndarray  # the predicted class's probability
    where: list[str]  # file:line of each row
    rows: int  # rows looked at
    wrong: int  # mistakes among them
    source: str

    def caption(self, i: int) -> str:
        return f"{short(self.truth[i], 12)} → {short(self.predicted[i], 12)} ({self.confidence[i]:.0%})"

    @property
    def title(self) -> str:
        return f"The {len(self.truth)} most confident of {self.wrong:,} mistakes in {self.rows:,} rows of {short(self.source)}"

    legend = "each: true → predicted class (the probability the model gave it)"


@dataclass
class Scatter:
    """Regression: predicted against true values, one panel per target."""

    targets: list[str]
    truth: np.ndarray  # (points, targets): an evenly spaced sample of the rows when there are many
    predicted: np.ndarray
    r2: list[float | None]  # over every row (None: the target does not vary)
    rows: int
    source: str
    shown: int = field(init=False)

    def __post_init__(self):
        self.shown = len(self.truth)

    def title(self, j: int) -> str:
        r2 = "R² undefined (the target does not vary)" if self.r2[j] is None else f"R² = {self.r2[j]:.4f}"
        sample = f", {self.shown:,} of {self.rows:,} rows shown" if self.shown < self.rows else f", {self.rows:,} rows"
        return f"{short(self.targets[j])}: {r2}{sample}"


# --- a model's codes ------------------------------------------------------------------------------
MAX_CODE_CLASSES = 20  # classes with a colour of their own; the rest are drawn together, in grey


@dataclass
class Codes:
    """Each row's activations at a hidden layer (its code, as `nncli embed` writes it) as a point
    in 2-D: the two principal components of the codes when the layer is wider than two, else the
    codes themselves; coloured by the rows' class when a column of labels was named."""

    points: np.ndarray  # (shown, 2): x and y of each point shown, in file order
    axis_labels: tuple[str, str]
    layer: int
    width: int  # the layer's neurons
    model: str  # the model's name (run_name)
    source: str  # the data's name
    rows: int  # rows read (points shows an evenly spaced sample of them when there are many)
    labels_column: str | None = None
    labels: list[str] | None = None  # each point's class, as written in the column ("" when missing)
    shown: int = field(init=False)

    def __post_init__(self):
        self.shown = len(self.points)

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """(class, which points) per colour: the classes in natural order (numbers by value), or
        when there are more than MAX_CODE_CLASSES the most frequent MAX_CODE_CLASSES − 1 and then
        "N other classes" for the rest. One group of every point without labels."""
        if self.labels is None:
            return [("", np.ones(self.shown, dtype=bool))]
        labels = np.array(self.labels, dtype=object)
        classes = sorted(set(self.labels), key=_natural)
        if len(classes) > MAX_CODE_CLASSES:
            names, numbers = np.unique(labels.astype(str), return_counts=True)  # (one pass, not one per class)
            counts = dict(zip(names.tolist(), numbers.tolist()))
            kept = set(sorted(classes, key=lambda name: -counts[name])[: MAX_CODE_CLASSES - 1])  # (stable: ties in class order)
            rest = [name for name in classes if name not in kept]
            groups = [(name, labels == name) for name in classes if name in kept]
            return groups + [(f"{len(rest):,} other classes", np.isin(labels, rest))]
        return [(name, labels == name) for name in classes]

    @property
    def has_other(self) -> bool:
        """More classes than colours: the last group is the rest's."""
        return self.labels is not None and len(set(self.labels)) > MAX_CODE_CLASSES

    @property
    def title(self) -> str:
        sample = f", {self.shown:,} of {self.rows:,} rows shown (evenly spaced)" if self.shown < self.rows else f", {self.rows:,} rows"
        return f"Codes of {short(self.model)} at hidden layer {self.layer} ({self.width:,} neurons): {short(self.source)}{sample}"


def class_name(name: str) -> str:
    """A class as a legend shows it: a missing label named as such."""
    return "(missing)" if name == "" else name


def _natural(name: str):
    """Classes that are numbers in numeric order (2 before 10), then the others alphabetically."""
    try:
        number = float(name)
    except ValueError:
        number = math.nan
    return (0, number, "") if math.isfinite(number) else (1, 0.0, name)
