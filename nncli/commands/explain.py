"""The `explain` service: one step of gradient descent on a few training rows, in the guide's
notation (inputs, forward, loss, backward, update), with the numbers `train` computes.

The run is built as `train` builds it (:func:`prepare_training`: the same data, scaling,
encoding, initial weights, loss, optimizer and class weights), and the step is the trainer's
own (core/explain.py). A model file is explained as the first step of
`train --init-from MODEL` on the config stored in it: its weights, its data, a fresh optimizer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.commands.inspect import MAX_JSON_VALUES, looks_like_config
from nncli.commands.train import TrainingRun, prepare_training
from nncli.config import config_from_dict, load_config
from nncli.config.source import ConfigSource
from nncli.core.explain import LayerTrace, StepTrace, figure, trace_step
from nncli.core.optimizers import Optimizer
from nncli.core.rows import in_memory
from nncli.errors import DataError, ModelFileError, UsageError
from nncli.files.model import load_model
from nncli.files.runfiles import settled

Array = np.ndarray


@dataclass
class Explanation:
    source: str  # the config or model file
    rows: list[int]  # the training rows explained, 1-based
    trace: StepTrace
    input_names: list[str]
    neuron_names: list[list[str]]  # per layer, its neurons: h<k>.<i>, or the classes / targets at the output
    target_names: list[str]
    loss_name: str
    loss_params: dict
    scaling: str  # how the inputs were made from the file's columns
    classes: list[str] | None  # None for regression
    layer: int | None = None  # --layer: show only this layer (1-based)
    clip_norm: float | None = None  # training.clip_norm, when gradients are clipped
    notes: list[str] = field(default_factory=list)

    @property
    def shown_layers(self) -> list[int]:
        """1-based numbers of the layers to show."""
        return [self.layer] if self.layer else list(range(1, len(self.trace.layers) + 1))

    @property
    def loss_notation(self) -> LossNotation:
        return LOSS_NOTATION[self.loss_name]

    @property
    def row_labels(self) -> list[str]:
        """``row 3``, with the row's class for classification: ``row 3 (class setosa)``."""
        if self.classes is None:
            return [f"row {row}" for row in self.rows]
        Y = self.trace.Y
        codes = Y[:, 0].astype(int) if Y.shape[1] == 1 else np.argmax(Y, axis=1)  # binary: 1 for the second class
        return [f"row {row} (class {self.classes[code]})" for row, code in zip(self.rows, codes)]

    def row_formulas(self, after: bool = False) -> list[str]:
        """Each row's loss written out with its numbers: ``½(10 − 6)²``."""
        output = self.trace.output_after if after else self.trace.output
        return [self.loss_notation.row(p, y, self.loss_params) for p, y in zip(output, self.trace.Y)]

    def mean_formula(self, after: bool = False) -> str | None:
        """``(l₁ + l₂ + …)/n`` for several rows (weighted ``w·l`` with class weights); None for one."""
        losses = self.trace.losses_after if after else self.trace.losses
        if len(losses) == 1 and self.trace.sample_weights is None:
            return None
        weights = self.trace.sample_weights
        terms = [figure(value) for value in losses] if weights is None else \
            [f"{figure(w)}·{figure(value)}" for w, value in zip(weights, losses)]
        return f"({' + '.join(fitting(terms, 48))})/{len(losses)}"

    @property
    def output_delta(self) -> str:
        """δ of the output layer in symbols."""
        trace, notation = self.trace, self.loss_notation
        if trace.loss_gradient is None:
            return notation.fused
        weighted = "·w" if trace.sample_weights is not None else ""
        return f"δ = ∂L/∂ŷ ⊙ {trace.layers[-1].activation}′(z),  ∂L/∂ŷ = {notation.gradient}{weighted}"

    @property
    def update_rules(self) -> list[str]:
        optimizer = self.trace.optimizer
        rules = UPDATE_RULES[optimizer.name](optimizer)
        gradient = ["g = ∂L/∂W"]  # then clipped, then weight decay added: Optimizer.minimize's order
        if self.trace.gradient_norm is not None:
            gradient.append("g ← g·c/‖g‖ when ‖g‖ > c  (‖g‖: the norm of every gradient together)")
        if optimizer.weight_decay and not getattr(optimizer, "decoupled", False):
            gradient.append("g ← g + λ·W  (weights only, not b)")
        if rules == ["W ← W − ε·g"] and gradient == ["g = ∂L/∂W"]:  # the guide's rule, as it writes it
            return ["W ← W − ε·∂L/∂W"]
        return [*gradient, *rules]

    @property
    def update_values(self) -> dict[str, float]:
        """The numbers of :attr:`update_rules` by name (the optimizer's attributes)."""
        optimizer = self.trace.optimizer
        values = {name: float(getattr(optimizer, name)) for name in HYPERPARAMETERS if hasattr(optimizer, name)}
        for name in ("weight_decay", "momentum"):  # 0: the rules leave them out
            if not values.get(name, 1):
                values.pop(name)
        if hasattr(optimizer, "beta1"):  # Adam's bias correction counts the steps
            values["steps"] = optimizer.steps
        if self.trace.gradient_norm is not None:
            values["clip_norm"] = self.clip_norm
            values["gradient_norm"] = self.trace.gradient_norm
        return values

    @property
    def update_symbols(self) -> str:
        """:attr:`update_values` as the rules write them: ``ε = 0.001, β₁ = 0.9, …``."""
        return ", ".join(f"{SYMBOLS[name]} = {figure(value)}" for name, value in self.update_values.items())

    def to_json(self) -> dict:
        trace = self.trace
        shown = self.shown_layers
        values = sum(array.size for k in shown for array in _layer_arrays(trace.layers[k - 1]).values() if array is not None)
        if values > MAX_JSON_VALUES:
            raise UsageError(f"--json: {values:,} values in the trace; --json prints at most {MAX_JSON_VALUES:,} "
                             "(pick one layer with --layer K)")
        return {
            "source": self.source,
            "rows": self.rows,
            "layer": self.layer,
            "network": {"sizes": [trace.X.shape[1]] + [layer.W.shape[1] for layer in trace.layers],
                        "activations": [layer.activation for layer in trace.layers], "dtype": trace.X.dtype.name},
            "inputs": {"names": self.input_names, "scaling": self.scaling, "x": trace.X.tolist()},
            "targets": {"names": self.target_names, "y": trace.Y.tolist(),
                        "sample_weights": None if trace.sample_weights is None else trace.sample_weights.tolist()},
            "layers": [self._layer_json(k) for k in shown],
            "loss": {"name": self.loss_name, "params": self.loss_params, "formula": self.loss_notation.formula,
                     "rows": [{"row": row, "formula": text, "value": float(value)}
                              for row, text, value in zip(self.rows, self.row_formulas(), trace.losses)],
                     "mean": self.mean_formula(), "value": trace.loss},
            "output_delta": {"formula": self.output_delta,
                             "loss_gradient": None if trace.loss_gradient is None else trace.loss_gradient.tolist()},
            "update": {"optimizer": trace.optimizer.name, "rules": self.update_rules, "values": self.update_values,
                       "steps": trace.optimizer.steps},
            "after": {"output": trace.output_after.tolist(), "loss": {
                "rows": [{"row": row, "formula": text, "value": float(value)}
                         for row, text, value in zip(self.rows, self.row_formulas(after=True), trace.losses_after)],
                "mean": self.mean_formula(after=True), "value": trace.loss_after}},
            "notes": self.notes,
        }

    def _layer_json(self, k: int) -> dict:
        layer = self.trace.layers[k - 1]
        return {"layer": k, "activation": layer.activation, "neurons": self.neuron_names[k - 1],
                **{name: None if value is None else value.tolist() for name, value in _layer_arrays(layer).items()}}


