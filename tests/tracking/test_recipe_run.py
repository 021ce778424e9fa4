"""`cnnlab train` with the training recipe's options (issue 24): recorded on the run, read back
from the store; options that make no sense together refused in one sentence, with no store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.spec.trialspec import TrialSpec

ARGS = ["--conv", "6:3:1:same:bn:max2:sdo0.1", "--conv", "10:1", "--dense", "", "--head", "gap"]
RECIPE = ["--optimizer", "sgd", "--learning-rate", "0.05", "--schedule", "cosine",
          "--warmup", "0.2", "--weight-decay", "0.0005", "--momentum", "0.9", "--nesterov",
          "--label-smoothing", "0.1", "--rotation", "10", "--translation", "0.1",
          "--zoom", "0.05"]


@pytest.mark.slow
def test_the_recipe_is_recorded_on_the_run(tmp_path: Path, monkeypatch, capsys) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert cli.main(["train", *ARGS, *RECIPE, "--epochs", "1", "--batch-size", "64",
                     "--train-size", "256", "--val-size", "128", "--experiment", "r",
                     "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert ("recipe cosine warmup=0.2 wd=0.0005 momentum=0.9 nesterov ls=0.1 "
            "aug(rot=10,shift=0.1,zoom=0.05)") in out
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("r").experiment_id])
    params = run.data.params
    assert {k: params[k] for k in ("optimizer", "learning_rate", "schedule", "warmup",
                                   "weight_decay", "momentum", "nesterov", "label_smoothing",
                                   "rotation", "translation", "zoom", "conv1_dropout",
                                   "conv1_spatial_dropout")} == {
        "optimizer": "sgd", "learning_rate": "0.05", "schedule": "cosine", "warmup": "0.2",
        "weight_decay": "0.0005", "momentum": "0.9", "nesterov": "True",
        "label_smoothing": "0.1", "rotation": "10.0", "translation": "0.1", "zoom": "0.05",
        "conv1_dropout": "0.1", "conv1_spatial_dropout": "True"}
    # The compiled optimizer's own configuration, as Keras reports it.
    assert params["optimizer_momentum"] == "0.9" and params["optimizer_nesterov"] == "True"
    assert "CosineDecay" in params["optimizer_learning_rate"]
    path = client.download_artifacts(run.info.run_id, "trial_spec.json", str(tmp_path))
    spec = TrialSpec.from_dict(json.loads(Path(path).read_text()))
    assert (spec.training.schedule, spec.training.rotation) == ("cosine", 10.0)
    assert spec.architecture.conv[0].spatial_dropout is True


@pytest.mark.parametrize(("bad", "says"), [
    (["--warmup", "0.2"], "--warmup has no effect without --schedule cosine."),
    (["--schedule", "cosine", "--decay-rate", "0.5"], "--decay-rate has no effect without"),
    (["--momentum", "0.9", "--optimizer", "adam"], "--momentum has no effect without"),
    (["--nesterov", "--optimizer", "rmsprop"], "--nesterov has no effect without"),
    (["--rotation", "200"], "rotation must be a number of degrees from 0 to 180"),
    (["--schedule", "linear"], "invalid choice"),
    (["--conv", "8:3:1:same:do1.5"], "dropout must be a rate"),
])
def test_bad_recipe_options_leave_no_store(bad: list[str], says: str, tmp_path: Path,
                                           capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert cli.main(["train", *bad, "--epochs", "1", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab train: error: ") and "\n" not in err and says in err, err
    assert not (tmp_path / "mlruns").exists()


def test_shapes_shows_conv_dropout_and_one_by_one_convolutions(capsys) -> None:
    assert cli.main(["shapes", *ARGS]) == 0
    out = capsys.readouterr().out
    assert "6k3s1same+bn+max2+sdo0.1-10k1s1valid-gap" in out
    assert "conv1_dropout  SpatialDropout2D" in out
    assert "conv2          Conv2D                  (None, 14, 14, 10)      70" in out
