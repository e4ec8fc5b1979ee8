"""The command line: parse arguments, call one service, render its result.

Every user-facing failure is an ``NncliError``; it is caught here, in one place, and
becomes one ``nncli: error: …`` line on stderr plus a documented exit code.  Heavy modules
(NumPy, Pydantic, rich) are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
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


def error_line(message: str, label: str = "error") -> None:
    """One line on stderr, whatever the message contains."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"nncli: {label}: {text}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn NncliError and Ctrl-C into a one-line message and an exit code."""
    try:
        yield
    except NncliError as exc:
        error_line(str(exc), exc.label)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("nncli: interrupted\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (`nncli predict … | head -1`): it has what it wanted, so stop
        # quietly. stdout now points at /dev/null so the final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


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
    config: Optional[Path] = typer.Argument(None, metavar="CONFIG", help="YAML config file (see the README for every key)."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="Model file to write, relative to the current directory (default: the config's `output`, else runs/<config>.npz)."
    ),
    overrides: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set training.epochs=5 (repeatable)."
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", metavar="FOLDER", help="Put the model and every run file in FOLDER instead of beside the model."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="CHECKPOINT", help="Continue a run from its checkpoint (CONFIG optional; only training.epochs may change)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", metavar="MODEL", help="Start from a trained model's weights (fine-tuning); shapes must match."),
    force: bool = typer.Option(False, "--force", help="Overwrite the model and run files if they exist."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the config against the data, show the network and resolved config, train nothing."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the config with every default filled in, and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (config, history, metrics) and nothing else."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success (errors still go to stderr)."),
    log_every: int = typer.Option(1, "--log-every", min=1, help="Print every N-th epoch (the last is always printed)."),
) -> None:
    """Train a network from a YAML config and save it as an .npz model file.

    Paths given here are relative to the current directory; paths written in the config are
    relative to the config file's folder. Exit codes: 0 ok, 1 training diverged or a file
    could not be written, 2 bad invocation, config or data, 130 interrupted (a checkpoint is
    saved; continue with --resume).
    """
    with user_errors():
        from nncli.commands.session import TrainRequest, open_session

        request = TrainRequest(config, list(overrides), output, run_dir, resume, init_from, force)
        if print_config or dry_run:
            return _preview_run(request, print_config, as_json)
        from nncli.core.model import layer_table
        from nncli.render import (
            TrainingDisplay,
            architecture_table,
            make_console,
            training_summary,
        )

        session = open_session(request)
        run, trainer = session.run, session.trainer
        console = make_console()
        layers = layer_table(run.network)
        talk = not (as_json or quiet)
        with session.stop_on_signals():  # from here on, Ctrl-C means "checkpoint and stop"
            if talk:
                console.print(architecture_table(console, layers, title=f"Network ({run.network.dtype.name}, seed {run.seed})"))
                if session.resumed is not None:
                    console.print(f"Resuming {session.resumed.path} at epoch {trainer.epoch}", markup=False)
            first_epoch = trainer.epoch
            started = time.perf_counter()
            display = TrainingDisplay(console, run.metric_name, run.config.training.epochs, log_every) if talk else None
            with display or contextlib.nullcontext():
                model = session.train(display)
            seconds = time.perf_counter() - started
        files = {name: str(path) for name, path in vars(session.files).items() if path is not None and path.exists()}
        if as_json:
            document = {
                "model": str(session.files.model),
                "files": files,
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
            training_summary(console, files, model.metrics, run.metric_name, seconds, first_epoch)


def _preview_run(request, print_config: bool, as_json: bool) -> None:
    """--print-config (no data read) and --dry-run (everything a run checks, nothing trained)."""
    import yaml

    from nncli.commands.session import init_from_override, open_session
    from nncli.config import load_config
    from nncli.errors import UsageError

    if print_config:
        if request.config is None:
            raise UsageError("--print-config needs a CONFIG file")
        overrides = list(request.overrides) + ([init_from_override(request.init_from)] if request.init_from else [])
        document = load_config(request.config, overrides).model_dump(mode="json")
        print(json.dumps(document, indent=2) if as_json else yaml.safe_dump(document, sort_keys=False, allow_unicode=True), end="" if not as_json else "\n")
        return
    session = open_session(request)  # the same checks as a real run: config, data, files
    _show_untrained(session.run, "Network", as_json, with_config=True)


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (for editor completion and validation of YAML configs)."""
    with user_errors():
        from nncli.config import json_schema

        print(json.dumps(json_schema(), indent=2))


