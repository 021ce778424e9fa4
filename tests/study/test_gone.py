"""Trials whose MLflow runs are gone (deleted, or removed for good with ``mlflow gc``, alone or
with their experiment) are run-less everywhere: nothing is written to their runs (the front's
tags, the study's summary), nothing is read from them (compare, report), evaluate and confirm
refuse with one sentence, and compare says why their MLflow columns are empty."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from cnnlab import cli
from tests.studies import TINY, Stores
from tests.study.test_edited import ONE, _commands, _run_advice


@pytest.mark.slow  # Creating the MLflow store takes seconds.
@pytest.mark.parametrize("how", ["deleted", "removed"])
def test_the_front_and_the_best_leave_trials_whose_runs_are_gone_untagged(
        tmp_path: Path, monkeypatch, how: str) -> None:
    """The study's summary after each trial, the second pushing trial 0 off the front, trial
    0's run deleted in MLflow or removed for good (``mlflow gc`` deletes the run's rows: its id
    is then one the store has never heard of, as here). Trials made with Optuna's
    ``create_trial`` (nothing trained): the front's change is then certain, not a training's
    luck."""
    import optuna
    from mlflow.tracking import MlflowClient

    from cnnlab.search.config import load_study_config
    from cnnlab.tracking.runs import use_tracking_store
    from cnnlab.tracking.study_run import StudySummary

    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, TINY)
    config = load_study_config(stores.file)
    client = MlflowClient(use_tracking_store(stores.tracking))
    experiment = client.create_experiment("tiny")
    parent = client.create_run(experiment).info.run_id
    first, second = (client.create_run(experiment).info.run_id for _ in range(2))
    study = optuna.create_study(study_name="tiny", storage=stores.storage,
                                direction="maximize")
    summary = StudySummary(client, parent, config, experiment)

    def trial(value: float, n_params: int, run_id: str) -> None:
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={
            "n_params": n_params, "mlflow_run_id": run_id, "cnnlab_outcome": "trained"}))
        summary(study, study.trials[-1])

    if how == "deleted":
        trial(0.5, 1000, first)
        assert client.get_run(first).data.tags["cnnlab.front"] == "true"
        client.delete_run(first)
    else:
        first = uuid.uuid4().hex
        trial(0.5, 1000, first)
        # The best trial, run-less: no tag or record points to its run.
        assert "cnnlab.best_run_id" not in client.get_run(parent).data.tags
        best = Path(client.download_artifacts(parent, "best_trial.json")).read_text()
        assert json.loads(best)["run_id"] is None
    trial(0.9, 500, second)  # Smaller and better: trial 0 leaves the front.
    assert study.user_attrs["cnnlab_front"] == [1]
    assert client.get_run(second).data.tags["cnnlab.front"] == "true"
    tags = client.get_run(parent).data.tags
    assert tags["cnnlab.front"] == "#1" and tags["cnnlab.best_run_id"] == second
    if how == "deleted":
        assert client.get_run(first).data.tags["cnnlab.front"] == "true"  # Left as it was.


@pytest.mark.slow
def test_a_study_whose_experiment_was_removed_for_good_goes_on_run_less(
        tmp_path: Path, monkeypatch, capsys) -> None:
    """cnnlab's advice for a deleted experiment followed to its end (``mlflow gc``, as printed),
    then every command on the study: issue 31's case, where every later study run trained one
    trial and died on the front's tags, and compare said its MLflow columns did not exist."""
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, ONE)
    assert stores.run() == 0
    old_trial_run = stores.study("tiny").trials[0].user_attrs["mlflow_run_id"]
    experiment = stores.client.get_experiment_by_name("tiny")
    stores.client.delete_experiment(experiment.experiment_id)
    capsys.readouterr()
    assert stores.run("--n-trials", "2") == 2
    _, remove = _commands(capsys.readouterr().err)
    _run_advice(f"`{remove}`", stores.root)  # mlflow gc, as printed.
    assert stores.client.get_experiment_by_name("tiny") is None
    on = ["--storage", stores.storage, "--tracking-uri", stores.tracking]

    assert cli.main(["compare", "tiny", "--columns", "trial,value,mlflow_status", *on]) == 0
    printed = capsys.readouterr()
    assert "mlflow_status" in printed.out
    assert printed.err.strip() == (
        "note: study 'tiny': the MLflow runs of 1 trial are gone: #0 removed for good (by "
        "mlflow gc, alone or with the experiment; or recorded in another tracking store); "
        "their MLflow columns (mlflow_status, the curves, test_accuracy ...) are empty.")
    assert cli.main(["report", "tiny", *on]) == 0
    assert "(not on the study's MLflow run" in capsys.readouterr().out
    assert "#0 removed for good" in (tmp_path / "mlruns" / "reports" / "tiny.html").read_text()
    for command in (["evaluate", "tiny"], ["confirm", "tiny", "--top", "1", "--seeds", "2"]):
        assert cli.main([*command, *on]) == 2, command
        err = capsys.readouterr().err.strip()
        assert "removed for good" in err and "\n" not in err, err
    assert "cnnlab_evaluation" not in stores.study("tiny").user_attrs
    assert "cnnlab_confirmed" not in stores.study("tiny").user_attrs

    assert stores.run("--n-trials", "3") == 0
    out = capsys.readouterr().out
    assert "is not in this tracking store (removed for good" in out
    assert "the MLflow runs of 1 trial are gone: #0 removed for good" in out
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    parent, children = stores.runs("tiny")
    assert parent.info.status == "FINISHED" and sorted(children) == [1, 2]
    best = stores.client.download_artifacts(parent.info.run_id, "best_trial.json")
    recorded = json.loads(Path(best).read_text())
    assert recorded["run_id"] != old_trial_run
    assert recorded["run_id"] == (None if recorded["number"] == 0 else
                                  children[recorded["number"]].info.run_id)
    assert cli.main(["compare", "tiny", "--columns", "trial,mlflow_status,run_gone", *on]) == 0
    printed = capsys.readouterr()
    rows = {line.split()[0]: line.split()[1:] for line in printed.out.splitlines()[1:]}
    assert rows == {"0": ["<NA>", "removed"], "1": ["FINISHED", "<NA>"],
                    "2": ["FINISHED", "<NA>"]}
    assert "#0 removed for good" in printed.err

    # Only a trial's run deleted, then removed for good: deleted, then removed, in compare.
    one = children[1].info.run_id
    stores.client.delete_run(one)
    assert cli.main(["compare", "tiny", *on]) == 0
    assert "#1 deleted in MLflow (restorable" in capsys.readouterr().err
    gc_run = remove.rsplit("--experiment-ids", 1)[0] + f"--run-ids {one}"
    _run_advice(f"`{gc_run}`", stores.root)
    assert cli.main(["compare", "tiny", *on]) == 0
    assert "#0 #1 removed for good" in capsys.readouterr().err
    assert cli.main(["evaluate", "tiny", "--trial", "1", *on]) == 2
    assert f"the MLflow run of trial 1 ({one}) is not in the tracking store" in \
        capsys.readouterr().err
