"""The command line: parse arguments, call one service, render its result.

Every user-facing failure is an ``NncliError``; it is caught here, in one place, and
becomes one ``nncli: error: …`` line on stderr plus a documented exit code.  Heavy modules
(NumPy, Pydantic, rich) are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
from inspect import cleandoc  # (`inspect` names a command below)
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from nncli import __version__
from nncli.commands.extras import install_hint
from nncli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, NncliError, UsageError, name_too_long, one_line


def plain_output() -> bool:
    """No terminal on stdout, or NO_COLOR (no-color.org): plain text, as render.make_console decides."""
    return not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR"))


class _TidyHelp:
    """typer's help, made to read as the rest of nncli's output: rich panels on a terminal,
    plain text (wrapped to the terminal's width) in pipes and logs, and a usage line that
    writes a required argument as `MODEL`, not typer's `{MODEL}`."""

    def format_help(self, ctx, formatter) -> None:
        if not plain_output():
            return super().format_help(ctx, formatter)
        mode, self.rich_markup_mode = self.rich_markup_mode, None  # None: typer formats as click does
        try:
            return super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = mode

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]

    def get_params(self, ctx) -> list:
        """No type after a flag (`--weights <bool>`: it takes no value) or after an argument
        whose name says what it is (`MODEL <path>`); options name their value with a metavar."""
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) or (isinstance(param, TyperArgument) and param.metavar):
                param.display_type_rich = _no_type
        return params


def _no_type(ctx) -> None:
    return None


def _flowing(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line, so that help wraps them at the terminal's
    width (typer's rich help keeps the source's line breaks)."""
    if not text:
        return text
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in cleandoc(text).split("\n\n"))


class Command(_TidyHelp, TyperCommand):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = _flowing(self.help)


class Group(_TidyHelp, TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = _flowing(self.help)


class App(typer.Typer):
    """Every command gets the tidied help, also those added with a plain ``@app.command()``."""

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or Command, **kwargs)


app = App(
    name="nncli",
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a crash must never print users' data
    # Plain help wraps at the terminal's width (click stops at 80 columns unless told).
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 200},
)


def error_line(message: str, label: str = "error") -> None:
    """One line on stderr, whatever the message contains (control characters escaped, length
    capped: errors.one_line)."""
    with contextlib.suppress(OSError):  # stderr itself unwritable: the exit code still tells
        sys.stderr.write(f"nncli: {label}: {one_line(message)}\n")
        sys.stderr.flush()


# Errors of a write that has no file name: stdout (or stderr) itself cannot take the output.
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what is still
    buffered cannot fail a second time (and print a traceback-like 'Exception ignored')."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


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
        _silence_stdout()
        raise typer.Exit(0) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG and exc.filename is not None:
            # A name the system refuses (-o, --run-dir, --export …), wherever it was first used.
            error_line(name_too_long(exc.filename))
            raise typer.Exit(EXIT_USAGE) from None
        raise
    except MemoryError:
        # The budgets (docs/config.md) refuse what cannot fit before allocating; this is for a
        # machine with less memory than they allow.
        error_line("out of memory; use a smaller batch_size or smaller layers (budgets: docs/config.md)")
        raise typer.Exit(EXIT_FAILED) from None


def _version(value: bool) -> None:
    if value:
        print(f"nncli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train, evaluate and ship small fully-connected neural networks from YAML configs and CSV or Parquet data.

    Exit codes: 0 ok, 1 the run failed (e.g. training diverged), 2 bad invocation, config, data or model file, 130 interrupted.
    """


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, metavar="CONFIG", help="YAML config file (every key: docs/config.md)."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Model file to write, relative to the current directory (default: the config's `output`, else runs/<config>.npz)."
    ),
    overrides: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set training.epochs=5 (repeatable)."
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", metavar="FOLDER", help="Put the model and every run file in FOLDER instead of beside the model."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="CHECKPOINT", help="Continue a run from its checkpoint (CONFIG optional; only training.epochs may change)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", metavar="MODEL", help="Start from a trained model's weights (fine-tuning); shapes must match."),
    force: bool = typer.Option(False, "--force", help="Overwrite the model and run files if they exist."),
    plot: Optional[str] = typer.Option(
        None, "--plot", metavar="FILE", help="Draw the run's training curves into FILE (PNG, SVG or PDF by its suffix) when it ends or is interrupted; needs matplotlib (pip install \"matplotlib>=3.8\")."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the config against the data, show the network and resolved config, train nothing."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the config with every default filled in, and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (config, history, metrics) and nothing else."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success (errors still go to stderr)."),
    log_every: int = typer.Option(1, "--log-every", min=1, metavar="N", help="Print every N-th epoch (the last is always printed)."),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="N|auto", help="BLAS threads for large matrix products (default: NNCLI_THREADS, else auto: one for small products, the free cores for large ones). Results are the same whatever N."
    ),
) -> None:
    """Train a network from a YAML config and save it as an .npz model file.

    Paths given here are relative to the current directory; paths written in the config are
    relative to the config file's folder. Exit codes: 0 ok, 1 training diverged or a file
    could not be written, 2 bad invocation, config or data, 130 interrupted (a checkpoint is
    saved; continue with --resume).
    """
    with user_errors():
        _check_overrides(overrides)
        from nncli.commands.session import TrainRequest

        request = TrainRequest(config, list(overrides), output, run_dir, resume, init_from, force, plot)
        if print_config:
            return _print_config(request, as_json)
        from nncli.commands.threads import blas_threads, thread_setting

        if dry_run:
            thread_setting(threads)  # checked as a run checks it (a dry run multiplies no matrices)
            return _dry_run(request, as_json)

        with blas_threads(threads):
            _train(request, as_json, quiet, log_every)


