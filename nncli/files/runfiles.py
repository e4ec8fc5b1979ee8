"""The files a training run leaves: the model, its checkpoint, history.csv, metrics.json and
the resolved config — beside the model file, or together in a run folder (``--run-dir``).

They change together (:class:`nncli.files.atomic.FileSet`, with the commit record
:attr:`RunFiles.record`), and one process at a time writes them (:attr:`RunFiles.lock`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
from dataclasses import dataclass, fields
from pathlib import Path

from nncli.errors import UsageError
from nncli.files.atomic import atomic_write, recover, remove_stale_temporaries
from nncli.files.lock import OutputLock
from nncli.files.paths import same_file

FOLDER_NAMES = {"model": "model.npz", "checkpoint": "checkpoint.npz", "history": "history.csv",
                "metrics": "metrics.json", "config": "config.yaml"}
NON_FINITE = "non_finite"  # the key that says which metrics were NaN or infinite (stored as null)


@dataclass
class RunFiles:
    model: Path
    checkpoint: Path | None  # None when the model goes to a device (-o /dev/null): no siblings there
    history: Path | None
    metrics: Path | None
    config: Path | None

    @classmethod
    def beside(cls, model: Path) -> "RunFiles":
        """runs/digits.npz → runs/digits.ckpt.npz, runs/digits.history.csv, …"""
        if model.exists() and not model.is_file():
            return cls(model, None, None, None, None)
        stem = model.name[: -len(".npz")] if model.name.endswith(".npz") else model.name
        sibling = model.parent
        return cls(
            model=model,
            checkpoint=sibling / f"{stem}.ckpt.npz",
            history=sibling / f"{stem}.history.csv",
            metrics=sibling / f"{stem}.metrics.json",
            config=sibling / f"{stem}.config.yaml",
        )

    @classmethod
    def in_folder(cls, folder: Path) -> "RunFiles":
        return cls(**{kind: folder / name for kind, name in FOLDER_NAMES.items()})

    # --- where a checkpoint's run writes ------------------------------------------------------
    def layout(self) -> dict:
        """How the files sit beside the checkpoint, as a checkpoint records it: names only, no
        folder, so that a resumed run writes into the folder its checkpoint is in."""
        if self == RunFiles.in_folder(self.model.parent):
            return {"layout": "folder"}
        return {"layout": "beside", "model": self.model.name}

    @classmethod
    def from_layout(cls, checkpoint: Path, layout: dict) -> "RunFiles":
        """The files of the run whose checkpoint is ``checkpoint``: in the checkpoint's folder,
        whatever folder the checkpoint was written in (a moved checkpoint or renamed run
        folder continues where it is now). ``layout`` is checked by the checkpoint's loader."""
        folder = Path(checkpoint).parent
        if layout["layout"] == "folder":
            return cls.in_folder(folder)
        return cls.beside(folder / layout["model"])

    @property
    def lock(self) -> Path | None:
        """`.NAME.lock` beside the model NAME (None when the model goes to a device)."""
        return None if self.checkpoint is None else self._hidden(".lock")

    @property
    def record(self) -> Path | None:
        """`.NAME.commit`: exists only while the files are being replaced, or after a process
        was killed half-way through that (the next run of these outputs finishes it)."""
        return None if self.checkpoint is None else self._hidden(".commit")

    def _hidden(self, suffix: str) -> Path:
        model = Path(os.path.realpath(self.model))
        return model.parent / f".{model.name}{suffix}"

    def all(self) -> list[Path]:
        return [path for f in fields(self) if (path := getattr(self, f.name)) is not None]

    def refuse_overwrite(self, allowed: list[Path] = ()) -> None:
        """Nothing is overwritten silently: an existing output needs --force (a device is no file)."""
        existing = [p for p in self.all() if (p.is_symlink() or p.is_file()) and not any(same_file(p, a) for a in allowed)]
        if existing:
            more = f" (and {len(existing) - 1} more file(s) of that run)" if len(existing) > 1 else ""
            if existing[0] == self.checkpoint:
                hint = f"; continue that run with --resume {self.checkpoint}, or pass --force to start afresh"
            elif allowed:  # resuming: the run's model exists, so the run had finished
                hint = "; extending a finished run replaces its model: pass --force, or choose another --output/--run-dir"
            else:
                hint = "; pass --force to overwrite, or choose another --output/--run-dir"
            raise UsageError(f"{existing[0]} already exists{more}{hint}")

    def claim(self) -> OutputLock | None:
        """Take the outputs' lock (UsageError naming the owner's pid when another process
        has it), finish a commit a killed run left half-done, and remove the temporary files
        of killed processes. The caller releases the lock when the run ends."""
        if self.lock is None:
            return None
        lock = OutputLock(self.lock, self.model).acquire()
        try:
            recover(self.record, self.all())
            for path in self.all():
                remove_stale_temporaries(path)
        except BaseException:
            lock.release()
            raise
        return lock


def finite_record(record: dict) -> dict:
    """A record of metrics that JSON can hold: a NaN or infinite number becomes null, and the
    key ``non_finite`` says what it was, e.g. ``{"val_loss": "inf"}``."""
    flags = dict(record.get(NON_FINITE) or {})
    clean = {}
    for key, value in record.items():
        if key == NON_FINITE:
            continue
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value):
            flags[key] = "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
            value = None
        clean[key] = value
    if flags:
        clean[NON_FINITE] = flags
    return clean


def write_history(path: Path | None, history: list[dict]) -> None:
    if path is None:
        return
    history = [finite_record(record) for record in history]
    columns = list(dict.fromkeys(key for record in history for key in record))  # NON_FINITE only when needed
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for record in history:
            flags = record.get(NON_FINITE)
            if flags:
                record = {**record, NON_FINITE: ";".join(f"{key}={what}" for key, what in flags.items())}
            writer.writerow(record)
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


def write_json(path: Path | None, document: dict) -> None:
    if path is None:
        return
    with atomic_write(path, "w") as f:
        f.write(json.dumps(finite_record(document), indent=2, allow_nan=False) + "\n")


def settled(resolved: dict) -> dict:
    """A resolved config as it is stored (checkpoint, model file, config.yaml) and compared:
    with a validation file, ``data.validation_split`` plays no part, and is written as 0 so
    that the config loads again (a file and a split > 0 together are refused)."""
    data = resolved.get("data") if isinstance(resolved, dict) else None
    if isinstance(data, dict) and data.get("validation") is not None and "validation_split" in data:
        data["validation_split"] = 0
    return resolved


def config_yaml(config: dict) -> str:
    """A config as YAML, keys in the config's own order (run files, --print-config, --dry-run)."""
    import yaml  # (here: predict and evaluate read model files, which reach this module, and need no YAML)

    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def write_config(path: Path | None, resolved: dict) -> None:
    if path is None:
        return
    with atomic_write(path, "w") as f:
        f.write("# The config as this run used it (seed, layer sizes and paths resolved).\n")
        f.write(config_yaml(resolved))
