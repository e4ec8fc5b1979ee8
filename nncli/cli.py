"""The command line: parse arguments, call one service, render its result.

Every user-facing failure is an ``NncliError``; it is caught here, in one place, and
becomes one ``nncli: error: …`` line on stderr plus a documented exit code.  Heavy modules
(NumPy, Pydantic, rich) are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from nncli import __version__
from nncli.errors import EXIT_INTERRUPTED, NncliError

app = typer.Typer(
    name="nncli",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a crash must never print users' data
    context_settings={"help_option_names": ["-h", "--help"]},
)


def error_line(message: str) -> None:
    """One line on stderr, whatever the message contains."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"nncli: error: {text}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn NncliError and Ctrl-C into a one-line message and an exit code."""
    try:
        yield
    except NncliError as exc:
        error_line(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("nncli: interrupted\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _version(value: bool) -> None:
    if value:
        print(f"nncli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train, evaluate and ship small fully-connected neural networks from YAML configs and CSV data.

    Exit codes: 0 ok, 1 the run failed (e.g. training diverged), 2 bad invocation, config, data or model file, 130 interrupted.
    """


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file (see the README for every key)."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="Model file to write (default: the config's `output`, else runs/<config>.npz)."
    ),
    overrides: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set training.epochs=5 (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (config, history, metrics) and nothing else."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success (errors still go to stderr)."),
    log_every: int = typer.Option(1, "--log-every", min=1, help="Print every N-th epoch (the last is always printed)."),
) -> None:
    """Train a network from a YAML config and save it as an .npz model file."""
    with user_errors():
        from nncli.config import load_config
        from nncli.model import layer_table
        from nncli.modelfile import save_model
        from nncli.pipeline import output_path, prepare_training
        from nncli.render import TrainingDisplay, architecture_table, make_console, training_summary
        from nncli.training import Reporter

        loaded = load_config(config, overrides)
        model_path = output_path(loaded, output, config)
        run = prepare_training(loaded)
        console = make_console()
        layers = layer_table(run.network)
        talk = not (as_json or quiet)
        if talk:
            console.print(architecture_table(console, layers, title=f"Network ({run.network.dtype.name}, seed {run.seed})"))
        started = time.perf_counter()
        display = TrainingDisplay(console, run.metric_name, loaded.training.epochs, log_every) if talk else None
        with display or contextlib.nullcontext():
            model = run.fit(display or Reporter())
        seconds = time.perf_counter() - started
        model_path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model_path, model)
        if as_json:
            document = {
                "model": str(model_path),
                "config": model.config,
                "architecture": layers,
                "classes": model.classes,
                "features": model.features,
                "targets": model.targets,
                "history": model.history,
                "metrics": model.metrics,
                "seconds": seconds,
            }
            print(json.dumps(document, indent=2, allow_nan=False))
        elif not quiet:
            training_summary(console, str(model_path), model.metrics, run.metric_name, seconds)


def main() -> None:
    # SIGTERM (a CI runner cancelling a job) ends the run like Ctrl-C: cleanly, exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app()
