"""The `sweep` service: a config, a search space and seeds → a numbered list of trials (each an
ordinary training run with --set overrides), run by an executor, recorded trial by trial in the
sweep folder, ranked by a metric.

Before any trial runs, everything a mistake in the command could break is checked: the config
(with the sweep's --set), the space, the metric, the executor's options, the folder (another
sweep's plan there is refused), and every trial's config. A trial whose combination the
config refuses is recorded as failed, unless every trial is refused: that is a mistake in the
command (a misspelt key), reported as one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

import yaml

from nncli.commands.sweeps.executors import in_process, local_pool, ray_tasks
from nncli.commands.sweeps.plan import Space, Trial, plan_trials, refuse_another_plan
from nncli.commands.sweeps.ranking import FAILED, OK, PointResult, TrialRecord, rank_points, results_table
from nncli.commands.sweeps.trial import TrialOutcome, TrialSpec, trial_config
from nncli.config import Config, config_from_dict
from nncli.config.source import ConfigSource
from nncli.config.yamlfile import parse_yaml, read_text
from nncli.core.monitor import minimizes
from nncli.errors import ConfigError, UsageError, quoted
from nncli.files.sweepfolder import SweepFolder

EXECUTORS = ("local", "ray")
PATH_KEYS = ("data.train", "data.validation", "model.init_from")  # relative to the working directory on the command line


@dataclass
class SweepRequest:
    config: Path
    grid: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    random: int | None = None
    random_seed: int = 0
    seeds: int = 1
    overrides: list[str] = field(default_factory=list)  # --set, for every trial
    metric: str | None = None
    name: str | None = None
    output: Path | None = None
    jobs: int | None = None
    executor: str = "local"
    address: str | None = None
    retry_failed: bool = False


class SweepReporter(Protocol):
    """What the live table is told (render.SweepDisplay)."""

    def begin(self, plan: "SweepPlan") -> None: ...
    def trial_started(self, name: str) -> None: ...
    def trial_finished(self, record: TrialRecord) -> None: ...


@dataclass
class SweepPlan:
    """What is about to run, for the live table."""

    folder: Path
    trials: list[Trial]
    keys: list[str]
    metric: str
    earlier: int  # trials finished by an earlier run (skipped)
    to_run: int
    executor: str  # "this process", "2 local processes", "Ray"


@dataclass
class SweepResult:
    folder: Path
    config: Path
    metric: str
    minimize: bool
    keys: list[str]
    planned: int
    records: list[TrialRecord]  # the finished trials, in plan order
    points: list[PointResult]  # ranked
    results: Path  # results.csv
    executor: str
    interrupted: bool = False

    @property
    def succeeded(self) -> int:
        return sum(record.status == OK for record in self.records)

    @property
    def best(self) -> TrialRecord | None:
        return self.points[0].best if self.points and self.points[0].rank == 1 else None

    @property
    def failure_message(self) -> str:
        failed = [record for record in self.records if record.status == FAILED]
        first = f"; the first, {failed[0].name}: {failed[0].reason}" if failed else ""
        return f"no trial succeeded ({len(failed)} failed{first})"

    def to_json(self) -> dict:
        best = self.best
        return {
            "folder": str(self.folder), "config": str(self.config), "metric": self.metric,
            "direction": "min" if self.minimize else "max", "executor": self.executor, "interrupted": self.interrupted,
            "trials": {"planned": self.planned, "finished": len(self.records), "succeeded": self.succeeded,
                       "failed": len(self.records) - self.succeeded, "skipped": sum(r.earlier for r in self.records)},
            "best": None if best is None else {"trial": best.name, "path": best.path, "value": best.value(self.metric),
                                               "settings": best.trial.settings, "seed": best.trial.seed},
            "ranking": [point.to_json() for point in self.points],
            "results": [{**record.to_document(), "path": record.path, "value": record.value(self.metric),
                         "skipped": record.earlier} for record in self.records],
            "results_csv": str(self.results),
        }


def sweep(request: SweepRequest, reporter: Optional[SweepReporter] = None) -> SweepResult:
    """Run the sweep's unfinished trials; Ctrl-C stops them and returns what finished
    (``interrupted``), with results.csv written either way."""
    plan = _planned(request)
    folder = SweepFolder(_folder(request))
    with folder.claimed():
        recorded = folder.recorded_plan()
        if recorded is not None:
            refuse_another_plan(folder.path, recorded, plan.document)
        records = _finished_earlier(folder, plan.trials)
        todo = [trial for trial in plan.trials
                if trial.name not in records or (request.retry_failed and records[trial.name].status == FAILED)]
        run, executor, threads = _executor(request, len(todo))
        specs, refused = _specs(todo, request, plan, folder, threads)
        if refused and len(refused) == len(todo) and not any(record.status == OK for record in records.values()):
            raise next(iter(refused.values()))  # every trial refused: the command is wrong, not a trial
        if recorded is None:
            folder.write_plan(plan.document)
        started: Callable[[str], None] = reporter.trial_started if reporter is not None else (lambda name: None)
        interrupted = False
        try:
            # The executor starts first: the local pool forks its workers while this process has
            # one thread, before the live table starts its own (executors.start_method).
            with contextlib.closing(run(specs, started)) as outcomes:
                if reporter is not None:
                    reporter.begin(SweepPlan(folder.path, plan.trials, plan.keys, plan.metric,
                                             len(plan.trials) - len(todo), len(todo), executor))
                _run_trials(folder, plan, records, refused, outcomes, reporter)
        except KeyboardInterrupt:  # (the executor has stopped its workers: closing)
            interrupted = True
        ordered = [records[trial.name] for trial in plan.trials if trial.name in records]
        points = rank_points(ordered, plan.metric, plan.minimize)
        results = folder.write_results(*results_table(ordered, points, plan.keys, plan.metric))
    return SweepResult(folder.path, request.config, plan.metric, plan.minimize, plan.keys, len(plan.trials), ordered,
                       points, results, executor, interrupted)


@dataclass
class _Plan:
    text: str  # the config file's text, as read once: what every trial starts from
    metric: str
    minimize: bool
    trials: list[Trial]
    keys: list[str]  # the swept keys, in declared order
    flags: dict[str, str]  # swept key -> the option it came from (--grid, --sample), for messages
    document: dict  # what plan.json records

    @property
    def by_name(self) -> dict[str, Trial]:
        return {trial.name: trial for trial in self.trials}


def _planned(request: SweepRequest) -> _Plan:
    """The config (with the sweep's --set) checked, the metric chosen, the trials listed."""
    text = read_text(request.config)
    source = ConfigSource(request.config)
    base = config_from_dict(parse_yaml(text, source), source, list(request.overrides))
    metric, minimize = _metric(request.metric, base)
    space = Space.parse(request.grid, request.samples, request.random, request.random_seed)
    trials = plan_trials(space, request.seeds, base.seed if base.seed is not None else 0)
    flags = {choice.key: "--grid" for choice in space.grid} | {dimension.key: "--sample" for dimension in space.samples}
    document = {"config": str(request.config.resolve()), "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "set": list(request.overrides), "trials": [trial.to_json() for trial in trials]}
    return _Plan(text, metric, minimize, trials, [dimension.key for dimension in space.dimensions], flags, document)


def _finished_earlier(folder: SweepFolder, trials: list[Trial]) -> dict[str, TrialRecord]:
    documents = folder.finished([trial.name for trial in trials])
    return {trial.name: TrialRecord.from_document(trial, documents[trial.name], str(folder.trial_folder(trial.name)))
            for trial in trials if trial.name in documents}


def _run_trials(folder: SweepFolder, plan: _Plan, records: dict[str, TrialRecord], refused: dict[str, ConfigError],
                outcomes: Iterator[TrialOutcome], reporter: Optional[SweepReporter]) -> None:
    """Record each trial as it finishes (into ``records`` and its folder)."""
    trials = plan.by_name

    def record(outcome: TrialOutcome) -> None:
        records[outcome.name] = _save(folder, trials[outcome.name], outcome)
        if reporter is not None:
            reporter.trial_finished(records[outcome.name])

    for name, error in refused.items():
        record(TrialOutcome(name, str(error)))
    for outcome in outcomes:
        record(outcome)


def _metric(name: str | None, config: Config) -> tuple[str, bool]:
    """The metric to rank by (default: the validation accuracy or R², else the training one), and
    whether lower is better (losses), as early stopping decides it."""
    kind = "accuracy" if config.is_classification else "r2"
    known = ["val_loss", f"val_{kind}", "train_loss", f"train_{kind}"]
    has_validation = config.data.validation is not None or config.data.validation_split > 0
    if name is None:
        name = f"val_{kind}" if has_validation else f"train_{kind}"
    elif name not in known:
        raise UsageError(f"--metric {quoted(name)}: expected one of {', '.join(known)} "
                         f"(the config's loss is {config.training.loss})")
    return name, minimizes(name)


def _folder(request: SweepRequest) -> Path:
    if request.output is not None:
        if request.name is not None:
            raise UsageError("give either --name or --output, not both")
        return request.output
    name = request.name if request.name is not None else request.config.stem
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise UsageError(f"--name {quoted(name)}: expected a plain name (the folder is sweeps/NAME; --output takes any folder)")
    return Path("sweeps") / name


def _executor(request: SweepRequest, todo: int) -> tuple[Callable[..., Iterator[TrialOutcome]], str, str | None]:
    """(run, its description, BLAS threads per trial). One trial at a time runs in this process
    with the thread setting train would use; parallel trials get one thread each."""
    if request.executor not in EXECUTORS:
        raise UsageError(f"--executor {quoted(request.executor)}: expected one of {', '.join(EXECUTORS)}")
    if request.executor == "ray":
        if request.jobs is not None:
            raise UsageError("--jobs is for the local executor; Ray runs as many trials at once as the cluster has CPUs")
        return ray_tasks(request.address), "Ray", "1"
    if request.address is not None:
        raise UsageError("--address is for --executor ray")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = min(request.jobs or cores, max(todo, 1))
    if jobs == 1:
        return in_process, "this process", None
    return functools.partial(local_pool, jobs=jobs), f"{jobs} local processes", "1"


def _specs(todo: list[Trial], request: SweepRequest, plan: _Plan, folder: SweepFolder,
           threads: str | None) -> tuple[list[TrialSpec], dict[str, ConfigError]]:
    """Each trial's spec, checked here as the worker will check it: (runnable, refused by name).
    Each override names the option it came from in the config's messages."""
    config_path = str(request.config.resolve())
    specs, refused = [], {}
    fixed = [(override, f"--set {override}") for override in request.overrides]
    for trial in todo:
        swept = [(override, f"{plan.flags.get(override.partition('=')[0], '--seeds')} {override}")
                 for override in trial.overrides]
        overrides = tuple((_absolute(override), flag) for override, flag in [*fixed, *swept])
        model = folder.trial_folder(trial.name).resolve() / "model.npz"
        spec = TrialSpec(trial.name, config_path, plan.text, overrides, str(model), threads)
        try:
            trial_config(spec)
        except ConfigError as exc:
            refused[trial.name] = exc
            continue
        specs.append(spec)
    return specs, refused


def _absolute(override: str) -> str:
    """A data or model path given on the command line is relative to this working directory:
    made absolute, so that workers elsewhere (another directory, another machine) read the same file."""
    key, _, text = override.partition("=")
    if key.strip() not in PATH_KEYS:
        return override
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return override  # the trial's config check reports it
    if not isinstance(value, str) or os.path.isabs(os.path.expanduser(value)):
        return override
    return f"{key}={json.dumps(os.path.abspath(os.path.expanduser(value)))}"


def _save(folder: SweepFolder, trial: Trial, outcome: TrialOutcome) -> TrialRecord:
    record = TrialRecord(trial, OK if outcome.ok else FAILED, str(folder.trial_folder(trial.name)), outcome.reason,
                         outcome.metrics or {}, outcome.seconds, outcome.warnings)
    folder.save_trial(trial.name, record.to_document(), outcome.files)
    return record
