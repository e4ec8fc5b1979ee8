"""The `plot` service: pictures of training runs, of a layer's weights, and of a model on
labelled data — drawn into a PNG, SVG or PDF file by matplotlib (the optional `plot` extra), or
as a Unicode chart for the terminal when matplotlib is missing or --terminal asks for one.

What is drawn is decided here, as a plain description (nncli/plots/pictures.py); matplotlib is
imported only to draw a file (nncli/plots/draw.py), never when this module is imported, so
`train` may import it without slowing down.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.commands.extras import install_hint
from nncli.errors import UsageError
from nncli.files.atomic import atomic_write
from nncli.files.history import read_history
from nncli.files.paths import check_writable
from nncli.plots.pictures import Codes, Confusion, Curves, History, Mistakes, Scatter, WeightMatrix, WeightTiles

INSTALL = install_hint("plot")
FORMATS = (".png", ".svg", ".pdf")  # by the suffix of -o (draw.FORMATS maps them to matplotlib's names)
MAX_MISTAKES = 100  # --errors N: more images than this are too small to read on one page
MAX_TILE_VALUES = 1 << 24  # --weights as tiles: 16 M pixels is already a poster
SMALLEST_SQUARE = 3  # inputs that form a square of at least 3 × 3 are drawn as images (4 inputs are not a picture)
CURVES_FILE = "curves.png"  # a run folder's curves (train)
DESCRIPTIONS = {Curves: "training curves", WeightTiles: "weights as images", WeightMatrix: "weight matrix",
                Confusion: "confusion matrix", Mistakes: "most confident mistakes", Scatter: "predicted against true values",
                Codes: "codes in 2-D"}


@dataclass
class PlotRequest:
    inputs: list[str]
    output: str | None = None
    terminal: bool = False
    weights: bool = False
    layer: int | None = None
    shape: str | None = None
    confusion: bool = False
    normalize: bool = False
    errors: int | None = None
    width: int = 80  # of the terminal chart
    codes: bool = False  # MODEL DATA: each row's code at a hidden layer (--layer, default embed's) in 2-D
    labels: str | None = None  # with codes: the column whose classes colour the points


@dataclass
class PlotResult:
    picture: object  # a description from nncli/plots/pictures.py
    written: Path | None  # the picture file, or None: ``text`` is the chart for the terminal
    text: str | None
    no_matplotlib: bool = False  # the chart is text because matplotlib is not installed

    @property
    def summary(self) -> str:
        """`Wrote curves.png (training curves)`, for a picture file."""
        return f"Wrote {self.written} ({DESCRIPTIONS[type(self.picture)]})"


def plot(request: PlotRequest) -> PlotResult:
    """`nncli plot`: check the request and -o before anything is read, then read and draw."""
    data_mode = _check_flags(request)
    destination = _destination(request.output)
    if data_mode:
        picture = _on_data(request)
    elif request.weights:
        picture = weights_picture(Path(request.inputs[0]), request.layer or 1, request.shape)
    else:
        picture = curves_picture(request.inputs)
    if destination is None and not request.terminal and matplotlib_available():
        destination = Path(_default_name(picture))  # no -o: a file named for what it shows
    if destination is None:
        from nncli.plots.text import text

        return PlotResult(picture, None, text(picture, request.width), no_matplotlib=not request.terminal)
    write_picture(picture, destination)
    return PlotResult(picture, destination, None)


def _check_flags(request: PlotRequest) -> bool:
    """Refuse flags that do not fit together; True when the inputs are a MODEL and its DATA."""
    inputs = request.inputs
    if not inputs:
        raise UsageError("give a run to plot (a model file, history.csv or run folder), or MODEL DATA")
    if request.terminal and request.output is not None:
        raise UsageError("--terminal prints the chart; it does not combine with -o (a file)")
    if request.confusion and request.errors is not None:
        raise UsageError("give one of --confusion and --errors (one picture per file)")
    if request.errors is not None and request.errors > MAX_MISTAKES:
        raise UsageError(f"--errors {request.errors}: at most {MAX_MISTAKES} mistakes fit one picture")
    if request.layer is not None and not (request.weights or request.codes):
        raise UsageError("--layer applies to --weights and --codes")
    if request.labels is not None and not request.codes:
        raise UsageError("--labels colours the points of --codes; give --codes too")
    if request.codes:
        _check_codes_flags(request)
    if request.shape is not None and not (request.weights or request.errors is not None):
        raise UsageError("--shape applies to --weights and --errors")
    if len(inputs) == 2 and not is_run(inputs[0]) and Path(inputs[1]).suffix.lower() == ".npz":
        raise UsageError(f"{inputs[0]} {inputs[1]}: the arguments are MODEL then DATA (the model file first)")
    data_mode = request.codes or request.confusion or request.errors is not None or (len(inputs) == 2 and not is_run(inputs[1]))
    if request.normalize and (not data_mode or request.errors is not None):
        raise UsageError("--normalize applies to the confusion matrix (MODEL DATA, or --confusion)")
    if request.weights:
        if data_mode:
            raise UsageError("--weights draws a model's weights; it does not combine with DATA, --confusion or --errors")
        if len(inputs) != 1:
            raise UsageError(f"--weights draws one model; got {len(inputs)} inputs")
    if data_mode and len(inputs) != 2:
        if request.codes:
            raise UsageError("--codes needs MODEL DATA: a model file and the rows (CSV or Parquet, or - for CSV on stdin) whose codes to draw")
        flag = "--confusion" if request.confusion else "--errors" if request.errors is not None else "DATA"
        raise UsageError(f"{flag} needs MODEL DATA: a model file and a labelled CSV or Parquet file (or - for CSV on stdin)")
    return data_mode


def _check_codes_flags(request: PlotRequest) -> None:
    others = [flag for flag, given in (("--weights", request.weights), ("--confusion", request.confusion), ("--normalize", request.normalize),
                                       ("--errors", request.errors is not None), ("--shape", request.shape is not None)) if given]
    if others:
        raise UsageError(f"--codes draws the rows' codes; it does not combine with {others[0]} (one picture per file)")
    if len(request.inputs) == 2 and is_run(request.inputs[1]) and not Path(request.inputs[1]).is_dir():
        raise UsageError(f"--codes {request.inputs[1]}: the arguments are MODEL then DATA, the rows whose codes to draw (CSV or Parquet)")


def is_run(text: str) -> bool:
    """A run to draw curves of: a folder, a model file, or a history.csv (any *history.csv)."""
    path = Path(text)
    return path.is_dir() or path.suffix.lower() == ".npz" or path.name.endswith("history.csv")


# --- where the picture goes ---------------------------------------------------------------------
def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401  (only whether it is there; drawing imports the rest)
    except ImportError:
        return False
    return True


def _destination(output: str | None, option: str = "-o") -> Path | None:
    """-o FILE (``option``: train's --plot), checked before anything is read: its suffix,
    matplotlib, a writable place."""
    if output is None:
        return None
    path = Path(output).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"{option} {output}: the file name must end in .png, .svg or .pdf (the format is taken from it)")
    require_matplotlib(f"{option} {output}")
    check_writable(path)
    return path


def require_matplotlib(what: str) -> None:
    if not matplotlib_available():
        raise UsageError(f"{what}: drawing a picture file needs matplotlib; install it with: {INSTALL}")


def _default_name(picture) -> str:
    """Without -o: a file in the current folder named for what it shows (replaced if there)."""
    if isinstance(picture, (WeightTiles, WeightMatrix)):
        return f"weights-W{picture.layer}.png"
    return {Curves: CURVES_FILE, Confusion: "confusion.png", Mistakes: "mistakes.png", Scatter: "predictions.png",
            Codes: "codes.png"}[type(picture)]


def write_picture(picture, path: Path) -> None:
    """Draw ``picture`` into ``path`` (PNG, SVG or PDF by its suffix), atomically."""
    with collector_paused():
        try:
            from nncli.plots import draw
        except ImportError:
            raise UsageError(f"{path}: drawing a picture file needs matplotlib; install it with: {INSTALL}") from None
        with atomic_write(path, "wb") as f:
            draw.save(picture, f, draw.FORMATS[path.suffix.lower()])


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while matplotlib is imported and draws, and skipped at exit.

    Both make hundreds of thousands of objects that live until the picture is written (or, the
    module's, until the process ends), which the collector would walk again and again as their
    number grows, and once more when the interpreter exits: 0.2 s of CPU of a plot that should
    take less than a second. Whatever cycles the drawing leaves are collected after it; at exit
    everything is frozen (gc.freeze), so the last walk finds nothing to do. That happens only at
    the process's end: a process that goes on (a test session, a training run) is unaffected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
    atexit.unregister(gc.freeze)  # (once, however many pictures are drawn)
    atexit.register(gc.freeze)


# --- training runs ------------------------------------------------------------------------------------
def curves_picture(inputs: list[str]) -> Curves:
    runs = [_history(Path(text)) for text in inputs]
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):  # two folders both called run1: name them by path instead
        for run, text in zip(runs, inputs):
            run.label = text
    return Curves(runs)


def _history(path: Path) -> History:
    if not path.exists():
        raise UsageError(f"{path}: not found; a run to plot is a model file, a history.csv or a run folder")
    if path.is_dir():
        history, model = path / "history.csv", path / "model.npz"
        if history.is_file():
            records = read_history(history)
        elif model.is_file():
            records = _stored_history(model)
        else:
            raise UsageError(f"{path}: a folder with neither history.csv nor model.npz; give a run folder (train --run-dir), "
                             "a model file or a history.csv")
        label = path.resolve().name
    elif path.suffix.lower() == ".npz":
        records = _stored_history(path)
        label = run_name(path)
    else:
        records = read_history(path)
        label = path.resolve().parent.name if path.name == "history.csv" else path.name.removesuffix(".csv").removesuffix(".history")
    if not records:
        raise UsageError(f"{path}: no epochs recorded; nothing to plot")
    return History.from_records(label, records)


def _stored_history(model: Path) -> list[dict]:
    # Imported here: a history.csv alone is drawn without the model file's reader (pydantic and
    # the config schema), a tenth of a second of a plot that should take less than one.
    from nncli.files.model import load_model

    return load_model(model).history


def run_name(model: Path) -> str:
    """A run's name in a legend: its folder's for a run folder's model.npz, else the model file's."""
    return Path(model).resolve().parent.name if Path(model).name == "model.npz" else Path(model).name.removesuffix(".npz")


# --- train --plot (called by the training session) -------------------------------------------------------
def check_plot_path(text: str) -> Path:
    """`train --plot PATH`, checked before training: a .png/.svg/.pdf name, matplotlib, a writable place."""
    return _destination(text, "--plot")


def training_curves(history: list[dict], model: Path, plot: Path | None = None, run_folder: bool = False) -> list[Path]:
    """The curves of a run that ended or was interrupted (``history``: its records, as the model
    file holds them): into ``plot`` (train --plot), and into the run folder's curves.png when the
    run has a folder and matplotlib is installed. Returns the files written."""
    if not history:
        return []
    written = []
    if plot is not None:
        write_curves(history, plot, run_name(model))
        written.append(plot)
    if run_folder and matplotlib_available():
        write_curves(history, Path(model).parent / CURVES_FILE, run_name(model))
        written.append(Path(model).parent / CURVES_FILE)
    return written


def write_curves(history: list[dict], path: Path, label: str) -> None:
    write_picture(Curves([History.from_records(label, history)]), path)


# --- a model's weights -------------------------------------------------------------------------------
def weights_picture(path: Path, layer: int, shape_text: str | None) -> WeightTiles | WeightMatrix:
    from nncli.commands.inspect import neuron_names
    from nncli.files.model import load_model

    model = load_model(path)
    layers = len(model.network.weights)
    if layer > layers:
        raise UsageError(f"--layer {layer}: {path} has {layers} layer{'s' * (layers != 1)}")
    W = model.network.weights[layer - 1]
    fan_in = W.shape[0]
    shape = parse_shape(shape_text, fan_in, f"layer {layer} has {fan_in:,} inputs") if shape_text else None
    if shape is None and layer == 1 and not model.plan.categorical:
        shape = _square(fan_in)
    if shape is None:
        rows, columns = neuron_names(model, layer)
        return WeightMatrix(layer, W, rows, columns, is_output=layer == layers)
    if W.size > MAX_TILE_VALUES:
        raise UsageError(f"--weights: layer {layer} has {W.size:,} weights; tiles are drawn for at most {MAX_TILE_VALUES:,} "
                         "(leave out --shape for a heat map)")
    return WeightTiles(layer, W.astype(np.float64), shape)


def parse_shape(text: str, pixels: int, what: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,6})\s*[x×X]\s*(\d{1,6})\s*", text)
    if not match:
        raise UsageError(f"--shape {text}: expected HEIGHTxWIDTH, e.g. --shape 8x8")
    h, w = int(match.group(1)), int(match.group(2))
    if h * w != pixels:
        raise UsageError(f"--shape {text}: {h}×{w} is {h * w:,} pixels, but {what}")
    return h, w


def _square(n: int) -> tuple[int, int] | None:
    side = math.isqrt(n)
    return (side, side) if side * side == n and side >= SMALLEST_SQUARE else None


# --- a model on labelled data ---------------------------------------------------------------------------
def _on_data(request: PlotRequest):
    from nncli.commands import plot_data
    from nncli.files.model import MODEL_THEN_DATA, load_model
    from nncli.tabular.columns import chunk_bytes_for
    from nncli.tabular.tables import open_table

    model_path, data = Path(request.inputs[0]), request.inputs[1]
    if Path(data).suffix.lower() in (".yaml", ".yml"):
        raise UsageError(f"{data}: is a config; the arguments are MODEL then DATA, a labelled CSV or Parquet file")
    if request.codes and model_path.suffix.lower() == ".npz":
        from nncli.files.clusters import is_clusters_file

        if is_clusters_file(model_path):
            return _cluster_codes(model_path, data, request)
    model = load_model(model_path, MODEL_THEN_DATA)  # (a data file given first is named as such)
    if request.codes:
        return _codes(model, model_path, data, request)
    if not model.is_classification and (request.confusion or request.normalize or request.errors is not None):
        flag = "--confusion" if request.confusion else "--normalize" if request.normalize else "--errors"
        raise UsageError(f"{flag} is for classification; {model_path} predicts {', '.join(map(repr, model.targets))} "
                         "(without the flag, the plot shows predicted against true values)")
    shape = _image_shape(model, request.shape) if request.errors is not None else None
    with open_table(data, chunk_bytes_for(model)) as stream:
        if not model.is_classification:
            return plot_data.scatter(model, stream)
        if request.errors is not None:
            return plot_data.mistakes(model, stream, request.errors, shape)
        return plot_data.confusion(model, stream, request.normalize)


def _codes(model, model_path: Path, data: str, request: PlotRequest) -> Codes:
    from nncli.commands import plot_data
    from nncli.tabular.embedding import chunk_bytes_for_codes, embedding_layer
    from nncli.tabular.tables import open_table

    layer = embedding_layer(model, request.layer)  # (a layer the model lacks: one line naming those it has)
    with open_table(data, chunk_bytes_for_codes(model, layer)) as stream:
        return plot_data.codes(model, stream, layer, request.labels, run_name(model_path))


def _cluster_codes(clusters_path: Path, data: str, request: PlotRequest) -> Codes:
    """`plot CLUSTERS DATA --codes`: the codes the clusters were made of, at their layer and
    through their refined encoder when `cluster --refine` saved one (what `predict` assigns
    with); coloured by --labels, else by each row's cluster."""
    from nncli.commands import plot_data
    from nncli.commands.assign import nearest_clusters, saved_model
    from nncli.files.clusters import load_clusters
    from nncli.tabular.embedding import chunk_bytes_for_codes
    from nncli.tabular.tables import open_table

    clusters = load_clusters(clusters_path)
    if clusters.model is None:
        raise UsageError(f"--codes {clusters_path}: a clusters file (nncli cluster --save) has centroids, no layers: these "
                         "cluster the data's own columns, not a model's codes; draw a model's codes with "
                         f"`nncli plot MODEL DATA --codes`, or get each row's cluster with `nncli predict {clusters_path} DATA`")
    layer = clusters.model.layer
    if request.layer is not None and request.layer != layer:
        raise UsageError(f"--layer {request.layer}: {clusters_path} holds clusters of the codes at layer {layer}; "
                         "leave --layer out (or give the model file to draw another layer)")
    model = saved_model(clusters_path, clusters)  # (the refined encoder in place when there is one)
    name = run_name(Path(clusters.model.path))
    if clusters.encoder is not None:
        name += f" refined ({clusters_path.name})"
    with open_table(data, chunk_bytes_for_codes(model, layer)) as stream:
        def cluster_of(codes):
            return nearest_clusters(clusters_path, clusters, codes, stream.name)

        return plot_data.codes(model, stream, layer, request.labels, name,
                               clusters=None if request.labels is not None else cluster_of)


def _image_shape(model, text: str | None) -> tuple[int, int]:
    """The shape of a row's features as an image (--errors): every feature a number, in a square or --shape."""
    n = len(model.features)
    if model.plan.categorical:
        raise UsageError(f"--errors draws each row's features as an image; {model.source} has categorical features "
                         f"({', '.join(model.plan.categorical[:3])}{', …' * (len(model.plan.categorical) > 3)}), which are no pixels")
    if text is not None:
        return parse_shape(text, n, f"{model.source} has {n:,} features")
    shape = _square(n)
    if shape is None:
        raise UsageError(f"--errors draws each row's features as an image; the {n:,} features are no square: "
                         "give its shape, e.g. --shape 8x8 (HEIGHTxWIDTH = the number of features)")
    return shape
