"""The stores edited from outside, with Optuna's and MLflow's own tools, between two runs of a
study: cnnlab says what happened in one sentence, and goes on where that is safe or refuses
before anything is read or written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnlab import cli
from tests.studies import TINY_ONE, Stores, run_as_pasted

pytestmark = pytest.mark.slow  # Every test here runs a study.

ONE = TINY_ONE


@pytest.fixture
def stores(tmp_path: Path, monkeypatch) -> Stores:
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, ONE)
    assert stores.run() == 0
    return stores


def test_a_deleted_study_run_gets_a_new_one(stores: Stores, capsys) -> None:
    old, _ = stores.runs("tiny")
    stores.client.delete_run(old.info.run_id)
    capsys.readouterr()
    assert stores.run("--n-trials", "2") == 0
    out = capsys.readouterr().out
    assert f"note: the study's MLflow run {old.info.run_id} was deleted" in out
    study = stores.study("tiny")
    new_id = study.user_attrs["mlflow_parent_run_id"]
    assert new_id != old.info.run_id
    new = stores.client.get_run(new_id)
    assert new.info.status == "FINISHED" and new.info.lifecycle_stage == "active"
    child = stores.client.get_run(study.trials[1].user_attrs["mlflow_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == new_id
    # evaluate refuses before claiming, naming the deleted run... of the old trial, which the
    # new study run does not hold: evaluating trial 0 needs its run restored first.
    stores.client.delete_run(child.info.run_id)
    assert cli.main(["evaluate", "tiny", "--trial", "1", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking]) == 2
    err = capsys.readouterr().err
    assert f"the MLflow run of trial 1 ({child.info.run_id}) was deleted in MLflow" in err
    assert stores.client.search_registered_models() == []
    # The advice works as printed: the run is restored in the study's store.
    (restore,) = _run_advice(err, stores.root)
    assert restore.startswith("MLFLOW_TRACKING_URI=") and "runs restore" in restore
    assert stores.client.get_run(child.info.run_id).info.lifecycle_stage == "active"


def test_a_deleted_experiment_is_refused_before_anything_is_written(stores: Stores,
                                                                    capsys) -> None:
    experiment = stores.client.get_experiment_by_name("tiny")
    stores.client.delete_experiment(experiment.experiment_id)
    capsys.readouterr()
    assert stores.run("--n-trials", "2") == 2
    err = capsys.readouterr().err.strip()
    assert f"the MLflow experiment 'tiny' was deleted (id {experiment.experiment_id})" in err
    assert "\n" not in err
    assert len(stores.study("tiny").trials) == 1
    assert cli.main(["evaluate", "tiny", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking]) == 2
    assert "was deleted" in capsys.readouterr().err
    assert stores.client.search_registered_models() == []
    # Each command of the advice works as printed, on the study's store (issue 22: run as
    # printed, MLflow's commands went to ./mlflow.db or found no store).
    restore, remove = _commands(err)
    _run_advice(f"`{restore}`", stores.root)
    assert stores.client.get_experiment(experiment.experiment_id).lifecycle_stage == "active"
    stores.client.delete_experiment(experiment.experiment_id)
    _run_advice(f"`{remove}`", stores.root)
    assert stores.client.get_experiment_by_name("tiny") is None
    assert not (stores.root / "elsewhere" / "mlflow.db").exists()  # MLflow's default store.


def _commands(text: str) -> list[str]:
    """The commands in a message: what stands between backticks."""
    return re.findall(r"`([^`]+)`", text)


def _run_advice(text: str, folder: Path) -> list[str]:
    """Run each command of the advice in ``text`` as printed, in a plain shell (no virtual
    environment on the PATH, as README runs ``.venv/bin/cnnlab``) in a new folder inside
    ``folder`` (``tests.studies.run_as_pasted``); each must succeed."""
    commands = _commands(text)
    assert commands, text
    for command in commands:
        done = run_as_pasted(command, folder / "elsewhere")
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    return commands


def test_a_study_deleted_from_optuna_starts_afresh_beside_its_old_runs(stores: Stores,
                                                                       capsys) -> None:
    import optuna

    old, _ = stores.runs("tiny")
    optuna.delete_study(study_name="tiny", storage=stores.storage)
    capsys.readouterr()
    assert stores.run() == 0
    assert "holds the runs of an earlier study of this name" in capsys.readouterr().out
    study = stores.study("tiny")
    assert len(study.trials) == 1
    new_id = study.user_attrs["mlflow_parent_run_id"]
    assert new_id != old.info.run_id
    new = stores.client.get_run(new_id)
    assert new.data.tags["cnnlab.study_uid"] == study.user_attrs["cnnlab_study_uid"]
    assert new.data.tags["cnnlab.study_uid"] != old.data.tags["cnnlab.study_uid"]
    child = stores.client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == new_id
    assert stores.client.get_run(old.info.run_id).info.status == "FINISHED"


def test_a_best_trial_without_its_model_makes_evaluate_take_the_next(tmp_path: Path,
                                                                     monkeypatch,
                                                                     capsys) -> None:
    """A complete trial whose model is gone from MLflow (deleted, or never logged by an older
    cnnlab interrupted while logging it): evaluate takes the next trial by the same rule."""
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, ONE.replace("n_trials = 1", "n_trials = 2"))
    assert stores.run() == 0
    study = stores.study("tiny")
    ranked = sorted(study.trials, key=lambda t: (-t.value, t.number))
    best, other = ranked
    run = stores.client.get_run(best.user_attrs["mlflow_run_id"])
    stores.client.delete_logged_model(run.outputs.model_outputs[0].model_id)
    capsys.readouterr()
    assert cli.main(["evaluate", "tiny", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking]) == 0
    out = capsys.readouterr().out
    assert f"note: the model of trial {best.number}" in out
    assert f"evaluating trial {other.number}, the next by the same rule" in out
    assert stores.study("tiny").user_attrs["cnnlab_evaluation"]["trial"] == other.number
