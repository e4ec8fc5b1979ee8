"""The `gradcheck` service: backpropagation checked against central differences on the network a
config trains (as training starts) or a model file holds (its trained weights).

The rows, the loss, the class weights and the weight decay come from the same code `train`
runs (``prepare_training`` and its trainer's plan), so what passes here is what training uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.commands.inspect import looks_like_config
from nncli.commands.train import TrainingRun, prepare_training
from nncli.config import Config, config_from_dict, load_config
from nncli.config.source import ConfigSource
from nncli.core.gradcheck import Objective, ParameterCheck, check_gradients
from nncli.core.network import MLP
from nncli.core.rows import in_memory
from nncli.errors import DataError, ModelFileError, TrainingError, UsageError
from nncli.files.model import load_model

# Random streams of the run's seed after train's four (commands/train.py: split, init, shuffle,
# dropout): spawning more children leaves the first four as they are.
SAMPLING, RANDOM_ROWS = 4, 5
UNSEEDED = 0  # a config without a seed is checked with this one, so that a check repeats exactly


@dataclass
class GradcheckResult:
    target: str  # the config or model file
    trained: bool  # a model's trained weights (True) or a config's initial ones
    random_rows: bool  # random inputs instead of the training rows
    rows: int
    dtype: str  # the network's own dtype; the check runs in float64 whatever it is
    loss: str
    loss_params: dict
    class_weights: bool
    weight_decay: float
    dropout: list[float]  # the hidden layers' rates, all off for the check
    seed: int
    eps: float
    tol: float
    samples: int | None
    checks: list[ParameterCheck]

    @property
    def failures(self) -> list[ParameterCheck]:
        return [check for check in self.checks if not check.passes(self.tol)]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def worst(self) -> ParameterCheck:
        return max(self.checks, key=lambda check: check.max_rel_error)

    @property
    def skipped(self) -> int:
        return sum(check.skipped for check in self.checks)

    @property
    def failure_message(self) -> str:
        layers = sorted({check.layer for check in self.failures})
        worst = max(self.failures, key=lambda check: check.max_rel_error)
        which = f"layer{'s' * (len(layers) > 1)} {', '.join(map(str, layers))}"
        return (f"gradient check failed in {which}: {worst.label}{list(worst.worst)} has relative error "
                f"{worst.max_rel_error:.1e} > --tol {self.tol:g} (backpropagation {worst.analytic:.9g}, "
                f"central difference {worst.numeric:.9g})")

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "weights": "trained" if self.trained else "initial",
            "rows": {"count": self.rows, "source": "random" if self.random_rows else "training"},
            "dtype": self.dtype,
            "checked_in": "float64",
            "loss": self.loss,
            "loss_params": self.loss_params,
            "class_weights": self.class_weights,
            "weight_decay": self.weight_decay,
            "dropout": "off",
            "seed": self.seed,
            "eps": self.eps,
            "tol": self.tol,
            "samples": self.samples,
            "passed": self.passed,
            "max_rel_error": self.worst.max_rel_error,
            "skipped_at_kinks": self.skipped,
            "failed_layers": sorted({check.layer for check in self.failures}),
            "parameters": [check.to_json() for check in self.checks],
        }


def gradcheck(target: Path, rows: int = 16, eps: float = 1e-6, tol: float = 1e-6, samples: int | None = None,
              random: bool = False, overrides: list[str] = ()) -> GradcheckResult:
    """`nncli gradcheck`: compare every gradient (or ``samples`` per array) with central differences."""
    _check_numbers(rows, eps, tol, samples)
    if looks_like_config(target):
        run = prepare_training(_seeded_config(target, list(overrides)), writes=False)
        network, trained = run.network, False
    else:
        if overrides:
            raise UsageError("--set applies to a config, not to a model file")
        run, network = _model_run(target)
        trained = True
    plan = run.trainer().plan  # the loss, class weights and weight decay exactly as train builds them
    streams = np.random.SeedSequence(run.seed).spawn(RANDOM_ROWS + 1)
    X, Y, weights = _random_rows(plan, rows, streams[RANDOM_ROWS]) if random else _first_rows(plan, rows)
    objective = Objective(_float64_copy(network), plan.loss, X, Y, weights, plan.optimizer.weight_decay)
    value, _ = objective.value_and_sides()
    if not math.isfinite(value):
        raise TrainingError(f"{target}: the loss on these rows is {value}; there is no gradient to check")
    checks = check_gradients(objective, eps, samples, np.random.default_rng(streams[SAMPLING]))
    return GradcheckResult(
        target=str(target), trained=trained, random_rows=random, rows=len(X), dtype=network.dtype.name,
        loss=plan.loss.name, loss_params=dict(plan.loss.params), class_weights=weights is not None,
        weight_decay=plan.optimizer.weight_decay, dropout=list(run.network.dropout), seed=run.seed,  # (a model file keeps no rates)
        eps=eps, tol=tol, samples=samples, checks=checks,
    )


def _check_numbers(rows: int, eps: float, tol: float, samples: int | None) -> None:
    if rows < 1:
        raise UsageError(f"--rows {rows}: expected a number of rows ≥ 1")
    if not (math.isfinite(eps) and eps > 0):
        raise UsageError(f"--eps {eps}: expected a step > 0 (e.g. 1e-6)")
    if not (math.isfinite(tol) and tol >= 0):
        raise UsageError(f"--tol {tol}: expected a relative error ≥ 0 (e.g. 1e-6)")
    if samples is not None and samples < 1:
        raise UsageError(f"--samples {samples}: expected a number of entries ≥ 1 per weight matrix or bias vector")


def _seeded_config(path: Path, overrides: list[str]) -> Config:
    config = load_config(path, overrides)
    if config.seed is None:  # train would draw one; a check should repeat exactly
        config = load_config(path, [f"seed={UNSEEDED}", *overrides])
    return config


def _model_run(path: Path) -> tuple[TrainingRun, MLP]:
    """The run a model's stored config describes (its data read as train read it), and the
    model's trained network."""
    model = load_model(path)
    if not model.config:
        raise ModelFileError(f"{path}: the model stores no training config, so its training data is unknown")
    stored = {**model.config, "model": {**model.config.get("model", {}), "init_from": None}}  # the weights are the model's
    train = stored.get("data", {}).get("train")
    if isinstance(train, str) and Path(train).is_absolute() and not Path(train).exists():  # (a run stores it absolute)
        raise DataError(f"{path}: its training data {train} is no longer there (moved or deleted); "
                        "gradcheck a config that names the data instead")
    run = prepare_training(config_from_dict(stored, ConfigSource(Path(path))), writes=False)
    if run.network.sizes != model.network.sizes:
        raise DataError(f"{path} has layers {model.network.sizes}, but its training data (as its stored config reads it) "
                        f"makes {run.network.sizes}: the data changed since training")
    return run, model.network