def _layer_arrays(layer: LayerTrace) -> dict[str, Array | None]:
    """A layer's arrays by their --json names; the optimizer's state as ``<slot>_W``, ``<slot>_b``."""
    named = {name: getattr(layer, name) for name in ("x", "W", "b", "z", "h", "delta", "grad_W", "grad_b", "grad_h",
                                                     "derivative", "W_after", "b_after")}
    named.update({f"{slot}_{name}": array for slot, arrays in layer.state.items() for name, array in arrays.items()})
    return named


def explain(target: Path, rows: int | None = None, row: Sequence[int] = (), layer: int | None = None,
            overrides: Sequence[str] = ()) -> Explanation:
    """`nncli explain CONFIG|MODEL`: one step of `train` on the first ``rows`` training rows
    (default 1), or on the rows numbered ``row`` (1-based), traced."""
    if row and rows is not None:
        raise UsageError("give either --rows N (the first N training rows) or --row N (repeatable), not both")
    is_config = looks_like_config(target)
    run = prepare_training(load_config(target, list(overrides)), writes=False) if is_config else _run_of_model(target, overrides)
    layers = len(run.network.weights)
    if layer is not None and not 1 <= layer <= layers:
        raise UsageError(f"--layer {layer}: {target} has {layers} layer{'s' * (layers != 1)} (1–{layers})")
    indices = _chosen_rows(run, rows or 1, row, target)
    trainer = run.trainer()  # the plan `train` would run: loss, optimizer, schedule, class weights, clipping
    plan = trainer.plan
    plan.optimizer.learning_rate = plan.schedule.rate(1)  # as the trainer sets it for its first epoch
    X, Y, weights = _batch(run, plan.sample_weights, indices)
    dropout_rng = trainer.dropout_rng if any(run.network.dropout) else None
    trace = trace_step(run.network, plan.loss, plan.optimizer, X, Y, weights, dropout_rng, plan.clip_norm)
    explanation = Explanation(
        source=str(target), rows=[i + 1 for i in indices], trace=trace, input_names=_input_names(run),
        neuron_names=_neuron_names(run), target_names=list(run.targets), loss_name=plan.loss.name,
        loss_params=dict(plan.loss.params), scaling=_scaling(run), classes=run.classes, layer=layer, clip_norm=plan.clip_norm,
    )
    explanation.notes = _notes(run, plan.optimizer, is_config, target)
    return explanation


