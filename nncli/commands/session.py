"""A training session: config (or checkpoint) → run → trainer → model file and run files.

This is the service behind `nncli train`: it decides where every file goes, refuses to
overwrite without ``--force`` (and, even with it, the files the run reads), takes the
outputs' lock, restores a checkpoint for ``--resume`` (refusing a changed config or changed
data), writes checkpoints, writes the run's files as one set that changes together, and
turns Ctrl-C/SIGTERM into "stop after this batch, save a checkpoint" — a second signal
stops at once, unless training is over: then the files are being saved, and that finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nncli.commands.plot import check_plot_path, training_curves
from nncli.commands.train import (
    NetworkPreview,
    TrainingRun,
    output_path,
    prepare_training,
)
from nncli.config import Config, config_from_dict, load_config, resolve_path
from nncli.config.source import ConfigSource
from nncli.core.model import TrainedModel, layer_table
from nncli.core.trainer import Reporter, StopRequested, Trainer
from nncli.errors import InterruptedRun, OutputError, UsageError
from nncli.files.atomic import FileSet
from nncli.files.checkpoint import (
    Checkpoint,
    check_config_before_loading,
    check_data_unchanged,
    check_resumable,
    load_checkpoint,
    output_hashes,
    replaced_files,
    restore,
    save_checkpoint,
)
from nncli.files.filehash import BackgroundHashes, file_hash
from nncli.files.lock import OutputLock
from nncli.files.model import save_model
from nncli.files.paths import check_writable, same_file
from nncli.files.runfiles import NON_FINITE, RunFiles, config_yaml, write_config, write_history, write_json


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
    plot: str | None = None  # train --plot FILE: the curves, drawn when the run ends or stops


@dataclass
class TrainResult:
    """A finished run: the model and the files written, for the summary or --json."""

    model: TrainedModel
    files: dict[str, str]  # run file kind -> path, those that exist
    layers: list[dict]
    metric_name: str
    seconds: float
    first_epoch: int  # > 1 when resumed
    cache_uses: list = field(default_factory=list)  # parse_cache.CacheUse, file by file

    @property
    def non_finite(self) -> dict[str, str]:
        """Final metrics that were NaN or infinite (stored as null), e.g. {"val_loss": "inf"}."""
        return dict(self.model.metrics.get(NON_FINITE) or {})

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
            "data_cache": [use.to_json() for use in self.cache_uses],
        }


@dataclass
class Session:
    run: TrainingRun
    trainer: Trainer
    files: RunFiles
    resumed: Checkpoint | None = None
    lock: OutputLock | None = None  # held from open_session to the end of train
    _hashes: dict[str, str] | None = None
    _saving: FileSet | None = None  # the run's files, once training is over
    # Hashes of another run's files this run was started (with --force) to replace, by kind:
    # its checkpoints record them, so that --resume replaces them too without a new --force.
    replaces: dict[str, str] = field(default_factory=dict)
    plot: Path | None = None  # train --plot FILE (checked before any data is read)

    @property
    def config(self) -> Config:
        return self.run.config

    def data_hashes(self, known: dict[str, str] | None = None) -> dict[str, str]:
        """SHA-256 of every file the run depends on: the CSVs it read and its init model
        (``known``: hashes already taken, by resolved path)."""
        if self._hashes is None:
            files = list(self.run.data.files) + ([self.run.init_from] if self.run.init_from else [])
            known = known or {}
            self._hashes = {str(path.resolve()): known.get(str(path.resolve())) or file_hash(path) for path in files}
        return self._hashes

    def checkpoint(self, trainer: Trainer | None = None) -> Path | None:
        """Save the trainer's state (``trainer`` is the same object; the callback passes it).
        The final state, once training is over, joins the run's other files (see _write)."""
        if self.files.checkpoint is None:
            return None
        with self._final_files().collect() if self.trainer.finished else contextlib.nullcontext():
            save_checkpoint(
                self.files.checkpoint, self.run.resolved_config(), self.data_hashes(), self.trainer.state(), self.files,
                self.replaces,
            )
        return self.files.checkpoint

    def _final_files(self) -> FileSet:
        if self._saving is None:
            self._saving = FileSet(self.files.record)
        return self._saving

    def close(self) -> None:
        """Drop unsaved files and release the outputs' lock (the end of train does it)."""
        if self._saving is not None:
            self._saving.discard()
            self._saving = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

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
            try:
                self.run.run(self.trainer, reporter)
            except StopRequested:
                self._stopped()
            model = self.run.model(self.trainer)
            self._write(model)
            drawn = self._curves(model.history)  # (after the commit: a drawing that fails loses no model)
        finally:
            self.close()
        files = {name: str(path) for name, path in vars(self.files).items() if path is not None and path.exists()}
        for path in drawn:  # (--plot may name the run folder's curves.png itself: one file, named once)
            if all(Path(named).resolve() != path.resolve() for named in files.values()):
                files["plot" if path == self.plot else "curves"] = str(path)
        return TrainResult(model, files, self.layers, self.run.metric_name, time.perf_counter() - started, first_epoch,
                           self.run.cache_uses)

    def _stopped(self) -> None:
        """Asked to stop: save a checkpoint and say where the run stopped and how to go on."""
        path = self.checkpoint()
        self._curves([record.to_json(self.run.metric_name) for record in self.trainer.history], interrupted=True)
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

    def _curves(self, history: list[dict], interrupted: bool = False) -> list[Path]:
        """train --plot FILE, and a run folder's curves.png when matplotlib is installed: the files drawn."""
        in_folder = self.files.checkpoint is not None and self.files == RunFiles.in_folder(self.files.model.parent)
        try:
            return training_curves(history, self.files.model, self.plot, run_folder=in_folder)
        except OutputError:
            if not interrupted:
                raise  # (on Ctrl-C the checkpoint and the resume line matter more)
            return []

    def _write(self, model: TrainedModel) -> None:
        """The run's files as one set: all written to temporary files, then renamed together
        (the model last), or none of them (see FileSet)."""
        files = self._final_files()
        with files.collect():
            write_history(self.files.history, model.history)
            write_json(self.files.metrics, model.metrics)
            write_config(self.files.config, model.config)
            if not self.config.training.checkpoint_every:
                files.remove(self.files.checkpoint)  # an interrupt's checkpoint, now that the run is complete
            save_model(self.files.model, model)
        files.commit()


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
    """A run ready to train; ``writes=False`` (a dry run) checks everything but touches no file.
    With ``writes``, the session holds its outputs' lock until :meth:`Session.train` ends."""
    overrides = resolved_overrides(request)
    plot = None if request.plot is None else check_plot_path(request.plot)  # (a dry run checks it too)
    if request.resume is not None:
        session = _resume_session(request, overrides, writes)
        session.plot = plot
        return session
    if request.config is None:
        raise UsageError("give a CONFIG file to train from, or --resume CHECKPOINT")
    config = load_config(request.config, overrides)
    files = _run_files(config, request, request.config.stem)
    _refuse_inputs_as_outputs(files, _inputs(config, request))
    # The config and the data are checked before the outputs are claimed: a mistake in either
    # is the error to report, not the previous run's files (a dry run never claims them).
    hashing = BackgroundHashes(_data_inputs(config, request)) if writes else None  # (while the data is parsed)
    run = prepare_training(config, files.model, writes)
    _refuse_inputs_as_outputs(files, _run_inputs(run))
    session = Session(run, run.trainer(), files, plot=plot)
    if writes:
        session.data_hashes(hashing.result())  # of the data as read now, for the checkpoints to come
        session.lock = _claim(files, request.force)
        if request.force:
            session.replaces = output_hashes(files)
    return session


