"""The `cnnlab ui` process itself: what it holds while the MLflow server serves."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.studies import _free_port

HEAVY = ("mlflow", "tensorflow", "keras", "optuna", "pandas", "matplotlib")
"""Packages of a hundred MB or more resident each; `cnnlab ui`'s own process, which only waits
for its server, imports none."""


def _store(root: Path) -> tuple[str, str]:
    """An MLflow store with one experiment holding a study run, as `cnnlab study run` tags it
    (nothing trained); its URI and the experiment's id."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    (root / "mlruns").mkdir()
    client = MlflowClient(uri)
    experiment = client.create_experiment("tiny", artifact_location=(root / "mlruns").as_uri())
    run = client.create_run(experiment, tags={"cnnlab.kind": "study", "cnnlab.study": "tiny"})
    client.set_terminated(run.info.run_id)
    return uri, experiment


@pytest.mark.slow  # Starts an MLflow server.
def test_ui_process_imports_neither_mlflow_nor_tensorflow(tmp_path: Path) -> None:
    """`cnnlab ui` waits for its server for as long as the UI serves: it prints the study's
    pages (its server's process does, before it becomes uvicorn) without importing MLflow,
    TensorFlow or any other heavy package itself. Python's own record of the modules the process
    imported (`-X importtime`, written by the real process) says which it imported."""
    uri, experiment = _store(tmp_path)
    for _ in range(3):  # A free port can be taken before the server binds it: try another.
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        out, err = tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "cnnlab.cli", "ui",
                                 "--port", str(port), "--tracking-uri", uri],
                                stdout=out, stderr=err, text=True)
        try:
            deadline = time.monotonic() + 180
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(base + "/health", timeout=5).read()
                    break
                except OSError:
                    time.sleep(0.5)
            if proc.poll() is not None:
                continue
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        break
    else:
        raise AssertionError("cnnlab ui exited before it was healthy, three times")
    out.seek(0)
    err.seek(0)
    printed, logged = out.read(), err.read()
    # The server's process, not started with -X importtime, writes no such line.
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in logged.splitlines() if line.startswith("import time:")}
    assert "cnnlab" in imported and "argparse" in imported, logged[-2000:]
    assert not set(HEAVY) & imported, sorted(set(HEAVY) & imported)
    # The pages are printed all the same, each study's experiment tagged as before.
    assert printed.splitlines()[1] == (
        f"study 'tiny': its trial runs {base}/#/experiments/{experiment}/runs?"
        "workflowType=machine_learning&viewStateShareKey=cnnlab"), printed
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(uri).get_experiment(experiment).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
