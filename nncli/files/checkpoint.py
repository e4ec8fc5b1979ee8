"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a safe ``.npz`` archive (see :mod:`nncli.files.npz`): the trainer's arrays
(weights, optimizer moments, best weights, the epoch's row order) and JSON metadata (the
resolved config and its hash, hashes of the data files, the trainer's scalars and random
generator states, the history, and how the run's files sit beside the checkpoint).
``nncli train --resume CKPT`` needs nothing else.

A checkpoint is a file like any other: it may have been edited, or made by a stranger. So
every field of its metadata is checked against a schema before it is used; the config must
validate as a config and match its hash; the arrays are read with the shapes the config's
network and the data as read now dictate (never the shapes the file declares); every float
array must be finite; and a checkpoint cannot say where a run writes: its ``files`` entry
holds names only (covered by ``files_sha256``), and they must agree with the checkpoint's
own name — the run's files go into the folder the checkpoint is in now.

A run started with ``--force`` over another run's files records their hashes (``replaces``):
resuming it replaces those files — the ones the user agreed to overwrite, unchanged since —
without a second ``--force``; any other existing file still needs one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nncli import __version__
from nncli.config import config_from_dict
from nncli.config.source import ConfigSource
from nncli.errors import ConfigError, ModelFileError
from nncli.files.filehash import file_hash
from nncli.files.npz import read_archive, write_archive
from nncli.files.paths import TEMP_NAME_EXTRA
from nncli.files.runfiles import FOLDER_NAMES, RunFiles, settled

FORMAT = "nncli-checkpoint"
# 2: `files` holds the layout of the run's files (names, no folders) and `files_sha256` its
# hash; non-finite numbers of the trainer's state are stored as {"nonfinite": "inf"}.
# Version 1 (absolute paths) is still read: its paths' names give the layout.
FORMAT_VERSION = 2
DTYPES = ("float32", "float64", "int64")
# Keys that may differ between a checkpoint and the run resuming it.
MAY_CHANGE = {("training", "epochs"), ("output",), ("data", "cache")}  # (the cache holds the same numbers)
# Config keys added since checkpoints were first written, with the value every run before
# them had: an older checkpoint's config gets them, so that it still resumes.
ADDED_KEYS = {("model", "leaky_relu_slope"): 0.01, ("data", "cache"): "auto", ("data", "in_memory"): True,
              # issue 12's columns: an older run used every column but the target, numbers only
              # (it could not have read a file with a missing cell or a text feature, so the
              # missing-value tokens change nothing it read)
              ("data", "features"): None, ("data", "drop"): [], ("data", "categorical"): [],
              ("data", "max_categories"): 100, ("data", "unknown_category"): "error", ("data", "missing"): "error",
              ("data", "missing_values"): ["", "NA", "NaN", "null"]}
NONFINITE = "nonfinite"  # {"nonfinite": "inf"|"-inf"|"nan"}: a float JSON cannot hold


@dataclass
class Checkpoint:
    path: Path
    meta: dict

    @property
    def config(self) -> dict:
        return settled(copy.deepcopy(self.meta["config"]))

    @property
    def trainer_state(self) -> dict:
        return self.meta["trainer"]

    def run_files(self) -> RunFiles:
        """Where ``--resume`` alone writes: the run's own files, in the checkpoint's folder.
        The checkpoint must still carry its run's name (``NAME.ckpt.npz`` beside the model
        NAME.npz, ``checkpoint.npz`` in a run folder), so that the names it records decide
        nothing the user did not see."""
        layout = self.meta["files"]
        files = RunFiles.from_layout(self.path, layout)
        if files.checkpoint is None:
            raise ModelFileError(f"{self.path}: its run's model {files.model} is not a file; give --output MODEL or --run-dir FOLDER")
        if files.checkpoint.name != self.path.name:
            expected = "checkpoint.npz (in a run folder)" if layout["layout"] == "folder" else (
                f"{RunFiles.beside(Path(layout['model'])).checkpoint.name} (beside the model {layout['model']})")
            raise ModelFileError(
                f"{self.path}: the checkpoint was renamed (its run's checkpoint is {expected}), so the files to "
                "continue are not known: give --output MODEL or --run-dir FOLDER"
            )
        return files

    def read_arrays(self, expected: dict[str, tuple[tuple, str]]) -> dict[str, np.ndarray]:
        """The arrays, each checked against the shape and dtype the caller expects before it
        is read (so a checkpoint cannot make us allocate more than the network it resumes)."""
        _, arrays = read_archive(
            self.path, kind="checkpoint", error=ModelFileError, parse_meta=lambda data: None, expected=lambda _: expected
        )
        return arrays


def config_hash(resolved: dict) -> str:
    """SHA-256 of the resolved config, ignoring the keys a resume may change."""
    trimmed = copy.deepcopy(resolved)
    for path in MAY_CHANGE:
        node = trimmed
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return hashlib.sha256(json.dumps(trimmed, sort_keys=True).encode()).hexdigest()


def layout_hash(layout: dict) -> str:
    return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()


REPLACEABLE = tuple(kind for kind in FOLDER_NAMES if kind != "checkpoint")  # kinds `replaces` may name


def output_hashes(files: RunFiles) -> dict[str, str]:
    """SHA-256 of the run's outputs that exist now (not its checkpoint: that one is its own),
    by kind: what a run started with --force replaces, recorded so that --resume may too."""
    found = {}
    for kind in REPLACEABLE:
        path = getattr(files, kind)
        if path is not None and path.is_file():
            found[kind] = file_hash(path)
    return found


def replaced_files(checkpoint: "Checkpoint", files: RunFiles) -> list[Path]:
    """The existing outputs the checkpoint's run was started to replace (with --force), still
    as they were then: resuming replaces them without asking again."""
    recorded = checkpoint.meta.get("replaces") or {}
    current = output_hashes(files)
    return [getattr(files, kind) for kind, digest in recorded.items() if current.get(kind) == digest]


def save_checkpoint(
    path: Path, resolved_config: dict, data_hashes: dict[str, str], state: tuple[dict, dict], files: RunFiles,
    replaces: dict[str, str] | None = None,
) -> None:
    scalars, arrays = state
    layout = files.layout()
    meta = {
        "files": layout,  # names only: --resume writes into the folder the checkpoint is in
        "files_sha256": layout_hash(layout),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nncli_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": resolved_config,
        "config_sha256": config_hash(resolved_config),
        "data_sha256": data_hashes,
        "trainer": _encode(scalars),
        "arrays": {name: [list(a.shape), a.dtype.name] for name, a in arrays.items()},
    }
    if replaces:  # optional (absent: the run replaces nothing it did not write)
        meta["replaces"] = dict(replaces)
    write_archive(path, meta, arrays)


def _encode(value: Any) -> Any:
    """The trainer's scalars with NaN and infinities spelt out (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {NONFINITE: "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and value.get(NONFINITE) in ("nan", "inf", "-inf"):
            return float(value[NONFINITE])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def load_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint's metadata, every field checked (the arrays are read by :func:`restore`,
    once the network and the data they must fit are known)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise ModelFileError(f"{path}: checkpoint not found; {_where_checkpoints_come_from(path)}")
    meta, _ = read_archive(path, kind="checkpoint", error=ModelFileError, parse_meta=lambda data: _parse_meta(path, data),
                           expected=lambda meta: {})
    return Checkpoint(path, meta)


def _where_checkpoints_come_from(path: Path) -> str:
    """The hint for a checkpoint that is not there: when nncli writes one, and whether the
    run it would belong to has finished (a finished run's checkpoint is removed)."""
    name = path.name
    model = (path.with_name("model.npz") if name == "checkpoint.npz" else
             path.with_name(name[: -len(".ckpt.npz")] + ".npz") if name.endswith(".ckpt.npz") else None)
    finished = (f" ({model} exists: that run finished, and a finished run keeps its checkpoint only with "
                "training.checkpoint_every)") if model is not None and model.is_file() else ""
    return ("nncli train writes one when a run is interrupted (Ctrl-C or SIGTERM), and every N epochs with "
            f"training.checkpoint_every: N{finished}")


# --- the schema of the metadata ----------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Record(_Strict):
    epoch: int = Field(ge=1)
    train_loss: float
    train_metric: Optional[float]
    val_loss: Optional[float]
    val_metric: Optional[float]
    seconds: float = Field(ge=0)
    learning_rate: float = Field(gt=0, allow_inf_nan=False)
    best: bool


class _Tracker(_Strict):
    best: Optional[float]
    reference: Optional[float] = None  # absent in checkpoints written before nncli told them apart
    wait: int = Field(ge=0)


class _EarlyStopping(_Tracker):
    best_epoch: Optional[int] = Field(ge=1)


class _Plateau(_Tracker):
    current: float = Field(gt=0, allow_inf_nan=False)


class _Optimizer(_Strict):
    name: str
    steps: int = Field(ge=0)
    learning_rate: float = Field(gt=0, allow_inf_nan=False)
    slots: list[str]


class _Accuracy(_Strict):
    correct: int = Field(ge=0)
    count: int = Field(ge=0)


class _R2(_Strict):
    residual: list[float]


class _PCG64State(_Strict):
    state: int = Field(ge=0, lt=2**128)
    inc: int = Field(ge=0, lt=2**128)


class _Generator(_Strict):
    """numpy's PCG64 state (what `np.random.default_rng` makes), as `bit_generator.state` gives it."""

    bit_generator: Literal["PCG64"]
    state: _PCG64State
    has_uint32: int = Field(ge=0, le=1)
    uinteger: int = Field(ge=0, lt=2**32)


class _TrainerState(_Strict):
    epoch: int = Field(ge=1)
    batch: int = Field(ge=0)
    loss_sum: float
    epoch_seconds: float = Field(ge=0)
    running: dict
    history: list[_Record]
    early_stopping: Optional[_EarlyStopping]
    stopped_early: bool
    schedule: dict
    optimizer: _Optimizer
    shuffle_rng: _Generator
    dropout_rng: _Generator


class _Folder(_Strict):
    layout: Literal["folder"]


class _Beside(_Strict):
    layout: Literal["beside"]
    model: str = Field(min_length=1)


def _schema_error(path: Path, where: str, exc: ValidationError) -> ModelFileError:
    first = exc.errors(include_input=False, include_url=False)[0]
    place = ".".join(map(str, (where, *first["loc"])))
    return ModelFileError(f"{path}: checkpoint field {place}: {first['msg'][:1].lower() + first['msg'][1:]} (edited?)")


def _parse_meta(path: Path, data: dict) -> dict:
    if data.get("format") != FORMAT:
        hint = " (that is a model file: use it with --init-from)" if data.get("format") == "nncli-model" else ""
        raise ModelFileError(f"{path}: not an nncli checkpoint{hint}")
    version = data.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{path}: checkpoint format version {version!r} is not supported by nncli {__version__}")
    for key, kind in (("config", dict), ("trainer", dict), ("arrays", dict), ("data_sha256", dict), ("files", dict)):
        if not isinstance(data.get(key), kind):
            raise ModelFileError(f"{path}: checkpoint metadata lacks {key!r}")
    for name, entry in data["arrays"].items():
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], list)
            or not all(type(n) is int and n >= 0 for n in entry[0])
            or entry[1] not in DTYPES
        ):
            raise ModelFileError(f"{path}: checkpoint metadata describes array {name!r} wrongly")
    if data.get("config_sha256") != config_hash(data["config"]):
        raise ModelFileError(f"{path}: the checkpoint's config does not match its recorded hash (edited?)")
    for (section, key), value in ADDED_KEYS.items():
        if isinstance(data["config"].get(section), dict):
            data["config"][section].setdefault(key, copy.deepcopy(value))
    _check_config(path, data["config"])
    for name, digest in data["data_sha256"].items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ModelFileError(f"{path}: checkpoint field data_sha256: the hash of {name[:80]!r} is not a SHA-256 (edited?)")
    if version == 1:
        data["files"] = _layout_of_version_1(path, data["files"])
    elif data.get("files_sha256") != layout_hash(data["files"]):
        raise ModelFileError(f"{path}: the checkpoint's files entry does not match its recorded hash (edited?)")
    data["files"] = _check_layout(path, data["files"])
    _check_replaces(path, data.get("replaces", {}))
    data["trainer"] = _decode(data["trainer"]) if version > 1 else data["trainer"]
    try:
        _TrainerState.model_validate(data["trainer"])
    except ValidationError as exc:
        raise _schema_error(path, "trainer", exc) from None
    return data