def _claim(files: RunFiles, force: bool, allowed: list[Path] = ()) -> OutputLock | None:
    """Make the run's files ours: the lock taken (another run writing them stops this one),
    a half-done commit of a killed run finished, nothing overwritten without --force, stale
    temporaries gone."""
    lock = files.claim()
    try:
        if not force:
            files.refuse_overwrite(allowed=allowed)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return lock


def _resume_session(request: TrainRequest, overrides: list[str], writes: bool) -> Session:
    checkpoint = load_checkpoint(request.resume)
    stored = checkpoint.meta["config"]
    if request.config is not None:
        config = load_config(request.config, overrides)
        # What the run drew or decided for itself: a drawn seed, where the data was held.
        pinned = [f"seed={stored['seed']}"] if config.seed is None else []
        if config.data.in_memory == "auto":
            pinned.append(f"data.in_memory={'true' if stored['data'].get('in_memory', True) else 'false'}")
        if pinned:
            config = load_config(request.config, [*pinned, *overrides])
    else:
        config = config_from_dict(_paths_as_a_run_shows_them(checkpoint.config, request.resume), ConfigSource(request.resume), overrides)
    check_config_before_loading(checkpoint, config)  # name changed keys before any data is read
    unchanged = check_data_unchanged(checkpoint)  # and changed data before it is read
    if request.output is None and request.run_dir is None:
        files = checkpoint.run_files()  # the interrupted run's files, in the checkpoint's folder
        for path in files.all():
            check_writable(path)
    else:
        files = _run_files(config, request, Path(stored.get("output") or request.resume).stem)
    own = files.checkpoint is not None and same_file(files.checkpoint, request.resume)
    _refuse_inputs_as_outputs(files, _inputs(config, request, own_checkpoint=own))
    run = prepare_training(config, files.model, writes)  # config and data checked before the outputs are claimed
    _refuse_inputs_as_outputs(files, _run_inputs(run))
    trainer = run.trainer()
    session = Session(run, trainer, files, checkpoint)
    check_resumable(checkpoint, run.resolved_config(), session.data_hashes(unchanged), trainer.batches)
    if writes:
        # Its own checkpoint, and the files the run was started with --force to replace
        # (unchanged since), are the run's to overwrite; anything else needs --force.
        replaceable = replaced_files(checkpoint, files)
        session.lock = _claim(files, request.force, allowed=([request.resume] if own else []) + replaceable)
        session.replaces = output_hashes(files) if request.force else {
            kind: digest for kind, digest in output_hashes(files).items() if getattr(files, kind) in replaceable}
    try:
        if writes:  # a commit finished under the lock may have replaced the checkpoint
            session.resumed = checkpoint = _reread(checkpoint)
            check_resumable(checkpoint, run.resolved_config(), session.data_hashes(), trainer.batches)
        restore(checkpoint, trainer)
    except BaseException:
        session.close()
        raise
    return session


