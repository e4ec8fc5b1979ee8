"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a safe ``.npz`` archive (see :mod:`nncli.npzfile`): the trainer's arrays
(weights, optimizer moments, best weights, the epoch's row order) and JSON metadata (the
resolved config and its hash, hashes of the data files, the trainer's scalars and random
generator states, the history).  ``nncli train --resume CKPT`` needs nothing else.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nncli import __version__
from nncli.errors import ConfigError, ModelFileError
from nncli.npzfile import read_archive, write_archive

FORMAT = "nncli-checkpoint"
FORMAT_VERSION = 1
DTYPES = ("float32", "float64", "int64")
# Keys that may differ between a checkpoint and the run resuming it.
MAY_CHANGE = {("training", "epochs"), ("output",)}


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


def save_checkpoint(path: Path, resolved_config: dict, data_hashes: dict[str, str], state: tuple[dict, dict]) -> None:
    scalars, arrays = state
    meta = {
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
    for key, kind in (("config", dict), ("trainer", dict), ("arrays", dict), ("data_sha256", dict)):
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


def check_resumable(checkpoint: Checkpoint, resolved: dict, data_hashes: dict[str, str], next_epoch: int) -> None:
    """Refuse to resume a checkpoint with a different config or changed data."""
    changed = [d for d in differences(checkpoint.meta["config"], resolved) if d[0] not in MAY_CHANGE]
    if changed:
        shown = "; ".join(f"{'.'.join(map(str, key))}: {a!r} in the checkpoint, {b!r} now" for key, a, b in changed[:4])
        more = f" (and {len(changed) - 4} more)" if len(changed) > 4 else ""
        raise ConfigError(
            f"{checkpoint.path}: cannot resume with a different config: {shown}{more}; only training.epochs may change"
        )
    for name, digest in checkpoint.meta["data_sha256"].items():
        if data_hashes.get(name) != digest:
            raise ConfigError(f"{checkpoint.path}: the data file {name} has changed since the checkpoint; resuming would not reproduce the run")
    epochs = resolved["training"]["epochs"]
    if next_epoch - 1 > epochs:
        raise ConfigError(
            f"{checkpoint.path}: the checkpoint has already trained {next_epoch - 1} epochs; training.epochs is {epochs}"
        )


def restore(checkpoint: Checkpoint, trainer) -> None:
    """Load a checkpoint's state into a trainer built from the same config."""
    parameters = trainer.plan.network.parameters()
    for i, param in enumerate(parameters):
        stored = checkpoint.arrays.get(f"param.{i}")
        if stored is None or stored.shape != param.shape or stored.dtype != param.dtype:
            raise ModelFileError(f"{checkpoint.path}: checkpoint weights do not fit the network the config builds")
    try:
        trainer.load_state(checkpoint.trainer_state, checkpoint.arrays)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFileError(f"{checkpoint.path}: checkpoint state is damaged ({type(exc).__name__}: {exc})") from None