def _check_config(path: Path, stored: dict) -> None:
    """The stored config is a valid config, and a resolved one (sizes, seed, target known)."""
    try:
        config = config_from_dict(settled(copy.deepcopy(stored)), ConfigSource(path))
    except ConfigError as exc:
        raise ModelFileError(f"{path}: the checkpoint's config: {str(exc).removeprefix(f'{path}: ')} (edited?)") from None
    unresolved = [key for key, unknown in (("seed", config.seed is None), ("data.target", config.data.target is None),
                                           ("model.output_activation", config.model.output_activation == "auto"),
                                           ("model.layers", "auto" in config.model.layers)) if unknown]
    if unresolved:
        raise ModelFileError(f"{path}: the checkpoint's config leaves {unresolved[0]} unresolved; not written by nncli train (edited?)")


def _check_layout(path: Path, layout: dict) -> dict:
    try:
        checked = (_Folder if layout.get("layout") == "folder" else _Beside).model_validate(layout)
    except ValidationError as exc:
        raise _schema_error(path, "files", exc) from None
    name = getattr(checked, "model", None)
    if name is not None and (
        name in (".", "..") or "/" in name or "\0" in name or len(os.fsencode(name)) > 255 - TEMP_NAME_EXTRA
    ):
        raise ModelFileError(f"{path}: checkpoint field files.model: {name[:80]!r} is not a plain file name (edited?)")
    return checked.model_dump()


