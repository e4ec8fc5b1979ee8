"""Pictures drawn by matplotlib into PNG, SVG or PDF.

Imported only when a picture file is drawn (matplotlib takes most of a second to import; the
rest of nncli must not wait for it). Headless: a Figure on the Agg canvas, never pyplot, so no
display, no GUI backend and no global figure state. Deterministic: matplotlib's own defaults
(not the user's matplotlibrc), the bundled DejaVu Sans font, and no metadata that changes from
run to run (dates, version strings; SVG ids from a fixed salt), so the same inputs give the same
bytes and a test can compare files by hash.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import BinaryIO

import matplotlib.style
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from nncli.errors import escaped
from nncli.plots.pictures import (
    Codes,
    Confusion,
    Curves,
    Mistakes,
    Scatter,
    WeightMatrix,
    WeightTiles,
    class_name,
    grid_columns,
    metric_label,
    short,
    shrink,
)

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
DPI = 120
METADATA = {  # None leaves the entry out: these would differ between runs or versions
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}
RC = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs on every machine
    "svg.hashsalt": "nncli",  # SVG element ids derive from it instead of a random salt
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": "small",
}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
# Weights are signed: red positive, blue negative, white zero (the scale is ±max|w|). NaN is the
# gap between tiles, drawn as the background.
DIVERGING = colormaps["RdBu_r"].with_extremes(bad="white")
COUNTS = colormaps["Blues"]
OTHER_COLOUR = "#b0b0b0"  # codes: the classes beyond the ones with a colour of their own
INK = colormaps["gray_r"].with_extremes(bad="#ffd8d8")  # digits: dark ink on white; a missing cell pink
MAX_IMAGE_CELLS = 2000  # a heat map's rows or columns beyond this are averaged in blocks (more than its pixels)
MAX_ANNOTATED_CLASSES = 30  # counts written in the cells up to this many classes (beyond, they would not fit)
MAX_TICK_LABELS = 60  # class or feature names on an axis up to this many
PAD = 0.08  # inches between a panel's labels and the figure's edge (constrained layout's default pad)
PANEL_GAP = 0.15  # inches between stacked panels
LARGE_SCATTER = 5000  # points drawn as one image in SVG/PDF beyond this (files stay small)


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.style.context("default"), matplotlib.rc_context(RC), warnings.catch_warnings():
        # A name in a script DejaVu Sans lacks (中文, say) is drawn as boxes; matplotlib's warning
        # about it would be a second line on the user's stderr.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
        yield


def figure(picture) -> Figure:
    """The picture as a matplotlib Figure (tests read its artists)."""
    with _style():
        # At the file's DPI from the start: the text measured to lay the curves out is then
        # measured by the renderer that draws the file, and matplotlib's cache of it is reused.
        fig = Figure(layout=None if type(picture) in LAID_OUT_ONCE else "constrained", dpi=DPI)
        FigureCanvasAgg(fig)
        DRAWERS[type(picture)](fig, picture)
    return fig


def save(picture, out: BinaryIO, fmt: str) -> None:
    """Draw ``picture`` into ``out`` as ``fmt`` (png, svg or pdf)."""
    with _style():
        figure(picture).savefig(out, format=fmt, dpi=DPI, metadata=METADATA[fmt])


def _plain(text: str) -> str:
    """A name from a file or the data as literal text: control characters written as escapes
    (errors.escaped, as in terminal output) and `$` escaped, so that `$x$` in a class or file
    name is not read as a formula."""
    return escaped(str(text)).replace("$", r"\$")


def _colour(run: int) -> str:
    return COLOURS[run % len(COLOURS)]


def _curves(fig: Figure, curves: Curves) -> None:
    metrics, rates = curves.metrics, curves.learning_rates()
    heights = [3] * len(metrics) + ([1] if rates else [])
    fig.set_size_inches(9, 0.8 + 2.4 * len(metrics) + (1.0 if rates else 0))
    axes = fig.subplots(len(heights), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, metric in zip(axes, metrics):
        for line in curves.lines(metric):
            ax.plot(line.x, line.y, color=_colour(line.run), linestyle="-" if line.split == "train" else "--",
                    linewidth=1.2, label=_plain(line.label))
        for i, run in enumerate(curves.runs):
            mark = run.marked()
            if mark is not None:
                label = _plain(mark[1] if len(curves.runs) == 1 else f"{short(run.label)} {mark[1]}")
                ax.axvline(mark[0], color=_colour(i), linestyle=":", linewidth=1, label=label if ax is axes[0] else None)
        ax.set_ylabel(metric_label(metric))
        # Outside the axes: never over a curve, and no search for the emptiest corner (slow on 10,000 points).
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if rates:
        ax = axes[-1]
        for line in rates:
            ax.plot(line.x, line.y, color=_colour(line.run), linewidth=1.2, drawstyle="steps-post")
        low, high = min(np.nanmin(line.y) for line in rates), max(np.nanmax(line.y) for line in rates)
        if low > 0 and high / low > 20:  # a decay over orders of magnitude reads best on a log scale
            ax.set_yscale("log")
            # Decades as plain text (10⁻³), not matplotlib's formulas for them: the first formula
            # builds matplotlib's mathtext parser, a fifth of a second of the whole plot. (Over
            # more than a decade, matplotlib labels no minor tick either.)
            ax.yaxis.set_major_formatter(FuncFormatter(_decade))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("learning rate")
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    _column_layout(fig, axes, fig.suptitle(_plain(curves.title)))


def _column_layout(fig: Figure, axes, title) -> None:
    """Margins for a column of panels sharing x, measured once: the widest y axis (tick labels
    and label) on the left, the widest legend on the right, the x axis below, the title above.
    Constrained layout finds the same frame, but by drawing the whole figure one extra time
    (every tick label of every panel): 0.04 s of a 10,000-epoch plot's 0.8 s (benchmarks/plot.py)."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    inch = fig.dpi  # pixels per inch of the renderer's measures
    frame_left = fig.subplotpars.left * width * inch  # where the axes stand while being measured
    left = max(frame_left - ax.yaxis.get_tightbbox(renderer).x0 for ax in axes) / inch
    right = max((ax.get_legend().get_window_extent(renderer).width for ax in axes if ax.get_legend()), default=0) / inch
    bottom = (axes[-1].get_position().y0 * height * inch - axes[-1].xaxis.get_tightbbox(renderer).y0) / inch
    top = title.get_window_extent(renderer).height / inch
    bottom, top = (bottom + PAD) / height, 1 - (top + 2 * PAD) / height
    panel = ((top - bottom) * height - (len(axes) - 1) * PANEL_GAP) / len(axes)  # the mean height, as hspace counts
    fig.subplots_adjust(left=(left + PAD) / width, right=1 - (right + 2 * PAD) / width, bottom=bottom, top=top,
                        hspace=PANEL_GAP / panel)


