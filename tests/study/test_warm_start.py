"""Warm starts across studies (``warm_start`` in a study file, ``cnnlab.study.warm``): a tiny
study, then a study of another space started from its trials, read back from Optuna and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.studies import TINY, Stores

SOURCE = TINY.replace('name = "tiny"', 'name = "first"').replace("n_trials = 3", "n_trials = 4")
"""Four trials of TINY's space: 1-2 conv layers of 4 or 8 filters, kernel 3 or 5, strides 1 or
2, either padding, a Dense layer of 16 or 32 units."""

WIDER = """
name = "second"
seed = 6
n_trials = 1
warm_start = ["first"]

[sampler]
name = "tpe"
n_startup_trials = 1

[pruner]
name = "none"

[training]
epochs = 2
train_size = 512
val_size = 256

[search]
n_conv = [1, 2, 3]
conv.filters = [4, 8, 16]
conv.kernel_size = [3, 5]
conv.strides = [1, 2]
conv.padding = ["valid", "same"]
conv.separable = [false, true]
dense.units = [16, 32]
"""
"""Another space: one more depth, 16 filters, separable convolutions; every value ``first``
drew is offered and every value it fixes is the same, so every trained trial of it maps."""


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Stores:
    """The stores of a study 'first' of four trained trials, shared by this module's tests
    (each starts a study of its own name from it, in the same stores)."""
    stores = Stores(tmp_path_factory.mktemp("warm"), SOURCE, "first.toml")
    assert stores.run() == 0
    return stores


def test_a_warm_started_study_reads_back_the_earlier_trials(first: Stores,
                                                            tmp_path: Path) -> None:
    import optuna

    source = first.study("first")
    trained = {t.number: t for t in source.trials if t.state.name == "COMPLETE"}
    assert trained

    second = Stores(first.root, WIDER, "second.toml")
    assert second.run() == 0
    study = optuna.load_study(study_name="second", storage=second.storage)
    copies = [t for t in study.trials if t.user_attrs.get("cnnlab_outcome") == "copied"]
    own = [t for t in study.trials if t.user_attrs.get("cnnlab_outcome") != "copied"]
    # Every trained trial of 'first' is in 'second', with its score, as 'second' draws it:
    # its parameters' distributions are the new space's.
    assert {t.user_attrs["cnnlab_copied_from"]["trial"] for t in copies} == set(trained)
    for copy in copies:
        original = trained[copy.user_attrs["cnnlab_copied_from"]["trial"]]
        assert copy.user_attrs["cnnlab_copied_from"]["study"] == "first"
        assert copy.value == original.value
        assert copy.intermediate_values == original.intermediate_values
        assert copy.distributions["conv1_filters"].choices == (4, 8, 16)
        assert copy.params["n_conv"] == original.params["n_conv"]
        assert copy.params.get("conv1_separable") is False
    assert len(own) == 1 and own[0].user_attrs["cnnlab_outcome"] == "trained"
    record = study.user_attrs["cnnlab_warm_start"]
    assert record["studies"] == ["first"]
    assert record["copied"] == {"first": len(trained)}

    # MLflow: the study run says where it started from, and every copy names the run of the
    # trial it copies, which the tracking store still holds with the same score.
    parent, _ = second.runs("second")
    assert parent.data.params["warm_start"] == "first"
    assert int(parent.data.params["warm_start_copied"]) == len(trained)
    path = second.client.download_artifacts(parent.info.run_id, "warm_start.json",
                                            str(tmp_path))
    logged = json.loads(Path(path).read_text())
    assert {c["trial"] for c in logged["copies"]} == {t.number for t in copies}
    for copy in copies:
        run = second.client.get_run(copy.user_attrs["mlflow_run_id"])
        assert run.data.metrics["val_accuracy"] == pytest.approx(copy.value)
        assert run.data.tags["cnnlab.study"] == "first"

    # A resume copies nothing again.
    assert second.run("--n-trials", "2") == 0
    again = optuna.load_study(study_name="second", storage=second.storage)
    assert sum(t.user_attrs.get("cnnlab_outcome") == "copied" for t in again.trials) \
        == len(copies)


def test_trials_the_new_space_cannot_draw_are_left_out_and_counted(first: Stores) -> None:
    import optuna

    trained = [t for t in first.study("first").trials if t.state.name == "COMPLETE"]
    narrower = WIDER.replace('name = "second"', 'name = "narrower"').replace(
        "conv.filters = [4, 8, 16]", "conv.filters = [8, 16]")
    second = Stores(first.root, narrower, "narrower.toml")
    assert second.run() == 0
    study = optuna.load_study(study_name="narrower", storage=second.storage)
    record = study.user_attrs["cnnlab_warm_start"]
    fits = [t for t in trained
            if all(v == 8 for k, v in t.params.items() if k.endswith("_filters"))]
    assert record["copied"] == {"first": len(fits)}
    assert record["left_out"]["first"].get("outside the space", 0) == len(trained) - len(fits)


def test_a_warm_start_from_a_study_that_is_not_there_writes_nothing(
        first: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    text = WIDER.replace('name = "second"', 'name = "typo"').replace('["first"]', '["frist"]')
    typo = Stores(first.root, text, "typo.toml")
    assert typo.run() != 0
    assert "warm_start: no study named 'frist'" in capsys.readouterr().err
    assert "typo" not in optuna.study.get_all_study_names(storage=typo.storage)


@pytest.mark.parametrize(("value", "message"), [
    (["first", "first"], "'warm_start' names a study twice"),
    ("first", "'warm_start' must be a list of study names, not 'first'"),
    ([""], "'warm_start' must be a list of study names"),
])
def test_a_bad_warm_start_is_one_sentence_naming_the_key(value: object, message: str) -> None:
    from cnnlab.errors import ConfigError
    from cnnlab.search.config import parse_study

    with pytest.raises(ConfigError, match=message) as caught:
        parse_study({"name": "x", "n_trials": 1, "warm_start": value}, where="x.toml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("x.toml: ")
