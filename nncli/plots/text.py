"""Pictures as Unicode text for a terminal: what `nncli plot` shows without matplotlib, or with
--terminal, so that a user on a server or in a CI log sees something at once.

Plain characters only, no colour: the text is the same in a pipe, a log and a terminal (and a
test can compare it with a golden copy). Names from files and data are escaped (errors.escaped):
a class name cannot move the cursor.
"""

from __future__ import annotations

import numpy as np

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

WIDTH = 80
CURVE_ROWS = 10
RATE_ROWS = 3
MARKERS = "●○■□▲△◆◇"  # a run's train and validation markers, run by run
MARK = "┆"  # the marked epoch's column
SHADES = " ░▒▓█"  # counts and ink, from none to the most
# Signed weights without colour: blank near zero, then weak, medium and strong of each sign.
POSITIVE, NEGATIVE = ".+#", ",-="
SIGNED_LEGEND = "# + . positive, = - , negative (strong to weak), blank ≈ 0"
MAX_TEXT_TILES = 256  # neurons' tiles shown; more would scroll out of any terminal
MAX_TEXT_CLASSES = 30
MAX_TEXT_ROWS = 128  # a heat map's rows; taller matrices are averaged in blocks of rows
SCATTER_ROWS = 16
CODE_ROWS = 20
CLASS_MARKS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # classes whose first characters are not distinct (at most 20 of them)
OTHER_MARK = "·"


def text(picture, width: int = WIDTH) -> str:
    """The picture as lines of text at most ``width`` characters wide (a long name aside)."""
    return "\n".join(TEXTS[type(picture)](picture, max(40, width))) + "\n"


def _number(value: float) -> str:
    return f"{value:.4g}"


# --- curves ------------------------------------------------------------------------------------------
def _curves(curves: Curves, width: int) -> list[str]:
    lines = [escaped(curves.title)]
    runs = curves.runs
    first = min(float(run.epochs.min()) for run in runs if len(run.epochs))
    last = max(float(run.epochs.max()) for run in runs if len(run.epochs))
    marks = [mark[0] for run in runs if (mark := run.marked()) is not None]
    panels = [(metric_label(metric), [(MARKERS[(2 * line.run + (line.split != "train")) % len(MARKERS)], line.x, line.y)
                                      for line in curves.lines(metric)], marks, CURVE_ROWS) for metric in curves.metrics]
    rates = curves.learning_rates()
    constant = {float(v) for line in rates for v in line.y[np.isfinite(line.y)]}
    if len(constant) > 1:
        panels.append(("learning rate", [(MARKERS[(2 * line.run) % len(MARKERS)], line.x, line.y) for line in rates], [], RATE_ROWS))
    # One width for every panel's value labels, so that an epoch is the same column in each.
    label_width = max(len(label) for _, series, _, _ in panels for label in _value_labels(series))
    for name, series, marked, height in panels:
        lines += ["", name] + _chart(series, marked, (first, last), width, height, label_width)
    if len(constant) == 1:
        lines += ["", f"learning rate: {_number(constant.pop())} throughout"]
    lines += ["", _legend(curves)]
    return lines


def _legend(curves: Curves) -> str:
    parts = []
    for i, run in enumerate(curves.runs):
        name = "" if len(curves.runs) == 1 else f"{short(run.label)} "
        for k, (prefix, word) in enumerate((("train", "train"), ("val", "validation"))):
            if any(run.series(f"{prefix}_{metric}") is not None for metric in run.metrics):
                parts.append(f"{MARKERS[(2 * i + k) % len(MARKERS)]} {name}{word}")
        mark = run.marked()
        if mark is not None:
            parts.append(f"{MARK} {name}{mark[1]}")
    return escaped("  ".join(parts))


