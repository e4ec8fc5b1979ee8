"""Class labels as written in a CSV file: their order, and their mapping onto a model's classes."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from nncli.errors import DataError
from nncli.tabular.parse import find_line


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
        line = find_line(lines, header, column, unseen[0], first_line)
        shown = ", ".join(classes[:10]) + (f", … ({len(classes)} in all)" if len(classes) > 10 else "")
        raise DataError(
            f"{name}:{line}: column {column!r}: label {unseen[0]!r} does not occur in the training data (classes: {shown})"
        )
    remap = np.array([index[label] for label in distinct], dtype=np.intp)
    return remap[codes.astype(np.intp)]


