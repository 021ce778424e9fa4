"""A study with fidelity rungs (``[fidelity]``): each trial trains rung by rung and goes on only
while it ranks well; what each trial reached is in both stores, in ``compare`` and the report,
and the study resumes and runs with ``--workers 2`` on the local default stores. Tiny: 256
training images, 1-2 epochs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.names import (
    CONFIG_KEY_ATTR,
    CURVE_ATTR,
    FIDELITY_ATTR,
    FIDELITY_TAG,
    REASON_TAG,
    RUN_ID_ATTR,
    WORKER_ATTR,
)
from cnnlab.results import compare
from cnnlab.spec.fidelity import promoted
from tests.studies import TINY, Stores

pytestmark = pytest.mark.slow

RUNGS = TINY.replace("n_trials = 3", "n_trials = 5").replace(
    '[pruner]\nname = "none"\n', "").replace("epochs = 2\n", "").replace(
    "train_size = 512", "train_size = 256").replace(
    "[training]", """[fidelity]
rungs = [{ epochs = 1, train_size = 128 }, { epochs = 2 }]
promote = 0.5
min_trials = 2

[training]""")


def _check_trials(stores: Stores, *, sequential: bool) -> list:
    """Every trained trial's fidelity as both stores hold it, and (run by one process, in
    order) each verdict as the rule gives it from the curves of the trials before it."""
    study = stores.study("tiny")
    _, runs = stores.runs("tiny")
    trained = [t for t in study.trials if FIDELITY_ATTR in t.user_attrs]
    assert trained
    for trial in trained:
        fidelity = trial.user_attrs[FIDELITY_ATTR]
        run = runs[trial.number]
        history = stores.client.get_metric_history(run.info.run_id, "val_accuracy")
        if trial.state.name == "COMPLETE":
            assert fidelity == {"rung": 2, "rungs": 2, "epochs": 2, "train_size": 256}
            assert run.data.tags[FIDELITY_TAG] == "rung 2 of 2: 2 epochs on 256 images"
            assert [m.step for m in history] == [1, 2]
        else:
            assert trial.state.name == "PRUNED"
            assert fidelity == {"rung": 1, "rungs": 2, "epochs": 1, "train_size": 128}
            assert run.data.tags[FIDELITY_TAG] == "rung 1 of 2: 1 epoch on 128 images"
            assert run.data.tags[REASON_TAG].startswith(
                "stopped at rung 1 of 2 (1 epoch on 128 images): not among the best")
            assert [m.step for m in history] == [1]
        if sequential:
            before = [t.user_attrs[CURVE_ATTR][0] for t in trained if t.number < trial.number]
            go_on, _ = promoted(trial.user_attrs[CURVE_ATTR][0], before, fraction=0.5,
                                min_trials=2)
            assert go_on == (trial.state.name == "COMPLETE"), trial.number
    return trained


def test_a_study_with_rungs_records_each_trials_fidelity_and_resumes(tmp_path: Path) -> None:
    stores = Stores(tmp_path, RUNGS)
    assert stores.run() == 0
    first = _check_trials(stores, sequential=True)
    assert len(first) == 5
    assert stores.run("--n-trials", "6") == 0  # Resumed on the same rungs.
    trained = _check_trials(stores, sequential=True)
    assert len(trained) == 6
    frame = compare.trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)
    board = compare.leaderboard(frame)
    shown = dict(zip(board["trial"], board["fidelity"], strict=True))
    for trial in trained:
        rung = trial.user_attrs[FIDELITY_ATTR]["rung"]
        assert shown[trial.number] == ("2/2 (2 ep x 256)" if rung == 2 else "1/2 (1 ep x 128)")
    # Complete (full-fidelity) trials first, then those stopped at rung 1.
    states = list(board["state"].astype(str))
    assert states == sorted(states, key=lambda s: s != "COMPLETE")
    report = (tmp_path / "mlruns" / "reports" / "tiny.html").read_text()
    complete = sum(t.state.name == "COMPLETE" for t in trained)
    assert (f"{complete} reached the full fidelity (rung 2 of 2; the leaderboard ranks only "
            f"these), {len(trained) - complete} stopped at rung 1.") in report


def test_a_study_with_rungs_runs_with_two_workers_on_the_local_default(
        tmp_path: Path, monkeypatch, capfd) -> None:
    """`--workers 2` on the default local stores, with rungs: exactly the total, no lost or
    duplicate trials, one study run, no 'database is locked', each trial's fidelity in both
    stores; on a random sampler each trial number's draw is the one a single process makes,
    so the workers never draw the same sequence side by side. The single process and the
    parent run in this process (what the parent does is a study run's start and end, tested
    elsewhere as a process); the two workers, which share the stores, are processes."""
    text = RUNGS.replace("n_trials = 5", "n_trials = 4")
    (tmp_path / "single").mkdir()
    (tmp_path / "pair").mkdir()
    single = Stores(tmp_path / "single", text)
    monkeypatch.chdir(single.root)
    assert single.run() == 0
    stores = Stores(tmp_path / "pair", text)
    for name in ("MLFLOW_TRACKING_URI", "CNNLAB_STORAGE"):  # The defaults, really.
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.chdir(stores.root)
    capfd.readouterr()
    code = cli.main(["study", "run", str(stores.file), "--workers", "2"])
    out, err = capfd.readouterr()
    assert code == 0, err[-3000:]
    assert "locked" not in err + out
    stores.storage = f"sqlite:///{stores.root / 'mlruns' / 'optuna.db'}"
    stores.tracking = f"sqlite:///{stores.root / 'mlruns' / 'mlflow.db'}"
    study = stores.study("tiny")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    assert len({t.user_attrs[WORKER_ATTR]["pid"] for t in study.trials}) == 2
    keys = [t.user_attrs[CONFIG_KEY_ATTR] for t in study.trials]
    assert len(set(keys)) == len(keys) == 4
    assert {t.number: t.params for t in study.trials} == \
        {t.number: t.params for t in single.study("tiny").trials}
    assert len(_check_trials(stores, sequential=False)) == 4
    parent, children = stores.runs("tiny")  # Asserts a single study run.
    assert sorted(children) == [0, 1, 2, 3]
    assert {c.data.tags["mlflow.parentRunId"] for c in children.values()} == {parent.info.run_id}
    assert {t.user_attrs[RUN_ID_ATTR] for t in study.trials} == \
        {c.info.run_id for c in children.values()}
