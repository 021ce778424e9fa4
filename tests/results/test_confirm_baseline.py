"""``cnnlab confirm --baseline --baseline-training notebook``: the notebook's CNN trained as the
notebook trains it beside a study's networks, as ``[confirm] baseline_training`` does from a
study file; switching how it is trained starts its seeds over instead of mixing the two."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.names import CONFIRMED_ATTR
from tests.studies import TINY_ONE, Stores

STUDY = TINY_ONE


def _confirm(stores: Stores, *extra: str) -> int:
    return cli.main(["confirm", "tiny", "--top", "1", "--seeds", "2", "--baseline", *extra,
                     "--storage", stores.storage, "--tracking-uri", stores.tracking])


def _baseline_runs(stores: Stores) -> list:
    experiment = stores.client.get_experiment_by_name("tiny")
    runs = stores.client.search_runs([experiment.experiment_id], max_results=100)
    return [r for r in runs if r.data.tags.get("cnnlab.kind") == "confirm"
            and r.data.params.get("confirms") == "notebook"]


@pytest.mark.slow
def test_the_baseline_is_trained_as_the_notebook_or_as_the_study_says(tmp_path: Path) -> None:
    stores = Stores(tmp_path, STUDY)
    assert stores.run() == 0

    assert _confirm(stores, "--baseline-training", "notebook") == 0
    record = stores.study("tiny").user_attrs[CONFIRMED_ATTR]
    notebook = record["entries"]["notebook"]
    assert notebook["training"]["optimizer"] == "rmsprop"
    assert (notebook["training"]["batch_size"], notebook["training"]["epochs"]) == (256, 10)
    runs = _baseline_runs(stores)
    assert sorted(r.info.run_id for r in runs) == sorted(notebook["run_ids"])
    assert {(r.data.params["optimizer"], r.data.params["batch_size"], r.data.params["epochs"])
            for r in runs} == {("rmsprop", "256", "10")}

    # The study's way now: its seeds start over (the notebook-way runs stay in MLflow).
    assert _confirm(stores) == 0
    study_way = stores.study("tiny").user_attrs[CONFIRMED_ATTR]["entries"]["notebook"]
    assert study_way["training"]["epochs"] == 1
    assert len(study_way["values"]) == len(study_way["seeds"]) == 2
    assert not set(study_way["run_ids"]) & set(notebook["run_ids"])
    assert len(_baseline_runs(stores)) == 4


def test_baseline_training_without_baseline_is_one_sentence(tmp_path: Path, capsys) -> None:
    code = cli.main(["confirm", "tiny", "--baseline-training", "notebook",
                     "--storage", f"sqlite:///{tmp_path / 'o.db'}",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert code == 2
    assert "--baseline-training says how the notebook's CNN is trained; give --baseline too." \
        in capsys.readouterr().err