STORED_PATHS = (("data", "train"), ("data", "validation"), ("model", "init_from"))


def _paths_as_a_run_shows_them(stored: dict, checkpoint: Path) -> dict:
    """The checkpoint's config with its absolute paths (the run stored them resolved) written
    relative to the checkpoint's folder when they lie under the working directory: they name
    the same files, and messages show them as a run from a config does (`data/train.csv`,
    not `/home/…/data/train.csv`)."""
    here, folder = os.path.abspath(os.curdir), os.path.abspath(checkpoint.parent)
    for section, key in STORED_PATHS:
        value = stored.get(section, {}).get(key) if isinstance(stored.get(section), dict) else None
        if isinstance(value, str) and os.path.isabs(value) and _under(os.path.normpath(value), here):
            stored[section][key] = os.path.relpath(value, folder)
    return stored


def _under(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # another drive (Windows)
        return False


def _reread(checkpoint: Checkpoint) -> Checkpoint:
    if not checkpoint.path.exists():
        raise UsageError(
            f"{checkpoint.path}: the run had finished and its files were completed from its commit record; nothing to resume"
        )
    return load_checkpoint(checkpoint.path)


def _inputs(config: Config, request: TrainRequest, own_checkpoint: bool = False) -> list[tuple[Path, str]]:
    """The files a run reads, known before any is read: (path, what it is)."""
    inputs = []
    if request.config is not None:
        inputs.append((request.config, "the config file"))
    if request.resume is not None and not own_checkpoint:
        inputs.append((request.resume, "the checkpoint it resumes from"))
    for key in ("data.train", "data.validation", "model.init_from"):
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is not None:
            inputs.append((resolve_path(config, key, value), key))
    return inputs


def _data_inputs(config: Config, request: TrainRequest) -> list[Path]:
    """The data files and init model the run will read, when they are regular files (a pipe
    must not be read by anyone but the parser)."""
    return [path for path, what in _inputs(config, request) if what.startswith(("data.", "model.")) and path.is_file()]


def _run_inputs(run: TrainingRun) -> list[tuple[Path, str]]:
    """The files the run did read (the data files as found, its init model)."""
    return [(path, "a data file") for path in run.data.files] + ([(run.init_from, "model.init_from")] if run.init_from else [])


def _refuse_inputs_as_outputs(files: RunFiles, inputs: list[tuple[Path, str]]) -> None:
    """--force overwrites a previous run's files, never the files this run reads."""
    for output in files.all():
        for source, what in inputs:
            if same_file(output, source):
                raise UsageError(f"{output}: is an input of this run ({what}, {source}); write the run's files elsewhere")


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
    """First Ctrl-C/SIGTERM: finish the batch, then stop. A second: stop at once — unless
    training is over: then the run's files are being saved, and stopping would lose the
    training, so the save finishes (it takes as long as writing the files)."""

    def stop_now(signum, frame):
        if not trainer.finished:
            raise KeyboardInterrupt

    def request_stop(signum, frame):
        trainer.stop_requested = True
        for handled in previous:
            signal.signal(handled, stop_now)

    # A SIGINT ignored when nncli started (a background job of a script: the shell ignores it
    # for such jobs) stays ignored, as it was while the data loaded; SIGTERM always stops.
    signals = [signal.SIGTERM] + ([] if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else [signal.SIGINT])
    previous = {signum: signal.signal(signum, request_stop) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