def _range(series: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[float, float] | None:
    finite = np.concatenate([y[np.isfinite(y)] for _, _, y in series] or [np.zeros(0)])
    return (float(finite.min()), float(finite.max())) if len(finite) else None


def _value_labels(series) -> list[str]:
    """The y axis's labels: top, middle, bottom."""
    span = _range(series)
    return [] if span is None else [_number(span[1]), _number(sum(span) / 2), _number(span[0])]


def _chart(series: list[tuple[str, np.ndarray, np.ndarray]], marks: list[int], span: tuple[float, float],
           width: int, height: int, label_width: int = 0) -> list[str]:
    """A chart of markers on a grid: one cell per column per series (the mean of the epochs
    the column covers), the y range from the series' finite values."""
    if _range(series) is None:
        return ["(no finite values)"]
    low, high = _range(series)
    labels = _value_labels(series)
    label_width = max(label_width, *map(len, labels))
    columns = max(10, width - label_width - 2)
    grid = [[" "] * columns for _ in range(height)]
    place = _scale(span, columns)
    for epoch in marks:
        for row in grid:
            row[place(np.array([epoch]))[0]] = MARK
    for marker, x, y in series:
        ok = np.isfinite(y)
        cells = place(x[ok])
        sums = np.bincount(cells, weights=y[ok], minlength=columns)
        counts = np.bincount(cells, minlength=columns)
        for column in np.flatnonzero(counts):
            value = sums[column] / counts[column]
            row = 0 if high == low else round((high - value) / (high - low) * (height - 1))
            grid[row][column] = marker
    out = []
    for r, row in enumerate(grid):
        label = labels[0] if r == 0 else labels[2] if r == height - 1 else labels[1] if r == height // 2 and height > 2 else ""
        out.append(f"{label:>{label_width}} {'┤' if label else '│'}{''.join(row)}".rstrip())
    out.append(" " * label_width + " └" + "─" * columns)
    left, right = f"{span[0]:,.0f}", f"{span[1]:,.0f}"  # epochs
    middle = "epoch"
    gap = columns - len(left) - len(right) - len(middle)
    out.append(" " * (label_width + 2) + left + " " * (gap // 2) + middle + " " * (gap - gap // 2) + right)
    return out


def _scale(span: tuple[float, float], cells: int):
    low, high = span

    def place(values: np.ndarray) -> np.ndarray:
        if high == low:
            return np.zeros(len(values), dtype=np.intp)
        return np.clip(np.rint((values - low) / (high - low) * (cells - 1)), 0, cells - 1).astype(np.intp)

    return place


# --- weights -------------------------------------------------------------------------------------------
def _signed(values: np.ndarray, limit: float) -> np.ndarray:
    """A glyph per value: blank near zero, then weak, medium, strong of its sign."""
    level = np.digitize(np.abs(values) / limit, [0.1, 0.35, 0.65])  # 0: blank, 1-3: weak to strong
    glyphs = np.full(values.shape, " ", dtype="<U1")
    for k in (1, 2, 3):
        glyphs[(level == k) & (values > 0)] = POSITIVE[k - 1]
        glyphs[(level == k) & (values < 0)] = NEGATIVE[k - 1]
    glyphs[np.isnan(values)] = " "
    return glyphs


def _tiles(tiles: WeightTiles, width: int) -> list[str]:
    h, w = tiles.shape
    n = tiles.weights.shape[1]
    shown = min(n, MAX_TEXT_TILES)
    columns = max(1, min(shown, (width + 1) // (w + 1), grid_columns(shown) * 2))
    lines = [escaped(tiles.title), f"{SIGNED_LEGEND}; scale ±{_number(tiles.limit)}"]
    if shown < n:
        lines.append(f"(the first {shown} of {n:,} neurons; -o FILE.png draws them all)")
    glyphs = [_signed(tiles.tile(j), tiles.limit) for j in range(shown)]
    for start in range(0, shown, columns):
        lines.append("")
        lines.append(" ".join(f"{j + 1:<{w}}"[:w] for j in range(start, min(shown, start + columns))).rstrip())
        for r in range(h):
            lines.append(" ".join("".join(glyphs[j][r]) for j in range(start, min(shown, start + columns))).rstrip())
    return lines


def _matrix(matrix: WeightMatrix, width: int) -> list[str]:
    fan_in = matrix.weights.shape[0]
    named = fan_in <= MAX_TEXT_ROWS  # each row one input or neuron: its name in front
    names = [short(escaped(matrix.row_names[i]), 12) for i in range(fan_in)] if named else []
    name_width = max(map(len, names), default=0)
    room = max(10, width - name_width - 2)
    values = shrink(matrix.weights, MAX_TEXT_ROWS, room)
    cell = max(1, min(3, room // values.shape[1]))  # a narrow matrix gets wider cells
    averaged = " (block averages)" if values.shape != matrix.weights.shape else ""
    lines = [escaped(matrix.title) + averaged, f"{SIGNED_LEGEND}; scale ±{_number(matrix.limit)}", ""]
    for i, row in enumerate(_signed(values, matrix.limit)):
        lines.append(f"{names[i] if named else '':>{name_width}} │{''.join(glyph * cell for glyph in row)}".rstrip())
    return lines


# --- a model on data ----------------------------------------------------------------------------------------
def _confusion(confusion: Confusion, width: int) -> list[str]:
    k = len(confusion.classes)
    lines = [escaped(confusion.title)]
    if k > MAX_TEXT_CLASSES:
        return lines + [f"{k:,} classes: too many for a terminal chart; draw it into a file with -o confusion.png"]
    values = confusion.values
    top = 1.0 if confusion.normalize else max(1, int(confusion.counts.max()))
    cells = [f"{v:.2f}" if confusion.normalize else f"{int(v):,}" for v in values.ravel()]
    labels = [short(escaped(c), 12) for c in confusion.classes]
    cell = max(3, *map(len, cells), *(len(label) for label in labels if len(label) <= 8)) + 1  # a long name is cut
    label_width = max(4, max(map(len, labels)))
    lines.append("rows: true class, columns: predicted; shading: " + ("fraction of the row" if confusion.normalize else "count"))
    lines.append("")
    lines.append(" " * (label_width + 2) + "".join(f"{short(c, cell - 1):>{cell}}" for c in labels))
    for i, label in enumerate(labels):
        row = "".join(SHADES[round(values[i, j] / top * (len(SHADES) - 1))] + f"{cells[i * k + j]:>{cell - 1}}" for j in range(k))
        lines.append(f"{label:>{label_width}} │{row}")
    return lines


def _mistakes(mistakes: Mistakes, width: int) -> list[str]:
    h, w = mistakes.images.shape[1:]
    tile = 2 * w  # two characters per pixel: a terminal cell is about twice as tall as wide
    columns = max(1, (width + 2) // (tile + 2))
    lines = [escaped(mistakes.title)]
    for start in range(0, len(mistakes.truth), columns):
        chosen = range(start, min(len(mistakes.truth), start + columns))
        lines.append("")
        pictures = {i: _ink(mistakes.images[i]) for i in chosen}
        for r in range(h):
            lines.append("  ".join(pictures[i][r] for i in chosen).rstrip())
        lines.append("  ".join(f"{escaped(mistakes.caption(i))[:tile]:<{tile}}" for i in chosen).rstrip())
    lines.append("")
    lines += [f"{i + 1}. {escaped(mistakes.where[i])}: true {escaped(short(mistakes.truth[i]))}, predicted "
              f"{escaped(short(mistakes.predicted[i]))} ({mistakes.confidence[i]:.1%})" for i in range(len(mistakes.truth))]
    return lines


def _ink(image: np.ndarray) -> list[str]:
    """An input as shades of ink, from its smallest value (blank) to its largest (full block)."""
    finite = image[np.isfinite(image)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    level = np.zeros(image.shape, dtype=np.intp) if high == low else np.rint(np.nan_to_num((image - low) / (high - low)) * (len(SHADES) - 1)).astype(np.intp)
    return ["".join(SHADES[v] * 2 for v in row) for row in level]


def _scatter(scatter: Scatter, width: int) -> list[str]:
    lines = [escaped(f"Predicted vs true: {short(scatter.source)}")]
    for j in range(len(scatter.targets)):
        truth, predicted = scatter.truth[:, j], scatter.predicted[:, j]
        low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
        labels = [_number(high), _number(low)]
        label_width = max(map(len, labels))
        columns = max(10, min(width - label_width - 2, 2 * SCATTER_ROWS * 2))
        grid = [[" "] * columns for _ in range(SCATTER_ROWS)]
        across, up = _scale((low, high), columns), _scale((low, high), SCATTER_ROWS)
        for c, r in zip(across(np.linspace(low, high, columns)), up(np.linspace(low, high, columns))):
            grid[SCATTER_ROWS - 1 - r][c] = "·"  # the diagonal: predicted = true
        for c, r in zip(across(truth), up(predicted)):
            grid[SCATTER_ROWS - 1 - r][c] = "●"
        lines += ["", escaped(scatter.title(j)), f"predicted {escaped(short(scatter.targets[j]))} (up) against true (across); · predicted = true"]
        for r, row in enumerate(grid):
            label = labels[0] if r == 0 else labels[1] if r == SCATTER_ROWS - 1 else ""
            lines.append(f"{label:>{label_width}} {'┤' if label else '│'}{''.join(row)}".rstrip())
        lines.append(" " * label_width + " └" + "─" * columns)
        lines.append(" " * (label_width + 2) + labels[1] + " " * max(1, columns - len(labels[0]) - len(labels[1])) + labels[0])
    return lines


def _codes(codes: Codes, width: int) -> list[str]:
    """The points on a grid: with labels, each cell shows the mark of the class with most points
    in it; without, the number of points as a shade."""
    x, y = codes.points[:, 0], codes.points[:, 1]
    labels = [_number(float(y.max())), _number(float(y.min()))]
    label_width = max(map(len, labels))
    columns = max(10, width - label_width - 2)
    across = _scale((float(x.min()), float(x.max())), columns)(x)
    up = CODE_ROWS - 1 - _scale((float(y.min()), float(y.max())), CODE_ROWS)(y)
    cell = up * columns + across
    groups = codes.groups()
    if codes.labels is None:
        counts = np.bincount(cell, minlength=CODE_ROWS * columns)
        top = max(1, int(counts.max()))
        glyphs = np.array(list(SHADES))[np.ceil(counts / top * (len(SHADES) - 1)).astype(np.intp)]
        key = f"{SHADES[1:]}: fewer to more rows per character"
    else:
        marks = _class_marks([name for name, _ in groups], codes.has_other)
        counts = np.stack([np.bincount(cell[which], minlength=CODE_ROWS * columns) for _, which in groups])
        glyphs = np.where(counts.max(axis=0) > 0, np.array(marks)[counts.argmax(axis=0)], " ")  # (ties: the first class)
        named = [escaped(short(class_name(name), 20)) for name, _ in groups]
        key = "  ".join(name if mark == name else f"{mark} {name}" for mark, name in zip(marks, named))  # (digits are their own marks)
    lines = [escaped(codes.title), escaped(f"{codes.axis_labels[1] or 'nothing'} (up) against {codes.axis_labels[0]} (across)"), ""]
    for r in range(CODE_ROWS):
        label = labels[0] if r == 0 else labels[1] if r == CODE_ROWS - 1 else ""
        lines.append(f"{label:>{label_width}} {'┤' if label else '│'}{''.join(glyphs[r * columns:(r + 1) * columns])}".rstrip())
    lines.append(" " * label_width + " └" + "─" * columns)
    left, right = _number(float(x.min())), _number(float(x.max()))
    lines.append(" " * (label_width + 2) + left + " " * max(1, columns - len(left) - len(right)) + right)
    lines += ["", (f"{escaped(short(codes.labels_column, 30))}: " if codes.labels is not None else "") + key]
    return lines


def _class_marks(names: list[str], other: bool) -> list[str]:
    """A character per class: its first when those are all different (digits: 0-9), else A, B, …;
    the group of the other classes a dot."""
    named = names[:-1] if other else names
    firsts = [name[:1] for name in named]
    distinct = len(set(firsts)) == len(firsts) and all(len(c) == 1 and c.isprintable() and not c.isspace() for c in firsts)
    marks = firsts if distinct else list(CLASS_MARKS[: len(named)])
    return marks + [OTHER_MARK] * other


TEXTS = {Curves: _curves, WeightTiles: _tiles, WeightMatrix: _matrix, Confusion: _confusion, Mistakes: _mistakes, Scatter: _scatter, Codes: _codes}
