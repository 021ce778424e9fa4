"""The dominance pruner: front arithmetic (cnnlab.front) on hand-made points and histories, and
its Optuna adapter (cnnlab.pruning) in real multi-objective studies, driven by hand and, once,
by a real Keras fit."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from cnnlab.search.pruning import CURVE_ATTR, PRUNED_BY_ATTR, DominancePruner
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
    curves = {"a": [0.5, 0.9], "b": [0.6], "c": [0.4, 0.8, 0.95]}
    sizes = {"a": 100, "b": 50, "c": 300}
    assert front_at_epoch(curves, sizes, 0) == [Point("b", 0.6, 50)]
    assert front_at_epoch(curves, sizes, 1) == [Point("a", 0.9, 100)]
    assert front_at_epoch(curves, sizes, 2) == [Point("c", 0.95, 300)]
    assert front_at_epoch(curves, sizes, 3) == []
    with pytest.raises(ValueError, match="no size"):
        front_at_epoch(curves, {"a": 100}, 0)


# --- should_stop on a constructed history --------------------------------------------------

CURVES = {0: [0.80, 0.90, 0.95], 1: [0.70, 0.85, 0.92], 2: [0.75, 0.88],
          3: [0.60, 0.80, 0.90, 0.93]}
SIZES = {0: 10_000, 1: 5_000, 2: 20_000, 3: 40_000}


def decide(curve, size, *, margin=0.002, warmup=1, min_trials=4, **kwargs):
    return should_stop(curve, size, CURVES, SIZES, margin=margin, n_warmup_epochs=warmup,
                       n_min_trials=min_trials, **kwargs)


def test_a_dominated_trial_is_stopped_with_the_best_dominating_trial_named():
    # At epoch 1 the front is trial 1 (0.85, 5,000) and trial 0 (0.90, 10,000); both beat it.
    stop, reason = decide([0.5, 0.6], 30_000)
    assert stop
    assert reason == ("trial 0 had accuracy 0.9000 at epoch 1 with size 10,000, at least 0.002 "
                      "higher than this trial's 0.6000 with size 30,000.")


def test_warmup_epochs_are_never_decided():
    assert decide([0.1], 30_000) == (False, None)  # Epoch 0 < 1 warmup epoch.
    assert decide([0.1], 30_000, warmup=0)[0]
    assert decide([0.1, 0.2], 30_000, warmup=2) == (False, None)


def test_too_few_trials_at_that_epoch_means_no_decision():
    # Only trials 0, 1 and 3 reached epoch 2.
    assert decide([0.1, 0.2, 0.3], 30_000) == (False, None)
    stop, reason = decide([0.1, 0.2, 0.3], 30_000, min_trials=3)
    assert stop and reason.startswith("trial 0 had accuracy 0.9500 at epoch 2")
    # Trial 3 alone reached epoch 3.
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
    assert reason == ("trial 0 had val_loss 0.2000 at epoch 1 with n_params 100, at least 0.01 "
                      "lower than this trial's 0.5000 with n_params 200.")
    assert should_stop([0.9, 0.25], 200, losses, sizes, margin=0.1, n_warmup_epochs=1,
                       n_min_trials=2, maximize=False) == (False, None)


def test_should_stop_refuses_an_empty_curve():
    with pytest.raises(ValueError, match="at least one epoch"):
        decide([], 1)


# --- the Optuna adapter ---------------------------------------------------------------------


def test_importing_them_imports_no_framework():
    code = ("import cnnlab.spec.front, cnnlab.search.pruning, sys; "
            "found = sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('keras', 'tensorflow', 'optuna')); "
            "assert not found, found")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_pruner_options_are_checked_and_the_direction_follows_the_metric():
    assert DominancePruner().maximizes
    assert not DominancePruner(monitor="val_loss").maximizes
    assert DominancePruner(monitor="val_loss", maximize=True).maximizes
    with pytest.raises(ValueError, match="margin"):
        DominancePruner(margin=-1)
    with pytest.raises(ValueError, match="n_min_trials"):
        DominancePruner(n_min_trials=-1)


# (curve, n_params) fed epoch by epoch; trials 0-3 make the front, then:
HISTORY = [
    ([0.80, 0.90, 0.95], 10_000),
    ([0.70, 0.85, 0.92], 5_000),
    ([0.75, 0.88, 0.93], 20_000),
    ([0.60, 0.80, 0.90], 40_000),
    ([0.50, 0.60, 0.70], 30_000),  # 4: dominated at epoch 1 by trial 0: pruned.
    ([0.50, 0.60, 0.70], 1_000),   # 5: small and worse, no one as small: completes.
    ([0.50, 0.899, 0.949], 12_000),  # 6: within the margin of trial 0: completes.
    ([0.95], 8_000),               # 7: one epoch only, in the warmup: completes.
]


def _objective(pruner):
    def objective(trial):
        curve, size = HISTORY[trial.number]
        trial.set_user_attr("n_params", size)
        for value in curve:
            pruner.epoch_end(trial, value)
        return curve[-1], size

    return objective


def test_a_multi_objective_study_prunes_dominated_trials(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="front", storage=storage,
                                directions=["maximize", "minimize"])
    study.optimize(_objective(DominancePruner(margin=0.002)), n_trials=len(HISTORY))

    trials = optuna.load_study(study_name="front", storage=storage).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE"] * 4 + ["PRUNED"] + ["COMPLETE"] * 3
    pruned = trials[4]
    assert pruned.values is None
    assert pruned.user_attrs[CURVE_ATTR] == [0.50, 0.60]  # Stopped after epoch 1.
    assert pruned.user_attrs[PRUNED_BY_ATTR] == (
        "trial 0 had val_accuracy 0.9000 at epoch 1 with n_params 10,000, at least 0.002 "
        "higher than this trial's 0.6000 with n_params 30,000.")
    for trial in trials[:4] + trials[5:]:
        assert trial.user_attrs[CURVE_ATTR] == HISTORY[trial.number][0]
        assert PRUNED_BY_ATTR not in trial.user_attrs
        assert trial.values == [HISTORY[trial.number][0][-1], HISTORY[trial.number][1]]


def test_running_trials_count_and_a_trial_needs_a_size():
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    # Four trials still running, at epoch 1 already, all tiny and perfect.
    for number in range(4):
        running = study.ask()
        running.set_user_attr("n_params", 10)
        running.set_user_attr(CURVE_ATTR, [1.0, 1.0])
        assert running.number == number
    pruner = DominancePruner()
    trial = study.ask()
    with pytest.raises(ValueError, match="no user attribute 'n_params'"):
        pruner.epoch_end(trial, 0.5)
    trial.set_user_attr("n_params", 1_000)
    pruner.epoch_end(trial, 0.5)  # Warmup.
    with pytest.raises(optuna.TrialPruned, match="trial 0 had val_accuracy 1.0000"):
        pruner.epoch_end(trial, 0.6)
    assert trial.user_attrs[CURVE_ATTR] == [0.5, 0.6]


@pytest.mark.slow
def test_a_real_keras_fit_is_ended_by_the_callback():
    import numpy as np
    import optuna

    from cnnlab.train.quiet import import_keras

    keras = import_keras()
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(4):  # Perfect and tiny at every epoch: anything real is dominated.
        study.add_trial(optuna.trial.create_trial(
            values=[1.0, 1], user_attrs={"n_params": 1, CURVE_ATTR: [1.0, 1.0, 1.0]}))
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    epochs_seen: list[int] = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs_seen.append(epoch)

    def objective(trial):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3),
                                  keras.layers.Flatten(), keras.layers.Dense(10)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        trial.set_user_attr("n_params", model.count_params())
        model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=32, verbose=0,
                  callbacks=[Count(), DominancePruner().keras_callback(trial)])
        return 0.0, model.count_params()

    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    assert trial.state.name == "PRUNED"
    assert epochs_seen == [0, 1]  # The third epoch never ran.
    assert len(trial.user_attrs[CURVE_ATTR]) == 2
    assert trial.user_attrs[PRUNED_BY_ATTR].startswith("trial 0 had val_accuracy 1.0000 at "
                                                       "epoch 1 with n_params 1,")


# --- the replay benchmark ---------------------------------------------------------------------


def _benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dominance_pruner.py"
    spec = importlib.util.spec_from_file_location("dominance_pruner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_replays_a_study(tmp_path, capsys):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="recorded", storage=storage,
                                directions=["maximize", "minimize"])
    for curve, size in HISTORY[:7]:  # Recorded without a pruner: every curve whole.
        study.add_trial(optuna.trial.create_trial(
            values=[curve[-1], size], user_attrs={"n_params": size, CURVE_ATTR: curve}))
    # A single-objective study's curves come from its intermediate values.
    single = optuna.create_study(study_name="single", storage=storage, direction="maximize")
    for curve, size in HISTORY[:7]:
        single.add_trial(optuna.trial.create_trial(
            value=curve[-1], user_attrs={"n_params": size},
            intermediate_values=dict(enumerate(curve))))
    bench = _benchmark()
    for name in ("recorded", "single"):
        assert bench.main(["--study", name, "--storage", storage]) == 0
        out = capsys.readouterr().out
        assert "7 complete trials with a curve and n_params" in out
        # Trial 4 alone is stopped, after epoch 1 of 3: 1 epoch of 21 saved; it would have
        # ended 0.25 below trial 0, and the front is trials 5, 1 and 0.
        assert "epochs trained   21 without the pruner, 20 with it: 4.8% saved" in out
        assert "trials stopped   1 of 7" in out
        assert "gap below the full front: median 0.2500, max 0.2500" in out
        assert "false stops      0 of the 3 trials on the full front" in out
    with pytest.raises(SystemExit, match="no SQLite file"):
        bench.main(["--study", "x", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    assert not (tmp_path / "none.db").exists()


def test_the_benchmark_runs_on_synthetic_curves(capsys):
    assert _benchmark().main(["--synthetic", "30", "--seed", "3", "--margin", "0", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "synthetic curves: 30 trials, 10 epochs, seed 3" in out
    assert out.count("epochs trained   300 without the pruner") == 2