def _run_of_model(path: Path, overrides: Sequence[str]) -> TrainingRun:
    """The run `train --init-from MODEL` would start with the config stored in the model file."""
    model = load_model(path)
    stored = copy.deepcopy(model.config)
    data = stored.get("data") if isinstance(stored, dict) else None
    if not isinstance(data, dict) or not data.get("train"):
        raise ModelFileError(f"{path}: holds no training config to find its data in; explain its config instead")
    for key in ("train", "validation"):
        file = data.get(key)
        if isinstance(file, str) and not Path(file).is_file():
            raise DataError(f"{path} was trained on {file} (data.{key}), which is not there; explain needs its "
                            "training rows: explain a config that names the data instead")
    stored.setdefault("model", {})["init_from"] = str(Path(path).resolve())
    return prepare_training(config_from_dict(settled(stored), ConfigSource(Path(path)), list(overrides)), writes=False)


def _chosen_rows(run: TrainingRun, count: int, numbers: Sequence[int], target: Path) -> list[int]:
    available = len(run.data.X_train)
    have = f"{target} has {available:,} training row{'s' * (available != 1)}"
    for number in numbers:
        if not 1 <= number <= available:
            raise UsageError(f"--row {number}: {have}" + (f" (1–{available:,})" if available > 1 else ""))
    if not numbers and count > available:
        raise UsageError(f"--rows {count}: {have}")
    return [number - 1 for number in numbers] if numbers else list(range(count))


def _batch(run: TrainingRun, sample_weights: Array | None, indices: list[int]) -> tuple[Array, Array, Array | None]:
    order = np.asarray(indices, dtype=np.intp)
    X = run.data.X_train
    if in_memory(X):
        rows = X[order]
    else:  # rows read from disk, as the trainer gathers them
        rows = X.gather(order, 0, len(order), np.empty((len(order), X.shape[1]), X.dtype))
    return rows, run.data.Y_train[order], None if sample_weights is None else sample_weights[order]


def _input_names(run: TrainingRun) -> list[str]:
    encoding = run.data.encoding
    return list(encoding.input_names) if encoding is not None else list(run.features)


def _neuron_names(run: TrainingRun) -> list[list[str]]:
    """Names for each layer's neurons, as `inspect --weights` writes them."""
    sizes = run.network.sizes
    names = [[f"h{k}.{i}" for i in range(1, size + 1)] for k, size in enumerate(sizes[1:-1], start=1)]
    classes = run.classes
    if classes is None:
        names.append(list(run.targets))
    else:  # (binary cross-entropy: one sigmoid, the probability of the second class)
        names.append([f"P({name})" for name in (classes[-1:] if sizes[-1] == 1 else classes)])
    return names


