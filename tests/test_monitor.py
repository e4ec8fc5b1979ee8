"""Improvement: which epoch is best (min_delta plays no part) and when patience runs out
(min_delta decides), in both directions, and its state across a resume."""

import pytest

from nncli.core.monitor import Improvement
from nncli.core.schedules import get_schedule


def _feed(tracker, values):
    """The new-best flag and the patience count after each value."""
    flags, waits = [], []
    for value in values:
        flags.append(tracker.update(value))
        waits.append(tracker.wait)
    return flags, waits


def test_the_best_is_the_lowest_value_even_when_it_improves_by_less_than_min_delta():
    tracker = Improvement(patience=10, min_delta=0.15, minimize=True)
    # 0.7 beats 0.8 by only 0.1: not enough to reset patience, but it is the best epoch.
    flags, waits = _feed(tracker, [1.0, 0.8, 0.7, 0.75, 0.72])
    assert flags == [True, True, True, False, False]
    assert waits == [0, 0, 1, 2, 3]
    assert tracker.best == 0.7 and tracker.reference == 0.8


def test_the_best_is_the_highest_value_and_patience_counts_per_min_delta():
    # val_r2 of the diabetes run that used to restore epoch 5 (0.364) instead of epoch 10.
    values = [0.072, 0.275, 0.298, 0.296, 0.364, 0.386, 0.385, 0.355, 0.355, 0.390]
    tracker = Improvement(patience=5, min_delta=0.05, minimize=False)
    flags, waits = [], []
    for value in values:
        assert not tracker.exhausted  # patience runs out after the tenth epoch, not before
        flags.append(tracker.update(value))
        waits.append(tracker.wait)
    assert [epoch for epoch, flag in enumerate(flags, 1) if flag][-1] == 10
    assert flags == [True, True, True, False, True, True, False, False, False, True]
    # Resets at 0.275 (> 0.072 + 0.05) and 0.364 (> 0.275 + 0.05); 0.386 and 0.390 are new
    # bests but not 0.05 above 0.364, so they do not reset patience.
    assert waits == [0, 0, 1, 2, 0, 1, 2, 3, 4, 5]
    assert tracker.exhausted


@pytest.mark.parametrize("minimize", [True, False])
def test_a_tie_keeps_the_earliest_epoch(minimize):
    tracker = Improvement(patience=3, minimize=minimize)
    assert _feed(tracker, [0.5, 0.5, 0.5]) == ([True, False, False], [0, 1, 2])


def test_small_steps_reset_patience_once_they_add_up_to_more_than_min_delta():
    # Measured against the epoch that last reset patience (1.0), not against the best so far.
    tracker = Improvement(patience=3, min_delta=0.1, minimize=True)
    assert _feed(tracker, [1.0, 0.95, 0.91, 0.89]) == ([True] * 4, [0, 1, 2, 0])
    assert not tracker.exhausted
    stalled = Improvement(patience=3, min_delta=0.1, minimize=True)
    assert _feed(stalled, [1.0, 0.95, 0.91, 0.905]) == ([True] * 4, [0, 1, 2, 3])
    assert stalled.exhausted  # every epoch was a new best, none by more than min_delta


def test_a_restored_state_continues_exactly():
    values = [1.0, 0.8, 0.7, 0.75, 0.72, 0.6, 0.65]
    straight = Improvement(patience=10, min_delta=0.15)
    expected = _feed(straight, values)
    first = Improvement(patience=10, min_delta=0.15)
    head = _feed(first, values[:3])
    resumed = Improvement(patience=10, min_delta=0.15)
    resumed.load_state(first.state())
    tail = _feed(resumed, values[3:])
    assert (head[0] + tail[0], head[1] + tail[1]) == expected
    assert resumed.state() == straight.state()


def test_a_state_saved_before_reference_existed_loads():
    # {best, wait} from an older checkpoint: that best was also the value patience was reset by.
    tracker = Improvement(patience=5, min_delta=0.15)
    tracker.load_state({"best": 0.8, "wait": 1})
    assert (tracker.best, tracker.reference, tracker.wait) == (0.8, 0.8, 1)
    assert tracker.update(0.7) and tracker.wait == 2  # a new best, 0.1 below 0.8: no reset
    assert not tracker.update(0.72) and tracker.wait == 3
    assert tracker.update(0.6) and tracker.wait == 0


def test_reduce_on_plateau_counts_patience_from_the_value_that_last_reset_it():
    schedule = get_schedule("reduce_on_plateau", 1.0, 20, factor=0.5, patience=2, min_delta=0.1)
    seen = []
    for value in [1.0, 0.95, 0.91, 0.89, 0.88, 0.87]:
        seen.append(schedule.rate(len(seen) + 1))
        schedule.observe(value)
    # 0.95 and 0.91 are not 0.1 below 1.0: halved after them. 0.89 is (a reset); then 0.88 and
    # 0.87 are not 0.1 below 0.89: halved again.
    assert seen == [1, 1, 1, 0.5, 0.5, 0.5] and schedule.rate(7) == 0.25
