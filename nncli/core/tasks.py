"""What each loss means for the task: the one table that says, per loss, whether it
classifies or regresses, which output activation it pairs with, and how targets are encoded.

The config checks, the dataset, the model file, the model's outputs and `evaluate` all read
this table, so a loss is described once.  It is plain data and imports nothing, so the config
package can validate pairings without loading the numerical core.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossKind:
    task: str  # "classification" or "regression"
    output: str  # the output activation `output_activation: auto` chooses
    # Cross-entropy is defined on probabilities only: no other output activation will do.
    output_required: bool
    # How targets become network outputs: "one_hot" (a column per class), "binary" (one
    # column, 1 for the second of two classes: the sigmoid's P(second class)), or "values".
    targets: str

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    def output_width(self, classes: int | None, targets: int) -> int:
        """Neurons of the output layer for this many classes (classification) or target columns."""
        if self.targets == "binary":
            return 1
        return classes if self.targets == "one_hot" else targets


LOSS_KINDS: dict[str, LossKind] = {
    "cross_entropy": LossKind("classification", "softmax", True, "one_hot"),
    "binary_cross_entropy": LossKind("classification", "sigmoid", True, "binary"),
    "mse": LossKind("regression", "identity", False, "values"),
    "quadratic": LossKind("regression", "identity", False, "values"),
    "mae": LossKind("regression", "identity", False, "values"),
    "huber": LossKind("regression", "identity", False, "values"),
}
