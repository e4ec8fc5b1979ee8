"""A trained model: the network plus everything needed to apply it to raw CSV columns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nncli.core.losses import Loss, get_loss
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler, class_probabilities


class FeatureOverflow(ValueError):
    """A feature value that normalisation and the model's dtype cannot represent (1e39 in float32)."""

    def __init__(self, row: int, column: int):
        super().__init__(f"row {row}, column {column}")
        self.row, self.column = row, column


@dataclass
class TrainedModel:
    network: MLP
    loss: str
    features: list[str]
    targets: list[str]
    classes: list[str] | None  # None for regression
    feature_scaler: Scaler
    target_scaler: Scaler | None = None
    loss_params: dict = field(default_factory=dict)  # e.g. Huber's delta, as trained with
    config: dict = field(default_factory=dict)  # the resolved config it was trained with
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    @property
    def is_classification(self) -> bool:
        return self.classes is not None

    @property
    def loss_function(self) -> Loss:
        """The loss as trained, parameters included (evaluate reports the same loss as training)."""
        return get_loss(self.loss, **self.loss_params)

    def outputs(self, X_raw: np.ndarray) -> np.ndarray:
        """Class probabilities, or regression values in the target's own units."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            X = self.feature_scaler.transform(X_raw, self.network.dtype)
        finite = np.isfinite(X)
        if not finite.all():
            row, column = (int(i) for i in np.argwhere(~finite)[0])
            raise FeatureOverflow(row, column)
        out = self.network.forward(X)
        if self.is_classification:
            return class_probabilities(out, self.loss_function.kind)
        if self.target_scaler is not None:
            out = self.target_scaler.inverse(out)
        return out


def layer_table(network: MLP) -> list[dict]:
    """One row per weight layer: the shapes the guide draws, activation and parameter count."""
    rows = []
    layers = zip(network.weights, network.biases, network.activation_names, network.activation_params)
    for index, (W, b, name, params) in enumerate(layers, start=1):
        rows.append(
            {
                "layer": index,
                "weights": list(W.shape),
                "bias": None if b is None else list(b.shape),
                "activation": name,
                "activation_params": params,  # e.g. leaky_relu's slope; {} for most
                "parameters": W.size + (0 if b is None else b.size),
            }
        )
    return rows
