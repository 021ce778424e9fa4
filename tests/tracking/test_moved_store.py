"""A project folder that moves (issue 22, kind 3): the default embedded stores under ``mlruns/``
keep working when the folder is moved or copied, or opened from another working directory, and a
file that really is missing is named.

MLflow records every artifact location as an absolute path; cnnlab re-roots those of a store
whose folder moved at the store's new place (``cnnlab.tracking.stores.reroot_moved_store``).
One real tiny study (one trial, one epoch) with the default stores, then ``shutil`` moves and
copies; everything is read back from the stores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import cli

STUDY = """
name = "moves"
seed = 5
n_trials = 1

[sampler]
name = "random"

[pruner]
name = "none"

[training]
epochs = 1
train_size = 256
val_size = 128

[search]
n_conv = [1]
filters = [4]
kernel_size = [3]
strides = [2]
padding = ["valid"]
dense_units = [16]
"""


def _locations(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [row[0] for query in ("SELECT artifact_location FROM experiments",
                                     "SELECT artifact_uri FROM runs",
                                     "SELECT artifact_location FROM logged_models")
                for row in conn.execute(query)]


@pytest.mark.slow
def test_a_moved_or_copied_project_keeps_its_models(tmp_path: Path, monkeypatch, capsys) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # The default stores, always.
    monkeypatch.delenv("CNNLAB_STORAGE", raising=False)
    first = tmp_path / "project"
    first.mkdir()
    (first / "study.toml").write_text(STUDY)
    # In a process of its own, as a user runs it: in this one, MLflow keeps one engine per URI,
    # and an earlier test's relative default URI would point it at that test's folder.
    done = subprocess.run([sys.executable, "-m", "cnnlab.cli", "study", "run", "study.toml"],
                          cwd=first, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr  # The default stores, under mlruns/.
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    moved = tmp_path / "project2"
    shutil.move(first, moved)

    # The example, as a user runs it: a new process in the moved folder, the default
    # stores (this process's MLflow keeps its engine on the old path of the same URI).
    done = subprocess.run([sys.executable, "-m", "cnnlab.cli", "evaluate", "moves"], cwd=moved,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr  # It said "not in the tracking store".
    assert f"was moved from {first / 'mlruns'}" in done.stderr
    db = moved / "mlruns" / "mlflow.db"
    assert all(str(moved / "mlruns") in where for where in _locations(db))
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("moves")
    runs = client.search_runs([experiment.experiment_id])
    assert any("test_accuracy" in run.data.metrics for run in runs)
    assert not first.exists()  # Nothing was written to the old place.

    # Moved again, and read from another working directory with the stores named.
    again = tmp_path / "project3"
    shutil.move(moved, again)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    named = ["--storage", f"sqlite:///{again / 'mlruns' / 'optuna.db'}",
             "--tracking-uri", f"sqlite:///{again / 'mlruns' / 'mlflow.db'}"]
    assert cli.main(["compare", "moves", "--columns", "trial,artifact_uri", *named]) == 0
    assert str(again / "mlruns") in capsys.readouterr().out
    assert cli.main(["report", "moves", *named]) == 0
    client = MlflowClient(named[-1])
    parent = client.get_run(client.search_runs(
        [client.get_experiment_by_name("moves").experiment_id],
        filter_string="tags.`cnnlab.kind` = 'study'")[0].info.run_id)
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert (Path(parent.info.artifact_uri.removeprefix("file://")) / "report.html").is_file()
    assert list(elsewhere.iterdir()) == [] and not moved.exists()

    # The copy reads its own files, not the other project's; one it lacks is named.
    model = next((copy / "mlruns").glob("moves-*/models/m-*/artifacts/MLmodel"))
    model.unlink()
    capsys.readouterr()
    assert cli.main(["evaluate", "moves", "--storage", f"sqlite:///{copy / 'mlruns' / 'optuna.db'}",
                     "--tracking-uri", f"sqlite:///{copy / 'mlruns' / 'mlflow.db'}"]) != 0
    assert f"its files are missing: {model} does not exist" in capsys.readouterr().err
    assert all(str(copy / "mlruns") in where for where in _locations(copy / "mlruns" /
                                                                          "mlflow.db"))