def _decade(value: float, _position=None) -> str:
    """A log axis's tick label: 10⁻³ for a power of ten, nothing between."""
    if not value > 0 or not math.isfinite(value):
        return ""
    exponent = round(math.log10(value))
    return "10" + str(exponent).translate(SUPERSCRIPTS) if math.isclose(value, 10.0**exponent, rel_tol=1e-9) else ""


def _tiles(fig: Figure, tiles: WeightTiles) -> None:
    columns = grid_columns(tiles.weights.shape[1])
    mosaic = tiles.mosaic(columns)
    height, width = mosaic.shape
    scale = min(10 / width, 8 / height, 0.25)  # inches per pixel: the grid fills ~10 × 8 inches at most
    fig.set_size_inches(max(4.0, width * scale + 1.6), max(3.0, height * scale + 0.6))
    ax = fig.add_subplot()
    image = ax.imshow(mosaic, cmap=DIVERGING, vmin=-tiles.limit, vmax=tiles.limit, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="weight", shrink=0.8)
    ax.set_title(tiles.title, fontsize="medium")


def _matrix(fig: Figure, matrix: WeightMatrix) -> None:
    values = shrink(matrix.weights, MAX_IMAGE_CELLS, MAX_IMAGE_CELLS)
    fig.set_size_inches(8, 6)
    ax = fig.add_subplot()
    rows, columns = matrix.weights.shape  # (extent: ticks count neurons from 1, as their names do)
    image = ax.imshow(values, cmap=DIVERGING, vmin=-matrix.limit, vmax=matrix.limit, interpolation="nearest", aspect="auto",
                      extent=(0.5, columns + 0.5, rows + 0.5, 0.5))
    ax.grid(False)
    _names(ax.yaxis, matrix.row_names, values.shape[0], first=1)
    _names(ax.xaxis, matrix.column_names, values.shape[1], first=1)
    ax.set_ylabel("from: " + ("inputs" if matrix.layer == 1 else f"layer {matrix.layer - 1}'s neurons"))
    ax.set_xlabel("to: " + ("outputs" if matrix.is_output else f"layer {matrix.layer}'s neurons"))
    fig.colorbar(image, ax=ax, label="weight")
    averaged = " (block averages)" if values.shape != matrix.weights.shape else ""
    ax.set_title(_plain(matrix.title + averaged), fontsize="medium")


