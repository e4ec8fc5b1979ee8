"""Finished trials, and the points of the space ranked by the sweep's metric: the mean over a
point's seeds (± their sample standard deviation), best first; points whose every trial failed
(or reported no value: a metric that was not finite) come last. And results.csv's rows."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from nncli.commands.sweeps.plan import Trial

OK, FAILED = "ok", "failed"


@dataclass
class TrialRecord:
    """A finished trial, as its trial.json keeps it."""

    trial: Trial
    status: str  # OK or FAILED
    path: str  # its folder
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    earlier: bool = False  # finished by an earlier run of the sweep (this one skipped it)

    @property
    def name(self) -> str:
        return self.trial.name

    def value(self, metric: str) -> float | None:
        value = self.metrics.get(metric) if self.status == OK else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def to_document(self) -> dict:
        """trial.json (and the trial's entry in --json)."""
        return {**self.trial.to_json(), "status": self.status, "reason": self.reason, "metrics": self.metrics,
                "seconds": self.seconds, "warnings": self.warnings}

    @classmethod
    def from_document(cls, trial: Trial, document: dict, path: str) -> "TrialRecord":
        return cls(trial, document["status"], path, document.get("reason"), document.get("metrics") or {},
                   float(document.get("seconds") or 0.0), list(document.get("warnings") or []), earlier=True)


@dataclass
class PointResult:
    """One point of the space over its seeds."""

    point: int
    settings: dict[str, str]
    trials: list[TrialRecord]
    values: list[float]  # the metric of each trial that reported one
    mean: float | None
    std: float | None  # sample standard deviation (n − 1), with two values or more
    best: TrialRecord | None  # the trial with the best value
    rank: int | None = None  # 1 = best; None when no trial reported a value

    def to_json(self) -> dict:
        return {"rank": self.rank, "point": self.point, "settings": self.settings, "mean": self.mean, "std": self.std,
                "values": self.values, "trials": [record.name for record in self.trials],
                "succeeded": sum(record.status == OK for record in self.trials),
                "best_trial": None if self.best is None else self.best.path}


def rank_points(records: list[TrialRecord], metric: str, minimize: bool) -> list[PointResult]:
    """Points best first (ties: the earlier point first), then the ones with no value."""
    by_point: dict[int, list[TrialRecord]] = {}
    for record in records:
        by_point.setdefault(record.trial.point, []).append(record)
    sign = 1 if minimize else -1
    points = []
    for point, trials in by_point.items():
        scored = [(record.value(metric), record) for record in trials if record.value(metric) is not None]
        values = [value for value, _ in scored]
        best = min(scored, key=lambda pair: sign * pair[0])[1] if scored else None
        points.append(PointResult(point, dict(trials[0].trial.settings), trials, values,
                                  statistics.fmean(values) if values else None,
                                  statistics.stdev(values) if len(values) > 1 else None, best))
    points.sort(key=lambda p: (p.mean is None, 0.0 if p.mean is None else sign * p.mean, p.point))
    for rank, point in enumerate((p for p in points if p.mean is not None), start=1):
        point.rank = rank
    return points


def results_table(records: list[TrialRecord], points: list[PointResult], keys: list[str],
                  metric: str) -> tuple[list[str], list[dict]]:
    """results.csv: one row per finished trial, in plan order, with its point's rank."""
    rank = {point.point: point.rank for point in points}
    names = [name for name in ("val_loss", "val_accuracy", "val_r2", "train_loss", "train_accuracy", "train_r2")
             if name != metric and any(name in record.metrics for record in records)]
    columns = ["trial", "status", "rank", "seed", *keys, metric, *names, "epoch", "epochs", "seconds", "folder", "reason"]
    rows = []
    for record in records:
        row = {"trial": record.name, "status": record.status, "rank": rank.get(record.trial.point), "seed": record.trial.seed,
               **record.trial.settings, "seconds": f"{record.seconds:.3f}", "folder": record.path, "reason": record.reason}
        row.update({name: record.metrics.get(name) for name in [metric, *names, "epoch", "epochs"]})
        rows.append(row)
    return columns, rows
