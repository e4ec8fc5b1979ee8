r"""Everything the user sees on a terminal: consoles, tables, live training progress.

A person at a terminal gets colour, box tables and a live progress bar.  When stdout is
not a terminal, or ``NO_COLOR`` is set, the same information comes as plain aligned text
with no escape codes and no redrawing, so logs and pipes stay clean.

Text that comes from a file (feature, target and class names, metric keys, versions, paths)
is shown through :func:`shown`: control characters escaped (``\x1b``, ``\n``), never read
as rich markup (``[bold]`` stays ``[bold]``) or emoji codes, and cut to MAX_SHOWN_CHARS.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # rich.progress costs more to import than the rest of rich: only a bar at a terminal needs it
    from rich.progress import Progress

from nncli.core.trainer import EpochRecord, Reporter
from nncli.errors import escaped


class PipeSafeStdout:
    """stdout that goes quiet, instead of raising, once its reader has gone away.

    `nncli train … | head -3` must still finish training and save the model after `head`
    exits; only the rest of the progress table is lost.
    """

    def __init__(self, stream, strip_trailing_spaces: bool = False):
        self._stream = stream
        self._closed = False
        self.strip_trailing_spaces = strip_trailing_spaces  # plain text: tables pad their cells

    def write(self, text: str) -> int:
        if self.strip_trailing_spaces:
            text = "\n".join(line.rstrip(" ") for line in text.split("\n"))
        if not self._closed:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._go_quiet()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._go_quiet()

    def _go_quiet(self) -> None:
        self._closed = True
        # Point the descriptor at /dev/null so the interpreter's final flush cannot fail either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def make_console(stderr: bool = False) -> Console:
    plain = not (sys.stderr if stderr else sys.stdout).isatty() or bool(os.environ.get("NO_COLOR"))  # no-color.org
    stream = sys.stderr if stderr else PipeSafeStdout(sys.stdout, strip_trailing_spaces=plain)
    # emoji=False: a name such as ":fire:" from a file is shown as written.
    if plain:
        # No colour, no cursor movement, no wrapping at an imaginary 80 columns.
        return Console(file=stream, color_system=None, force_terminal=False, highlight=False, emoji=False, width=200, soft_wrap=True)
    return Console(file=stream, highlight=False, emoji=False)


# A name or value from a file, as shown: long enough to recognise, never a screenful.
MAX_SHOWN_CHARS = 80


def shown(value, limit: int = MAX_SHOWN_CHARS) -> str:
    r"""``value`` as text safe to print: control characters escaped as Python writes them
    (``\x1b[31m``, ``\n``), cut in the middle to at most ``limit`` characters. Print the
    result with ``markup=False`` or as a :class:`rich.text.Text`."""
    text = str(value)
    if len(text) > limit:
        tail = limit // 4
        text = text[: limit - tail - 1] + "…" + text[-tail:]
    return escaped(text)


def cell(value, limit: int = MAX_SHOWN_CHARS) -> Text:
    """A table cell (or column header) from a file: :func:`shown`, and never parsed as markup."""
    return Text(shown(value, limit))


def is_plain(console: Console) -> bool:
    return console.color_system is None or not console.is_terminal


def _table(console: Console, **kwargs) -> Table:
    if is_plain(console):
        return Table(box=None, pad_edge=False, show_edge=False, **kwargs)
    return Table(box=box.SIMPLE_HEAVY, **kwargs)


def number(value: float | None, digits: int = 4) -> str:
    """Fixed decimals for ordinary magnitudes, scientific notation for tiny or huge ones."""
    if value is None:
        return "-"
    if value == 0 or 10 ** -(digits - 1) <= abs(value) < 1e6:
        return f"{value:.{digits}f}"
    return f"{value:.{digits - 1}e}"


def architecture_table(console: Console, layers: list[dict], title: str | None = None) -> Table:
    """The network as the guide draws it: W has one row per input neuron, one column per output."""
    table = _table(console, title=title, title_justify="left")
    table.add_column("layer", justify="right")
    table.add_column("weights W", justify="right")
    table.add_column("bias b", justify="right")
    table.add_column("activation")
    table.add_column("parameters", justify="right")
    for row in layers:
        fan_in, fan_out = row["weights"]
        table.add_row(
            str(row["layer"]),
            f"{fan_in} × {fan_out}",
            "-" if row["bias"] is None else f"{row['bias'][0]}",
            activation_text(row),
            f"{row['parameters']:,}",
        )
    table.add_section()
    table.add_row("total", "", "", "", f"{sum(r['parameters'] for r in layers):,}")
    return table


def activation_text(layer: dict) -> str:
    """`relu`, or with its parameters: `leaky_relu (slope 0.2)`."""
    params = layer.get("activation_params") or {}
    return layer["activation"] + (" (" + ", ".join(f"{k} {v:g}" for k, v in params.items()) + ")" if params else "")


def metric_text(metric_name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if metric_name == "accuracy" else number(value)


def metric_label(metric_name: str) -> str:
    return "acc" if metric_name == "accuracy" else "R²"


class TrainingDisplay(Reporter):
    """Prints one table row per epoch as it finishes, with a live bar on terminals.

    The bar runs over the whole run (every batch of every epoch, known before the first one),
    so it can say how long the rest will take (at most: early stopping may end it sooner).
    Redrawing a terminal costs far more than a small epoch, so rows are printed in batches at
    most ten times a second, and the bar is updated at that rate too.
    """

    # A row is 77 columns with the gaps between cells: it fits an 80-column terminal.
    WIDTHS = (6, 11, 10, 11, 10, 9, 8)
    REFRESH_SECONDS = 0.1

    def __init__(self, console: Console, metric_name: str, epochs: int, log_every: int = 1,
                 batches: int = 1, epoch: int = 1, batch: int = 0):
        """``batches`` per epoch; ``epoch`` and ``batch``: where the run starts (a resumed run
        later than epoch 1)."""
        self.console = console
        self.metric_name = metric_name
        self.epochs = epochs
        self.log_every = log_every
        self.live = not is_plain(console)
        self.progress: Progress | None = None
        self._task = None
        self._last_refresh = 0.0
        self._pending: list[str] = []
        self._epoch = epoch
        self._batch = batch
        self._batches = batches
        self._unprinted: str | None = None  # the last epoch's row, when --log-every skipped it

    def __enter__(self) -> "TrainingDisplay":
        label = metric_label(self.metric_name)
        self.console.print(
            self._row(("epoch", "train loss", f"train {label}", "val loss", f"val {label}", "lr", "seconds"), header=True)
        )
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(bar_width=20),
                TextColumn("batch {task.fields[batch]}/{task.fields[batches]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("left"),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self._task = self.progress.add_task(
                "train", total=self.epochs * self._batches, completed=self._done(),
                epoch=self._epoch, epochs=self.epochs, batch=self._batch, batches=self._batches,
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._unprinted is not None:  # the run ended on an epoch --log-every skipped (early stopping)
            self._pending.append(self._unprinted)
        self._flush()
        if self.progress is not None:
            self.progress.stop()

    def _done(self) -> int:
        return (self._epoch - 1) * self._batches + self._batch

    def on_epoch_start(self, epoch: int, batches: int) -> None:
        if epoch != self._epoch:  # not the epoch a resumed run starts in the middle of
            self._batch = 0
        self._epoch, self._batches = epoch, batches

    def on_batch(self, epoch: int, batch: int) -> None:
        self._batch = batch
        if self.progress is not None and self._due():
            self.progress.update(self._task, completed=self._done(), epoch=epoch, batch=batch)
            self._flush()

    def on_epoch_end(self, record: EpochRecord) -> None:
        row = self._row((
            f"{record.epoch}{'*' if record.best else ' '}",  # * marks a new best epoch
            number(record.train_loss),
            metric_text(self.metric_name, record.train_metric),
            number(record.val_loss),
            metric_text(self.metric_name, record.val_metric),
            f"{record.learning_rate:.3g}",
            f"{record.seconds:.3f}",
        ))
        self._unprinted = None
        if record.epoch % self.log_every == 0 or record.epoch == self.epochs:
            self._pending.append(row)
        else:
            self._unprinted = row
        if not self.live or self._due():
            self._flush()

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_refresh >= self.REFRESH_SECONDS:
            self._last_refresh = now
            return True
        return False

    def _flush(self) -> None:
        if self._pending:
            self.console.print("\n".join(self._pending), markup=False, highlight=False)
            self._pending = []

    def _row(self, cells: tuple[str, ...], header: bool = False) -> str:
        text = "  ".join(cell.rjust(width) for cell, width in zip(cells, self.WIDTHS))
        if header and self.live:
            return f"[bold]{text}[/bold]"
        return text


def untrained_network(console: Console, preview, title: str, with_config: bool = False) -> None:
    """The network a run would train, and the rows it would use (inspect CONFIG, --dry-run)."""
    rows = preview.rows
    console.print(architecture_table(console, preview.layers, title=f"{title} (untrained, {preview.dtype}, seed {preview.seed})"))
    # An autoencoder's targets are its features (data.target: inputs): said, not listed again.
    autoencoder = preview.config.get("data", {}).get("target") == "inputs"
    targets = "the inputs (autoencoder)" if autoencoder else ", ".join(shown(name) for name in preview.targets)
    console.print(f"features: {len(preview.features)}  targets: {targets}"
                  + (f"  classes: {len(preview.classes)}" if preview.classes else "")
                  + f"  rows: {rows['train']:,} train, {rows['validation']:,} validation", markup=False)
    if with_config:
        console.print("nothing trained, nothing written; the config as it would run:", markup=False)
        console.print(preview.config_yaml, markup=False, end="")


def training_summary(console: Console, result) -> None:
    """What a finished run (a commands.session.TrainResult) reached, and the files it wrote."""
    metrics, metric_name, files = result.model.metrics, result.metric_name, result.files
    seconds, first_epoch = result.seconds, result.first_epoch
    label = metric_label(metric_name)
    parts = [
        f"train loss {number(metrics['train_loss'])}",
        f"train {label} {metric_text(metric_name, metrics[f'train_{metric_name}'])}",
    ]
    if metrics.get("val_loss") is not None:
        parts.append(f"val loss {number(metrics['val_loss'])}")
        parts.append(f"val {label} {metric_text(metric_name, metrics[f'val_{metric_name}'])}")
    epochs = metrics["epochs"]
    if first_epoch > 1:  # a resumed run
        console.print(f"Trained epochs {first_epoch}–{epochs} in {seconds:.1f} s (resumed)", markup=False)
    else:
        console.print(f"Trained {epochs} epoch{'s' if epochs != 1 else ''} in {seconds:.1f} s", markup=False)
    if metrics["epoch"] != epochs or metrics.get("stopped_early"):
        why = "stopped early; " if metrics.get("stopped_early") else ""
        console.print(f"Early stopping: {why}the model holds the best epoch, {metrics['epoch']}", markup=False)
    console.print(f"Epoch {metrics['epoch']}: " + ", ".join(parts), markup=False)
    non_finite = result.model.metrics.get("non_finite")
    if non_finite:  # stored as null: the model is saved all the same
        console.print("Not finite, stored as null: " + ", ".join(f"{k} {v}" for k, v in non_finite.items()), markup=False)
    console.print(f"Model saved to {shown(files['model'], 400)}", markup=False)
    others = [shown(path, 400) for name, path in files.items() if name != "model"]
    if others:
        console.print(f"Run files: {', '.join(others)}", markup=False)


# --- evaluate --------------------------------------------------------------------------------
def evaluation_report(console: Console, evaluation, model_path: str, data_name: str) -> None:
    metrics = evaluation.metrics
    console.print(f"Evaluated {shown(model_path, 400)} on {shown(data_name, 400)}: {evaluation.rows:,} row{'s' * (evaluation.rows != 1)}", markup=False)
    dropped = evaluation.rows_dropped
    if dropped:
        console.print(f"{dropped:,} row{'s' * (dropped != 1)} with a missing cell left out "
                      "(the model was trained with data.missing: drop_rows)", markup=False)
    table = _table(console)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(cell(name), f"{100 * value:.2f}%" if name == "accuracy" else number(value))  # mse_<target>: a name from the file
    console.print(table)
    if evaluation.is_classification:
        classes = len(evaluation.per_class)
        if classes <= TABLE_MAX_CLASSES:
            console.print(per_class_table(console, evaluation.per_class))
        else:
            console.print(f"per class: {classes:,} classes, too many for a table (--json lists them all)", markup=False)
        if evaluation.confusion is not None and classes <= CONFUSION_TABLE_MAX_CLASSES:
            # The caption as its own line, not the table's title: a title wraps to the table's
            # width, and a matrix of a few narrow classes is narrower than the caption.
            console.print(CONFUSION_CAPTION, markup=False, soft_wrap=True)
            console.print(confusion_table(console, evaluation.per_class, evaluation.confusion))
        else:
            console.print(f"confusion matrix: {classes:,} classes, too many to show"
                          + (" (--json has it)" if evaluation.confusion is not None else ""), markup=False)
    elif len(evaluation.per_target) > 1:
        targets = _table(console, title="per target", title_justify="left")
        for column, justify in (("target", "left"), ("MSE", "right"), ("MAE", "right"), ("R²", "right")):
            targets.add_column(column, justify=justify)
        for row in evaluation.per_target:
            targets.add_row(cell(row["target"]), number(row["mse"]), number(row["mae"]), number(row["r2"]))
        console.print(targets)


# A table row costs rich ~0.4 ms (30,000 classes: 12 s) and a confusion matrix one cell per pair
# of classes; a terminal shows neither usefully beyond these sizes, and --json has everything.
TABLE_MAX_CLASSES = 1_000
CONFUSION_TABLE_MAX_CLASSES = 50


def per_class_table(console: Console, per_class: list[dict]) -> Table:
    table = _table(console, title="per class", title_justify="left")
    for column, justify in (("class", "left"), ("precision", "right"), ("recall", "right"), ("F1", "right"), ("support", "right")):
        table.add_column(column, justify=justify)
    for row in per_class:
        table.add_row(cell(row["class"]), f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", f"{row['support']:,}")
    return table


CONFUSION_CAPTION = "confusion matrix (rows: true class, columns: predicted)"


def confusion_table(console: Console, per_class: list[dict], confusion: list[list[int]]) -> Table:
    """Rows are the true classes, columns the predicted ones; the diagonal is right (the
    caption, CONFUSION_CAPTION, is printed above it)."""
    labels = [row["class"] for row in per_class]
    table = _table(console)
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(cell(label, 24), justify="right")
    for i, (label, counts) in enumerate(zip(labels, confusion)):
        cells = []
        for j, count in enumerate(counts):
            text = str(count) if count else ("0" if i == j else ".")
            if not is_plain(console) and count:
                text = f"[bold green]{text}[/]" if i == j else f"[red]{text}[/]"
            cells.append(text)
        table.add_row(cell(label), *cells)
    return table


# --- inspect ---------------------------------------------------------------------------------
def model_summary(console: Console, path: str, info: dict, curve: dict[str, str]) -> None:
    console.print(f"Model {shown(path, 400)}", markup=False)
    console.print(_fitting(console, lambda hidden: _layer_statistics(console, info, hidden), LAYER_COLUMNS_TO_DROP))
    facts = _table(console, show_header=False)
    facts.add_column(style=None if is_plain(console) else "bold")
    facts.add_column()
    features = info["features"]
    loss_params = "".join(f", {key} {value:g}" for key, value in info.get("loss_params", {}).items())
    if info.get("autoencoder"):  # its targets are its features: said once, not listed twice
        task = f"autoencoder (reproduces its {len(features):,} inputs)"
    else:
        task = info["task"]
    facts.add_row("task", f"{task} ({info['loss']} loss{loss_params}, {info['dtype']})")
    facts.add_row("features", Text(f"{len(features):,}: {_names(features)}"))
    if not info.get("autoencoder"):
        facts.add_row("targets", Text(_names(info["targets"])))
    if info["classes"] is not None:
        facts.add_row("classes", Text(f"{len(info['classes']):,}: {_names(info['classes'])}"))
    norm = info["normalization"]
    facts.add_row("normalisation", f"features {norm['features']['method']}, targets {norm['targets']['method'] if norm['targets'] else 'none'}")
    metrics = info["metrics"]
    if metrics:
        facts.add_row("trained", Text(f"{metrics.get('epochs')} epochs, seed {shown(info['seed'])}, nncli {shown(info['nncli_version'])}, {shown(info['created'])}"))
        facts.add_row("final", Text(", ".join(f"{shown(k)} {number(v)}" for k, v in metrics.items()
                                             if k.startswith(("train_", "val_")) and not k.endswith("rows") and v is not None)))
    for name, line in curve.items():
        if line:
            facts.add_row(name, line)
    console.print(facts)


# inspect's layer table on a narrow terminal: columns left out (or, for SHORT_HEADERS, headers
# shortened), in this order, until it fits (the bias size repeats W's second dimension; of the
# weight statistics, the spread says most).
SHORT_HEADERS = "short headers"
LAYER_COLUMNS_TO_DROP = ("bias b", SHORT_HEADERS, "near 0", "mean", "min", "max")
_SHORT = {"weights W": "W", "parameters": "params"}


def _layer_statistics(console: Console, info: dict, hidden: list[str]) -> Table:
    columns = {
        "layer": ("right", lambda row: str(row["layer"])),
        "weights W": ("right", lambda row: f"{row['weights'][0]} × {row['weights'][1]}"),
        "bias b": ("right", lambda row: "-" if row["bias"] is None else str(row["bias"][0])),
        "activation": ("left", activation_text),
        "parameters": ("right", lambda row: f"{row['parameters']:,}"),
        **{key: ("right", lambda row, key=key: f"{row['statistics'][key]:.4f}") for key in ("mean", "std", "min", "max")},
        "near 0": ("right", lambda row: f"{100 * row['statistics']['near_zero']:.1f}%"),
    }
    shown_columns = [name for name in columns if name not in hidden]
    table = _table(console)
    for name in shown_columns:
        header = _SHORT.get(name, name) if SHORT_HEADERS in hidden else name
        table.add_column(header, justify=columns[name][0], no_wrap=name != "activation")
    for row in info["layers"]:
        table.add_row(*(columns[name][1](row) for name in shown_columns))
    table.add_section()
    # Under some of the layers (--layer N), the model's total is not theirs: say whose it is.
    label = "total" if sum(row["parameters"] for row in info["layers"]) == info["parameters"] else "model total"
    table.add_row(*(label if name == "layer" else f"{info['parameters']:,}" if name == "parameters" else ""
                    for name in shown_columns))
    return table


def _fitting(console: Console, build, optional: tuple[str, ...]) -> Table:
    """``build(hidden)``'s table, with the ``optional`` columns hidden one after another until
    it fits the console: a table too wide for it would have rich cut its numbers to `-0.0…`."""
    hidden: list[str] = []
    table = build(hidden)
    for name in optional:
        if natural_width(console, table) <= console.width:
            break
        hidden.append(name)
        table = build(hidden)
    return table


def natural_width(console: Console, renderable) -> int:
    """The width ``renderable`` takes when nothing is wrapped or cut (Console.measure is capped
    at the console's width)."""
    return Measurement.get(console, console.options.update_width(1 << 16), renderable).maximum


def _names(names: list[str], limit: int = 12) -> str:
    return ", ".join(shown(name) for name in names[:limit]) + (f", … ({len(names):,} in all)" if len(names) > limit else "")


def weight_matrix(console: Console, title: str, matrix, row_names: list[str], column_names: list[str], full: bool) -> None:
    """Print a matrix with named rows and columns; big ones show their corners unless ``full``.

    Corners: the first 8 and last 4 rows, and as many of the first 6 and last 3 columns as the
    console's width holds (a narrow terminal gets fewer columns, never numbers cut to `-0.0…`).
    ``full`` prints every column: the table gets the width it needs (a terminal wraps what is
    wider), so it never squeezes numbers into ellipses either.
    """
    matrix = np.atleast_2d(matrix)
    rows, columns = matrix.shape
    keep_rows = list(range(rows)) if full or rows <= 20 else list(range(8)) + [-1] + list(range(rows - 4, rows))
    candidates = list(range(columns)) if full or columns <= 12 else list(range(6)) + list(range(columns - 3, columns))
    cells = {(i, j): f"{matrix[i, j]:.4f}" for i in keep_rows if i >= 0 for j in candidates}
    row_labels = {i: shown(row_names[i], ROW_NAME_CHARS) for i in keep_rows if i >= 0}

    def table_of(keep_cols: list[int]) -> Table:
        table = _table(console, title=title, title_justify="left")
        table.add_column("", no_wrap=True)
        for j in keep_cols:
            table.add_column(Text("…" if j < 0 else shown(column_names[j], ROW_NAME_CHARS)), justify="right", no_wrap=True)
        for i in keep_rows:
            if i < 0:
                table.add_row("…", *["…"] * len(keep_cols))
            else:
                table.add_row(Text(row_labels[i]), *("…" if j < 0 else cells[i, j] for j in keep_cols))
        return table

    if full:
        table = table_of(candidates)
        width = console.width
        console.width = max(width, natural_width(console, table))  # Console.print(width=) cannot exceed the console's own
        try:
            console.print(table)
        finally:
            console.width = width
        return
    for count in range(len(candidates), 0, -1):
        table = table_of(_corner_columns(candidates, count, columns))
        if natural_width(console, table) <= console.width:
            break
    console.print(table)  # (one column that does not fit: the terminal wraps it)


# A row or column name beside a matrix: enough to recognise it, not half the screen.
ROW_NAME_CHARS = 24


def _corner_columns(candidates: list[int], count: int, columns: int) -> list[int]:
    """``count`` of the candidate columns: two from the left for one from the right, with -1
    (shown as `…`) where columns are left out."""
    if count == len(candidates) == columns:
        return candidates
    if count == len(candidates):  # the first 6 and the last 3 of a wide matrix
        return candidates[:6] + [-1] + candidates[6:]
    head = (2 * count + 2) // 3
    return candidates[:head] + [-1] + candidates[len(candidates) - (count - head):][: count - head]


# --- inspect: how the feature columns become inputs ------------------------------------------
FEATURE_TABLE_ROWS = 40  # feature columns listed in text; --json lists every one


def feature_columns(console: Console, encoding: dict) -> None:
    """Each feature column's kind (a number, or categorical with N one-hot inputs) and the value
    a missing cell gets, then the missing-cell and unknown-category policies (inspect's
    ``encoding``, commands/inspect.py). The table is left out when every feature is a number
    with no fill: the feature list above says it all."""
    columns = encoding["columns"]
    if any(column["kind"] != "number" or column["fill"] is not None for column in columns):
        table = _table(console, title="feature columns", title_justify="left")
        for heading, justify in (("column", "left"), ("kind", "left"), ("inputs", "right"), ("missing cell →", "left")):
            table.add_column(heading, justify=justify, overflow="fold")
        for column in columns[:FEATURE_TABLE_ROWS]:
            categorical = column["kind"] == "categorical"
            kind = f"categorical ({len(column['categories']):,})" if categorical else "number"
            fill = column["fill"]
            shown_fill = "error" if fill is None else cell(fill, 24) if categorical else number(fill)
            table.add_row(cell(column["name"], 24), kind, f"{column['inputs']:,}", shown_fill)
        if len(columns) > FEATURE_TABLE_ROWS:
            table.add_row(f"… {len(columns) - FEATURE_TABLE_ROWS:,} more (--json lists them)", "", "", "")
        console.print(table)
    tokens = ", ".join(shown(repr(token), 12) for token in encoding["missing_values"][:8]) or "none"
    line = f"missing cells: {encoding['missing']} (cells read as missing: {tokens})"
    if any(column["kind"] == "categorical" for column in columns):
        line += f"; unknown categories: {encoding['unknown_category']}"
    console.print(line, markup=False)


# --- gradcheck -------------------------------------------------------------------------------
# gradcheck's table on a narrow terminal: columns left out in this order until it fits (the
# relative error decides; the absolute one and the shape are context).
GRADCHECK_COLUMNS_TO_DROP = ("max abs error", "shape", "at kinks")


def gradient_check_report(console: Console, result) -> None:
    """Backpropagation against central differences (a commands.gradcheck.GradcheckResult): what
    was checked, one row per weight matrix and bias vector, the kinks skipped, the verdict."""
    weights = "trained weights" if result.trained else "initial weights (as training starts)"
    console.print(f"Gradient check of {shown(result.target, 400)}: {weights}", markup=False)
    loss = result.loss + "".join(f" {key} {value:g}" for key, value in result.loss_params.items())
    setup = [f"{result.rows:,} {'random' if result.random_rows else 'training'} row{'s' * (result.rows != 1)}",
             f"{loss} loss"]
    setup += ["class weights"] if result.class_weights else []
    setup += [f"weight decay {result.weight_decay:g}"] if result.weight_decay else []
    setup += ["dropout off"] if any(result.dropout) else []
    console.print(", ".join(setup), markup=False)
    console.print(f"central differences with ε {result.eps:g} in float64"
                  + (f" (the {result.dtype} network copied)" if result.dtype != "float64" else ""), markup=False)
    if result.samples:
        console.print(f"at most {result.samples:,} entries of each array, drawn with seed {result.seed}", markup=False)
    console.print(_fitting(console, lambda hidden: _gradient_table(console, result, hidden), GRADCHECK_COLUMNS_TO_DROP))
    if result.skipped:
        console.print(f"{result.skipped:,} entr{'ies' if result.skipped != 1 else 'y'} skipped: ±ε falls on both sides of a kink "
                      "(ReLU at 0, MAE at 0, Huber at ±δ), where there is no derivative to compare", markup=False)
    if result.passed:
        worst = result.worst
        console.print(f"passed: every relative error ≤ {result.tol:g} (largest {worst.max_rel_error:.1e}, {worst.label})", markup=False)
    else:
        failed = ", ".join(check.label for check in result.failures)
        layers = sorted({check.layer for check in result.failures})
        console.print(f"FAILED in layer{'s' * (len(layers) > 1)} {', '.join(map(str, layers))}: "
                      f"relative error above {result.tol:g} in {failed}", markup=False)


def _gradient_table(console: Console, result, hidden: list[str]) -> Table:
    table = _table(console)
    columns = [("array", "left"), ("shape", "left"), ("checked", "right"), ("at kinks", "right"),
               ("max abs error", "right"), ("max rel error", "right"), ("worst at", "left"), ("", "left")]
    shown_columns = [(name, justify) for name, justify in columns if name not in hidden]
    for name, justify in shown_columns:
        table.add_column(name, justify=justify, no_wrap=True)
    for check in result.checks:
        compared = check.worst is not None
        ok = check.passes(result.tol)
        status = "ok" if ok else "FAIL" if is_plain(console) else "[bold red]FAIL[/]"
        values = {
            "array": check.label,
            "shape": " × ".join(map(str, check.shape)),
            "checked": f"{check.checked:,}",
            "at kinks": f"{check.skipped:,}",
            "max abs error": f"{check.max_abs_error:.1e}" if compared else "-",
            "max rel error": f"{check.max_rel_error:.1e}" if compared else "-",
            "worst at": Text(f"[{', '.join(map(str, check.worst))}]" if compared else "-"),  # an index, not markup
            "": status,
        }
        table.add_row(*(values[name] for name, _ in shown_columns))
    return table


# --- explain ---------------------------------------------------------------------------------
EXPLAIN_COLUMNS = 80  # an explanation fits an 80-column terminal, and a plain log is written for one
EXPLAIN_FORMULA_ROWS = 4  # rows whose loss is written out; the mean takes them all


def explanation(console: Console, result) -> None:
    """`nncli explain`: one step of gradient descent (a commands.explain.Explanation) in the
    guide's notation, section by section: inputs, forward, loss, backward, update. A 1 × 1
    array is written inline, with the numbers substituted (``z1 = x·W1 = 2·5 = 10``); a bigger
    one as a table of its corners, with its shape."""
    from nncli.core.explain import figure

    out = _Explaining(console)
    trace, shown_layers = result.trace, result.shown_layers
    sizes = " → ".join(str(n) for n in [trace.X.shape[1]] + [layer.W.shape[1] for layer in trace.layers])
    activations = ", ".join(layer.activation for layer in trace.layers)
    out.text(f"One step of gradient descent ({trace.X.dtype.name}): {shown(result.source, 48)}", heading=True)
    out.text(f"{_row_numbers(result.rows)}; network {sizes} ({activations}); {result.loss_name} loss; "
             f"{trace.optimizer.name}")
    if result.layer is not None:
        out.text(f"layer {result.layer} only (--layer {result.layer})")
    row_labels = [shown(label, 32) for label in result.row_labels]
    if 1 in shown_layers:
        out.section(f"1. Inputs x, as the network sees them: {result.scaling}")
        if trace.X.size == 1:
            out.text(f"x = {figure(trace.X[0, 0])}  ({shown(result.input_names[0], 24)}, {row_labels[0]})", 2)
        else:
            out.matrix("x", trace.X, row_labels, result.input_names, indent=2)
    out.section("2. Forward: z = x·W + b, h = σ(z)")
    for k in shown_layers:
        _forward(out, result, k, row_labels)
    _loss(out, result, row_labels)
    out.section("4. Backward: δ = ∂L/∂z, from the output down")
    for k in reversed(shown_layers):
        _backward(out, result, k, row_labels)
    out.section(f"5. Update ({trace.optimizer.name})")
    for rule in result.update_rules:
        out.text(rule, 2)
    out.text(result.update_symbols, 2)
    for k in shown_layers:
        _update(out, result, k)
    out.text("loss after the step, on the same rows:", 2)
    _losses(out, result, row_labels, after=True)
    if result.notes:
        out.console.print()
    for note in result.notes:
        out.text(f"note: {note}")


def _forward(out: "_Explaining", result, k: int, row_labels: list[str]) -> None:
    from nncli.core.explain import figure

    layers = result.trace.layers
    layer, last = layers[k - 1], k == len(layers)
    x, h = _input_name(k), "ŷ" if last else f"h{k}"
    bias = f" + b{k}" if layer.b is not None else ""
    out.text(f"layer {k}{' (output)' if last else ''}: z{k} = {x}·W{k}{bias}, {h} = {layer.activation}(z{k})", 2)
    rows, neurons = _neuron_rows(result, k), result.neuron_names[k - 1]
    if k > 1 and (result.layer == k or not np.array_equal(layers[k - 2].h, layer.x)):  # not shown above, or dropped out
        out.matrix(x + (" after dropout" if not np.array_equal(layers[k - 2].h, layer.x) else ""), layer.x, row_labels, rows)
    if layer.x.size == layer.W.size == layer.z.size == 1:
        terms = f"{figure(layer.x[0, 0])}·{figure(layer.W[0, 0])}" + (f" + {figure(layer.b[0])}" if bias else "")
        out.text(f"z{k} = {x}·W{k}{bias} = {terms} = {figure(layer.z[0, 0])}", 4)
        out.text(f"{h} = {layer.activation}({figure(layer.z[0, 0])}) = {figure(layer.h[0, 0])}"
                 + ("  (the prediction)" if last else ""), 4)
        return
    out.matrix(f"W{k}", layer.W, rows, neurons)
    if layer.b is not None:
        out.matrix(f"b{k}", layer.b, [f"b{k}"], neurons)
    out.matrix(f"z{k}", layer.z, row_labels, neurons)
    out.matrix(f"{h} = {layer.activation}(z{k})", layer.h, row_labels, neurons)


def _loss(out: "_Explaining", result, row_labels: list[str]) -> None:
    targets = ", ".join(shown(name, 24) for name in result.target_names[:3]) + (", …" if len(result.target_names) > 3 else "")
    mean = ", their mean over the rows" if len(result.rows) > 1 else ""
    out.section(f"3. Loss: {result.loss_notation.formula} (y: {targets}){mean}")
    _losses(out, result, row_labels, after=False)


def _losses(out: "_Explaining", result, row_labels: list[str], after: bool) -> None:
    from nncli.core.explain import figure

    trace = result.trace
    formulas = result.row_formulas(after)
    values, mean = (trace.losses_after, trace.loss_after) if after else (trace.losses, trace.loss)
    written = result.mean_formula(after)
    if written is None:  # one row: its loss is L
        out.text(f"L = {formulas[0]} = {figure(mean)}", 4 if after else 2)
        return
    for label, formula, value in list(zip(row_labels, formulas, values))[:EXPLAIN_FORMULA_ROWS]:
        out.text(f"{label}: {formula} = {figure(value)}", 4 if after else 2)
    if len(formulas) > EXPLAIN_FORMULA_ROWS:
        more = len(formulas) - EXPLAIN_FORMULA_ROWS
        out.text(f"… {more:,} more row{'s' * (more != 1)} (--json has each)", 4 if after else 2)
    out.text(f"L = {written} = {figure(mean)}", 4 if after else 2)


def _backward(out: "_Explaining", result, k: int, row_labels: list[str]) -> None:
    from nncli.core.explain import figure

    trace = result.trace
    layers = trace.layers
    layer, last = layers[k - 1], k == len(layers)
    neurons = result.neuron_names[k - 1]
    if last:
        out.text(f"layer {k} (output): {result.output_delta}", 2)
        if trace.loss_gradient is not None:
            out.matrix("∂L/∂ŷ", trace.loss_gradient, row_labels, neurons)
    else:
        dropped = "" if np.array_equal(layer.h, layers[k].x) else " ⊙ dropout mask"
        out.text(f"layer {k}: δ{k} = (δ{k + 1}·W{k + 1}ᵀ){dropped} ⊙ {layer.activation}′(z{k})", 2)
        out.matrix(f"δ{k + 1}·W{k + 1}ᵀ", layer.grad_h, row_labels, neurons)
        out.matrix(f"{layer.activation}′(z{k})", layer.derivative, row_labels, neurons)
    out.matrix(f"δ{k}", layer.delta, row_labels, neurons)
    x = _input_name(k)
    if layer.x.size == layer.delta.size == 1:
        out.text(f"∂L/∂W{k} = {x}ᵀ·δ{k} = {figure(layer.x[0, 0])}·{figure(layer.delta[0, 0])} = {figure(layer.grad_W[0, 0])}", 4)
    else:
        out.matrix(f"∂L/∂W{k} = {x}ᵀ·δ{k}", layer.grad_W, _neuron_rows(result, k), neurons)
    if layer.grad_b is not None:
        out.matrix(f"∂L/∂b{k} = Σ δ{k} over the rows", layer.grad_b, [f"b{k}"], neurons)


def _update(out: "_Explaining", result, k: int) -> None:
    from nncli.core.explain import figure

    trace = result.trace
    layer = trace.layers[k - 1]
    neurons = result.neuron_names[k - 1]
    out.text(f"layer {k}", 2)
    plain_step = trace.optimizer.name == "sgd" and set(result.update_values) == {"learning_rate"}
    for name, before, gradient, after, rows in (("W", layer.W, layer.grad_W, layer.W_after, _neuron_rows(result, k)),
                                                 ("b", layer.b, layer.grad_b, layer.b_after, [f"b{k}"])):
        if before is None:
            continue
        if before.size == 1 and plain_step:
            rate = figure(trace.optimizer.learning_rate)
            out.text(f"{name}{k} ← {figure(before.flat[0])} − {rate}·{_operand(figure(gradient.flat[0]))} = {figure(after.flat[0])}", 4)
            continue
        out.matrix(f"{name}{k} after the step", after, rows, neurons)
        for slot, arrays in layer.state.items():
            out.matrix(f"{slot} of {name}{k}", arrays[name], rows, neurons)


def _operand(text: str) -> str:
    return f"({text})" if text.startswith("−") else text


def _input_name(k: int) -> str:
    return "x" if k == 1 else f"h{k - 1}"


def _neuron_rows(result, k: int) -> list[str]:
    """Names of W_k's rows: the inputs, or the neurons of the layer below."""
    return result.input_names if k == 1 else result.neuron_names[k - 2]


def _row_numbers(rows: list[int]) -> str:
    if len(rows) == 1:
        return f"training row {rows[0]}"
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return f"training rows {rows[0]}–{rows[-1]}"
    return "training rows " + ", ".join(str(row) for row in rows[:6]) + (", …" if len(rows) > 6 else "")


class _Explaining:
    """Writes an explanation within EXPLAIN_COLUMNS: lines wrapped, matrices cut to corners."""

    # A big matrix shows its first and last rows, and as many of its first and last columns as fit.
    HEAD_ROWS, TAIL_ROWS, HEAD_COLUMNS, TAIL_COLUMNS = 4, 1, 6, 3

    def __init__(self, console: Console):
        self.console = console
        self.width = min(console.width, EXPLAIN_COLUMNS)
        self.plain = is_plain(console)

    def section(self, text: str) -> None:
        self.console.print()
        self.text(text, heading=True)

    def text(self, text: str, indent: int = 0, heading: bool = False) -> None:
        import textwrap

        style = "bold" if heading and not self.plain else ""
        for line in textwrap.wrap(text, self.width - indent, subsequent_indent="  ", break_on_hyphens=False) or [""]:
            self.console.print(Text(" " * indent + line, style=style))

    def matrix(self, title: str, values, row_names, column_names, indent: int = 4) -> None:
        from rich.padding import Padding

        from nncli.core.explain import figure

        vector = np.ndim(values) == 1
        values = np.atleast_2d(values)
        rows, columns = values.shape
        if values.size == 1:
            self.text(f"{title} = {figure(values[0, 0])}", indent)
            return
        head, tail = self.HEAD_ROWS, self.TAIL_ROWS
        keep_rows = list(range(rows)) if rows <= head + tail + 1 else list(range(head)) + [-1] + list(range(rows - tail, rows))
        wide = columns > self.HEAD_COLUMNS + self.TAIL_COLUMNS
        candidates = list(range(self.HEAD_COLUMNS)) + list(range(columns - self.TAIL_COLUMNS, columns)) if wide else list(range(columns))
        heading = f"{title}  ({columns})" if vector else f"{title}  ({rows} × {columns})"

        def table_of(keep_columns: list[int]) -> Padding:
            # Compact at a terminal too (a rule under the header, no frame): a step has many matrices.
            table = Table(box=None if self.plain else box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            table.add_column("", no_wrap=True)
            for j in keep_columns:
                table.add_column("…" if j < 0 else cell(column_names[j], 12), justify="right", no_wrap=True)
            for i in keep_rows:
                if i < 0:
                    table.add_row("…", *["…"] * len(keep_columns))
                else:
                    table.add_row(cell(row_names[i], 24), *("…" if j < 0 else figure(values[i, j]) for j in keep_columns))
            return Padding(table, (0, 0, 0, indent + 2))

        for count in range(len(candidates), 0, -1):
            shown_table = table_of(_corner_columns(candidates, count, columns))
            if natural_width(self.console, shown_table) <= self.width:
                break
        self.text(heading, indent)
        self.console.print(shown_table)


# --- sweep -----------------------------------------------------------------------------------
def sweep_value(metric: str, value: float | None) -> str:
    """A sweep's metric as the tables show it: accuracy in percent, the others as numbers."""
    return metric_text("accuracy" if metric.endswith("accuracy") else metric, value)


def sweep_labels(keys: list[str]) -> dict[str, str]:
    """Column labels for the swept keys: the last part (`learning_rate`), or more of the key
    where that is a list index (`layers.1`) or two keys would share a label."""
    def label(key: str, parts: int) -> str:
        return ".".join(key.split(".")[-parts:])

    labels = {}
    for key in keys:
        parts = 2 if key.split(".")[-1].isdigit() else 1
        while parts < key.count(".") + 1 and sum(label(other, parts) == label(key, parts) for other in keys) > 1:
            parts += 1
        labels[key] = label(key, parts)
    return labels


class SweepDisplay:
    """The sweep's live table: a row per trial as it finishes, under a live progress line at a
    terminal (trials done, in progress, time left); rows only, plain, when piped."""

    VALUE_CHARS = 24  # a swept value's column at most (a long list is cut in the middle)
    REASON_CHARS = 160

    def __init__(self, console: Console):
        self.console = console
        self.live = not is_plain(console)
        self.progress: Progress | None = None
        self._task = None
        self._running: set[str] = set()
        self._done = 0
        self._failed = 0

    def begin(self, plan) -> None:
        """``plan``: a commands.sweep.SweepPlan."""
        self.metric, self.keys = plan.metric, plan.keys
        self.labels = sweep_labels(plan.keys)
        self.show_seed = len({trial.seed for trial in plan.trials}) > 1
        earlier = f", {plan.earlier} finished earlier" if plan.earlier else ""
        if not plan.to_run:
            self.console.print(f"Sweep {shown(plan.folder, 400)}: all {len(plan.trials)} trials finished earlier", markup=False)
            return
        self.console.print(f"Sweep {shown(plan.folder, 400)}: {len(plan.trials)} trials{earlier}; "
                           f"running {plan.to_run} in {plan.executor}; ranked by {plan.metric}", markup=False)
        self.widths = [max(len("trial"), *(len(t.name) for t in plan.trials))]
        for key in plan.keys:
            values = [len(shown(trial.settings[key], self.VALUE_CHARS)) for trial in plan.trials]
            self.widths.append(max(len(self.labels[key]), *values))
        self.widths += [4] * self.show_seed + [max(len(plan.metric), 8), 8]
        header = self._row(["trial", *(self.labels[key] for key in plan.keys), *["seed"] * self.show_seed, plan.metric,
                            "seconds"])
        self.console.print(Text(header, style="bold" if self.live else ""))
        if self.live and plan.to_run:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.completed}/{task.total} trials"), BarColumn(bar_width=20), TextColumn("{task.fields[state]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("left"), console=self.console, transient=True)
            self.progress.start()
            self._task = self.progress.add_task("sweep", total=plan.to_run, state="")

    def trial_started(self, name: str) -> None:
        self._running.add(name)
        self._update()

    def trial_finished(self, record) -> None:
        """``record``: a commands.sweeps.ranking.TrialRecord."""
        self._running.discard(record.name)
        self._done += 1
        self._failed += record.status != "ok"
        trial = record.trial
        cells = [record.name, *(shown(trial.settings[key], self.VALUE_CHARS) for key in self.keys),
                 *[str(trial.seed)] * self.show_seed,
                 sweep_value(self.metric, record.value(self.metric)) if record.status == "ok" else "failed",
                 f"{record.seconds:.1f}"]
        row = self._row(cells)
        if record.status != "ok":
            row += f"  {shown(record.reason, self.REASON_CHARS)}"
        self.console.print(row, markup=False, highlight=False)
        self._update()

    def _update(self) -> None:
        if self.progress is not None:
            failed = f", {self._failed} failed" if self._failed else ""
            self.progress.update(self._task, completed=self._done, state=f"{len(self._running)} in progress{failed}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> "SweepDisplay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _row(self, cells: list[str]) -> str:
        # Names and swept values read left to right; numbers line up on the right.
        numbers = 1 + self.show_seed + 1
        text = [c.ljust(w) for c, w in zip(cells[:-numbers], self.widths)]
        text += [c.rjust(w) for c, w in zip(cells[-numbers:], self.widths[-numbers:])]
        return "  ".join(text)


def sweep_summary(console: Console, result, limit: int = 15) -> None:
    """The ranking (best first, mean ± std over seeds), the best trial's folder and results.csv
    (``result``: a commands.sweep.SweepResult)."""
    metric, points = result.metric, result.points
    seeds = max((len(point.trials) for point in points), default=1)
    labels = sweep_labels(result.keys)
    direction = "lower" if result.minimize else "higher"
    over = ", mean ± std over seeds" if seeds > 1 else ""
    table = _table(console, title=f"Ranking by {metric} ({direction} is better{over})", title_justify="left")
    table.add_column("rank", justify="right")
    for key in result.keys:
        table.add_column(cell(labels[key]))
    table.add_column(cell(metric), justify="right")
    if seeds > 1:
        table.add_column("ok", justify="right")
    table.add_column("best trial")
    for point in points[:limit]:  # (no row, no table: a sweep stopped before any trial finished)
        value = sweep_value(metric, point.mean)
        if point.std is not None:
            value += f" ± {sweep_value(metric, point.std)}"
        ok = sum(record.status == "ok" for record in point.trials)
        table.add_row("-" if point.rank is None else str(point.rank), *(cell(point.settings[key], 24) for key in result.keys),
                      value if point.mean is not None else "failed", *[f"{ok}/{len(point.trials)}"] * (seeds > 1),
                      cell(point.best.name if point.best is not None else point.trials[0].name))
    if points:
        console.print(table)
    if len(points) > limit:
        console.print(f"… and {len(points) - limit} more point(s) in {shown(result.results, 400)}", markup=False)
    failed = len(result.records) - result.succeeded
    skipped = sum(record.earlier for record in result.records)
    counts = f"{result.succeeded} of {result.planned} trials succeeded" + (f", {failed} failed" if failed else "")
    counts += f" ({skipped} finished earlier)" if skipped else ""
    best = result.best
    if best is not None:
        value = sweep_value(metric, best.value(metric))
        console.print(f"Best: {best.name}, {metric} {value}: {shown(best.path, 400)}", markup=False)
    console.print(f"{counts}; results in {shown(result.results, 400)}", markup=False)


def refine_progress(console: Console):
    """`cluster --refine`'s progress at a terminal: a line per target update (none when stderr
    is a file or a pipe, where the report says how it ended)."""
    if not console.is_terminal:
        return None

    def on_update(update) -> None:
        console.print(f"refine: step {update.iteration:,}, KL {update.loss:.4f}, "
                      f"{100 * update.changed:.2f} % of rows changed cluster", markup=False, highlight=False)

    return on_update


def _range_end(result) -> str:
    """A scan's best k at an end of its range: the best may lie beyond it. (Not below 2: k = 1
    has no silhouette, so a range from 2 cannot go lower.)"""
    ks = [point.k for point in result.scan]
    if result.k == ks[-1]:
        return " (the top of the range: try larger k)"
    if result.k == ks[0] and ks[0] > 2:
        return " (the bottom of the range: try smaller k)"
    return ""


def cluster_report(console: Console, result) -> None:
    """A clustering (a commands.cluster.ClusterResult): what was clustered, the scan of k if
    there was one, the sizes, inertia and silhouette, and the scores against known labels."""
    console.print(f"k-means on {result.rows:,} rows, {result.space}", markup=False)
    if result.scanned:
        table = _table(console)
        for name in ("k", "inertia", "silhouette", "iterations"):
            table.add_column(name, justify="right")
        for point in result.scan:
            mark = " ←" if point.k == result.k else ""
            table.add_row(str(point.k), number(point.inertia), number(point.silhouette) + mark, str(point.iterations))
        console.print(table)
        console.print(f"best silhouette at k = {result.k}: using it{_range_end(result)}", markup=False)
    sizes = ", ".join(f"{cluster}: {size:,}" for cluster, size in enumerate(result.sizes))
    console.print(f"clusters (k = {result.k}) sizes {sizes}", markup=False)
    silhouette = "-" if result.silhouette is None else f"{result.silhouette:.4f}"
    console.print(f"inertia {number(result.inertia)}  silhouette {silhouette} (on {result.sample:,} rows)", markup=False)
    refined = result.refined
    if refined is not None:
        passes = refined["passes"]
        passes = f"{passes:,.0f} pass{'es' * (passes != 1)}" if passes == round(passes) else f"{passes:,.1f} passes"
        end = "converged" if refined["converged"] else f"stopped at --refine-epochs {refined['epochs']}"
        console.print(f"refined in {refined['iterations']:,} steps ({passes}; {end}: {100 * refined['changed']:.2f} % of rows "
                      "changed cluster at the last target update)", markup=False)
        before = refined["scores_before"]
        if before is not None:
            console.print(f"before refining, k-means on the codes: adjusted Rand index {before['ari']:.4f}, "
                          f"normalised mutual information {before['nmi']:.4f}, purity {before['purity']:.4f}", markup=False)
    if result.scores is not None:
        scores = result.scores
        console.print(f"against {shown(result.labels_column, 200)}: adjusted Rand index {scores['ari']:.4f}, "
                      f"normalised mutual information {scores['nmi']:.4f}, purity {scores['purity']:.4f}", markup=False)
    if result.saved:
        console.print(f"saved centroids to {shown(result.saved, 400)}", markup=False)
