"""The training recipe searched like any other field (issue 24): paths ``training.schedule``,
``training.weight_decay`` ..., ``conv.dropout``; bad values refused in one sentence naming the
path; drawn values reach Optuna's and MLflow's records."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.errors import ConfigError
from cnnlab.search.config import load_study_config
from cnnlab.search.space import Choices, FloatRange, parse_space
from cnnlab.spec.trialspec import TrialSpec
from tests.studies import TINY, Stores

RECIPE_SEARCH = """
training.schedule = ["constant", "cosine"]
training.warmup = [0.0, 0.2]
training.weight_decay = { low = 1e-5, high = 1e-3, log = true }
training.rotation = [0, 10]
training.label_smoothing = [0.0, 0.1]
conv.dropout = [0.0, 0.1]
conv.spatial_dropout = [true, false]
"""


def test_recipe_paths_are_searchable() -> None:
    space = parse_space(tomllib.loads(RECIPE_SEARCH + "dropout = [0.0, 0.5]\n"))
    assert space.params["training.schedule"] == Choices(("constant", "cosine"))
    assert space.params["training.weight_decay"] == FloatRange(1e-5, 1e-3, log=True)
    assert space.params["training.rotation"] == Choices((0.0, 10.0))
    assert space.params["conv.dropout"] == Choices((0.0, 0.1))
    # A bare 'dropout' is still the architecture's, before the Dense layers.
    assert space.params["dropout"] == Choices((0.0, 0.5))


@pytest.mark.parametrize(("search", "message"), [
    ('training.schedule = ["cosine", "linear"]', "search.training.schedule: schedule must be"),
    ("training.warmup = [0.1, 1.0]", "search.training.warmup: warmup must be"),
    ("training.weight_decay = { low = -1.0, high = 1.0 }", "search.training.weight_decay.low"),
    ("training.momentum = [0.9, 1.0]", "search.training.momentum: momentum must be"),
    ("training.nesterov = [1]", "search.training.nesterov must hold true or false"),
    ("training.rotation = [10, 190]", "search.training.rotation: rotation must be"),
    ("conv.dropout = { low = 0.0, high = 1.0 }", "search.conv.dropout.high"),
    ('conv2.spatial_dropout = ["yes"]', "search.conv2.spatial_dropout must hold true or false"),
])
def test_bad_recipe_spaces_are_one_sentence_naming_the_path(search: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_space(tomllib.loads(search))
    text = str(caught.value)
    assert message in text and "\n" not in text, text


def test_training_takes_the_recipe_and_refuses_bad_values(tmp_path: Path) -> None:
    file = tmp_path / "study.toml"
    file.write_text(TINY.replace("epochs = 2", 'epochs = 2\nschedule = "step"\ndecay_rate = 0.5'))
    config = load_study_config(file)
    assert (config.training.schedule, config.training.decay_rate) == ("step", 0.5)
    file.write_text(TINY.replace("epochs = 2", "epochs = 2\nzoom = 2"))
    with pytest.raises(ConfigError, match=r"training: zoom must be a fraction") as caught:
        load_study_config(file)
    assert "\n" not in str(caught.value)
    # A setting that no trial can use is refused; one a searched schedule may use is kept.
    file.write_text(TINY.replace("epochs = 2", "epochs = 2\nwarmup = 0.2"))
    with pytest.raises(ConfigError, match=r"training: 'warmup' has no effect with schedule "
                                          r"'constant'; it is used with schedule cosine\.$"):
        load_study_config(file)
    file.write_text(TINY.replace("epochs = 2", "epochs = 2\nwarmup = 0.2").replace(
        "[search]", '[search]\ntraining.schedule = ["constant", "cosine"]'))
    assert load_study_config(file).training.warmup == 0.2


def test_study_check_lists_the_searched_recipe(tmp_path: Path, capsys) -> None:
    file = tmp_path / "study.toml"
    file.write_text(TINY.replace("[search]", "[search]" + RECIPE_SEARCH).replace(
        "epochs = 2", "epochs = 2\nlabel_smoothing = 0.05").replace(
        "training.label_smoothing = [0.0, 0.1]\n", ""))
    assert cli.main(["study", "check", str(file)]) == 0
    rows = {" ".join(line.split()[:1]): line.split()[1:] for line in
            capsys.readouterr().out.splitlines() if line.startswith("  training.")}
    assert rows["training.schedule"] == ["constant", "|", "cosine", "search"]
    assert rows["training.label_smoothing"] == ["0.05", "training"]
    assert "training.zoom" not in rows  # Neither searched nor set: the default, not listed.


@pytest.mark.slow
def test_a_searched_recipe_reaches_optuna_and_mlflow(tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    from cnnlab.results.compare import trials_frame

    monkeypatch.chdir(tmp_path)
    text = TINY.replace("n_trials = 3", "n_trials = 2").replace("epochs = 2", "epochs = 1")
    text = text.replace("[search]", "[search]" + RECIPE_SEARCH)
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    printed = capsys.readouterr().out
    study = stores.study("tiny")
    _, runs = stores.runs("tiny")
    trained = [t for t in study.trials if t.user_attrs.get("cnnlab_outcome") == "trained"]
    assert len(trained) == 2
    for trial in trained:
        params = runs[trial.number].data.params
        # Warm-up is drawn with the cosine schedule only, spatial dropout with dropout only
        # (the space is conditional there); MLflow has every setting, drawn or default.
        assert ("warmup" in trial.params) == (trial.params["schedule"] == "cosine")
        assert ("conv1_spatial_dropout" in trial.params) == (trial.params["conv1_dropout"] > 0)
        for name in ("schedule", "warmup", "weight_decay", "rotation", "label_smoothing",
                     "conv1_dropout", "conv1_spatial_dropout"):
            if name in trial.params:
                assert params[name] == str(trial.params[name]), name
        assert 1e-5 <= trial.params["weight_decay"] <= 1e-3
        assert float(params["optimizer_weight_decay"]) == pytest.approx(
            trial.params["weight_decay"], rel=1e-6)  # The compiled optimizer's.
        spec = TrialSpec.from_dict(trial.user_attrs["cnnlab_spec"])
        assert spec.training.schedule == trial.params["schedule"]
        assert spec.training.weight_decay == trial.params["weight_decay"]
        assert spec.architecture.conv[0].dropout == trial.params["conv1_dropout"]
        path = stores.client.download_artifacts(runs[trial.number].info.run_id,
                                                "trial_spec.json", str(tmp_path))
        assert TrialSpec.from_dict(json.loads(Path(path).read_text())) == spec
        # The trial's line says what was drawn for the training too; compare has the columns.
        line = next(li for li in printed.splitlines() if li.startswith(f"trial {trial.number:3d}"))
        assert f"schedule={trial.params['schedule']}" in line
        assert f"weight_decay={trial.params['weight_decay']:.3g}" in line
    frame = trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)
    for name in ("schedule", "warmup", "weight_decay", "rotation", "label_smoothing",
                 "bn_momentum", "zoom"):  # The last two fixed: MLflow's, not Optuna's.
        assert name in frame.columns, name
    assert set(frame["bn_momentum"]) == {0.99}
    by_trial = frame.set_index("trial")
    for trial in trained:
        assert by_trial.loc[trial.number, "schedule"] == trial.params["schedule"]
