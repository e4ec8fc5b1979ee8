"""A training session: config (or checkpoint) → run → trainer → model file and run files.

This is the service behind `nncli train`: it decides where every file goes, refuses to
overwrite without ``--force``, restores a checkpoint for ``--resume`` (refusing a changed
config or changed data), writes checkpoints, and turns Ctrl-C/SIGTERM into "stop after this
batch, save a checkpoint" — a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nncli.atomic import check_writable
from nncli.checkpoint import Checkpoint, check_resumable, file_hash, load_checkpoint, restore, save_checkpoint
from nncli.config import Config, config_from_dict, load_config
from nncli.config.source import ConfigSource
from nncli.errors import InterruptedRun, UsageError
from nncli.model import TrainedModel
from nncli.modelfile import save_model
from nncli.pipeline import TrainingRun, output_path, prepare_training
from nncli.runfiles import RunFiles, write_config, write_history, write_json
from nncli.training import Reporter, StopRequested, Trainer


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
        if self._hashes is None:
            self._hashes = {str(path.resolve()): file_hash(path) for path in self.run.data.files}
        return self._hashes

    def checkpoint(self, trainer: Trainer | None = None) -> Path | None:
        """Save the trainer's state (``trainer`` is the same object; the callback passes it)."""
        if self.files.checkpoint is None:
            return None
        save_checkpoint(self.files.checkpoint, self.run.resolved_config(), self.data_hashes(), self.trainer.state())
        return self.files.checkpoint

    def stop_on_signals(self):
        """While active, Ctrl-C/SIGTERM ask the trainer to stop after its batch (see train)."""
        return _stop_on_signals(self.trainer)

    def train(self, reporter: Reporter | None = None) -> TrainedModel:
        """Train to the end and write the model and run files; a stop request (see
        :meth:`stop_on_signals`) → checkpoint → InterruptedRun."""
        self.trainer.on_checkpoint = self.checkpoint
        try:
            self.run.run(self.trainer, reporter)
        except StopRequested:
            path = self.checkpoint()
            trainer = self.trainer
            where = f"in epoch {trainer.epoch} (batch {trainer.batch} of {trainer.batches})" if trainer.batch else f"before epoch {trainer.epoch}"
            if path is None:
                raise InterruptedRun(f"stopped {where}; no checkpoint (the model goes to a device)") from None
            raise InterruptedRun(f"stopped {where}; checkpoint saved to {path}; resume with: nncli train --resume {path}") from None
        model = self.run.model(self.trainer)
        save_model(self.files.model, model)
        write_history(self.files.history, model.history)
        write_json(self.files.metrics, model.metrics)
        write_config(self.files.config, model.config)
        checkpoint = self.files.checkpoint
        if not self.config.training.checkpoint_every and checkpoint is not None and checkpoint.exists():
            checkpoint.unlink()  # an interrupt's checkpoint, now that the run is complete
        return model


def open_session(request: TrainRequest) -> Session:
    overrides = list(request.overrides)
    if request.init_from is not None:
        overrides.append(f"model.init_from={request.init_from}")
    resumed = None
    if request.resume is not None:
        resumed = load_checkpoint(request.resume)
        if request.config is not None:
            config = load_config(request.config, overrides)
        else:
            config = config_from_dict(resumed.config, ConfigSource(request.resume), overrides)
        name = Path(resumed.meta["config"].get("output") or request.resume).stem
    else:
        if request.config is None:
            raise UsageError("give a CONFIG file to train from, or --resume CHECKPOINT")
        config = load_config(request.config, overrides)
        name = request.config.stem
    files = _run_files(config, request, name)
    if not (request.force or request.resume):
        files.refuse_overwrite()
    run = prepare_training(config, files.model)
    trainer = run.trainer()
    session = Session(run, trainer, files, resumed)
    if resumed is not None:
        restore(resumed, trainer)
        check_resumable(resumed, run.resolved_config(), session.data_hashes(), trainer.epoch)
    return session


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
