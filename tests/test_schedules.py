import math

import pytest

from nncli.core.monitor import Improvement, minimizes
from nncli.core.schedules import SCHEDULES, get_schedule


def rates(schedule, epochs):
    return [schedule.rate(e) for e in range(1, epochs + 1)]


def test_constant_step_exponential_cosine():
    assert rates(get_schedule("constant", 0.1, 3), 3) == [0.1, 0.1, 0.1]
    assert rates(get_schedule("step", 0.1, 6, step_size=2, gamma=0.5), 6) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert rates(get_schedule("exponential", 1.0, 3, gamma=0.9), 3) == pytest.approx([1.0, 0.9, 0.81])
    cosine = rates(get_schedule("cosine", 1.0, 4, min_lr=0.0), 4)
    assert cosine == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])


def test_warmup_ramps_linearly_then_hands_over():
    schedule = get_schedule("constant", 0.4, 10, warmup_epochs=3)
    assert rates(schedule, 5) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4])


def test_reduce_on_plateau_and_its_state():
    schedule = get_schedule("reduce_on_plateau", 1.0, 20, factor=0.5, patience=2)
    seen = []
    for value in [5, 4, 4, 4, 3, 3, 3, 3]:
        seen.append(schedule.rate(len(seen) + 1))
        schedule.observe(value)
    # no improvement at epochs 3 and 4 → halved for epoch 5; again after 6, 7 → 0.25 at... 8 onwards
    assert seen == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    copy = get_schedule("reduce_on_plateau", 1.0, 20, factor=0.5, patience=2)
    copy.load_state(schedule.state())
    assert copy.rate(9) == schedule.rate(9)


def test_improvement_patience_semantics():
    tracker = Improvement(patience=2, minimize=True)
    flags = [tracker.update(v) for v in [3, 2, 2.5, 2.1]]
    assert flags == [True, True, False, False] and tracker.exhausted
    zero = Improvement(patience=0, minimize=False)
    zero.update(0.5)
    assert not zero.exhausted
    zero.update(0.4)
    assert zero.exhausted
    assert minimizes("val_loss") and not minimizes("val_accuracy") and minimizes("val_r2", "min")


def test_registry_names():
    assert set(SCHEDULES) == {"constant", "step", "exponential", "cosine", "reduce_on_plateau"}
