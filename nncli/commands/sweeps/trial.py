"""One trial: an ordinary training run (commands/train.py's prepare_training and fit, as
`nncli train CONFIG --set …` runs them) of the sweep's config with the trial's overrides.

This function is all that runs in a worker, whatever the executor — this process, a local
process pool, a Ray task on another machine — so a trial's model is the same wherever it ran.
It trains in-process rather than starting `nncli train`: no interpreter start-up and imports
per trial (≈ 0.5 s here, more than a digits trial's whole training), and the outcome comes back
as data (the one-line reason of a failure, the metrics, the run files' bytes) instead of being
scraped from a child's stderr.

The worker writes nothing where the driver can see it: it returns the run files' bytes and the
driver writes the trial folder. So only the data must be reachable from the workers (Ray
workers on other machines need no shared sweep folder), and one process writes the folder.
"""

from __future__ import annotations

import copy
import functools
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from nncli.commands.table_memo import TableMemo
from nncli.commands.threads import blas_threads
from nncli.commands.train import prepare_training
from nncli.config import Config, config_from_dict
from nncli.config.source import ConfigSource
from nncli.config.yamlfile import parse_yaml
from nncli.errors import NncliError, one_line
from nncli.files.atomic import FileSet
from nncli.files.model import save_model
from nncli.files.runfiles import RunFiles, write_config, write_history, write_json

# The tables this process has parsed: a worker runs many trials on the same file (a local
# pool's workers live for the whole sweep; Ray reuses its worker processes too, unless idle
# ones are recycled).
TABLES = TableMemo()

WORKER_DIED = "the process running it died (killed, or out of memory?); rerun the sweep with --retry-failed"


@dataclass(frozen=True)
class TrialSpec:
    """All a worker needs, as plain data (it travels to other processes and machines)."""

    name: str
    config_path: str  # absolute: paths written in the config are relative to its folder
    config_text: str  # the config as the driver read it: workers need not reach the file
    # (KEY=VALUE, the option it came from): the sweep's --set, then the trial's (paths made absolute)
    overrides: tuple[tuple[str, str], ...]
    model_path: str  # where the driver puts the model: the resolved config records it
    threads: str | None = "1"  # BLAS threads: one, so that parallel trials do not fight for cores


@dataclass
class TrialOutcome:
    name: str
    reason: str | None  # one line; None when the run succeeded
    metrics: dict | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # run-folder name (model.npz …) -> content
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None


def trial_config(spec: TrialSpec) -> Config:
    """The trial's config, checked as `nncli train CONFIG --set …` checks it (ConfigError)."""
    raw, lines = _parsed(spec.config_path, spec.config_text)
    source = ConfigSource(Path(spec.config_path), lines=dict(lines))
    return config_from_dict(copy.deepcopy(raw), source, list(spec.overrides))  # (overrides change the copy)


@functools.lru_cache(maxsize=4)
def _parsed(config_path: str, config_text: str) -> tuple[dict, dict]:
    """The config text as parsed, and the line of each setting: once per process, not per trial.
    The sweep checks every trial's config before it starts any, and PyYAML took ~1.5 ms of the
    2.2 ms each check took (a text that does not parse raises each time: nothing is cached)."""
    source = ConfigSource(Path(config_path))
    return parse_yaml(config_text, source), source.lines


def run_trial(spec: TrialSpec) -> TrialOutcome:
    """Train the trial and return its outcome; a failure is an outcome too, never an exception
    (Ctrl-C aside: it stops the sweep)."""
    started = time.perf_counter()
    try:
        with blas_threads(spec.threads):
            run = prepare_training(trial_config(spec), Path(spec.model_path), memo=TABLES)
            model = run.fit()
        files = _run_files(model)
    except NncliError as exc:
        return TrialOutcome(spec.name, str(exc), seconds=time.perf_counter() - started)
    except MemoryError:
        return TrialOutcome(spec.name, "out of memory; use a smaller batch_size or smaller layers, or fewer --jobs",
                            seconds=time.perf_counter() - started)
    except Exception as exc:  # a bug: the sweep goes on, and the record says where it happened
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        return TrialOutcome(spec.name, one_line(f"internal error {type(exc).__name__} at {where}: {exc} (please report it)"),
                            seconds=time.perf_counter() - started)
    return TrialOutcome(spec.name, None, model.metrics, files, time.perf_counter() - started, run.warnings)


def _run_files(model) -> dict[str, bytes]:
    """The files `nncli train --run-dir` leaves (as Session._write writes them), as bytes."""
    # Scratch files, read back at once: the driver writes (and syncs) the trial folder.
    with tempfile.TemporaryDirectory(prefix="nncli-trial-") as folder, FileSet(durable=False) as scratch:
        files = RunFiles.in_folder(Path(folder))
        with scratch.collect():
            write_history(files.history, model.history)
            write_json(files.metrics, model.metrics)
            write_config(files.config, model.config)
            save_model(files.model, model)
        scratch.commit()
        return {path.name: path.read_bytes() for path in (files.model, files.history, files.metrics, files.config)}