def _split_names(values: List[str]) -> list[str]:
    """`--keep id,name --keep x` -> ['id', 'name', 'x']"""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@app.command()
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `nncli train`."),
    data: str = typer.Argument(..., metavar="CSV", help="Input CSV with the model's feature columns (any order), or - for stdin."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the CSV to this file (atomically) instead of stdout."),
    proba: bool = typer.Option(False, "--proba", help="Add one probability column per class (classification)."),
    keep: List[str] = typer.Option([], "--keep", metavar="COLUMNS", help="Input columns to copy to the output as written, comma-separated (e.g. id,name); repeatable."),
) -> None:
    """Apply a model to CSV rows: a CSV of predictions out (streamed, so any size of input works).

    Output columns: the --keep columns, then `prediction` (or `prediction_<target>` per target),
    then with --proba `proba_<class>` per class. Exit codes: 0 ok, 1 the output could not be
    written, 2 bad invocation, model file or CSV, 130 interrupted.
    """
    with user_errors():
        from nncli.commands.predict import predict_csv
        from nncli.errors import UsageError
        from nncli.files.atomic import atomic_write, check_writable, same_file
        from nncli.files.model import load_model
        from nncli.tabular.source import open_csv

        destination = None if output is None else _output_file(output)
        trained = load_model(model)
        if destination is not None:
            check_writable(destination)
            for source, what in ((Path(data), "input CSV"), (model, "model file")):
                if data != "-" or what == "model file":
                    if same_file(destination, source):
                        raise UsageError(f"--output {output}: is the {what}; write the predictions elsewhere")
        with open_csv(data) as stream:
            if destination is None:
                with _utf8_stdout() as out:
                    predict_csv(trained, stream, out, _split_names(keep), proba)
            else:
                with atomic_write(destination, "w") as f:
                    predict_csv(trained, stream, f, _split_names(keep), proba)


def _output_file(text: str) -> Path:
    """An output file path given on the command line: not empty, not a folder name."""
    from nncli.errors import UsageError

    if not text.strip():
        raise UsageError("--output: the path is empty")
    if text.endswith(("/", os.sep)):
        raise UsageError(f"--output {text}: names a folder; give a file name, e.g. {text}predictions.csv")
    return Path(text).expanduser()


@contextlib.contextmanager
def _utf8_stdout() -> Iterator:
    """stdout as UTF-8 whatever the locale says, as files written with -o are."""
    import io

    sys.stdout.flush()
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        yield stream
        stream.flush()
    finally:
        stream.detach()


@app.command()
def evaluate(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `nncli train`."),
    data: str = typer.Argument(..., metavar="CSV", help="Labelled CSV (features and target columns), or - for stdin."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    fail_under: List[str] = typer.Option(
        [], "--fail-under", metavar="METRIC=VALUE", help="Exit 1 if a metric is below VALUE, e.g. accuracy=0.95 (a fraction, not a percentage); repeatable."
    ),
    fail_over: List[str] = typer.Option(
        [], "--fail-over", metavar="METRIC=VALUE", help="Exit 1 if a lower-is-better metric (loss, mse, mae, or mse_<target> …) is above VALUE; repeatable."
    ),
) -> None:
    """Measure a model on labelled data: loss, accuracy, per-class scores and confusion matrix (or MSE, MAE, R²).

    Exit codes: 0 ok, 1 a --fail-under/--fail-over gate failed, 2 bad invocation, model file or CSV.
    """
    with user_errors():
        from nncli.commands.evaluate import (
            check_gate_metrics,
            evaluate_csv,
            failed_gates,
            parse_gate,
        )
        from nncli.files.model import load_model
        from nncli.tabular.source import open_csv

        gates = [parse_gate(g, True) for g in fail_under] + [parse_gate(g, False) for g in fail_over]
        trained = load_model(model)
        check_gate_metrics(trained, gates)
        with open_csv(data) as stream:
            evaluation = evaluate_csv(trained, stream)
            failures = failed_gates(evaluation, gates)
            if as_json:
                document = {"model": str(model), "data": stream.name, **evaluation.to_json()}
                document["gates"] = [
                    {"metric": g.metric, "bound": g.bound, "direction": "min" if g.higher_is_better else "max",
                     "value": evaluation.metrics[g.metric],
                     "passed": evaluation.metrics[g.metric] is not None and g.passes(evaluation.metrics[g.metric])}
                    for g in gates
                ]
                document["passed"] = not failures
                print(json.dumps(document, indent=2, allow_nan=False))
            else:
                from nncli.render import evaluation_report, make_console

                evaluation_report(make_console(), evaluation, str(model), stream.name)
        if failures:
            from nncli.errors import GateError

            raise GateError(f"quality gate failed: {'; '.join(failures)} ({model} on {stream.name})")


@app.command()
def inspect(
    target: Path = typer.Argument(..., metavar="MODEL|CONFIG", help="A model file, or a YAML config to show the network it would build."),
    weights: bool = typer.Option(False, "--weights", help="Print the weight matrices and bias vectors."),
    layer: Optional[int] = typer.Option(None, "--layer", min=1, help="Only this layer (1 = the first weight matrix)."),
    full: bool = typer.Option(False, "--full", help="With --weights: print big matrices whole instead of their corners."),
    as_json: bool = typer.Option(False, "--json", help="Print everything, arrays included, as one JSON document."),
    export: Optional[str] = typer.Option(None, "--export", metavar="FOLDER", help="Write each array to FOLDER (W1.csv, b1.csv, …)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Format for --export: csv (default) or npy."),
    overrides: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="With a config: override a key, as for train."),
) -> None:
    """Show a model: layers, weight statistics, classes, normalisation, training record, loss curve.

    Exit codes: 0 ok, 1 an export could not be written, 2 bad invocation, model file or config.
    """
    with user_errors():
        from nncli.errors import UsageError

        if fmt is not None and fmt not in ("csv", "npy"):
            raise UsageError(f"--format {fmt}: expected csv or npy")
        if fmt is not None and export is None:
            raise UsageError("--format applies to --export")
        if full and not weights:
            raise UsageError("--full applies to --weights")
        if export is not None and (weights or as_json):
            raise UsageError("--export writes files; it does not combine with --weights or --json")
        if _looks_like_config(target):
            for flag, given in (("--weights", weights), ("--layer", layer is not None), ("--export", export is not None)):
                if given:
                    raise UsageError(f"{flag} needs a model file; {target} is a config (train it first)")
            return _inspect_config(target, overrides, as_json)
        if overrides:
            raise UsageError("--set applies to a config, not to a model file")
        from nncli.commands import inspect as inspection
        from nncli.files.model import read_model
        from nncli.render import make_console, model_summary, weight_matrix

        trained, meta = read_model(target)
        n_layers = len(trained.network.weights)
        if layer is not None and layer > n_layers:
            raise UsageError(f"--layer {layer}: {target} has {n_layers} layer{'s' * (n_layers != 1)}")
        selected = [layer] if layer else list(range(1, n_layers + 1))
        if export is not None:
            folder = _export_folder(export)
            written = inspection.export_arrays(trained, folder, fmt or "csv", selected)
            print(f"Wrote {len(written)} file{'s' * (len(written) != 1)} to {folder}: {', '.join(p.name for p in written)}")
            return
        info = inspection.summary(trained, meta)
        if layer:
            info["layers"] = [info["layers"][layer - 1]]
        if as_json:
            arrays = {name: a.tolist() for name, a in inspection.arrays(trained, selected).items()}
            print(json.dumps({"model": str(target), **info, "arrays": arrays}, indent=2, allow_nan=False))
            return
        console = make_console()
        curve = {
            "train loss": inspection.sparkline([r.get("train_loss") for r in trained.history]),
            "val loss": inspection.sparkline([r.get("val_loss") for r in trained.history]),
        }
        model_summary(console, str(target), info, curve)
        if weights:
            for index in selected:
                rows, columns = inspection.neuron_names(trained, index)
                W = trained.network.weights[index - 1]
                weight_matrix(console, f"W{index}  ({W.shape[0]} × {W.shape[1]})", W, rows, columns, full)
                b = trained.network.biases[index - 1]
                if b is not None:
                    weight_matrix(console, f"b{index}  ({b.shape[0]},)", b, ["b"], columns, full)


