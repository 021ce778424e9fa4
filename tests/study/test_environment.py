"""MLflow's environment variables cannot redirect what cnnlab writes: every run cnnlab creates
is created in the experiment cnnlab names (issue 22: with ``MLFLOW_RUN_ID`` left over from
another tool, ``cnnlab train`` wrote into that run, and a second ``train`` died). Only
``MLFLOW_TRACKING_URI`` (and ``CNNLAB_STORAGE``) choose the stores, as docs/commands.md says."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from cnnlab import cli
from cnnlab.cli import build_parser
from cnnlab.tracking.evaluations import registered_model_name
from tests.studies import TINY_ONE, Stores

pytestmark = pytest.mark.slow  # Trains: two `cnnlab train` runs, a study, a confirmation.

ONE = TINY_ONE
TRAIN = ["train", "--epochs", "1", "--train-size", "64", "--val-size", "32", "--conv", "2:3:2",
         "--dense", "4"]


def test_mlflow_run_and_experiment_variables_redirect_nothing(tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, ONE)
    client = MlflowClient(stores.tracking, registry_uri=stores.tracking)
    outside_experiment = client.create_experiment("outside")
    outside = client.create_run(outside_experiment, run_name="someone-else's",
                                tags={"owner": "another tool"})
    before = client.get_run(outside.info.run_id)
    elsewhere = tmp_path / "elsewhere"
    environment = {
        "MLFLOW_RUN_ID": outside.info.run_id,
        "MLFLOW_EXPERIMENT_ID": outside_experiment,
        "MLFLOW_EXPERIMENT_NAME": "named-by-the-environment",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{elsewhere / 'registry.db'}",
        "MLFLOW_RUN_CONTEXT": json.dumps({"mlflow.parentRunId": outside.info.run_id,
                                          "from.context": "yes"}),
    }

    def run(*argv: str) -> str:
        # Set afresh for every command, as a shell does: MLflow unsets MLFLOW_RUN_ID when it
        # uses it.
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        assert cli.main(list(argv)) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    store = ["--storage", stores.storage, "--tracking-uri", stores.tracking]
    outs = [run(*TRAIN, "--tracking-uri", stores.tracking) for _ in range(2)]
    run("study", "run", str(stores.file), *store)
    run("confirm", "tiny", "--top", "1", "--seeds", "2", *store)
    run("evaluate", "tiny", *store)

    # The outside run and its experiment are as they were.
    after = client.get_run(outside.info.run_id)
    assert after.data.params == {} and after.data.metrics == {}
    assert after.data.tags == before.data.tags
    assert (after.info.status, after.info.end_time) == (before.info.status, before.info.end_time)
    assert [r.info.run_id for r in client.search_runs([outside_experiment])] == \
        [outside.info.run_id]
    assert client.get_experiment_by_name("named-by-the-environment") is None

    # `cnnlab train`: a new run each time, in the experiment it names and says.
    train = client.get_experiment_by_name("cnnlab-train")
    runs = client.search_runs([train.experiment_id])
    assert len(runs) == 2 and len({r.info.run_id for r in runs}) == 2
    for run_, out in zip(sorted(runs, key=lambda r: r.info.start_time), outs, strict=True):
        assert f"MLflow run {run_.info.run_id} in experiment 'cnnlab-train'" in out
        browse = shlex.split(out.split("browse it with: ")[1].splitlines()[0])
        assert Path(browse[0]).name == "cnnlab" and browse[1] == "ui"
        assert build_parser().parse_args(browse[1:]).tracking_uri == \
            f"sqlite:///{Path(stores.tracking[len('sqlite:///'):]).resolve()}"
        assert run_.data.tags["cnnlab.kind"] == "train"
        assert "mlflow.parentRunId" not in run_.data.tags
        assert run_.data.params["epochs"] == "1" and "val_accuracy" in run_.data.metrics
        assert run_.info.status == "FINISHED"

    # The study: its run, its trial's and the confirmation's under it, in its experiment.
    parent, children = stores.runs("tiny")
    assert "mlflow.parentRunId" not in parent.data.tags
    experiment = client.get_experiment_by_name("tiny").experiment_id
    runs = client.search_runs([experiment])
    assert {r.data.tags["cnnlab.kind"] for r in runs} == {"study", "trial", "confirm"}
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
               for r in runs if r.info.run_id != parent.info.run_id)
    assert len(children) == 1

    # The evaluation's registered model is in the tracking store, not in the environment's.
    assert "cnnlab_evaluation" in stores.study("tiny").user_attrs
    assert [m.name for m in client.search_registered_models()] == \
        [registered_model_name("tiny")]
    assert not elsewhere.exists()