def _check_replaces(path: Path, replaces: Any) -> None:
    if not isinstance(replaces, dict):
        raise ModelFileError(f"{path}: checkpoint field replaces: expected a mapping of file kind to SHA-256 (edited?)")
    for kind, digest in replaces.items():
        if kind not in REPLACEABLE:
            raise ModelFileError(
                f"{path}: checkpoint field replaces: {str(kind)[:40]!r} is not one of {', '.join(REPLACEABLE)} (edited?)")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ModelFileError(f"{path}: checkpoint field replaces.{kind}: not a SHA-256 (edited?)")


def _layout_of_version_1(path: Path, files: dict) -> dict:
    """Version 1 recorded absolute paths; only their names are used (the folder is the
    checkpoint's), and they must be the names nncli gives a run's files."""
    names = {}
    for kind in FOLDER_NAMES:
        value = files.get(kind)
        if not isinstance(value, str) or not value:
            raise ModelFileError(f"{path}: checkpoint field files.{kind}: expected a path (edited?)")
        names[kind] = Path(value).name
    if names == FOLDER_NAMES:
        return {"layout": "folder"}
    layout = {"layout": "beside", "model": names["model"]}
    beside = RunFiles.beside(Path(names["model"]))
    if {kind: getattr(beside, kind).name for kind in FOLDER_NAMES} != names:
        raise ModelFileError(f"{path}: checkpoint field files: not the files of one run (edited?)")
    return layout


