"""A training session: config (or checkpoint) → run → trainer → model file and run files.

This is the service behind `nncli train`: it decides where every file goes, refuses to
overwrite without ``--force``, restores a checkpoint for ``--resume`` (refusing a changed
config or changed data), writes checkpoints, and turns Ctrl-C/SIGTERM into "stop after this
batch, save a checkpoint" — a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nncli.commands.train import (
    NetworkPreview,
    TrainingRun,
    output_path,
    prepare_training,
)
from nncli.config import Config, config_from_dict, load_config
from nncli.config.source import ConfigSource
from nncli.core.model import TrainedModel, layer_table
from nncli.core.trainer import Reporter, StopRequested, Trainer
from nncli.errors import InterruptedRun, UsageError
from nncli.files.atomic import check_writable, same_file
from nncli.files.checkpoint import (
    Checkpoint,
    check_config_before_loading,
    check_resumable,
    file_hash,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from nncli.files.model import save_model
from nncli.files.runfiles import RunFiles, config_yaml, write_config, write_history, write_json


def init_from_override(path: str) -> tuple[str, str]:
    """--init-from PATH as a config override: the path quoted (a file named `yes` stays a
    string), and errors naming --init-from."""
    return f"model.init_from={json.dumps(str(path))}", f"--init-from {path}"


@dataclass
class TrainRequest:
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    output: str | None = None
    run_dir: Path | None = None
    resume: Path | None = None
    init_from: str | None = None
    force: bool = False


@dataclass
class TrainResult:
    """A finished run: the model and the files written, for the summary or --json."""

    model: TrainedModel
    files: dict[str, str]  # run file kind -> path, those that exist
    layers: list[dict]
    metric_name: str
    seconds: float
    first_epoch: int  # > 1 when resumed

    def to_json(self) -> dict:
        model = self.model
        return {
            "model": self.files["model"],
            "files": self.files,
            "config": model.config,
            "architecture": self.layers,
            "classes": model.classes,
            "features": model.features,
            "targets": model.targets,
            "history": model.history,
            "metrics": model.metrics,
            "seconds": self.seconds,
        }


@dataclass
class Session:
    run: TrainingRun
    trainer: Trainer
    files: RunFiles
    resumed: Checkpoint | None = None
    _hashes: dict[str, str] | None = None

    @property
    def config(self) -> Config:
        return self.run.config

    def data_hashes(self) -> dict[str, str]:
        """SHA-256 of every file the run depends on: the CSVs it read and its init model."""
        if self._hashes is None:
            files = list(self.run.data.files) + ([self.run.init_from] if self.run.init_from else [])
            self._hashes = {str(path.resolve()): file_hash(path) for path in files}
        return self._hashes

    def checkpoint(self, trainer: Trainer | None = None) -> Path | None:
        """Save the trainer's state (``trainer`` is the same object; the callback passes it)."""
        if self.files.checkpoint is None:
            return None
        save_checkpoint(
            self.files.checkpoint, self.run.resolved_config(), self.data_hashes(), self.trainer.state(), self.files.to_json()
        )
        return self.files.checkpoint

    @property
    def layers(self) -> list[dict]:
        return layer_table(self.run.network)

    def stop_on_signals(self):
        """While active, Ctrl-C/SIGTERM ask the trainer to stop after its batch (see train)."""
        return _stop_on_signals(self.trainer)

    def train(self, reporter: Reporter | None = None) -> TrainResult:
        """Train to the end and write the model and run files; a stop request (see
        :meth:`stop_on_signals`) → checkpoint → InterruptedRun."""
        self.trainer.on_checkpoint = self.checkpoint
        first_epoch, started = self.trainer.epoch, time.perf_counter()
        try:
            self.run.run(self.trainer, reporter)
        except StopRequested:
            self._stopped()
        model = self.run.model(self.trainer)
        self._write(model)
        files = {name: str(path) for name, path in vars(self.files).items() if path is not None and path.exists()}
        return TrainResult(model, files, self.layers, self.run.metric_name, time.perf_counter() - started, first_epoch)

    def _stopped(self) -> None:
        """Asked to stop: save a checkpoint and say where the run stopped and how to go on."""
        path = self.checkpoint()
        trainer = self.trainer
        if trainer.batch == 0:
            where = f"before epoch {trainer.epoch}"
        elif trainer.batch == trainer.batches:
            where = f"at the end of epoch {trainer.epoch}"
        else:
            where = f"in epoch {trainer.epoch} (batch {trainer.batch} of {trainer.batches})"
        if path is None:
            raise InterruptedRun(f"stopped {where}; no checkpoint (the model goes to a device)") from None
        raise InterruptedRun(f"stopped {where}; checkpoint saved to {path}; resume with: nncli train --resume {path}") from None

    def _write(self, model: TrainedModel) -> None:
        save_model(self.files.model, model)
        write_history(self.files.history, model.history)
        write_json(self.files.metrics, model.metrics)
        write_config(self.files.config, model.config)
        checkpoint = self.files.checkpoint
        if not self.config.training.checkpoint_every and checkpoint is not None and checkpoint.exists():
            checkpoint.unlink()  # an interrupt's checkpoint, now that the run is complete


