"""Rows a network trains on that are not in memory: what the trainer asks of them.

In-memory training data is a NumPy array. Data bigger than memory (see
:mod:`nncli.tabular.outofcore`) is a :class:`RowSource` instead: it reads, scales and hands
over rows a window at a time, in the order of an epoch.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np


class RowSource(Protocol):
    shape: tuple[int, int]  # (rows, features)
    dtype: np.dtype  # of the rows handed over (the model's)
    shuffle_blocks: tuple[int, int]  # (block_rows, window_blocks) for chunked_permutation

    def __len__(self) -> int: ...

    def gather(self, order: np.ndarray, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """The rows ``order[start:stop]``, ready for the network, written into ``out``."""
        ...

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) in file order: for evaluating on every row."""
        ...


def in_memory(X) -> bool:
    return isinstance(X, np.ndarray)
