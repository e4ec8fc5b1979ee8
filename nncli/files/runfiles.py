"""The files a training run leaves: the model, its checkpoint, history.csv, metrics.json and
the resolved config — beside the model file, or together in a run folder (``--run-dir``)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from nncli.errors import UsageError
from nncli.files.atomic import atomic_write


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
        return cls(
            model=folder / "model.npz",
            checkpoint=folder / "checkpoint.npz",
            history=folder / "history.csv",
            metrics=folder / "metrics.json",
            config=folder / "config.yaml",
        )

    def all(self) -> list[Path]:
        return [path for f in fields(self) if (path := getattr(self, f.name)) is not None]

    def to_json(self) -> dict:
        return {f.name: None if getattr(self, f.name) is None else str(Path(getattr(self, f.name)).absolute()) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> "RunFiles":
        return cls(**{f.name: None if data.get(f.name) is None else Path(data[f.name]) for f in fields(cls)})

    def refuse_overwrite(self, allowed: list[Path] = ()) -> None:
        """Nothing is overwritten silently: an existing output needs --force (a device is no file)."""
        allowed = {Path(p).absolute() for p in allowed}
        existing = [p for p in self.all() if (p.is_symlink() or p.is_file()) and p.absolute() not in allowed]
        if existing:
            more = f" (and {len(existing) - 1} more file(s) of that run)" if len(existing) > 1 else ""
            if existing[0] == self.checkpoint:
                hint = f"; continue that run with --resume {self.checkpoint}, or pass --force to start afresh"
            elif allowed:  # resuming: the run's model exists, so the run had finished
                hint = "; extending a finished run replaces its model: pass --force, or choose another --output/--run-dir"
            else:
                hint = "; pass --force to overwrite, or choose another --output/--run-dir"
            raise UsageError(f"{existing[0]} already exists{more}{hint}")

    def remove_stale_temporaries(self) -> None:
        """Temporary files of this run's outputs left by a killed process (kill -9)."""
        for path in self.all():
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                with contextlib.suppress(OSError):
                    stale.unlink()


def write_history(path: Path | None, history: list[dict]) -> None:
    if path is None:
        return
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


def write_json(path: Path | None, document: dict) -> None:
    if path is None:
        return
    with atomic_write(path, "w") as f:
        f.write(json.dumps(document, indent=2, allow_nan=False) + "\n")


def config_yaml(config: dict) -> str:
    """A config as YAML, keys in the config's own order (run files, --print-config, --dry-run)."""
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def write_config(path: Path | None, resolved: dict) -> None:
    if path is None:
        return
    with atomic_write(path, "w") as f:
        f.write("# The config as this run used it (seed, layer sizes and paths resolved).\n")
        f.write(config_yaml(resolved))