SCALING = {"standard": "standardised: (value − mean)/std of the training rows",
           "minmax": "min-max scaled: (value − min)/(max − min) of the training rows",
           "none": "as in the file"}


def _scaling(run: TrainingRun) -> str:
    text = f"features {SCALING[run.data.feature_scaler.method]}"
    encoding = run.data.encoding
    if encoding is not None and encoding.categorical:
        text += "; categories one-hot (column=category, 0 or 1)"
    if run.data.target_scaler is not None and run.data.target_scaler.method != "none":
        text += f"; targets {SCALING[run.data.target_scaler.method]}"
    return text


def _notes(run: TrainingRun, optimizer: Optimizer, is_config: bool, target: Path) -> list[str]:
    notes = []
    if not is_config:
        notes.append(f"the first step of `train --init-from {target}` on its config: its weights, a fresh optimizer")
    if optimizer.layer_step() is not None:
        notes.append("train takes this step inside backpropagation, with ε folded into δ (core/optimizers.py); "
                     "the weights after the step are the ones it computes")
    if any(run.network.dropout):
        notes.append("dropout: the masks of train's first batch; \"after dropout\" is what the layer above "
                     "sees: dropped neurons 0, the others scaled by 1/(1 − rate)")
    if optimizer.learning_rate != run.config.training.learning_rate:
        notes.append(f"ε = {figure(optimizer.learning_rate)}: the schedule's rate for epoch 1")
    return notes


# --- the guide's notation ---------------------------------------------------------------------
def _operand(value: float) -> str:
    """A number after an operator: negative ones in parentheses, ``6 − (−1)``."""
    text = figure(value)
    return f"({text})" if text.startswith("−") else text


def fitting(terms: list[str], budget: int) -> list[str]:
    """As many of ``terms`` as fit ``budget`` characters joined, and ``…`` for the rest."""
    kept = [terms[0]]
    for term in terms[1:]:
        if sum(len(t) + 3 for t in kept) + len(term) > budget:
            return [*kept, "…"]
        kept.append(term)
    return kept


TERMS_BUDGET = 52  # characters of the terms of one row's loss: a line stays within 80 columns


def _sum(terms: list[str], outputs: int, before: str = "(", after: str = ")") -> str:
    joined = " + ".join(fitting(terms, TERMS_BUDGET))
    return joined if outputs == 1 else f"{before}{joined}{after}/{outputs}"


def _difference(p: float, y: float) -> str:
    return f"{figure(p)} − {_operand(y)}"


def _quadratic(p: Array, y: Array, params: dict) -> str:
    terms = [f"({_difference(a, b)})²" for a, b in zip(p, y)]
    return "½" + terms[0] if len(terms) == 1 else "½[" + " + ".join(fitting(terms, TERMS_BUDGET)) + "]"


def _mse(p: Array, y: Array, params: dict) -> str:
    return _sum([f"({_difference(a, b)})²" for a, b in zip(p, y)], len(p), "[", "]")


def _mae(p: Array, y: Array, params: dict) -> str:
    return _sum([f"|{_difference(a, b)}|" for a, b in zip(p, y)], len(p))


def _huber(p: Array, y: Array, params: dict) -> str:
    delta = params["delta"]
    terms = [f"½({_difference(a, b)})²" if abs(a - b) <= delta else f"{figure(delta)}·(|{_difference(a, b)}| − ½·{figure(delta)})"
             for a, b in zip(p, y)]
    return _sum(terms, len(p))


def _cross_entropy(p: Array, y: Array, params: dict) -> str:
    terms = [f"ln({figure(a)})" if b == 1 else f"{figure(b)}·ln({figure(a)})" for a, b in zip(p, y) if b != 0]
    if not terms:
        return "0"
    return "−" + terms[0] if len(terms) == 1 else "−(" + " + ".join(fitting(terms, TERMS_BUDGET)) + ")"


