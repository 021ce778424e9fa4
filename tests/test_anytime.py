"""benchmarks/anytime.py at a tiny scale, through its real code paths: the four tools each in
its own process (cnnlab's `study run`, Optuna's recipe, KerasTuner's Hyperband and
RandomSearch), 512 images, 1 epoch, 2 trials each, then the records, table and figure. What is
checked is read back from the records and from the tools' own stores; no timing, no accuracy."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # Its one test runs the benchmark's four tools.

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "anytime.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("anytime_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Its dataclasses look their module up.
    spec.loader.exec_module(module)
    return module


def test_the_anytime_benchmark_at_a_tiny_scale(tmp_path, mnist_dir, capsys):
    pytest.importorskip("keras_tuner")
    from mlflow.tracking import MlflowClient

    bench = _benchmark()
    out = tmp_path / "bench"
    assert bench.main(["--scale", "tiny", "--seeds", "0", "--max-trials", "2",
                       "--out", str(out), "--data-dir", str(mnist_dir)]) == 0
    printed = capsys.readouterr().out

    with open(out / "anytime-tiny-records.csv", newline="") as file:
        records = list(csv.DictReader(file))
    runs = {meta["tool"]: meta for meta in json.loads((out / "anytime-tiny-runs.json").read_text())}
    assert set(runs) == set(bench.TOOLS)
    for tool in bench.TOOLS:
        # Every run ended by itself after its 2 trials (its tool's own count), each trained.
        assert runs[tool]["returncode"] == 0 and not runs[tool]["stopped_at_budget"], tool
        assert runs[tool]["finished"] == 2, (tool, runs[tool]["trials_by_state"])
        rows = sorted((r for r in records if r["tool"] == tool), key=lambda r: float(r["seconds"]))
        assert rows, f"{tool} recorded no validated epoch"
        assert {r["trial"] for r in rows} and len({r["trial"] for r in rows}) <= 2
        best = float("-inf")
        for row in rows:  # The anytime curve: the running maximum, never going down.
            best = max(best, float(row["val_accuracy"]))
            assert float(row["best_so_far"]) == best
            assert float(row["seconds"]) > 0

    # cnnlab's points are its MLflow store's: every trial run's val_accuracy history, at the
    # history's own timestamps relative to the run's start.
    rundir = out / "tiny" / "cnnlab-seed0"
    client = MlflowClient(tracking_uri=f"sqlite:///{rundir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("anytime-tiny-seed0")
    trial_runs = client.search_runs([experiment.experiment_id],
                                    filter_string="tags.`cnnlab.kind` = 'trial'")
    t0 = runs["cnnlab"]["t0"]
    stored = set()
    for run in trial_runs:
        for metric in client.get_metric_history(run.info.run_id, "val_accuracy"):
            stored.add((run.data.tags["cnnlab.trial_number"], metric.step, metric.value,
                        round(metric.timestamp / 1000 - t0, 3)))
    recorded = {(r["trial"], int(r["epoch"]), float(r["val_accuracy"]),
                 round(float(r["seconds"]), 3)) for r in records if r["tool"] == "cnnlab"}
    assert stored == recorded
    assert sum(r.data.tags.get("cnnlab.outcome") == "trained" for r in trial_runs) == 2

    # Optuna's recipe tracked each trial in its own MLflow store (MLflowCallback): the value it
    # logged is the trial's last recorded epoch.
    recipe = MlflowClient(tracking_uri=f"sqlite:///{out / 'tiny' / 'optuna-seed0' / 'mlflow.db'}")
    logged = {run.data.tags["number"]: run.data.metrics["val_accuracy"]
              for run in recipe.search_runs(
                  [recipe.get_experiment_by_name("anytime-tiny-seed0").experiment_id])}
    last = {}
    for r in sorted((r for r in records if r["tool"] == "optuna"), key=lambda r: int(r["epoch"])):
        last[r["trial"]] = float(r["val_accuracy"])
    assert logged == last

    # KerasTuner's own trial files agree: each recorded trial completed, with the best
    # val_accuracy of its recorded epochs as its score.
    for tool in ("kt-hyperband", "kt-random"):
        folder = out / "tiny" / f"{tool}-seed0" / "kt" / tool
        for trial in {r["trial"] for r in records if r["tool"] == tool}:
            saved = json.loads((folder / f"trial_{trial}" / "trial.json").read_text())
            assert saved["status"] == "COMPLETED"
            assert saved["score"] == max(float(r["val_accuracy"]) for r in records
                                         if r["tool"] == tool and r["trial"] == trial)

    table = (out / "anytime-tiny.md").read_text()
    for tool in bench.TOOLS:
        assert sum(line.startswith(f"| {bench.LABELS[tool]} |")
                   for line in table.splitlines()) == 1
    assert (out / "anytime-tiny.png").stat().st_size > 0
    assert printed.count("at least as good") == len(bench.CHECKPOINTS)

    # The table again from the records alone.
    assert bench.main(["--scale", "tiny", "--seeds", "0", "--out", str(out),
                       "--report-only"]) == 0
    assert (out / "anytime-tiny.md").read_text() == table
