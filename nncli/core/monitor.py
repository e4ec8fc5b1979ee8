"""Tracking whether a monitored metric is still improving (early stopping, reduce-on-plateau)."""

from __future__ import annotations


class Improvement:
    """Best value so far, the epochs waited since, and whether patience has run out.

    An epoch improves when it beats the best by more than ``min_delta`` (lower for losses,
    higher for accuracy and R²).
    """

    def __init__(self, patience: int, min_delta: float = 0.0, minimize: bool = True):
        self.patience = patience
        self.min_delta = min_delta
        self.minimize = minimize
        self.best: float | None = None
        self.wait = 0

    def update(self, value: float) -> bool:
        """Record an epoch's value; True when it is a new best."""
        if self.best is None or (
            value < self.best - self.min_delta if self.minimize else value > self.best + self.min_delta
        ):
            self.best = value
            self.wait = 0
            return True
        self.wait += 1
        return False

    @property
    def exhausted(self) -> bool:
        """No improvement for ``patience`` epochs (patience 0: the first epoch without one)."""
        return self.wait > 0 and self.wait >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state(self, state: dict) -> None:
        self.best, self.wait = state["best"], state["wait"]


def minimizes(monitor: str, mode: str = "auto") -> bool:
    """Whether lower is better for ``monitor`` (losses) — unless ``mode`` says min or max."""
    if mode != "auto":
        return mode == "min"
    return monitor.endswith("loss")