def _export_folder(text: str) -> Path:
    from nncli.errors import UsageError
    from nncli.files.atomic import check_writable

    if not text.strip():
        raise UsageError("--export: the folder name is empty")
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--export {text}: is a file; give a folder to write W1.csv, b1.csv, … into")
    check_writable(folder / "W1.csv")
    return folder


def _looks_like_config(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def _inspect_config(path: Path, overrides: List[str], as_json: bool) -> None:
    from nncli.commands.train import prepare_training
    from nncli.config import load_config

    run = prepare_training(load_config(path, overrides))
    _show_untrained(run, f"Network {path} would build", as_json)


def _show_untrained(run, title: str, as_json: bool, with_config: bool = False) -> None:
    """The network a run would train, and the rows it would use (inspect CONFIG, --dry-run)."""
    from nncli.core.model import layer_table

    layers = layer_table(run.network)
    rows = {"train": len(run.data.X_train), "validation": 0 if run.data.validation is None else len(run.data.validation[0])}
    if as_json:
        document = {"config": run.resolved_config(), "architecture": layers, "features": run.features,
                    "targets": run.targets, "classes": run.classes, "rows": rows}
        print(json.dumps(document, indent=2, allow_nan=False))
        return
    from nncli.render import architecture_table, make_console

    console = make_console()
    console.print(architecture_table(console, layers, title=f"{title} (untrained, {run.network.dtype.name}, seed {run.seed})"))
    console.print(f"features: {len(run.features)}  targets: {', '.join(run.targets)}"
                  + (f"  classes: {len(run.classes)}" if run.classes else "")
                  + f"  rows: {rows['train']:,} train, {rows['validation']:,} validation", markup=False)
    if with_config:
        import yaml

        console.print("nothing trained, nothing written; the config as it would run:", markup=False)
        console.print(yaml.safe_dump(run.resolved_config(), sort_keys=False, allow_unicode=True), markup=False, end="")


def main() -> None:
    # SIGTERM (a CI runner cancelling a job) ends the run like Ctrl-C: cleanly, exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        # Command-line mistakes (a missing argument, an unknown option, a bad value) raise the
        # parser's UsageError family, recognised here by its interface so that typer's own
        # and click's versions both work. They get the same one-line treatment as our errors.
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            # Bare `nncli`: the help is the message (typer's rich help has printed itself already).
            if exc.format_message():
                print(exc.format_message())
            sys.exit(2)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        error_line(f"{exc.format_message()}{hint}")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
