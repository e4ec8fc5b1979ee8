"""What a sweep runs: its search space (``--grid``, ``--sample`` with ``--random N``), each point
repeated over ``--seeds``, as a numbered list of trials, each an ordinary training run with
``--set`` overrides. The list is drawn once, in this process, and recorded in the sweep folder
(files/sweepfolder.py): a rerun computes it again, and goes on only if it is the same
(:func:`refuse_another_plan`), so random draws are seeded.

Values are YAML, as ``--set`` reads them, and stay the text the user wrote: the trial runs
``--set KEY=TEXT``, the table shows TEXT, the record compares TEXT.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from nncli.errors import UsageError, quoted

# Keys a sweep may not vary: it places every trial's files itself, and repeats seeds itself.
RESERVED = {"output": "the sweep writes each trial's model to its own folder",
            "seed": "repeat each point over seeds with --seeds K"}
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
SIGNIFICANT_DIGITS = 4  # drawn floats: readable in a table, and 1e-4 apart is no real difference
DRAWS_PER_TRIAL = 100  # random points tried per distinct one wanted, before the space is called too small
MAX_TRIALS = 100_000  # a grid that multiplies out past this is a mistake, not a sweep


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep: ``settings`` (key → YAML text, in declared order) and a seed."""

    name: str  # trial-007: its folder
    point: int  # which point of the space (1-based); trials of one point differ only in seed
    seed: int
    settings: dict[str, str] = field(hash=False)

    @property
    def overrides(self) -> list[str]:
        """Its --set overrides (the sweep's own --set come before them)."""
        return [f"{key}={text}" for key, text in self.settings.items()] + [f"seed={self.seed}"]

    def to_json(self) -> dict:
        return {"trial": self.name, "point": self.point, "seed": self.seed, "settings": dict(self.settings)}


def split_values(text: str, option: str) -> list[str]:
    """``a,[b,c],{d: 1, e: 2},'f,g'`` -> the four values: commas inside brackets, braces or
    quotes belong to the value (YAML flow syntax), so lists like ``[auto,32,auto]`` need no escaping."""
    values, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise UsageError(f"{option}: {quoted(text)} closes a bracket it never opened")
        elif char == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise UsageError(f"{option}: {quoted(text)} leaves a {'quote' if quote else 'bracket'} open")
    values.append(text[start:])
    values = [value.strip() for value in values]
    if any(not value for value in values):
        raise UsageError(f"{option}: {quoted(text)} has an empty value (two commas in a row, or one at an end)")
    for value in values:
        try:
            yaml.safe_load(value)  # syntax only: the config's own loader reads the value in the trial
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise UsageError(f"{option}: value {quoted(value)} is not valid YAML ({problem})") from None
    return values


def _key_and_text(option: str, flag: str) -> tuple[str, str]:
    key, sep, text = option.partition("=")
    key = key.strip()
    if not sep or not text.strip():
        raise UsageError(f"{flag} {quoted(option)}: expected KEY=VALUES, e.g. {flag} training.learning_rate=0.01,0.1")
    if not KEY.fullmatch(key):
        raise UsageError(f"{flag} {quoted(option)}: {quoted(key)} is not a config key (a dotted name: training.learning_rate)")
    if key.split(".")[0] in RESERVED:
        raise UsageError(f"{flag} {key}: a sweep does not vary {key}: {RESERVED[key.split('.')[0]]}")
    return key, text


@dataclass(frozen=True)
class Choice:
    """--grid KEY=V1,V2 (every value in turn; drawn uniformly with --random) or --sample KEY=choice:V1,V2."""

    key: str
    values: tuple[str, ...]

    def draw(self, rng: np.random.Generator) -> str:
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Range:
    """--sample KEY=uniform:A..B, log-uniform:A..B (0 < A) or int:A..B (both ends included)."""

    key: str
    kind: str
    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> str:
        if self.kind == "int":
            return str(int(rng.integers(int(self.low), int(self.high), endpoint=True)))
        if self.kind == "log-uniform":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        # Rounded, and clamped so that rounding never leaves the range the user gave.
        # (repr: `0.0123`, `1e-05`, `2.0`: the config's YAML 1.2 loader reads each back as that float.)
        return repr(min(max(float(f"{value:.{SIGNIFICANT_DIGITS}g}"), self.low), self.high))


KINDS = ("uniform", "log-uniform", "int", "choice")


def grid_option(option: str) -> Choice:
    key, text = _key_and_text(option, "--grid")
    values = split_values(text, f"--grid {key}")
    repeated = next((value for value in values if values.count(value) > 1), None)
    if repeated is not None:
        raise UsageError(f"--grid {key}: lists {quoted(repeated)} twice")
    return Choice(key, tuple(values))