# --- resuming ------------------------------------------------------------------------------------
def differences(stored: dict, current: dict, prefix: tuple = ()) -> list[tuple[tuple, object, object]]:
    """(key path, stored value, current value) for every setting that differs."""
    found = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, prefix + (key,))
        elif a != b:
            found.append((prefix + (key,), a, b))
    return found


def _comparable(config: dict, stored: dict) -> dict:
    """A config as it will resolve, where that is knowable before reading data: `auto` layer
    sizes and output activation, a drawn seed and the output are taken from the stored run."""
    config = copy.deepcopy(config)
    layers, stored_layers = config["model"]["layers"], stored["model"]["layers"]
    if len(layers) == len(stored_layers):
        config["model"]["layers"] = [s if size == "auto" else size for size, s in zip(layers, stored_layers)]
    for section, key in (("model", "output_activation"), ("data", "target"), ("data", "in_memory")):
        if config[section][key] in ("auto", None):
            config[section][key] = stored[section][key]
    if config["seed"] is None:
        config["seed"] = stored["seed"]
    return config


def _refuse(checkpoint: Checkpoint, changed: list) -> None:
    changed = [d for d in changed if d[0] not in MAY_CHANGE]
    if changed:
        shown = "; ".join(f"{'.'.join(map(str, key))}: {a!r} in the checkpoint, {b!r} now" for key, a, b in changed[:4])
        more = f" (and {len(changed) - 4} more)" if len(changed) > 4 else ""
        raise ConfigError(
            f"{checkpoint.path}: cannot resume with a different config: {shown}{more}; only training.epochs may change"
        )


