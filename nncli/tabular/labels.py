"""Class labels as written in a CSV file: their order, and their mapping onto a model's classes."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from nncli.budgets import class_budget
from nncli.errors import DataError
from nncli.tabular.parse import at_line, find_line, listed, quoted

# The most classes a target column may hold. Each costs an output neuron, a one-hot column for
# every row and a row and column of evaluate's confusion matrix; a column with more distinct
# labels is nearly always the wrong one (an ID, free text), and would exhaust memory before
# training starts (100,000 rows of distinct labels: a 40 GB one-hot matrix). ImageNet has 1,000.
CLASSES_VARIABLE = "NNCLI_MAX_CLASSES"


def check_class_count(count: int, column: str, name: str) -> None:
    """Refuse a target column with more distinct labels than the class budget."""
    limit = class_budget()
    if count > limit:
        raise DataError(
            f"{name}: column {quoted(column)} has {count:,} distinct labels, more than the {limit:,} classes nncli "
            f"trains (is it the target? a regression target needs loss mse; set {CLASSES_VARIABLE} if the classes are right)"
        )


def class_order(labels: Iterable[str]) -> list[str]:
    """Classes in a stable order: numerically if every label is a number, else alphabetically.

    Labels keep their original spelling ("07" stays "07"); only the order is decided here.
    """
    labels = list(labels)
    try:
        return sorted(labels, key=lambda label: (float(label), label))
    except ValueError:
        return sorted(labels)


def encode_labels(
    codes: np.ndarray,
    distinct: list[str],
    classes: list[str],
    *,
    column: str,
    name: str,
    lines: Iterable[str],
    header: list[str],
    first_line: int = 2,
) -> np.ndarray:
    """Map a parsed label column (codes into ``distinct``) onto a model's class indices.

    A label the model never saw is an error naming the line where it first occurs.
    """
    index = {label: i for i, label in enumerate(classes)}
    distinct = [label.strip() for label in distinct]  # " cat" in a file is the class "cat"
    unseen = [label for label in distinct if label not in index]
    if unseen:
        line = find_line(lines, header, column, unseen[0], first_line, name)
        raise DataError(
            f"{at_line(name, line)}: column {quoted(column)}: label {quoted(unseen[0])} does not occur in the "
            f"training data (classes: {listed(classes)})"
        )
    remap = np.array([index[label] for label in distinct], dtype=np.intp)
    return remap[codes.astype(np.intp)]


