"""Learning-rate schedules, evaluated once per epoch (epochs count from 1).

``rate(epoch)`` gives the learning rate for an epoch; ``observe(value)`` feeds the monitored
metric at an epoch's end (only reduce-on-plateau uses it). A linear warm-up over the first
epochs can wrap any schedule. State can be saved and restored for exact resumption.
"""

from __future__ import annotations

import math

from nncli.core.monitor import Improvement


class Schedule:
    name = ""

    def __init__(self, base_rate: float, epochs: int, warmup_epochs: int = 0):
        self.base_rate = base_rate
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs

    def rate(self, epoch: int) -> float:
        rate = self._rate(epoch)
        if epoch <= self.warmup_epochs:
            rate *= epoch / (self.warmup_epochs + 1)  # ramps up to the full rate after warm-up
        return rate

    def _rate(self, epoch: int) -> float:
        return self.base_rate

    def observe(self, value: float | None) -> None:
        pass

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass


class Constant(Schedule):
    name = "constant"


class Step(Schedule):
    """Multiply by ``gamma`` every ``step_size`` epochs."""

    name = "step"

    def __init__(self, base_rate, epochs, warmup_epochs=0, step_size: int = 10, gamma: float = 0.5):
        super().__init__(base_rate, epochs, warmup_epochs)
        self.step_size, self.gamma = step_size, gamma

    def _rate(self, epoch):
        return self.base_rate * self.gamma ** ((epoch - 1) // self.step_size)


class Exponential(Step):
    """Multiply by ``gamma`` every epoch (a step schedule with steps of one epoch)."""

    name = "exponential"

    def __init__(self, base_rate, epochs, warmup_epochs=0, gamma: float = 0.95):
        super().__init__(base_rate, epochs, warmup_epochs, step_size=1, gamma=gamma)


class Cosine(Schedule):
    """Half a cosine from the base rate (first epoch) down towards ``min_lr`` (after the last)."""

    name = "cosine"

    def __init__(self, base_rate, epochs, warmup_epochs=0, min_lr: float = 0.0):
        super().__init__(base_rate, epochs, warmup_epochs)
        self.min_lr = min_lr

    def _rate(self, epoch):
        progress = (epoch - 1) / self.epochs
        return self.min_lr + (self.base_rate - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


class ReduceOnPlateau(Schedule):
    """Multiply by ``factor`` when the monitored value has not improved for ``patience`` epochs."""

    name = "reduce_on_plateau"

    def __init__(self, base_rate, epochs, warmup_epochs=0, factor=0.5, patience=5, min_delta=0.0, min_lr=0.0, minimize=True):
        super().__init__(base_rate, epochs, warmup_epochs)
        self.factor, self.min_lr = factor, min_lr
        self.current = base_rate
        self.tracker = Improvement(patience=patience, min_delta=min_delta, minimize=minimize)

    def _rate(self, epoch):
        return self.current

    def observe(self, value):
        if value is None:
            return
        self.tracker.update(value)
        if self.tracker.exhausted:
            self.current = max(self.current * self.factor, self.min_lr)
            self.tracker.wait = 0

    def state(self):
        return {"current": self.current, **self.tracker.state()}

    def load_state(self, state):
        self.current = state["current"]
        self.tracker.load_state(state)


SCHEDULES: dict[str, type[Schedule]] = {cls.name: cls for cls in (Constant, Step, Exponential, Cosine, ReduceOnPlateau)}


def get_schedule(name: str, base_rate: float, epochs: int, warmup_epochs: int = 0, **params) -> Schedule:
    try:
        cls = SCHEDULES[name]
    except KeyError:
        raise ValueError(f"Unknown schedule {name!r}. Expected one of: {', '.join(SCHEDULES)}") from None
    return cls(base_rate, epochs, warmup_epochs, **params)