def _first_rows(plan, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The first ``rows`` training rows as the network sees them (encoded, scaled), float64."""
    n = min(rows, len(plan.X))
    if in_memory(plan.X):
        X = plan.X[:n]
    else:  # data bigger than memory: read the rows as training gathers a batch
        X = plan.X.gather(np.arange(n), 0, n, np.empty((n, plan.X.shape[1]), plan.X.dtype))
    weights = None if plan.sample_weights is None else plan.sample_weights[:n]
    return _float64(X), _float64(plan.Y[:n]), _float64(weights)


def _random_rows(plan, rows: int, seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Inputs drawn from N(0, 1), as standardised features are; each row's target (and class
    weight) that of a training row drawn at random, so targets are encoded as the loss wants."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, plan.X.shape[1]))
    drawn = rng.integers(len(plan.Y), size=rows)
    weights = None if plan.sample_weights is None else plan.sample_weights[drawn]
    return X, _float64(plan.Y[drawn]), _float64(weights)


def _float64(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else np.array(array, dtype=np.float64)


def _float64_copy(network: MLP) -> MLP:
    """The network in float64 (a float32 one too: differences of float32 losses would resolve
    nothing), as a copy the check may perturb. Dropout rates are kept and never applied."""
    return MLP([W.astype(np.float64) for W in network.weights],
               [None if b is None else b.astype(np.float64) for b in network.biases],
               network.activations, network.dropout)