def check_config_before_loading(checkpoint: Checkpoint, config) -> None:
    """Name the keys that differ from the checkpoint's before any data is read (a changed
    layer size or loss would otherwise surface as a confusing data error)."""
    from nncli.config import resolve_path

    stored = checkpoint.config
    current = settled(_comparable(config.model_dump(mode="json"), stored))
    for key in ("train", "validation"):
        if current["data"][key] is not None:
            current["data"][key] = os.path.abspath(resolve_path(config, f"data.{key}", current["data"][key]))
    if current["model"]["init_from"] is not None:
        current["model"]["init_from"] = os.path.abspath(resolve_path(config, "model.init_from", current["model"]["init_from"]))
    _refuse(checkpoint, differences(stored, current))


def check_data_unchanged(checkpoint: Checkpoint) -> dict[str, str]:
    """The hashes of the checkpoint's data files that are still there, refused if one changed:
    checked before the data is read, so that a changed file is named as such (read first, a
    gained category would surface as a layer size that no longer fits). A file no longer there
    is left for :func:`check_resumable` to name."""
    hashes = {}
    for name, digest in checkpoint.meta["data_sha256"].items():
        path = Path(name)
        if path.is_file():
            hashes[name] = file_hash(path)
            if hashes[name] != digest:
                raise ConfigError(f"{checkpoint.path}: {name} has changed since the checkpoint; resuming would not reproduce the run")
    return hashes


def check_resumable(checkpoint: Checkpoint, resolved: dict, data_hashes: dict[str, str], batches: int) -> None:
    """Refuse to resume a checkpoint with a different config, changed data or too few epochs."""
    _refuse(checkpoint, differences(checkpoint.config, settled(copy.deepcopy(resolved))))
    stored_files = checkpoint.meta["data_sha256"]
    if set(stored_files) != set(data_hashes):
        missing = sorted(set(data_hashes) ^ set(stored_files))[0]
        raise ModelFileError(
            f"{checkpoint.path}: the checkpoint's data files are not the ones this run reads ({missing[:120]!r} "
            f"{'is not among them' if missing in data_hashes else 'is not read'}) (edited?)"
        )
    for name, digest in stored_files.items():
        if data_hashes.get(name) != digest:
            raise ConfigError(f"{checkpoint.path}: {name} has changed since the checkpoint; resuming would not reproduce the run")
    state = checkpoint.trainer_state
    epoch, batch = state["epoch"], state["batch"]
    if not 0 <= batch <= batches:
        raise ModelFileError(f"{checkpoint.path}: checkpoint state is damaged (epoch {epoch!r}, batch {batch!r})")
    done = epoch - 1 if batch == 0 else epoch  # an epoch begun must be finished
    epochs = resolved["training"]["epochs"]
    if done > epochs:
        raise ConfigError(f"{checkpoint.path}: the checkpoint has already trained {done} epochs; training.epochs is {epochs}")


