"""Helpers for tests that run studies: a tiny study file and its temp stores."""

from __future__ import annotations

from pathlib import Path

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


class Stores:
    """A temp folder with a study file, an Optuna SQLite storage and an MLflow SQLite store."""

    def __init__(self, root: Path, text: str, name: str = "study.toml") -> None:
        self.root = root
        self.file = root / name
        self.file.write_text(text)
        self.storage = f"sqlite:///{root / 'optuna.db'}"
        self.tracking = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"

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
        assert len(parents) + len(children) == len(runs)
        return parents[0], children

    @property
    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking)
