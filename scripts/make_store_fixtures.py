"""Remake the stores of other MLflow and Optuna releases that tests/tracking/test_store_faults.py
opens (tests/tracking/stores/): each with one experiment and run, or one study and trial.

Run it with the Python of a scratch environment that holds the release, from the repository's
root (``S=tests/tracking/stores``), e.g.::

    python3 -m venv /tmp/oldenv
    /tmp/oldenv/bin/pip install "mlflow-skinny==3.16.1" sqlalchemy alembic "optuna==3.1.1"
    /tmp/oldenv/bin/python scripts/make_store_fixtures.py mlflow $S/mlflow-3.16.1.db
    /tmp/oldenv/bin/python scripts/make_store_fixtures.py optuna $S/optuna-3.1.1.db
    python3 -m venv /tmp/newenv
    /tmp/newenv/bin/pip install "mlflow-skinny==3.18.0" sqlalchemy alembic
    /tmp/newenv/bin/python scripts/make_store_fixtures.py mlflow $S/mlflow-3.18.0.db

Each store is made anew, VACUUMed and written gzipped (``NAME.db.gz``: tens of KB; an MLflow
store's empty tables and indexes take about 1 MB unpacked).
"""

import gzip
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path


def mlflow_store(path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{path}")
    with tempfile.TemporaryDirectory() as artifacts:
        experiment = client.create_experiment("old", artifact_location=Path(artifacts).as_uri())
        run = client.create_run(experiment, run_name="one")
        client.log_metric(run.info.run_id, "val_accuracy", 0.5)
        client.set_terminated(run.info.run_id)


def optuna_store(path: Path) -> None:
    import optuna

    study = optuna.create_study(study_name="old", storage=f"sqlite:///{path}")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)


def main(kind: str, where: str) -> None:
    path = Path(where).resolve()
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    {"mlflow": mlflow_store, "optuna": optuna_store}[kind](path)
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    packed = path.with_name(path.name + ".gz")
    with path.open("rb") as source, gzip.GzipFile(packed, "wb", mtime=0) as target:
        shutil.copyfileobj(source, target)
    path.unlink()
    print(f"{packed}: {packed.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
