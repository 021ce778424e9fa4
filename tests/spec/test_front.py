"""Front arithmetic (cnnlab.spec.front) on hand-made points and histories: dominance, Pareto
fronts, the front at an epoch, and should_stop on a constructed history."""

from __future__ import annotations

import math

import pytest

from cnnlab.spec.front import Point, dominates, front_at_epoch, pareto_front, should_stop

# --- dominance and fronts --------------------------------------------------------------------


def test_dominates_needs_at_least_as_good_in_both_and_better_in_one():
    assert dominates(Point("a", 0.95, 100), Point("b", 0.94, 100))
    assert dominates(Point("a", 0.94, 90), Point("b", 0.94, 100))
    assert dominates(Point("a", 0.95, 90), Point("b", 0.94, 100))
    assert not dominates(Point("a", 0.94, 100), Point("b", 0.94, 100))  # Equal.
    assert not dominates(Point("a", 0.99, 101), Point("b", 0.94, 100))  # Larger.
    assert not dominates(Point("a", 0.93, 50), Point("b", 0.94, 100))  # Less accurate.


def test_margin_asks_for_that_much_more_metric():
    big, small = Point("a", 0.950, 100), Point("b", 0.940, 100)
    assert dominates(big, small, 0.005)
    assert not dominates(big, small, 0.02)
    # Smaller is not enough when a margin is asked: the metric must be better by it.
    assert not dominates(Point("a", 0.94, 10), small, 0.002)
    assert dominates(Point("a", 0.9425, 100), small, 0.002)
    with pytest.raises(ValueError, match="margin"):
        dominates(big, small, -0.1)


def test_dominates_with_a_metric_to_minimize():
    assert dominates(Point("a", 0.10, 100), Point("b", 0.20, 100), 0.05, maximize=False)
    assert not dominates(Point("a", 0.20, 100), Point("b", 0.10, 100), maximize=False)
    assert not dominates(Point("a", 0.18, 100), Point("b", 0.20, 100), 0.05, maximize=False)


def test_nan_neither_dominates_nor_is_dominated():
    assert not dominates(Point("a", math.nan, 1), Point("b", 0.5, 100))
    assert not dominates(Point("a", 0.9, 1), Point("b", math.nan, 100))


def test_pareto_front_of_hand_made_points():
    points = [Point(1, 0.90, 100), Point(2, 0.95, 200), Point(3, 0.93, 300),
              Point(4, 0.85, 50), Point(5, 0.90, 150), Point(6, 0.98, 1000)]
    # 3 is beaten by 2 (more accurate, smaller); 5 by 1 (as accurate, smaller).
    assert [p.key for p in pareto_front(points)] == [4, 1, 2, 6]
    assert pareto_front([]) == []


def test_pareto_front_keeps_duplicates_in_input_order_and_drops_nan():
    points = [Point("x", 0.9, 100), Point("y", 0.9, 100), Point("z", 0.8, 100),
              Point("w", math.nan, 10), Point("v", 0.99, math.nan), Point("u", 0.95, 200)]
    assert [p.key for p in pareto_front(points)] == ["x", "y", "u"]
    assert [p.key for p in pareto_front(points[::-1])] == ["y", "x", "u"]


def test_pareto_front_equal_metric_larger_size_is_dropped():
    points = [Point("big", 0.9, 200), Point("small", 0.9, 100)]
    assert [p.key for p in pareto_front(points)] == ["small"]


def test_pareto_front_minimizing():
    losses = [Point(1, 0.30, 100), Point(2, 0.20, 200), Point(3, 0.25, 300), Point(4, 0.40, 50)]
    assert [p.key for p in pareto_front(losses, maximize=False)] == [4, 1, 2]


