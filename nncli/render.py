"""Everything the user sees on a terminal: consoles, tables, live training progress.

A person at a terminal gets colour, box tables and a live progress bar.  When stdout is
not a terminal, or ``NO_COLOR`` is set, the same information comes as plain aligned text
with no escape codes and no redrawing, so logs and pipes stay clean.
"""

from __future__ import annotations

import os
import sys
import time

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nncli.training import EpochRecord, Reporter


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    plain = not stream.isatty() or "NO_COLOR" in os.environ
    if plain:
        # No colour, no cursor movement, no wrapping at an imaginary 80 columns.
        return Console(file=stream, color_system=None, force_terminal=False, highlight=False, width=200, soft_wrap=True)
    return Console(file=stream, highlight=False)


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
            row["activation"],
            f"{row['parameters']:,}",
        )
    table.add_section()
    table.add_row("total", "", "", "", f"{sum(r['parameters'] for r in layers):,}")
    return table


def metric_text(metric_name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if metric_name == "accuracy" else number(value)


def metric_label(metric_name: str) -> str:
    return "acc" if metric_name == "accuracy" else "R²"


class TrainingDisplay(Reporter):
    """Prints one table row per epoch as it finishes, with a live batch bar on terminals."""

    WIDTHS = (6, 11, 10, 11, 10, 8)

    def __init__(self, console: Console, metric_name: str, epochs: int, log_every: int = 1):
        self.console = console
        self.metric_name = metric_name
        self.epochs = epochs
        self.log_every = log_every
        self.live = not is_plain(console)
        self.progress: Progress | None = None
        self._task = None
        self._last_refresh = 0.0

    def __enter__(self) -> "TrainingDisplay":
        label = metric_label(self.metric_name)
        self.console.print(
            self._row(("epoch", "train loss", f"train {label}", "val loss", f"val {label}", "seconds"), header=True)
        )
        if self.live:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("batches"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def on_epoch_start(self, epoch: int, batches: int) -> None:
        if self.progress is None:
            return
        if self._task is None:
            self._task = self.progress.add_task("train", total=batches, epoch=epoch, epochs=self.epochs)
        self.progress.reset(self._task, total=batches, epoch=epoch, epochs=self.epochs)

    def on_batch(self, epoch: int, batch: int) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_refresh > 0.1:  # a redraw per batch would cost more than the batch
            self._last_refresh = now
            self.progress.update(self._task, completed=batch)

    def on_epoch_end(self, record: EpochRecord) -> None:
        if record.epoch % self.log_every and record.epoch != self.epochs:
            return
        cells = (
            str(record.epoch),
            number(record.train_loss),
            metric_text(self.metric_name, record.train_metric),
            number(record.val_loss),
            metric_text(self.metric_name, record.val_metric),
            f"{record.seconds:.3f}",
        )
        self.console.print(self._row(cells))

    def _row(self, cells: tuple[str, ...], header: bool = False) -> str:
        text = "  ".join(cell.rjust(width) for cell, width in zip(cells, self.WIDTHS))
        if header and self.live:
            return f"[bold]{text}[/bold]"
        return text


def training_summary(console: Console, path: str, metrics: dict, metric_name: str, seconds: float) -> None:
    label = metric_label(metric_name)
    parts = [
        f"train loss {number(metrics['train_loss'])}",
        f"train {label} {metric_text(metric_name, metrics[f'train_{metric_name}'])}",
    ]
    if metrics.get("val_loss") is not None:
        parts.append(f"val loss {number(metrics['val_loss'])}")
        parts.append(f"val {label} {metric_text(metric_name, metrics[f'val_{metric_name}'])}")
    epochs = metrics["epochs"]
    console.print(f"Trained {epochs} epoch{'s' if epochs != 1 else ''} in {seconds:.1f} s: " + ", ".join(parts))
    console.print(f"Model saved to {path}", markup=False)