def _train(request, as_json: bool, quiet: bool, log_every: int) -> None:
    from nncli.commands.session import open_session

    session = open_session(request)
    run, trainer = session.run, session.trainer
    for warning in run.warnings:
        error_line(warning, "warning")
    talk = not (as_json or quiet)
    display = console = None
    if talk:  # (rich is imported only to be shown: a --quiet or --json run, in CI or a script, starts sooner)
        from nncli.render import TrainingDisplay, architecture_table, make_console

        console = make_console()
    with session.stop_on_signals():  # from here on, Ctrl-C means "checkpoint and stop"
        if talk:
            console.print(architecture_table(console, session.layers, title=f"Network ({run.network.dtype.name}, seed {run.seed})"))
            if session.resumed is not None:
                console.print(f"Resuming {session.resumed.path} at epoch {trainer.epoch}", markup=False)
            display = TrainingDisplay(console, run.metric_name, run.config.training.epochs, log_every,
                                      trainer.batches, trainer.epoch, trainer.batch)
        with display or contextlib.nullcontext():
            result = session.train(display)
    if as_json:
        print(json.dumps(result.to_json(), indent=2, allow_nan=False))
    elif talk:
        from nncli.render import training_summary

        training_summary(console, result)


def _print_config(request, as_json: bool) -> None:
    """--print-config: no data read."""
    from nncli.commands.session import print_config

    config = print_config(request)
    print(json.dumps(config.to_json(), indent=2) if as_json else config.yaml, end="\n" if as_json else "")


