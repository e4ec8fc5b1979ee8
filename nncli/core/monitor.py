"""Tracking whether a monitored metric is still improving (early stopping, reduce-on-plateau)."""

from __future__ import annotations


class Improvement:
    """Two separate questions about a monitored value, asked once per epoch.

    * Which epoch is the best? The one with the best value so far (lower for losses, higher
      for accuracy and R²): strictly better than every earlier epoch, so the earliest wins a
      tie. ``min_delta`` plays no part here: early stopping restores this epoch, and an epoch
      that is better by less than ``min_delta`` is still better.
    * Has patience run out? An epoch resets the patience count only when it beats the
      *reference* — the value of the epoch that last reset the count — by more than
      ``min_delta``. Measuring against the reference, not the best, lets a slow but steady
      improvement reset patience once it adds up to more than ``min_delta`` (as Keras'
      ReduceLROnPlateau does).
    """

    def __init__(self, patience: int, min_delta: float = 0.0, minimize: bool = True):
        self.patience = patience
        self.min_delta = min_delta
        self.minimize = minimize
        self.best: float | None = None  # the best value seen
        self.reference: float | None = None  # the value of the epoch that last reset patience
        self.wait = 0  # epochs since that reset

    def _beats(self, value: float, other: float, margin: float) -> bool:
        return value < other - margin if self.minimize else value > other + margin

    def update(self, value: float) -> bool:
        """Record an epoch's value; True when it is a new best (whatever ``min_delta`` is)."""
        if self.reference is None or self._beats(value, self.reference, self.min_delta):
            self.reference = value
            self.wait = 0
        else:
            self.wait += 1
        if self.best is None or self._beats(value, self.best, 0.0):
            self.best = value
            return True
        return False

    @property
    def exhausted(self) -> bool:
        """No improvement for ``patience`` epochs (patience 0: the first epoch without one)."""
        return self.wait > 0 and self.wait >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "reference": self.reference, "wait": self.wait}

    def load_state(self, state: dict) -> None:
        # A state saved before best and reference were told apart has only "best", which then
        # was both the value that last reset patience and the value of the epoch kept as best.
        self.best, self.wait = state["best"], state["wait"]
        self.reference = state.get("reference", state["best"])


def minimizes(monitor: str, mode: str = "auto") -> bool:
    """Whether lower is better for ``monitor`` (losses) — unless ``mode`` says min or max."""
    if mode != "auto":
        return mode == "min"
    return monitor.endswith("loss")
