"""`cnnlab compare` in the first seconds of a study (``--workers 2`` makes them longer): the
study is in Optuna before its MLflow store is, the store is created while compare reads, a
study writing it holds it locked, trials run before they have attributes. In each state compare
shows what Optuna has, says in one line why MLflow's columns are missing, exits 0, and writes
nothing to a store it only reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from cnnlab import cli


def _compare(capsys: pytest.CaptureFixture, tmp_path: Path) -> tuple[int, list[str], list[str]]:
    code = cli.main(["compare", "tiny", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.mark.slow  # About 15 s: a store created, a lock waited for 5 s.
def test_compare_shows_what_exists_in_the_first_seconds_of_a_study(
        tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = tmp_path / "mlruns" / "mlflow.db"
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                study_name="tiny")

    # The study is in Optuna, with no trial yet; its MLflow store is not there yet.
    code, out, err = _compare(capsys, tmp_path)
    assert (code, out) == (0, ["no trials yet in study 'tiny'."])
    assert err == [f"note: there is no MLflow store at {db} yet; MLflow's columns are left out."]
    assert not db.exists()

    # A trial runs, before any attribute; the store is being created (an empty file, as
    # SQLite makes it on the first connection): left as it is, for its creator.
    study.ask()
    db.parent.mkdir()
    db.touch()
    code, out, err = _compare(capsys, tmp_path)
    assert code == 0
    assert out[1].split()[:3] == ["tiny", "0", "RUNNING"] and len(out) == 2
    assert err == [f"note: the MLflow store {db} is being created (its tables are not all there "
                   "yet), or was made by another MLflow version; MLflow's columns are left out."]
    assert db.stat().st_size == 0

    # The store is whole, and a study holds it locked while compare reads.
    db.unlink()
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri).search_experiments()  # Creates the store.
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        code, out, err = _compare(capsys, tmp_path)
    finally:
        writer.close()
    assert code == 0 and out[1].split()[:3] == ["tiny", "0", "RUNNING"]
    assert err == [f"note: the MLflow store {db} cannot be read now (database is locked); "
                   "MLflow's columns are left out."]

    # Once it is free, MLflow's view joins Optuna's.
    code, out, err = _compare(capsys, tmp_path)
    assert code == 0 and err == [] and out[1].split()[:3] == ["tiny", "0", "RUNNING"]