def _binary_cross_entropy(p: Array, y: Array, params: dict) -> str:
    def term(a: float, b: float) -> str:
        if b == 1:
            return f"ln({figure(a)})"
        if b == 0:
            return f"ln(1 − {figure(a)})"
        return f"{figure(b)}·ln({figure(a)}) + {figure(1 - b)}·ln(1 − {figure(a)})"

    terms = [term(a, b) for a, b in zip(p, y)]
    if len(terms) == 1:
        return "−" + (terms[0] if y[0] in (0, 1) else f"[{terms[0]}]")
    return "−[" + " + ".join(fitting(terms, TERMS_BUDGET)) + f"]/{len(terms)}"


@dataclass(frozen=True)
class LossNotation:
    formula: str  # one row's loss, in symbols (K: the outputs)
    gradient: str  # ∂L/∂ŷ of the mean over the n rows, in symbols
    row: Callable[[Array, Array, dict], str]  # one row's loss with its numbers (prediction, target, loss params)
    fused: str = ""  # the output δ when the output activation's derivative cancels against the loss's


LOSS_NOTATION: dict[str, LossNotation] = {
    "quadratic": LossNotation("L = ½ Σ (ŷ − y)²", "(ŷ − y)/n", _quadratic),
    "mse": LossNotation("L = Σ (ŷ − y)² / K", "2(ŷ − y)/(K·n)", _mse),
    "mae": LossNotation("L = Σ |ŷ − y| / K", "sign(ŷ − y)/(K·n)", _mae),
    "huber": LossNotation("L = Σ huber(ŷ − y) / K,  huber(e) = ½e² if |e| ≤ δ else δ(|e| − ½δ)",
                          "clip(ŷ − y, −δ, δ)/(K·n)", _huber),
    "cross_entropy": LossNotation("L = −Σ y·ln ŷ", "−y/ŷ/n", _cross_entropy,
                                  "δ = (ŷ − y)/n  (softmax's derivative and cross-entropy's cancel to ŷ − y)"),
    "binary_cross_entropy": LossNotation("L = −Σ [y·ln ŷ + (1 − y)·ln(1 − ŷ)] / K", "(−y/ŷ + (1 − y)/(1 − ŷ))/(K·n)",
                                         _binary_cross_entropy,
                                         "δ = (ŷ − y)/(K·n)  (the sigmoid's derivative and the loss's cancel to ŷ − y)"),
}


def _sgd_rules(optimizer: Optimizer) -> list[str]:
    if not optimizer.momentum:
        return ["W ← W − ε·g"]
    if optimizer.nesterov:
        return ["v ← μ·v + g", "W ← W − ε·(g + μ·v)  (Nesterov)"]
    return ["v ← μ·v + g  (velocity, starts at 0)", "W ← W − ε·v"]


def _adam_rules(optimizer: Optimizer) -> list[str]:
    decoupled = ["W ← W − ε·λ·W  (decoupled weight decay)"] if optimizer.decoupled and optimizer.weight_decay else []
    return [*decoupled, "m ← β₁·m + (1 − β₁)·g,  v ← β₂·v + (1 − β₂)·g²  (moments, start at 0)",
            "W ← W − ε·m̂/(√v̂ + ϵ),  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ)"]


def _rmsprop_rules(optimizer: Optimizer) -> list[str]:
    square = "s ← ρ·s + (1 − ρ)·g²  (starts at 0)"
    if optimizer.momentum:
        return [square, "v ← μ·v + g/(√s + ϵ)", "W ← W − ε·v"]
    return [square, "W ← W − ε·g/(√s + ϵ)"]


HYPERPARAMETERS = ("learning_rate", "momentum", "beta1", "beta2", "epsilon", "rho", "weight_decay")  # of Optimizer subclasses
# The optimizer's attributes (and the step's numbers) by the symbols the rules use.
SYMBOLS = {"learning_rate": "ε", "momentum": "μ", "beta1": "β₁", "beta2": "β₂", "epsilon": "ϵ", "rho": "ρ",
           "weight_decay": "λ", "steps": "t", "clip_norm": "c", "gradient_norm": "‖g‖"}

UPDATE_RULES: dict[str, Callable[[Optimizer], list[str]]] = {
    "sgd": _sgd_rules, "adam": _adam_rules, "adamw": _adam_rules, "rmsprop": _rmsprop_rules,
}