def _dry_run(request, as_json: bool) -> None:
    """--dry-run: everything a run checks, nothing trained."""
    from nncli.commands.session import dry_run

    _show_untrained(dry_run(request), "Network", as_json, with_config=True)


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (for editor completion and validation of YAML configs)."""
    with user_errors():
        from nncli.commands.schema import schema as config_schema

        print(json.dumps(config_schema(), indent=2))


def _split_names(values: List[str]) -> list[str]:
    """`--keep id,name --keep x` -> ['id', 'name', 'x']"""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@app.command()
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `nncli train`."),
    data: str = typer.Argument(..., metavar="DATA", help="Input CSV or Parquet file with the model's feature columns (any order), or - for CSV on stdin."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the predictions to this file (atomically; Parquet when its name ends in .parquet) instead of CSV on stdout."),
    proba: bool = typer.Option(False, "--proba", help="Add one probability column per class (classification)."),
    keep: List[str] = typer.Option([], "--keep", metavar="COLUMNS", help="Input columns to copy to the output as written, comma-separated (e.g. id,name); repeatable."),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="N|auto", help="BLAS threads for large matrix products (default: NNCLI_THREADS, else auto: one for small products, the free cores for large ones). Results are the same whatever N."
    ),
) -> None:
    """Apply a model to CSV or Parquet rows: predictions out (streamed, so any size of input works).

    Output columns: the --keep columns, then `prediction` (or `prediction_<target>` per target),
    then with --proba `proba_<class>` per class. Exit codes: 0 ok, 1 the output could not be
    written, 2 bad invocation, model file or data file, 130 interrupted.
    """
    with user_errors():
        from nncli.commands.predict import predict as predict_rows
        from nncli.commands.threads import stream_threads

        with _utf8_stdout() as stdout, stream_threads(threads, data):
            predict_rows(model, data, output, _split_names(keep), proba, stdout)


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
def embed(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `nncli train` (an autoencoder, or any model with a hidden layer)."),
    data: str = typer.Argument(..., metavar="DATA", help="Input CSV or Parquet file with the model's feature columns (any order), or - for CSV on stdin."),
    layer: Optional[int] = typer.Option(None, "--layer", metavar="K", help="Hidden layer whose activations are written, 1 = the first (default: the narrowest)."),
    keep: List[str] = typer.Option([], "--keep", metavar="COLUMNS", help="Input columns to copy to the output as written, comma-separated (e.g. id,label); repeatable."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the codes to this file (atomically; Parquet when its name ends in .parquet) instead of CSV on stdout."),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="N|auto", help="BLAS threads for large matrix products (default: NNCLI_THREADS, else auto). Results are the same whatever N."
    ),
) -> None:
    """Write each row's code: its activations at a hidden layer, as columns code_1 … code_m (streamed, so any size of input works).

    Output columns: the --keep columns, then code_1 … code_m (m: the layer's width). Exit codes:
    0 ok, 1 the output could not be written, 2 bad invocation (a --layer the model lacks), model file or data file, 130 interrupted.
    """
    with user_errors():
        from nncli.commands.embed import embed as embed_rows
        from nncli.commands.threads import stream_threads

        with _utf8_stdout() as stdout, stream_threads(threads, data):
            embed_rows(model, data, layer, _split_names(keep), output, stdout)


@app.command()
def evaluate(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `nncli train`."),
    data: str = typer.Argument(..., metavar="DATA", help="Labelled CSV or Parquet file (features and target columns), or - for CSV on stdin."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    fail_under: List[str] = typer.Option(
        [], "--fail-under", metavar="METRIC=VALUE", help="Exit 1 if a metric is below VALUE, e.g. accuracy=0.95 (a fraction, not a percentage); repeatable."
    ),
    fail_over: List[str] = typer.Option(
        [], "--fail-over", metavar="METRIC=VALUE", help="Exit 1 if a lower-is-better metric (loss, mse, mae, or mse_<target> …) is above VALUE; repeatable."
    ),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="N|auto", help="BLAS threads for large matrix products (default: NNCLI_THREADS, else auto: one for small products, the free cores for large ones). Results are the same whatever N."
    ),
) -> None:
    """Measure a model on labelled data: loss, accuracy, per-class scores and confusion matrix (or MSE, MAE, R²).

    Exit codes: 0 ok, 1 a --fail-under/--fail-over gate failed, 2 bad invocation, model file or data file.
    """
    with user_errors():
        from nncli.commands.evaluate import evaluate as evaluate_model
        from nncli.commands.threads import stream_threads

        with stream_threads(threads, data):
            result = evaluate_model(model, data, fail_under, fail_over)
        if as_json:
            print(json.dumps(result.to_json(), indent=2, allow_nan=False))
        else:
            from nncli.render import evaluation_report, make_console

            evaluation_report(make_console(), result.evaluation, result.model, result.data)
        if result.failures:
            from nncli.errors import GateError

            raise GateError(result.failure_message)


@app.command()
def inspect(
    target: Path = typer.Argument(..., metavar="MODEL|CONFIG", help="A model file, or a YAML config to show the network it would build."),
    weights: bool = typer.Option(False, "--weights", help="Print the weight matrices and bias vectors."),
    layer: Optional[int] = typer.Option(None, "--layer", min=1, metavar="N", help="Only this layer (1 = the first weight matrix)."),
    full: bool = typer.Option(False, "--full", help="With --weights: print big matrices whole instead of their corners."),
    as_json: bool = typer.Option(False, "--json", help="Print everything, arrays included, as one JSON document."),
    export: Optional[str] = typer.Option(None, "--export", metavar="FOLDER", help="Write each array to FOLDER (W1.csv, b1.csv, …)."),
    fmt: Optional[str] = typer.Option(None, "--format", metavar="csv|npy", help="Format for --export (default: csv)."),
    overrides: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="With a config: override a key, as for train."),
    force: bool = typer.Option(False, "--force", help="With --export: replace existing files (never through a symbolic link)."),
) -> None:
    """Show a model: layers, weight statistics, classes, normalisation, training record, loss curve.

    Exit codes: 0 ok, 1 an export could not be written, 2 bad invocation, model file or config.
    """
    with user_errors():
        from nncli.commands.inspect import Exported, ModelReport
        from nncli.commands.inspect import inspect as inspect_target

        _check_overrides(overrides)
        result = inspect_target(target, weights=weights, layer=layer, full=full, as_json=as_json,
                                export=export, fmt=fmt, overrides=list(overrides), force=force)
        if isinstance(result, Exported):
            names = ", ".join(path.name for path in result.files)
            print(f"Wrote {len(result.files)} file{'s' * (len(result.files) != 1)} to {result.folder}: {names}")
        elif isinstance(result, ModelReport):
            _show_model(result, as_json, full)
        else:
            _show_untrained(result, f"Network {target} would build", as_json)


def _show_model(report, as_json: bool, full: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=2, allow_nan=False))
        return
    from nncli.render import feature_columns, make_console, model_summary, weight_matrix

    console = make_console()
    model_summary(console, report.path, report.info, report.curves)
    feature_columns(console, report.info["encoding"])
    for matrix in report.matrices:
        weight_matrix(console, matrix.title, matrix.values, matrix.row_names, matrix.column_names, full)


def _show_untrained(preview, title: str, as_json: bool, with_config: bool = False) -> None:
    for warning in preview.warnings:
        error_line(warning, "warning")
    if as_json:
        print(json.dumps(preview.to_json(), indent=2, allow_nan=False))
        return
    from nncli.render import make_console, untrained_network

    untrained_network(make_console(), preview, title, with_config)


@app.command()
def init(
    data: Path = typer.Argument(..., metavar="DATA", help="The data: a CSV file with a header row, or a Parquet file."),
    target: str = typer.Option(..., "--target", "-t", metavar="COLUMN", help="The column to predict."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", metavar="CONFIG", help="Where to write the config (default: <data name>.yaml beside the data; given a folder, in it); - prints it."
    ),
    force: bool = typer.Option(False, "--force", help="Replace CONFIG if it exists."),
) -> None:
    """Write a starter config for a CSV or Parquet file, guessed from its first rows, each guess explained.

    Classification or regression from the target's values; numbers are features, text columns
    categorical, IDs, free text and one-value columns dropped; empty cells filled. The config
    trains as written: nncli train CONFIG. Exit codes: 0 ok, 1 the config could not be
    written, 2 bad invocation or data file, or CONFIG exists (--force replaces it).
    """
    with user_errors():
        from nncli.commands.init import init as starter_config

        result = starter_config(data, target, output, force)
        if result.path is None:
            with _utf8_stdout() as stdout:
                stdout.write(result.text)
        else:
            print("\n".join(result.summary()))


@app.command()
def gradcheck(
    target: Path = typer.Argument(..., metavar="CONFIG|MODEL", help="A YAML config (its network as training starts) or a model file (its trained weights, on the data its stored config names)."),
    rows: int = typer.Option(16, "--rows", min=1, metavar="N", help="Check on the first N training rows, as the network sees them (encoded, scaled)."),
    eps: float = typer.Option(1e-6, "--eps", metavar="STEP", help="Step ε of the central differences (L(θ+ε) − L(θ−ε)) / 2ε."),
    tol: float = typer.Option(1e-6, "--tol", metavar="ERROR", help="Largest relative error that passes."),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, metavar="N", help="Check N entries of each weight matrix and bias vector, drawn with the seed (default: every entry; for big layers)."),
    random: bool = typer.Option(False, "--random", help="Random inputs from N(0, 1) instead of the training rows (targets and class weights of random training rows)."),
    overrides: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="With a config: override a key, as for train."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
) -> None:
    """Check backpropagation against central finite differences in float64, array by array.

    The loss is the config's, with its class weights and weight decay; dropout is off. Entries
    whose ±ε steps straddle a kink (ReLU at 0, MAE at 0, Huber at ±δ) are skipped and counted.
    Exit codes: 0 every relative error within --tol, 1 one is not (a CI gate; the layer is
    named), 2 bad invocation, config, data or model file.
    """
    with user_errors():
        _check_overrides(overrides)
        from nncli.commands.gradcheck import gradcheck as check_gradients

        result = check_gradients(target, rows, eps, tol, samples, random, list(overrides))
        if as_json:
            print(json.dumps(result.to_json(), indent=2, allow_nan=False))
        else:
            from nncli.render import gradient_check_report, make_console

            gradient_check_report(make_console(), result)
        if not result.passed:
            from nncli.errors import GateError

            raise GateError(result.failure_message)


@app.command()
def explain(
    target: Path = typer.Argument(..., metavar="CONFIG|MODEL", help="A YAML config (the first step train takes) or a model file (a step from its weights, on the data its stored config names)."),
    rows: Optional[int] = typer.Option(None, "--rows", min=1, metavar="N", help="Take the step on the first N training rows, as one batch (default: 1)."),
    row: List[int] = typer.Option([], "--row", metavar="N", help="Take it on training row N instead (1 = the first, in file order after the validation split); repeatable."),
    layer: Optional[int] = typer.Option(None, "--layer", metavar="K", help="Show only layer K (1 = the first weight matrix)."),
    overrides: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key, as for train (e.g. --set training.optimizer=adam)."),
    as_json: bool = typer.Option(False, "--json", help="Print every number of the step as one JSON document."),
) -> None:
    """Watch one step of gradient descent: inputs, forward, loss, backward and update, in the guide's notation.

    The numbers are the ones train computes (its data, initial weights, loss, optimizer and
    learning rate for epoch 1): the weights after the step equal those of `train` on the same
    rows as its first batch, to the last bit. Big matrices show their corners; --json has
    everything. Exit codes: 0 ok, 1 the loss is not finite, 2 bad invocation, config, data or
    model file.
    """
    with user_errors():
        _check_overrides(overrides)
        from nncli.commands.explain import explain as explain_step

        result = explain_step(target, rows, row, layer, list(overrides))
        if as_json:
            print(json.dumps(result.to_json(), indent=2, allow_nan=False))
        else:
            from nncli.render import explanation, make_console

            explanation(make_console(), result)


@app.command()
def export(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `nncli train`."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="The ONNX file to write (default: MODEL with the suffix .onnx)."),
    force: bool = typer.Option(False, "--force", help="Replace FILE if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (the file, opset, inputs and outputs) and nothing else."),
) -> None:
    """Write a model as a standard ONNX graph (opset 17), to serve it without Python or nncli.

    The graph takes the raw feature values and does what predict does: missing cells filled,
    categories one-hot, the stored scaling, every layer, then `probabilities` and `label` (or
    `prediction`, in the targets' units). Inputs, outputs and serving: docs/export.md. Needs
    the onnx extra: pip install "onnx>=1.15" "onnxruntime>=1.17". Exit codes: 0 ok, 1 the file could not be
    written, 2 bad invocation or model file, FILE exists (--force replaces it), or no onnx.
    """
    with user_errors():
        from nncli.commands.export import export as export_model

        result = export_model(model, output, force)
        print(json.dumps(result.to_json(), indent=2) if as_json else "\n".join(result.summary()))


@app.command()
def plot(
    inputs: Optional[List[str]] = typer.Argument(None, metavar="RUN | MODEL DATA", help="Runs to draw the curves of (model files, history.csv files or run folders; several are overlaid), or a MODEL and labelled DATA (CSV or Parquet, or - for CSV on stdin)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="The picture file: PNG, SVG or PDF by its suffix (default: curves.png, weights-W1.png, confusion.png, mistakes.png or predictions.png here)."),
    terminal: bool = typer.Option(False, "--terminal", help="Draw a Unicode chart in the terminal instead of a file (what plot does without matplotlib)."),
    weights: bool = typer.Option(False, "--weights", help="Draw MODEL's weights: each neuron's incoming weights as an image when the inputs form a square or --shape, else the matrix as a heat map."),
    layer: Optional[int] = typer.Option(None, "--layer", min=1, metavar="N", help="With --weights: this layer (1 = the first weight matrix; default 1). With --codes: hidden layer N, as in embed (default: the narrowest)."),
    shape: Optional[str] = typer.Option(None, "--shape", metavar="HxW", help="With --weights or --errors: the inputs' image shape, e.g. 8x8."),
    confusion: bool = typer.Option(False, "--confusion", help="With MODEL DATA: the confusion matrix (what a classifier's DATA draws by default)."),
    normalize: bool = typer.Option(False, "--normalize", help="With a classifier's MODEL DATA: each true class's row of the confusion matrix as fractions of it."),
    errors: Optional[int] = typer.Option(None, "--errors", min=1, metavar="N", help="With MODEL DATA: the N most confident mistakes, their inputs drawn as images with true and predicted labels."),
    codes: bool = typer.Option(False, "--codes", help="With MODEL DATA: each row's code at a hidden layer (what embed writes) as a point in 2-D, by PCA when the layer is wider."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="COLUMN", help="With --codes: colour each point by its class in COLUMN of DATA."),
) -> None:
    """Draw training curves, a layer's weights, a model's codes, or its confusion matrix, mistakes or predictions on labelled data.

    Pictures need matplotlib (pip install "matplotlib>=3.8"); without it, a Unicode chart is printed
    instead. A regression model's DATA draws predicted against true values with R². Exit codes:
    0 ok, 1 the file could not be written, 2 bad invocation, model, history or data file, or -o
    without matplotlib.
    """
    with user_errors():
        import shutil

        from nncli.commands.plot import PlotRequest
        from nncli.commands.plot import plot as draw

        width = 80 if plain_output() else min(160, shutil.get_terminal_size((80, 24)).columns)
        result = draw(PlotRequest(list(inputs or []), output, terminal, weights, layer, shape, confusion, normalize, errors, width, codes, labels))
        if result.text is None:
            print(result.summary)
            return
        if result.no_matplotlib:
            error_line(f"matplotlib is not installed, so the chart is text; for a picture file: {install_hint('plot')}", "note")
        with _utf8_stdout() as stdout:
            stdout.write(result.text)


@app.command()
def sweep(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config every trial starts from (every key: docs/config.md)."),
    grid: List[str] = typer.Option(
        [], "--grid", metavar="KEY=V1,V2", help="Try each value of a config key, as --set reads it (YAML: 'model.layers=[auto,32,auto],[auto,64,auto]'); several --grid: every combination."
    ),
    sample: List[str] = typer.Option(
        [], "--sample", metavar="KEY=DIST", help="With --random: draw a key's value from uniform:A..B, log-uniform:A..B, int:A..B or choice:V1,V2 (repeatable)."
    ),
    random: Optional[int] = typer.Option(None, "--random", min=1, metavar="N", help="Run N points drawn from the --sample distributions (and the --grid values) instead of every combination."),
    random_seed: int = typer.Option(0, "--random-seed", min=0, metavar="N", help="Seed of --random's draws."),
    seeds: int = typer.Option(1, "--seeds", min=1, metavar="K", help="Train every point with K seeds (the config's seed, the next, …); the ranking shows mean ± std."),
    overrides: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key for every trial, e.g. --set training.epochs=5 (repeatable)."),
    metric: Optional[str] = typer.Option(
        None, "--metric", metavar="NAME", help="Rank by val_accuracy, val_r2, val_loss, train_accuracy, train_r2 or train_loss (default: the validation accuracy or R²); losses rank lowest first."
    ),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="The sweep's folder is sweeps/NAME (default: the config's name)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FOLDER", help="Put the sweep in FOLDER instead of sweeps/NAME."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help="Trials at once, in local processes with one BLAS thread each (default: one per core)."),
    executor: str = typer.Option("local", "--executor", metavar="local|ray", help="Run trials on this machine, or as Ray tasks (pip install \"ray>=2.9\"; the data must be reachable from every worker)."),
    address: Optional[str] = typer.Option(None, "--address", metavar="ADDR", help="With --executor ray: the cluster (default: RAY_ADDRESS, else a Ray instance started here for the sweep)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run the failed trials again (a rerun skips every finished trial otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (ranking, best trial, every trial) and nothing else."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success (errors still go to stderr)."),
) -> None:
    """Train many variants of a config and rank them: a grid, a random search, repeated seeds; in local processes or on Ray.

    Each trial is an ordinary training run with --set overrides, in its own folder
    (sweeps/NAME/trial-007: model, history, metrics, config); a failing trial is recorded with
    its reason and the sweep goes on; results.csv and the ranking come at the end. Rerunning
    the command skips finished trials (the folder records the plan; another plan there is
    refused). Exit codes: 0 at least one trial succeeded, 1 none did, 2 bad invocation or
    config, 130 interrupted (finished trials kept: rerun to go on).
    """
    with user_errors():
        _check_overrides(overrides)
        from nncli.commands.sweep import SweepRequest

        request = SweepRequest(config, list(grid), list(sample), random, random_seed, seeds, list(overrides), metric,
                               name, output, jobs, executor, address, retry_failed)
        _sweep(request, as_json, quiet)


def _sweep(request, as_json: bool, quiet: bool) -> None:
    from nncli.commands.sweep import sweep as run_sweep
    from nncli.errors import InterruptedRun, TrainingError

    display = console = None
    if not (as_json or quiet):  # (rich only to be shown, as for train)
        from nncli.render import SweepDisplay, make_console

        console = make_console()
        display = SweepDisplay(console)
    with display or contextlib.nullcontext():
        result = run_sweep(request, display)
    if as_json:
        print(json.dumps(result.to_json(), indent=2, allow_nan=False))
    elif not quiet:
        from nncli.render import sweep_summary

        sweep_summary(console, result)
    if result.interrupted:
        raise InterruptedRun(f"stopped with {len(result.records)} of {result.planned} trials finished, kept in {result.folder}; "
                             "rerun the same command to go on")
    if not result.succeeded:
        raise TrainingError(result.failure_message)


@app.command()
def cluster(
    first: str = typer.Argument(..., metavar="DATA|MODEL", help="CSV or Parquet rows to cluster (or - for CSV on stdin); or a model file, whose codes for DATA (a layer's activations) are clustered."),
    data: Optional[str] = typer.Argument(None, metavar="DATA", help="With a MODEL first: the rows to cluster."),
    k: str = typer.Option(..., "--k", metavar="K|LOW..HIGH", help="Number of clusters, or a range (e.g. 2..15): each k is tried and the best silhouette wins."),
    layer: Optional[int] = typer.Option(None, "--layer", metavar="K", help="With MODEL: cluster the codes of hidden layer K (1 = the first; default: the narrowest)."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="COLUMN", help="Score the clusters against this column's known labels: adjusted Rand index, normalised mutual information, purity (not a feature)."),
    keep: List[str] = typer.Option([], "--keep", metavar="COLUMNS", help="Input columns to copy to the output as written, comma-separated; repeatable (not features)."),
    ignore: List[str] = typer.Option([], "--ignore", metavar="COLUMNS", help="Columns that are not features (ids, text), comma-separated; repeatable."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the rows with their cluster to this CSV file (atomically) instead of stdout."),
    save: Optional[str] = typer.Option(None, "--save", metavar="FILE", help="Save the centroids and scaling as an .npz file, for `nncli predict FILE new.csv`."),
    force: bool = typer.Option(False, "--force", help="With --save: replace FILE if it exists."),
    n_init: int = typer.Option(10, "--n-init", min=1, metavar="N", help="Restarts from new k-means++ seeds; the lowest inertia wins."),
    max_iter: int = typer.Option(300, "--max-iter", min=1, metavar="N", help="Most Lloyd iterations per restart."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", help="Seed of the k-means++ draws and the silhouette sample (same seed, same clusters)."),
    scale: str = typer.Option("standard", "--scale", metavar="standard|minmax|none", help="Scaling of each column before clustering (none for pixels and other columns in one unit)."),
    sample: int = typer.Option(2000, "--sample", min=2, max=10_000, metavar="N", help="Rows in the silhouette's sample (its cost grows with N²: 10,000 take 800 MB)."),
    refine: bool = typer.Option(False, "--refine", help="With MODEL: deep embedded clustering — retrain the layers up to the code layer so the codes sharpen toward their clusters (saved with --save)."),
    refine_epochs: Optional[int] = typer.Option(None, "--refine-epochs", metavar="N", help="With --refine: at most N passes over the rows (default 100); it stops sooner when fewer than 0.1 % of rows change cluster."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document on stdout (the rows then go only to --output)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No report on stderr."),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="N|auto", help="BLAS threads for large matrix products (default: NNCLI_THREADS, else auto)."
    ),
) -> None:
    """Group rows with k-means: by their scaled numeric columns, or by a model's codes for them.

    Output: the --keep columns and a `cluster` column (0 to k−1) per row, as CSV on stdout or
    in --output; on stderr the cluster sizes, inertia and a sampled silhouette (and with
    --labels, how well the clusters match them). Exit codes: 0 ok, 1 the output could not be
    written, 2 bad invocation, model file or data (k above the rows, constant or non-numeric
    columns), or the --save file exists (--force replaces it), 130 interrupted.
    """
    with user_errors():
        if scale not in ("standard", "minmax", "none"):
            raise UsageError(f"--scale {scale}: expected standard, minmax or none")
        from nncli.commands.cluster import ClusterRequest
        from nncli.commands.cluster import cluster as cluster_rows
        from nncli.commands.threads import blas_threads

        request = ClusterRequest([first] if data is None else [first, data], k, n_init, max_iter, seed, scale, layer, labels, _split_names(keep),
                                 _split_names(ignore), output, save, sample, write_rows=not as_json or output is not None,
                                 refine=refine, refine_epochs=refine_epochs, force=force)
        if refine and not (quiet or as_json):
            from nncli.render import make_console, refine_progress

            request.on_update = refine_progress(make_console(stderr=True))
        with _utf8_stdout() as stdout, blas_threads(threads):
            result = cluster_rows(request, stdout)
        if as_json:
            print(json.dumps(result.to_json(), indent=2, allow_nan=False))
        elif not quiet:
            from nncli.render import cluster_report, make_console

            cluster_report(make_console(stderr=True), result)


def main() -> None:
    # SIGTERM (a CI runner cancelling a job) ends the run like Ctrl-C: cleanly, exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if sys.stderr is None:  # started with 2>&- : errors go nowhere, but nothing may crash on them
        sys.stderr = open(os.devnull, "w")
    if sys.stdout is None:  # started with >&- : results would be lost, so say so and stop
        error_line("standard output is closed; nncli writes its results there (redirect it, e.g. to /dev/null)")
        sys.exit(EXIT_USAGE)
    try:
        code = _run()
        sys.stdout.flush()  # here, not at exit: a full disk must still give one line and exit 1
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except OSError as exc:
        if exc.filename is not None or exc.errno not in _WRITE_ERRORS:
            raise
        # stdout is a full disk (or /dev/full), even for --help: typer and rich print there.
        _silence_stdout()
        error_line(f"cannot write the output to stdout: {exc.strerror or exc}")
        code = EXIT_FAILED
    sys.exit(code)


def _run() -> int:
    """Run the app; returns the exit code."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        # Command-line mistakes (a missing argument, an unknown option, a bad value): typer's
        # usage errors get the same one-line treatment as ours.
        if type(exc).__name__ == "NoArgsIsHelpError":
            # Bare `nncli`: typer's rich help has printed itself already. (typer keeps this
            # class private and recognises it by name itself, in rich_utils.)
            if exc.format_message():
                print(exc.format_message())
            return 2
        context = getattr(exc, "ctx", None)
        spaced = _spaced_override(getattr(context, "params", None) or {})
        if spaced is not None:  # `--set training.epochs 5`: the 5 became an extra argument
            error_line(_key_value_expected(spaced))
            return EXIT_USAGE
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        error_line(f"{exc.format_message()}{hint}")
        return exc.exit_code
    return code if isinstance(code, int) else 0


def _spaced_override(params: dict) -> str | None:
    """A --set value without `=`: KEY=VALUE written as two arguments (`--set training.epochs 5`)."""
    return next((value for value in params.get("overrides") or () if "=" not in value), None)


def _key_value_expected(key: str) -> str:
    return f"--set {key}: write KEY=VALUE as one argument, with no space around '=' (e.g. --set {key}=VALUE)"


def _check_overrides(overrides: List[str]) -> None:
    """Before the config is read: `--set training.epochs 5` made CONFIG `5`, say so first."""
    spaced = _spaced_override({"overrides": overrides})
    if spaced is not None:
        raise UsageError(_key_value_expected(spaced))