def resolved_overrides(request: TrainRequest) -> list:
    overrides = list(request.overrides)
    if request.init_from is not None:
        overrides.append(init_from_override(request.init_from))
    return overrides


@dataclass
class ConfigDocument:
    """--print-config's result: the config with every default filled in."""

    document: dict

    def to_json(self) -> dict:
        return self.document

    @property
    def yaml(self) -> str:
        return config_yaml(self.document)


def print_config(request: TrainRequest) -> ConfigDocument:
    """--print-config: the config with every default filled in (no data read)."""
    if request.config is None:
        raise UsageError("--print-config needs a CONFIG file")
    return ConfigDocument(load_config(request.config, resolved_overrides(request)).model_dump(mode="json"))


def dry_run(request: TrainRequest) -> NetworkPreview:
    """--dry-run: everything a run checks (config, data, where files would go), nothing
    trained or written, so existing outputs are no reason to refuse."""
    return open_session(request, writes=False).run.preview()


def open_session(request: TrainRequest, writes: bool = True) -> Session:
    """A run ready to train; ``writes=False`` (a dry run) checks everything but touches no file."""
    overrides = resolved_overrides(request)
    if request.resume is not None:
        return _resume_session(request, overrides, writes)
    if request.config is None:
        raise UsageError("give a CONFIG file to train from, or --resume CHECKPOINT")
    config = load_config(request.config, overrides)
    files = _run_files(config, request, request.config.stem)
    if writes:
        _claim(files, request.force)
    run = prepare_training(config, files.model)
    _refuse_inputs_as_outputs(files, run)
    session = Session(run, run.trainer(), files)
    if writes:
        session.data_hashes()  # of the data as read now, for the checkpoints to come
    return session


def _claim(files: RunFiles, force: bool, allowed: list[Path] = ()) -> None:
    """Make the run's files ours: nothing overwritten without --force, stale temporaries gone."""
    if not force:
        files.refuse_overwrite(allowed=allowed)
    files.remove_stale_temporaries()


def _resume_session(request: TrainRequest, overrides: list[str], writes: bool) -> Session:
    checkpoint = load_checkpoint(request.resume)
    stored = checkpoint.meta["config"]
    if request.config is not None:
        config = load_config(request.config, overrides)
        if config.seed is None:  # a config that draws its seed: the run drew the stored one
            config = load_config(request.config, [f"seed={stored['seed']}", *overrides])
    else:
        config = config_from_dict(checkpoint.config, ConfigSource(request.resume), overrides)
    check_config_before_loading(checkpoint, config)  # name changed keys before any data is read
    if request.output is None and request.run_dir is None:
        files = RunFiles.from_json(checkpoint.meta["files"])  # where the interrupted run wrote
        for path in files.all():
            check_writable(path)
    else:
        files = _run_files(config, request, Path(stored.get("output") or request.resume).stem)
    if writes:
        _claim(files, request.force, allowed=[request.resume])
    run = prepare_training(config, files.model)
    _refuse_inputs_as_outputs(files, run)
    trainer = run.trainer()
    session = Session(run, trainer, files, checkpoint)
    check_resumable(checkpoint, run.resolved_config(), session.data_hashes(), trainer.batches)
    restore(checkpoint, trainer)
    return session


def _refuse_inputs_as_outputs(files: RunFiles, run: TrainingRun) -> None:
    """--force overwrites a previous run's files, never the files this run reads."""
    inputs = list(run.data.files) + ([run.init_from] if run.init_from else [])
    for output in files.all():
        for source in inputs:
            if same_file(output, source):
                raise UsageError(f"{output}: is an input of this run ({source}); write the run's files elsewhere")


def _run_files(config: Config, request: TrainRequest, name: str) -> RunFiles:
    if request.run_dir is not None:
        if request.output is not None:
            raise UsageError("give either --output or --run-dir, not both")
        if request.run_dir.exists() and not request.run_dir.is_dir():
            raise UsageError(f"--run-dir {request.run_dir}: is a file; expected a folder (created if missing)")
        files = RunFiles.in_folder(request.run_dir)
    else:
        files = RunFiles.beside(output_path(config, request.output, name))
    for path in files.all():
        check_writable(path)
    return files


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """First Ctrl-C/SIGTERM: finish the batch, then stop. A second: stop at once."""

    def request_stop(signum, frame):
        trainer.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request_stop), signal.signal(signal.SIGTERM, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
