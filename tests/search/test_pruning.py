"""Pruning (cnnlab.search.pruning): what a trial tells Optuna's pruners each epoch (steps counted
from 1, no decision after the last epoch); the dominance pruner's Optuna adapter in real
multi-objective studies, driven by hand and, once, by a real Keras fit; and the replay benchmark
(benchmarks/dominance_pruner.py). The front arithmetic it uses is in tests/spec/test_front.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cnnlab.search.pruning import CURVE_ATTR, PRUNED_BY_ATTR, DominancePruner, report_epoch

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
    ([0.50, 0.60, 0.70], 30_000),  # 4: dominated after epoch 2 by trial 0: pruned.
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
    assert pruned.user_attrs[CURVE_ATTR] == [0.50, 0.60]  # Stopped after epoch 2.
    assert pruned.user_attrs[PRUNED_BY_ATTR] == (
        "trial 0 had val_accuracy 0.9000 at epoch 2 with n_params 10,000, at least 0.002 "
        "higher than this trial's 0.6000 with n_params 30,000.")
    for trial in trials[:4] + trials[5:]:
        assert trial.user_attrs[CURVE_ATTR] == HISTORY[trial.number][0]
        assert PRUNED_BY_ATTR not in trial.user_attrs
        assert trial.values == [HISTORY[trial.number][0][-1], HISTORY[trial.number][1]]


def test_running_trials_count_and_a_trial_needs_a_size():
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    # Four trials still running, at epoch 2 already, all tiny and perfect.
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


def test_no_dominance_verdict_after_a_trials_last_epoch():
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(4):  # Perfect and tiny at every epoch: anything real is dominated.
        study.add_trial(optuna.trial.create_trial(
            values=[1.0, 1], user_attrs={"n_params": 1, CURVE_ATTR: [1.0, 1.0, 1.0]}))
    pruner = DominancePruner()
    trial = study.ask()
    trial.set_user_attr("n_params", 1_000)
    pruner.epoch_end(trial, 0.5)  # Warmup.
    pruner.epoch_end(trial, 0.6, last=True)  # Dominated, but nothing is left to save.
    assert trial.user_attrs[CURVE_ATTR] == [0.5, 0.6]  # Its last epoch is still recorded.
    assert PRUNED_BY_ATTR not in trial.user_attrs
    # The same trial at the same epoch, with one more epoch to go, is stopped.
    again = study.ask()
    again.set_user_attr("n_params", 1_000)
    pruner.epoch_end(again, 0.5)
    with pytest.raises(optuna.TrialPruned):
        pruner.epoch_end(again, 0.6, last=False)


# --- what Optuna's pruners are told -----------------------------------------------------------


def test_optuna_is_told_each_epoch_at_its_number_and_never_prunes_after_the_last(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # Prunes whatever it is asked about: no accuracy is above 2.
    study = optuna.create_study(study_name="steps", storage=storage,
                                pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    curve = [0.25, 0.5, 0.75]

    def objective(epochs):
        def run(trial):
            for epoch in range(1, epochs + 1):
                report_epoch(trial, epoch, curve[epoch - 1], epochs=epochs)
            return curve[epochs - 1]
        return run

    study.optimize(objective(3), n_trials=1)  # Pruned after its first epoch.
    study.optimize(objective(1), n_trials=1)  # Its first epoch is its last: it completes.
    pruned, complete = optuna.load_study(study_name="steps", storage=storage).trials
    assert pruned.state.name == "PRUNED" and pruned.intermediate_values == {1: 0.25}
    assert complete.state.name == "COMPLETE" and complete.intermediate_values == {1: 0.25}
    assert complete.value == 0.25

    memory = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    with pytest.raises(optuna.TrialPruned, match="after epoch 2 of 3"):
        report_epoch(memory.ask(), 2, 0.5, epochs=3)
    assert memory.trials[0].intermediate_values == {2: 0.5}  # Told at step 2.
    for epoch in (0, 4):
        with pytest.raises(ValueError, match=f"from 1 to the trial's 3, not {epoch}"):
            report_epoch(memory.ask(), epoch, 0.5, epochs=3)


@pytest.mark.slow
def test_a_real_keras_fit_is_ended_by_the_callbacks_but_never_after_its_last_epoch():
    import numpy as np
    import optuna

    from cnnlab.search.pruning import optuna_callback
    from cnnlab.train.quiet import import_keras

    keras = import_keras()
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    epochs_seen: list[int] = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs_seen.append(epoch + 1)

    def objective(epochs, pruning, *, two=True):
        def run(trial):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3),
                                      keras.layers.Flatten(), keras.layers.Dense(10)])
            model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            trial.set_user_attr("n_params", model.count_params())
            model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=32, verbose=0,
                      callbacks=[Count(), pruning(trial, epochs)])
            return (0.0, model.count_params()) if two else 0.0
        return run

    # The dominance pruner, against four trials perfect and tiny at every epoch.
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(
            values=[1.0, 1], user_attrs={"n_params": 1, CURVE_ATTR: [1.0, 1.0, 1.0]}))
    dominance = DominancePruner().keras_callback
    study.optimize(objective(3, dominance), n_trials=1)
    trial = study.trials[-1]
    assert trial.state.name == "PRUNED"
    assert epochs_seen == [1, 2]  # The third epoch never ran.
    assert len(trial.user_attrs[CURVE_ATTR]) == 2
    assert trial.user_attrs[PRUNED_BY_ATTR].startswith("trial 0 had val_accuracy 1.0000 at "
                                                       "epoch 2 with n_params 1,")
    epochs_seen.clear()
    study.optimize(objective(2, dominance), n_trials=1)  # Dominated after its last epoch.
    trial = study.trials[-1]
    assert trial.state.name == "COMPLETE" and epochs_seen == [1, 2]
    assert len(trial.user_attrs[CURVE_ATTR]) == 2 and PRUNED_BY_ATTR not in trial.user_attrs

    # Optuna's pruner, told at step = the epoch's number; this one prunes whatever it is asked.
    single = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    told = lambda trial, epochs: optuna_callback(trial, "val_accuracy", epochs)  # noqa: E731
    epochs_seen.clear()
    single.optimize(objective(3, told, two=False), n_trials=1)
    single.optimize(objective(1, told, two=False), n_trials=1)
    pruned, complete = single.trials
    assert epochs_seen == [1, 1]  # Each ran one epoch.
    assert pruned.state.name == "PRUNED" and list(pruned.intermediate_values) == [1]
    assert complete.state.name == "COMPLETE" and list(complete.intermediate_values) == [1]


# --- the replay benchmark ---------------------------------------------------------------------


def _benchmark():
    from tests.studies import load_script

    return load_script("benchmarks/dominance_pruner.py", "dominance_pruner")


def test_the_benchmark_replays_a_study(tmp_path, capsys):
    import optuna

    # HISTORY's first 7, and a trial beaten by trial 0 by more than the margin only at its
    # last epoch: no verdict is taken there, so it is not stopped.
    recorded = [*HISTORY[:7], ([0.90, 0.90, 0.90], 30_000)]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="recorded", storage=storage,
                                directions=["maximize", "minimize"])
    for curve, size in recorded:  # Recorded without a pruner: every curve whole.
        study.add_trial(optuna.trial.create_trial(
            values=[curve[-1], size], user_attrs={"n_params": size, CURVE_ATTR: curve}))
    # A single-objective study's curves come from its intermediate values, at steps from 1.
    single = optuna.create_study(study_name="single", storage=storage, direction="maximize")
    for curve, size in recorded:
        single.add_trial(optuna.trial.create_trial(
            value=curve[-1], user_attrs={"n_params": size},
            intermediate_values=dict(enumerate(curve, start=1))))
    bench = _benchmark()
    for name in ("recorded", "single"):
        assert bench.main(["--study", name, "--storage", storage]) == 0
        out = capsys.readouterr().out
        assert "8 complete trials with a curve and n_params" in out
        # Trial 4 alone is stopped, after epoch 2 of 3: 1 epoch of 24 saved; it would have
        # ended 0.25 below trial 0, and the front is trials 5, 1 and 0.
        assert "epochs trained   24 without the pruner, 23 with it: 4.2% saved" in out
        assert "trials stopped   1 of 8 (12.5%), median stop epoch 2" in out
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
