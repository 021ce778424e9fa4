"""Helpers for tests that run studies: a tiny study file and its temp stores, and a
`cnnlab ui` server on a free port."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab import cli

TINY = """
name = "tiny"
description = "a tiny study for the tests"
seed = 5
n_trials = 3

[sampler]
name = "random"

[pruner]
name = "none"

[training]
epochs = 2
train_size = 512
val_size = 256

[search]
n_conv = [1, 2]
filters = [4, 8]
kernel_size = [3, 5]
strides = [1, 2]
padding = ["valid", "same"]
dense_units = [16, 32]
"""

TINY_ONE = TINY.replace("n_trials = 3", "n_trials = 1").replace("epochs = 2", "epochs = 1").replace(
    "train_size = 512", "train_size = 256")
"""``TINY`` at its smallest: one trial of one epoch on 256 images."""

TINY_SCRIPT = '''"""TINY as a study script: the same settings and parameters, in the same order."""
import sys

import cnnlab
from cnnlab import Architecture, ConvLayer


def search(trial):
    layers = []
    for i in range(1, trial.suggest_categorical("n_conv", [1, 2]) + 1):
        layers.append(ConvLayer(
            filters=trial.suggest_categorical(f"conv{i}_filters", [4, 8]),
            kernel_size=trial.suggest_categorical(f"conv{i}_kernel_size", [3, 5]),
            strides=trial.suggest_categorical(f"conv{i}_strides", [1, 2]),
            padding=trial.suggest_categorical(f"conv{i}_padding", ["valid", "same"])))
    return Architecture(conv=tuple(layers),
                        dense=(trial.suggest_categorical("dense1_units", [16, 32]),))


study = cnnlab.StudyScript(
    search, name="tiny", description="a tiny study for the tests", seed=5, n_trials=3,
    sampler={"name": "random"}, pruner={"name": "none"},
    training={"epochs": 2, "train_size": 512, "val_size": 256})

if __name__ == "__main__":
    sys.exit(cnnlab.study_main(__file__))
'''
"""``TINY`` written as a study script (``cnnlab.search.script``): its twin."""


REPO = Path(__file__).resolve().parents[1]


def load_script(path: str, name: str) -> Any:
    """The repository's script at ``path`` (``benchmarks/anytime.py``) imported as the module
    ``name``, registered in ``sys.modules`` (its dataclasses look their module up there)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Stores:
    """A temp folder with a study file, an Optuna SQLite storage and an MLflow SQLite store."""

    def __init__(self, root: Path, text: str, name: str = "study.toml") -> None:
        self.root = root
        self.file = root / name
        self.file.write_text(text)
        self.storage = f"sqlite:///{root / 'optuna.db'}"
        self.tracking = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"

    @property
    def resolved(self) -> object:
        """These stores as cnnlab's ``Stores``, for its Python functions."""
        from cnnlab.tracking.stores import Stores as CnnlabStores

        return CnnlabStores(self.storage, self.tracking)

    def run(self, *extra: str) -> int:
        return cli.main(["study", "run", str(self.file), "--storage", self.storage,
                         "--tracking-uri", self.tracking, *extra])

    def study(self, name: str) -> object:
        import optuna

        return optuna.load_study(study_name=name, storage=self.storage)

    def runs(self, name: str) -> tuple[object, dict[int, object]]:
        """The study's parent run and its child runs by trial number."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking)
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in runs if r.data.tags.get("cnnlab.kind") == "study"]
        assert len(parents) == 1, "one parent run per study"
        children = {int(r.data.tags["cnnlab.trial_number"]): r for r in runs
                    if r.data.tags.get("cnnlab.kind") == "trial"}
        confirms = [r for r in runs if r.data.tags.get("cnnlab.kind") == "confirm"]
        assert len(parents) + len(children) + len(confirms) == len(runs)
        return parents[0], children

    @property
    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking)


PLAIN_PATH = "/usr/bin:/bin"
"""A plain shell's PATH: no virtual environment activated (README runs ``.venv/bin/cnnlab``)."""


def _names_a_store(variable: str) -> bool:
    """Whether an environment variable names a store (MLflow's, or cnnlab's Optuna storage)."""
    return variable.startswith("MLFLOW_") or variable == "CNNLAB_STORAGE"


def pasted_env() -> dict[str, str]:
    """The environment of a command pasted in a plain shell: ``PLAIN_PATH``, and no store
    named by a variable (the command must name its own)."""
    return {k: v for k, v in os.environ.items() if not _names_a_store(k)} | {"PATH": PLAIN_PATH}


def run_as_pasted(command: str, folder: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``command`` as printed, in a POSIX shell in ``folder`` (another than the one it
    was printed in), with ``pasted_env()``; returns what it did (text)."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["sh", "-c", command], cwd=folder, env=pasted_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_pasted_here(command: str, folder: Path, monkeypatch: Any) -> int:
    """``command`` (a printed ``cnnlab ...`` line) through ``cli.main`` in this process, in
    ``folder`` and with no store named by a variable, as ``run_as_pasted`` runs it in a shell
    but without a new process's start-up (importing TensorFlow again); returns its exit code."""
    program, *argv = shlex.split(command)
    assert Path(program).name == "cnnlab", program
    for name in [k for k in os.environ if _names_a_store(k)]:
        monkeypatch.delenv(name)
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    return cli.main(argv)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def ui_server(tracking_uri: str, *extra: str, **popen) -> Iterator[tuple[str, str]]:
    """`cnnlab ui` over ``tracking_uri`` on a free port, healthy; yields (base URL, what it
    printed before it was healthy: the banner, then each study's pages) and ends it afterwards.

    A port is found free by binding it, then released for the server, so another process can
    take it in between: a server that exits before it is healthy is started again on another
    port (three tries), instead of the test depending on that race."""
    for _ in range(3):
        started = _start_ui(tracking_uri, extra, popen)
        if started is not None:
            break
    else:
        raise AssertionError("cnnlab ui exited before it was healthy, three times")
    proc, base, banner = started
    try:
        yield base, banner
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _start_ui(tracking_uri: str, extra: tuple[str, ...], popen: dict):
    port = _free_port()
    log = tempfile.TemporaryFile(mode="w+")  # Never an unread pipe that could fill up.
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "ui", "--port", str(port),
                             "--tracking-uri", tracking_uri, *extra], stdout=out,
                            stderr=log, text=True, **popen)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=5).read()
            out.seek(0)  # All printed (and flushed) before the server was started.
            return proc, base, out.read()
        except OSError:
            if proc.poll() is not None:
                return None  # It could not serve on that port.
            if time.monotonic() > deadline:
                proc.terminate()
                proc.wait(timeout=30)
                log.seek(0)
                raise AssertionError(f"cnnlab ui was not healthy in 180 s: {log.read()}") from None
            time.sleep(0.5)