def test_front_at_epoch_uses_only_curves_that_reach_it():
    # Epochs are counted from 1: curve[0] is the metric after epoch 1.
    curves = {"a": [0.5, 0.9], "b": [0.6], "c": [0.4, 0.8, 0.95]}
    sizes = {"a": 100, "b": 50, "c": 300}
    assert front_at_epoch(curves, sizes, 1) == [Point("b", 0.6, 50)]
    assert front_at_epoch(curves, sizes, 2) == [Point("a", 0.9, 100)]
    assert front_at_epoch(curves, sizes, 3) == [Point("c", 0.95, 300)]
    assert front_at_epoch(curves, sizes, 4) == []
    with pytest.raises(ValueError, match="no size"):
        front_at_epoch(curves, {"a": 100}, 1)
    with pytest.raises(ValueError, match="counted from 1, not 0"):
        front_at_epoch(curves, sizes, 0)


# --- should_stop on a constructed history --------------------------------------------------

CURVES = {0: [0.80, 0.90, 0.95], 1: [0.70, 0.85, 0.92], 2: [0.75, 0.88],
          3: [0.60, 0.80, 0.90, 0.93]}
SIZES = {0: 10_000, 1: 5_000, 2: 20_000, 3: 40_000}


def decide(curve, size, *, margin=0.002, warmup=1, min_trials=4, **kwargs):
    return should_stop(curve, size, CURVES, SIZES, margin=margin, n_warmup_epochs=warmup,
                       n_min_trials=min_trials, **kwargs)


def test_a_dominated_trial_is_stopped_with_the_best_dominating_trial_named():
    # At epoch 2 the front is trial 1 (0.85, 5,000) and trial 0 (0.90, 10,000); both beat it.
    stop, reason = decide([0.5, 0.6], 30_000)
    assert stop
    assert reason == ("trial 0 had accuracy 0.9000 at epoch 2 with size 10,000, at least 0.002 "
                      "higher than this trial's 0.6000 with size 30,000.")


def test_warmup_epochs_are_never_decided():
    assert decide([0.1], 30_000) == (False, None)  # Epoch 1 is the 1 warmup epoch.
    assert decide([0.1], 30_000, warmup=0)[0]
    assert decide([0.1, 0.2], 30_000, warmup=2) == (False, None)
    assert decide([0.1, 0.2], 30_000, warmup=1)[0]  # The first verdict: after epoch 2.


def test_too_few_trials_at_that_epoch_means_no_decision():
    # Only trials 0, 1 and 3 reached epoch 3.
    assert decide([0.1, 0.2, 0.3], 30_000) == (False, None)
    stop, reason = decide([0.1, 0.2, 0.3], 30_000, min_trials=3)
    assert stop and reason.startswith("trial 0 had accuracy 0.9500 at epoch 3")
    # Trial 3 alone reached epoch 4.
    assert decide([0.1, 0.2, 0.3, 0.4], 50_000, min_trials=2) == (False, None)


def test_a_small_worse_trial_is_not_stopped_because_no_one_is_as_small():
    assert decide([0.5, 0.6], 1_000) == (False, None)
    # As small as trial 1 but less accurate: then it is beaten.
    assert decide([0.5, 0.6], 5_000)[0]


def test_a_trial_within_the_margin_is_not_stopped():
    # Trial 0 is 0.001 better at 10,000, less than the margin; no one else is better.
    assert decide([0.5, 0.899], 12_000) == (False, None)
    assert decide([0.5, 0.899], 12_000, margin=0.0)[0]
    assert decide([0.5, 0.80], 12_000, margin=0.2) == (False, None)


def test_should_stop_on_a_loss():
    losses = {0: [0.5, 0.2], 1: [0.6, 0.3]}
    sizes = {0: 100, 1: 50}
    stop, reason = should_stop([0.9, 0.5], 200, losses, sizes, margin=0.01, n_warmup_epochs=1,
                               n_min_trials=2, maximize=False, metric="val_loss",
                               size_label="n_params")
    assert stop
    assert reason == ("trial 0 had val_loss 0.2000 at epoch 2 with n_params 100, at least 0.01 "
                      "lower than this trial's 0.5000 with n_params 200.")
    assert should_stop([0.9, 0.25], 200, losses, sizes, margin=0.1, n_warmup_epochs=1,
                       n_min_trials=2, maximize=False) == (False, None)


def test_should_stop_refuses_an_empty_curve():
    with pytest.raises(ValueError, match="at least one epoch"):
        decide([], 1)