def sample_option(option: str) -> Choice | Range:
    key, text = _key_and_text(option, "--sample")
    kind, sep, spec = text.partition(":")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise UsageError(f"--sample {key}: {quoted(text)} is not a distribution; expected one of "
                         "uniform:A..B, log-uniform:A..B, int:A..B, choice:V1,V2")
    if kind == "choice":
        return Choice(key, tuple(dict.fromkeys(split_values(spec, f"--sample {key}"))))
    low_text, dots, high_text = spec.partition("..")
    try:
        low, high = (int(low_text), int(high_text)) if kind == "int" else (float(low_text), float(high_text))
    except ValueError:
        number = "whole numbers" if kind == "int" else "numbers"
        raise UsageError(f"--sample {key}: {quoted(text)}: expected {kind}:A..B with A and B {number}") from None
    if not dots or not (math.isfinite(low) and math.isfinite(high)) or low > high or (low == high and kind != "int"):
        raise UsageError(f"--sample {key}: {quoted(text)}: expected {kind}:A..B with A below B")
    if kind == "log-uniform" and low <= 0:
        raise UsageError(f"--sample {key}: {quoted(text)}: log-uniform needs A above 0")
    return Range(key, kind, low, high)


@dataclass
class Space:
    """The search space as declared on the command line, and how to walk it."""

    grid: list[Choice]
    samples: list[Choice | Range]
    random: int | None = None  # --random N: N points drawn; else the grid's every combination
    random_seed: int = 0

    @classmethod
    def parse(cls, grid: list[str], samples: list[str], random: int | None, random_seed: int) -> "Space":
        space = cls([grid_option(option) for option in grid], [sample_option(option) for option in samples], random, random_seed)
        keys = [dimension.key for dimension in space.dimensions]
        twice = next((key for key in keys if keys.count(key) > 1), None)
        if twice is not None:
            raise UsageError(f"{twice} is given twice (in --grid or --sample); give each key once")
        if space.samples and random is None:
            raise UsageError("--sample draws values for --random N trials; give --random N (or list values with --grid)")
        if random is not None and not keys:
            raise UsageError("--random N draws from the --sample (and --grid) keys; give at least one")
        return space

    @property
    def dimensions(self) -> list[Choice | Range]:
        return [*self.grid, *self.samples]

    def points(self) -> list[dict[str, str]]:
        if self.random is None:
            sizes = [len(choice.values) for choice in self.grid]
            if math.prod(sizes) > MAX_TRIALS:
                raise UsageError(f"the grid has {' × '.join(map(str, sizes))} = {math.prod(sizes):,} points; "
                                 f"a sweep runs at most {MAX_TRIALS:,} (sample it with --random N)")
            keys = [choice.key for choice in self.grid]
            return [dict(zip(keys, values)) for values in itertools.product(*(choice.values for choice in self.grid))]
        return self._drawn()

    def _drawn(self) -> list[dict[str, str]]:
        """--random N distinct points, drawn key by key in the order declared, from ``random_seed``."""
        rng = np.random.default_rng(self.random_seed)
        points: dict[tuple, dict[str, str]] = {}
        for _ in range(self.random * DRAWS_PER_TRIAL):
            point = {dimension.key: dimension.draw(rng) for dimension in self.dimensions}
            points.setdefault(tuple(point.values()), point)
            if len(points) == self.random:
                return list(points.values())
        raise UsageError(f"--random {self.random}: the space holds only {len(points)} distinct point(s) "
                         "(every --grid and choice combination); list them with --grid instead")


def plan_trials(space: Space, seeds: int, first_seed: int) -> list[Trial]:
    """Every point of ``space``, each with seeds ``first_seed`` … ``first_seed + seeds - 1``,
    numbered point by point (trial-001, trial-002 … of the first point, then the next)."""
    points = space.points()
    if not space.dimensions and seeds == 1:
        raise UsageError("nothing to vary: give --grid KEY=V1,V2, --random N with --sample KEY=DIST, or --seeds K")
    count = len(points) * seeds
    if count > MAX_TRIALS:
        raise UsageError(f"{len(points):,} points × {seeds} seeds = {count:,} trials; a sweep runs at most {MAX_TRIALS:,}")
    width = max(3, len(str(count)))
    trials = []
    for index, settings in enumerate(points):
        for repeat in range(seeds):
            number = index * seeds + repeat + 1
            trials.append(Trial(f"trial-{number:0{width}d}", index + 1, first_seed + repeat, settings))
    return trials


def refuse_another_plan(folder: Path, recorded: dict, plan: dict) -> None:
    """A rerun goes on only with the plan the folder records; anything else would mix two sweeps."""
    again = "use another --name (or --output), or delete the folder to start over"
    if recorded.get("config_sha256") != plan["config_sha256"]:
        raise UsageError(f"{folder}: its sweep was planned from {recorded.get('config')} as it was then, "
                         f"and the config has changed; {again}")
    if recorded.get("set") != plan["set"]:
        raise UsageError(f"{folder}: its sweep ran with --set {' '.join(recorded.get('set') or []) or '(none)'}, "
                         f"this one with {' '.join(plan['set']) or '(none)'}; {again}")
    old, new = recorded.get("trials") or [], plan["trials"]
    if old != new:
        differ = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), None)
        if differ is None:
            what = f"it has {len(old)} trials, this one {len(new)}"
        else:
            what = f"its {old[differ].get('trial')} is {_described(old[differ])}, this one's {_described(new[differ])}"
        raise UsageError(f"{folder}: holds another sweep ({what}); {again}")


def _described(trial: dict) -> str:
    settings = " ".join(f"{key}={value}" for key, value in (trial.get("settings") or {}).items())
    return f"{settings} seed={trial.get('seed')}".strip()