def restore(checkpoint: Checkpoint, trainer) -> None:
    """Load a checkpoint's state into a trainer built from the same config, after checking
    that the state is whole and fits (an edited checkpoint must fail here, not mid-run)."""
    path, state = checkpoint.path, checkpoint.trainer_state
    plan = trainer.plan
    epoch, batch, n = state["epoch"], state["batch"], len(plan.X)
    history = state["history"]
    if len(history) != epoch - 1:
        raise _damaged(path, f"{len(history)} history rows for {epoch - 1} finished epochs")
    if [record["epoch"] for record in history] != list(range(1, epoch)):
        raise _damaged(path, "the history's epochs are not numbered 1, 2, …")
    has_order = batch > 0 or "order" in checkpoint.meta["arrays"]  # drawn when its epoch began
    # Rows the running metric has seen: those of the batches done (none when the epoch's order
    # is drawn but no batch ran); between epochs it is the last epoch's, and is reset anyway.
    seen = min(batch * plan.batch_size, n) if has_order else None
    _check_running(path, state["running"], plan, seen)
    early = state["early_stopping"]
    if (early is None) != (trainer.early_stopper is None):
        raise _damaged(path, "early-stopping state " + ("missing" if early is None else "for a run without early stopping"))
    best_epoch = None if early is None else early["best_epoch"]
    if best_epoch is not None and best_epoch > len(history):
        raise _damaged(path, f"early-stopping best epoch {best_epoch} of {len(history)}")
    _check_schedule(path, state["schedule"], plan)
    optimizer = state["optimizer"]
    if optimizer["name"] != plan.optimizer.name:
        raise _damaged(path, "optimizer")
    slots = _slot_names(plan.optimizer, plan.network.parameters())
    if optimizer["slots"] not in ([], slots) or (optimizer["slots"] == [] and slots and optimizer["steps"] > 0):
        raise _damaged(path, f"optimizer slots {optimizer['slots'][:4]}; {plan.optimizer.name} keeps {slots}")

    arrays = checkpoint.read_arrays(_expected_arrays(trainer, optimizer["slots"], best_epoch is not None, has_order))
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise _damaged(path, f"{'weights' if name.startswith('param.') else 'array'} {name} holds NaN or infinite values")
    order = arrays.get("order")
    if order is not None and not np.array_equal(np.sort(order), np.arange(n)):
        raise _damaged(path, "the epoch's row order is not a permutation of the training rows")
    try:
        trainer.load_state(state, arrays)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None


def _damaged(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: checkpoint state is damaged ({what})")


def _expected_arrays(trainer, slots: list[str], best: bool, order: bool) -> dict[str, tuple[tuple, str]]:
    """Every array the state needs, with the shape and dtype the network and the data dictate."""
    expected = {}
    for i, param in enumerate(trainer.plan.network.parameters()):
        shape = (tuple(param.shape), param.dtype.name)
        expected[f"param.{i}"] = shape
        for slot in slots:
            expected[f"optimizer.{slot}.{i}"] = shape
        if best:
            expected[f"best.{i}"] = shape
    if order:
        expected["order"] = ((len(trainer.plan.X),), "int64")
    return expected


def _slot_names(optimizer, parameters) -> list[str]:
    """The names of the state arrays this optimizer keeps once it has taken a step."""
    probe = copy.copy(optimizer)
    probe.slots = {}
    probe._create_slots([np.empty((0,) * p.ndim, p.dtype) for p in parameters])
    return sorted(probe.slots)


def _check_running(path: Path, running: dict, plan, seen: int | None) -> None:
    try:
        if plan.metric == "accuracy":
            counts = _Accuracy.model_validate(running)
            if (seen is not None and counts.count != seen) or counts.correct > counts.count:
                raise _damaged(path, f"running accuracy counts {counts.correct}/{counts.count} after {seen} rows")
        else:
            residual = _R2.model_validate(running).residual
            if len(residual) != plan.Y.shape[1] or not all(v >= 0 for v in residual):
                raise _damaged(path, f"running R² state: {len(residual)} values for {plan.Y.shape[1]} targets, or negative")
    except ValidationError as exc:
        raise _schema_error(path, "trainer.running", exc) from None


def _check_schedule(path: Path, schedule: dict, plan) -> None:
    if plan.schedule_monitor is None:
        if schedule:
            raise _damaged(path, "schedule state for a schedule that keeps none")
        return
    try:
        _Plateau.model_validate(schedule)
    except ValidationError as exc:
        raise _schema_error(path, "trainer.schedule", exc) from None
