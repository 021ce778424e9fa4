"""Honest search: every trial number draws anew (resume, workers), a configuration already
judged is not trained again, and the guarantees are read back from the stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.names import CONFIG_KEY_ATTR, DUPLICATE_OF_ATTR, OUTCOME_ATTR, SAMPLER_SEED_ATTR
from cnnlab.search import trials as T
from tests.studies import TINY, Stores

pytestmark = pytest.mark.slow  # Every test here runs studies.

# A large space (thousands of architectures) and a TPE that is still drawing at random: what
# the issue saw re-drawn on every resume.
LARGE = TINY.replace('[sampler]\nname = "random"', '[sampler]\nname = "tpe"\n'
                     'n_startup_trials = 10').replace("epochs = 2", "epochs = 1").replace(
    "train_size = 512", "train_size = 256").replace("val_size = 256", "val_size = 128").replace(
    """n_conv = [1, 2]
filters = [4, 8]
kernel_size = [3, 5]
strides = [1, 2]""", """n_conv = [1, 2, 3]
filters = [2, 4, 6, 8]
kernel_size = [1, 3, 5]
strides = [1, 2]""")


def _params(stores: Stores) -> list[dict]:
    return [t.params for t in stores.study("tiny").trials]


def test_a_resumed_study_draws_new_architectures_as_a_fresh_one_would(
        tmp_path: Path, monkeypatch) -> None:
    fresh = Stores(tmp_path / "fresh", LARGE) if (tmp_path / "fresh").mkdir() is None else None
    resumed = Stores(tmp_path / "resumed", LARGE) if (tmp_path / "resumed").mkdir() is None \
        else None
    monkeypatch.chdir(tmp_path)
    assert fresh.run("--n-trials", "4") == 0
    assert resumed.run("--n-trials", "2") == 0
    assert resumed.run("--n-trials", "4") == 0
    again = _params(resumed)
    assert len(again) == 4
    # Not the first two again (each process used to restart the sampler's stream)...
    assert all(again[i] != again[j] for i in range(2) for j in range(2, 4))
    # ...but exactly what one uninterrupted run draws: trial k's draw depends on the study's
    # seed, its number and the history, not on which process ran it.
    assert again == _params(fresh)
    seeds = [t.user_attrs[SAMPLER_SEED_ATTR] for t in resumed.study("tiny").trials]
    assert len(set(seeds)) == 4


# `--workers 2` draws what one process draws: tests/study/test_rungs.py,
# test_a_study_with_rungs_runs_with_two_workers_on_the_local_default (one run of two workers
# checks both).


@pytest.mark.parametrize("pruned", [False, True], ids=["complete", "pruned"])
def test_a_judged_configuration_is_reused_not_retrained(tmp_path: Path, monkeypatch, capsys,
                                                        pruned: bool) -> None:
    """The same configuration drawn again (here: enqueued, Optuna's own way to propose a point)
    ends as the earlier trial did, untrained, and does not count."""
    monkeypatch.chdir(tmp_path)
    text = TINY.replace("n_trials = 3", "n_trials = 1")
    if pruned:  # A threshold no accuracy reaches: the first trial is pruned after epoch 1.
        text = text.replace('[pruner]\nname = "none"', '[pruner]\nname = "threshold"\n'
                                                       'lower = 2.0')
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    first = stores.study("tiny").trials[0]
    stores.study("tiny").enqueue_trial(first.params)
    capsys.readouterr()
    assert stores.run("--n-trials", "2") == 0
    out = capsys.readouterr().out
    study = stores.study("tiny")
    first, again, new = study.trials
    assert again.params == first.params
    assert again.user_attrs[OUTCOME_ATTR] == "duplicate"
    assert again.user_attrs[DUPLICATE_OF_ATTR] == 0
    assert again.user_attrs[CONFIG_KEY_ATTR] == first.user_attrs[CONFIG_KEY_ATTR]
    assert again.state == first.state
    # A pruned trial's value is its last reported score; the duplicate reports none.
    assert again.value == (None if pruned else first.value)
    # No curve: the pruner's statistics count the configuration once (its first trial).
    assert first.intermediate_values and again.intermediate_values == {}
    assert new.user_attrs[OUTCOME_ATTR] == "trained" and new.params != first.params
    assert [T.counts(t) for t in study.trials] == [True, False, True]
    assert "(reused #0, not retrained)" in out
    _, children = stores.runs("tiny")
    run = children[again.number]
    assert run.data.tags["cnnlab.outcome"] == "duplicate"
    assert run.data.tags["cnnlab.duplicate_of"] == "0"
    assert "its result is reused, not retrained" in run.data.tags["cnnlab.reason"]
    assert stores.client.get_metric_history(run.info.run_id, "loss") == []
    assert len(run.outputs.model_outputs) == 0
    parent, _ = stores.runs("tiny")
    assert parent.data.metrics["n_draws_duplicate"] == 1


def test_allow_repeats_trains_a_configuration_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, TINY.replace("n_trials = 3", "n_trials = 1\nallow_repeats = true"))
    assert stores.run() == 0
    stores.study("tiny").enqueue_trial(stores.study("tiny").trials[0].params)
    assert stores.run("--n-trials", "2") == 0
    first, again = stores.study("tiny").trials
    assert again.params == first.params and again.user_attrs[OUTCOME_ATTR] == "trained"
    assert again.user_attrs["seed"] == first.user_attrs["seed"] + 1
    _, children = stores.runs("tiny")
    assert len(children[1].outputs.model_outputs) == 1


def test_resuming_with_other_data_is_refused(tmp_path: Path, mnist_dir: Path, monkeypatch,
                                             capsys) -> None:
    import numpy as np

    from cnnlab.train import data

    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, TINY.replace("n_trials = 3", "n_trials = 1").replace(
        "epochs = 2", "epochs = 1"))
    assert stores.run() == 0
    before = stores.study("tiny").user_attrs["cnnlab_data"]
    x = data.read_idx(mnist_dir / "train-images-idx3-ubyte.gz").copy()
    y = data.read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    x[0] = 255 - x[0]  # One validation image differs.
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / "mnist.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    capsys.readouterr()
    assert stores.run("--n-trials", "2", "--data-dir", str(other)) == 2
    err = capsys.readouterr().err.strip()
    assert "study 'tiny' ran on other data" in err and "\n" not in err
    assert f"validation {before['val_sha256'][:12]}" in err
    assert len(stores.study("tiny").trials) == 1


def test_a_same_named_study_in_another_storage_gets_its_own_study_run(
        tmp_path: Path, monkeypatch) -> None:
    """Two Optuna storages, one tracking store: each study keeps its own run and trials."""
    monkeypatch.chdir(tmp_path)
    text = TINY.replace("n_trials = 3", "n_trials = 1").replace("epochs = 2", "epochs = 1")
    first = Stores(tmp_path, text)
    second = Stores(tmp_path, text.replace("seed = 5", "seed = 6"), name="second.toml")
    second.storage = f"sqlite:///{tmp_path / 'other-optuna.db'}"
    assert first.run() == 0 and second.run() == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(first.tracking)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags["cnnlab.kind"] == "study"]
    assert len(parents) == 2
    for stores in (first, second):
        study = stores.study("tiny")
        uid = study.user_attrs["cnnlab_study_uid"]
        parent = next(r for r in parents if r.info.run_id == study.user_attrs[
            "mlflow_parent_run_id"])
        assert parent.data.tags["cnnlab.study_uid"] == uid
        assert parent.data.params["seed"] == str(stores.study("tiny").user_attrs[
            "cnnlab_config"]["seed"])
        child = client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["cnnlab.study_uid"] == uid
