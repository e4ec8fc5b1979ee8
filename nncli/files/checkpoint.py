"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a safe ``.npz`` archive (see :mod:`nncli.files.npz`): the trainer's arrays
(weights, optimizer moments, best weights, the epoch's row order) and JSON metadata (the
resolved config and its hash, hashes of the data files, the trainer's scalars and random
generator states, the history).  ``nncli train --resume CKPT`` needs nothing else.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nncli import __version__
from nncli.errors import ConfigError, ModelFileError
from nncli.files.npz import read_archive, write_archive

FORMAT = "nncli-checkpoint"
FORMAT_VERSION = 1
DTYPES = ("float32", "float64", "int64")
# Keys that may differ between a checkpoint and the run resuming it.
MAY_CHANGE = {("training", "epochs"), ("output",)}
# Config keys added since checkpoints were first written, with the value every run before
# them had: an older checkpoint's config gets them, so that it still resumes.
ADDED_KEYS = {("model", "leaky_relu_slope"): 0.01}


@dataclass
class Checkpoint:
    path: Path
    meta: dict
    arrays: dict[str, np.ndarray]

    @property
    def config(self) -> dict:
        return copy.deepcopy(self.meta["config"])

    @property
    def trainer_state(self) -> dict:
        return self.meta["trainer"]


def config_hash(resolved: dict) -> str:
    """SHA-256 of the resolved config, ignoring the keys a resume may change."""
    trimmed = copy.deepcopy(resolved)
    for path in MAY_CHANGE:
        node = trimmed
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    return hashlib.sha256(json.dumps(trimmed, sort_keys=True).encode()).hexdigest()


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    path: Path, resolved_config: dict, data_hashes: dict[str, str], state: tuple[dict, dict], files: dict
) -> None:
    scalars, arrays = state
    meta = {
        "files": files,  # where the run writes, so that --resume alone continues it there
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nncli_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": resolved_config,
        "config_sha256": config_hash(resolved_config),
        "data_sha256": data_hashes,
        "trainer": scalars,
        "arrays": {name: [list(a.shape), a.dtype.name] for name, a in arrays.items()},
    }
    write_archive(path, meta, arrays)


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    meta, arrays = read_archive(
        path,
        kind="checkpoint",
        error=ModelFileError,
        parse_meta=lambda data: _parse_meta(path, data),
        expected=lambda meta: {name: (tuple(shape), dtype) for name, (shape, dtype) in meta["arrays"].items()},
    )
    return Checkpoint(path, meta, arrays)


def _parse_meta(path: Path, data: dict) -> dict:
    if data.get("format") != FORMAT:
        hint = " (that is a model file: use it with --init-from)" if data.get("format") == "nncli-model" else ""
        raise ModelFileError(f"{path}: not an nncli checkpoint{hint}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: checkpoint format version {version!r} is not supported by nncli {__version__}")
    for key, kind in (("config", dict), ("trainer", dict), ("arrays", dict), ("data_sha256", dict), ("files", dict)):
        if not isinstance(data.get(key), kind):
            raise ModelFileError(f"{path}: checkpoint metadata lacks {key!r}")
    for name, entry in data["arrays"].items():
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], list)
            or not all(isinstance(n, int) and n >= 0 for n in entry[0])
            or entry[1] not in DTYPES
        ):
            raise ModelFileError(f"{path}: checkpoint metadata describes array {name!r} wrongly")
    if data.get("config_sha256") != config_hash(data["config"]):
        raise ModelFileError(f"{path}: the checkpoint's config does not match its recorded hash (edited?)")
    for (section, key), value in ADDED_KEYS.items():
        if isinstance(data["config"].get(section), dict):
            data["config"][section].setdefault(key, value)
    return data


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
    for section, key in (("model", "output_activation"), ("data", "target")):
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

    stored = checkpoint.meta["config"]
    current = _comparable(config.model_dump(mode="json"), stored)
    for key in ("train", "validation"):
        if current["data"][key] is not None:
            current["data"][key] = os.path.abspath(resolve_path(config, f"data.{key}", current["data"][key]))
    if current["model"]["init_from"] is not None:
        current["model"]["init_from"] = os.path.abspath(resolve_path(config, "model.init_from", current["model"]["init_from"]))
    _refuse(checkpoint, differences(stored, current))


def check_resumable(checkpoint: Checkpoint, resolved: dict, data_hashes: dict[str, str], batches: int) -> None:
    """Refuse to resume a checkpoint with a different config, changed data or too few epochs."""
    _refuse(checkpoint, differences(checkpoint.meta["config"], resolved))
    for name, digest in checkpoint.meta["data_sha256"].items():
        if data_hashes.get(name) != digest:
            raise ConfigError(f"{checkpoint.path}: {name} has changed since the checkpoint; resuming would not reproduce the run")
    state = checkpoint.trainer_state
    epoch, batch = state.get("epoch"), state.get("batch")
    if type(epoch) is not int or type(batch) is not int or epoch < 1 or not 0 <= batch <= batches:
        raise ModelFileError(f"{checkpoint.path}: checkpoint state is damaged (epoch {epoch!r}, batch {batch!r})")
    done = epoch - 1 if batch == 0 else epoch  # an epoch begun must be finished
    epochs = resolved["training"]["epochs"]
    if done > epochs:
        raise ConfigError(f"{checkpoint.path}: the checkpoint has already trained {done} epochs; training.epochs is {epochs}")


def restore(checkpoint: Checkpoint, trainer) -> None:
    """Load a checkpoint's state into a trainer built from the same config, after checking
    that the state is whole and fits (an edited checkpoint must fail here, not mid-run)."""
    path, state, arrays = checkpoint.path, checkpoint.trainer_state, checkpoint.arrays

    def damaged(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: checkpoint state is damaged ({what})")

    parameters = trainer.plan.network.parameters()
    for i, param in enumerate(parameters):
        stored = arrays.get(f"param.{i}")
        if stored is None or stored.shape != param.shape or stored.dtype != param.dtype:
            raise ModelFileError(f"{path}: checkpoint weights do not fit the network the config builds")
        if not np.isfinite(stored).all():
            raise damaged(f"weights param.{i} are not finite")
    epoch, batch = state["epoch"], state["batch"]
    n = len(trainer.plan.X)
    if batch > 0:
        order = arrays.get("order")
        if order is None or order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
            raise damaged("the epoch's row order is missing or not a permutation of the training rows")
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch - 1:
        raise damaged(f"{len(history) if isinstance(history, list) else 'no'} history rows for {epoch - 1} finished epochs")
    early = state.get("early_stopping")
    if early is not None and early.get("best_epoch") is not None:
        best = early["best_epoch"]
        if type(best) is not int or not 1 <= best <= len(history) or "best.0" not in arrays:
            raise damaged("early-stopping best epoch")
    if state.get("optimizer", {}).get("name") != trainer.plan.optimizer.name:
        raise damaged("optimizer")
    if type(state.get("stopped_early")) is not bool:
        raise damaged("stopped_early")
    try:
        trainer.load_state(state, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise damaged(f"{type(exc).__name__}: {exc}") from None
