"""`nncli plot` of a 10,000-epoch history (issue 14: "stays under a second"), the whole command.

Wall time of fresh processes, as a user runs them: `nncli plot long.history.csv -o curves.png`
(loss, accuracy and a decaying learning rate, so the lower panel is on a log scale), its
terminal chart, and what no plot can avoid: `nncli --version` (Python and nncli's command line)
and importing matplotlib alone, and with the Figure and Agg canvas any file needs. The same
command with one part of the change undone at a time, and with all of them undone (as plot was
before), shows what each part saves: see the comment at BEFORE.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.timing import interleave
from benchmarks.workloads import NNCLI

EPOCHS = 10_000
HEADER = "epoch,train_loss,val_loss,seconds,learning_rate,best,train_accuracy,val_accuracy"
# The command with one of this change's parts undone, for comparison: constrained layout instead of
# the measured-once margins; the cycle collector left running (commands/plot.collector_paused); and
# everything as before (also matplotlib's formula tick labels on the log-scale learning-rate panel
# and the model-file reader imported up front).
RUN_CLI = "from nncli.cli import main; sys.argv = ['nncli', *sys.argv[1:]]; main()"
CONSTRAINED = "import sys; import nncli.plots.draw as d; d.LAID_OUT_ONCE = (); " + RUN_CLI
COLLECTED = "import contextlib, sys; import nncli.commands.plot as p; p.collector_paused = contextlib.nullcontext; " + RUN_CLI
BEFORE = ("import contextlib, sys; import nncli.files.model; import nncli.commands.plot as p; import nncli.plots.draw as d; "
          "from matplotlib import ticker; p.collector_paused = contextlib.nullcontext; d.LAID_OUT_ONCE = (); "
          "d.FuncFormatter = lambda _: ticker.LogFormatterSciNotation(); "
          "d.NullFormatter = lambda: ticker.LogFormatterSciNotation(labelOnlyBase=False); " + RUN_CLI)


def write_history(path: Path, epochs: int = EPOCHS) -> Path:
    """A run of ``epochs`` epochs: falling losses, rising accuracies, the weights kept at 70 %."""
    rows = (f"{e},{1 / e},{1.1 / e},0.01,{0.1 * 0.9995 ** e},{e == int(0.7 * epochs)},{1 - 1 / e},{1 - 1.1 / e}"
            for e in range(1, epochs + 1))
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def plot(rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="nncli-bench-plot-") as scratch:
        return _plot(Path(scratch), rounds)


def _plot(folder: Path, rounds: int) -> dict:
    history = write_history(folder / "long.history.csv")
    commands = {
        "nncli plot -o curves.png": [NNCLI, "plot", history, "-o", folder / "curves.png"],
        "constrained layout": [sys.executable, "-c", CONSTRAINED, "plot", history, "-o", folder / "constrained.png"],
        "collector running": [sys.executable, "-c", COLLECTED, "plot", history, "-o", folder / "collected.png"],
        "before these changes": [sys.executable, "-c", BEFORE, "plot", history, "-o", folder / "before.png"],
        "nncli plot --terminal": [NNCLI, "plot", history, "--terminal"],
        "nncli --version": [NNCLI, "--version"],
        "import matplotlib": [sys.executable, "-c", "import matplotlib"],
        "import Figure + Agg": [sys.executable, "-c", "import matplotlib.figure, matplotlib.backends.backend_agg"],
    }
    # Also the CPU seconds (user + system) of each run: on a shared machine the wall time includes
    # waiting for a core; the CPU time is about what the wall time is when the machine is idle.
    cpu: dict[str, list[float]] = {name: [] for name in commands}

    def run(name: str):
        def once() -> None:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([str(part) for part in commands[name]], capture_output=True, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return once

    times = interleave({name: run(name) for name in commands}, rounds)
    cpu_medians = {name: statistics.median(seconds) for name, seconds in cpu.items()}
    notes = ["CPU time (user + system), median: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in cpu_medians.items()),
             f"load average at the end: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)"]
    return {"title": f"nncli plot of a {EPOCHS:,}-epoch history: whole commands, wall time", "times": times,
            "reference": "nncli plot -o curves.png", "unit": "s", "cpu_seconds": cpu_medians, "notes": notes}