def _names(axis, names, cells: int, first: int = 0) -> None:
    """Tick labels with the names when each cell is one name and they fit; else numbers. Names
    longer than three characters stand upright on the x axis (lying down they would overlap)."""
    if cells == len(names) and len(names) <= MAX_TICK_LABELS:
        labels = [_plain(short(name, 20)) for name in names]
        upright = axis.axis_name == "x" and any(len(label) > 3 for label in labels)
        axis.set_ticks(range(first, first + len(names)), labels, rotation=90 if upright else 0, fontsize="small")


def _confusion(fig: Figure, confusion: Confusion) -> None:
    k = len(confusion.classes)
    side = min(12.0, max(4.5, 0.45 * k + 2))
    fig.set_size_inches(side + 1.2, side)
    ax = fig.add_subplot()
    values = confusion.values
    top = 1.0 if confusion.normalize else max(1, int(confusion.counts.max()))
    image = ax.imshow(values, cmap=COUNTS, vmin=0, vmax=top, interpolation="nearest")
    ax.grid(False)
    if k <= MAX_ANNOTATED_CLASSES:
        for (i, j), value in np.ndenumerate(values):
            text = f"{value:.2f}" if confusion.normalize else f"{int(value):,}"
            ax.text(j, i, text, ha="center", va="center", fontsize="small" if k <= 12 else "x-small",
                    color="white" if value > top / 2 else "black")
    _names(ax.yaxis, confusion.classes, k)
    _names(ax.xaxis, confusion.classes, k)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class" if confusion.normalize else "rows")
    ax.set_title(_plain(confusion.title), fontsize="medium")


def _mistakes(fig: Figure, mistakes: Mistakes) -> None:
    n = len(mistakes.truth)
    columns = max(grid_columns(n), min(n, 4))
    rows = -(-n // columns)
    fig.set_size_inches(max(7.0, 1.6 * columns), 1.0 + 1.8 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(mistakes.images[i], cmap=INK, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.set_title(_plain(mistakes.caption(i)), fontsize="small")
    fig.suptitle(f"{_plain(mistakes.title)}\n{_plain(mistakes.legend)}", fontsize="medium")


def _scatter(fig: Figure, scatter: Scatter) -> None:
    k = len(scatter.targets)
    fig.set_size_inches(5 * min(k, 3), 5 * -(-k // 3) + 0.4)
    axes = fig.subplots(-(-k // 3), min(k, 3), squeeze=False).ravel()
    for j, ax in enumerate(axes):
        if j >= k:
            ax.set_axis_off()
            continue
        truth, predicted = scatter.truth[:, j], scatter.predicted[:, j]
        ax.scatter(truth, predicted, s=10, alpha=0.5, color=COLOURS[0], linewidths=0, rasterized=len(truth) > LARGE_SCATTER)
        low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
        ax.plot([low, high], [low, high], color="black", linestyle="--", linewidth=1, label="predicted = true")
        ax.set_xlabel(_plain(f"true {short(scatter.targets[j], 30)}"))
        ax.set_ylabel(_plain(f"predicted {short(scatter.targets[j], 30)}"))
        ax.set_title(_plain(scatter.title(j)), fontsize="medium")
        ax.legend(loc="upper left")
    fig.suptitle(_plain(f"Predicted vs true: {short(scatter.source)}"))


def _codes(fig: Figure, codes: Codes) -> None:
    groups = codes.groups()
    fig.set_size_inches(8.5 if codes.labels is not None else 7, 6.5)
    ax = fig.add_subplot()
    large = codes.shown > LARGE_SCATTER
    colours = COLOURS if len(groups) <= len(COLOURS) else [colormaps["tab20"](i) for i in range(20)]
    for i, (name, which) in enumerate(groups):
        other = codes.has_other and i == len(groups) - 1
        ax.scatter(codes.points[which, 0], codes.points[which, 1], s=6 if large else 14, alpha=0.7, linewidths=0,
                   color=OTHER_COLOUR if other else colours[i % len(colours)], rasterized=large,
                   label=None if codes.labels is None else _plain(short(class_name(name), 30)))
    ax.set_xlabel(_plain(codes.axis_labels[0]))
    ax.set_ylabel(_plain(codes.axis_labels[1]))
    if codes.width == 1:  # one neuron: the height means nothing
        ax.set_yticks([])
    if codes.labels is not None:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title=_plain(short(codes.labels_column, 30)), markerscale=2)
    ax.set_title(_plain(codes.title), fontsize="medium")


# Drawn with margins measured once (_column_layout) instead of constrained layout: the pictures
# whose drawing time grows with the data (10,000 epochs), where the extra layout draw is felt.
LAID_OUT_ONCE = (Curves,)
DRAWERS = {Curves: _curves, WeightTiles: _tiles, WeightMatrix: _matrix, Confusion: _confusion, Mistakes: _mistakes, Scatter: _scatter,
           Codes: _codes}
