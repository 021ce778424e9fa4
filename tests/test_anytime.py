"""benchmarks/anytime.py at a tiny scale, through its real code paths: the four tools each in
its own process (cnnlab's `study run`, Optuna's recipe, KerasTuner's Hyperband and
RandomSearch), 512 images, 1 epoch, 2 trials each, then the records, table and figure. What is
checked is read back from the records and from the tools' own stores; no timing, no accuracy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.studies import load_script

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "anytime.py"


def _benchmark():
    return load_script("benchmarks/anytime.py", "anytime_benchmark")


@pytest.mark.slow  # It runs the benchmark's four tools.
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
    assert set(runs) == set(bench.TOOLS)  # The default tools.
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
    for tool in bench.TOOLS:  # A row per tool, and cnnlab minus each other tool.
        assert sum(line.startswith(f"| {bench.LABELS[tool]} |")
                   for line in table.splitlines()) == (1 if tool == "cnnlab" else 2)
    assert (out / "anytime-tiny.png").stat().st_size > 0
    # One seed: no interval, so no verdict but the one that says so, at every checkpoint.
    assert printed.count("too few seeds for an interval") == len(bench.CHECKPOINTS)

    # Common random numbers: cnnlab and Optuna's recipe trained the seed's start-up
    # configurations first, read back from their own stores (cnnlab's Optuna storage,
    # Optuna's MLflowCallback store).
    import optuna

    startup = bench.startup_configs(0)
    ours = optuna.load_study(study_name="anytime-tiny-seed0",
                             storage=f"sqlite:///{rundir / 'optuna.db'}").trials
    assert [t.params for t in ours if t.state.name != "WAITING"] == startup[:2]
    theirs = sorted(recipe.search_runs([recipe.get_experiment_by_name(
        "anytime-tiny-seed0").experiment_id]), key=lambda r: int(r.data.tags["number"]))
    assert [{k: json.loads(v) if v.isdigit() else v for k, v in r.data.params.items()}
            for r in theirs] == startup[:2]
    # cnnlab's study is the recipe-aware one: batch normalization after every conv, Adam,
    # the cosine schedule, batch 128, on each trial's MLflow run.
    params = trial_runs[0].data.params
    assert (params["conv1_batchnorm"], params["optimizer"], params["schedule"],
            params["batch_size"], params["bn_momentum"]) == ("True", "adam", "cosine", "128",
                                                             "0.9")

    # The table again from the records alone.
    assert bench.main(["--scale", "tiny", "--seeds", "0", "--out", str(out),
                       "--report-only"]) == 0
    assert (out / "anytime-tiny.md").read_text() == table


def _run(bench, tool: str, seed: int, points: list[tuple[float, float]]):
    return bench.Run(tool, seed, 100.0, [(t, "0", 1, v) for t, v in points], 1, {})


def test_the_report_pairs_seeds_and_judges_at_the_margin():
    """The statistics on runs made by hand: medians, bootstrap intervals, paired differences
    and the verdict at the margin (no training)."""
    bench = _benchmark()
    # cnnlab is 0.001 below the peer on every seed (inside the 0.002 margin) at 25 s, and
    # 0.005 below it at 100 s (outside): as good, then worse.
    runs = []
    for seed in range(10):
        base = 0.97 + 0.001 * seed
        runs.append(_run(bench, "optuna", seed, [(10, base), (90, base + 0.01)]))
        runs.append(_run(bench, "cnnlab", seed, [(10, base - 0.001), (90, base + 0.005)]))
    rows = bench.summary(runs, 100.0)
    assert rows["cnnlab"]["at"][0] == pytest.approx(0.9735)
    low, high = rows["cnnlab"]["interval"][0]
    assert low < 0.9735 < high
    middle, interval, n = bench.paired(rows, "optuna", 0)
    assert (middle, n) == (pytest.approx(-0.001), 10) and interval == pytest.approx((-0.001,
                                                                                   -0.001))
    assert bench.verdict(interval).startswith("as good")
    assert bench.verdict(bench.paired(rows, "optuna", 3)[1]).startswith("worse")
    assert bench.verdict((0.001, 0.004)).startswith("better")
    assert bench.verdict((-0.004, 0.001)).startswith("inconclusive")
    table, verdicts = bench.report(runs, bench.SCALES["tiny"], 100.0, "by hand")
    assert "as good" in verdicts[0] and "worse" in verdicts[3]
    assert "| Optuna recipe (TPE, median, MLflowCallback) | -0.0010 [-0.0010, -0.0010]" in table


def test_the_start_up_configurations_are_the_seeds_own():
    bench = _benchmark()
    first, again, other = (bench.startup_configs(s) for s in (3, 3, 4))
    assert first == again != other and len(first) == bench.N_STARTUP
    for params in first:
        assert params["n_conv"] in bench.SPACE["n_conv"]
        assert {k for k in params if k.startswith("conv")} == {
            f"conv{i}_{f}" for i in range(1, params["n_conv"] + 1) for f in bench.CONV_FIELDS}


def test_cnnlabs_study_in_the_benchmark_is_the_quickstart_study():
    """The benchmark's cnnlab runs search experiments/quickstart.toml's networks with its
    recipe, so the README's figures are about the study a user runs."""
    import tomllib

    bench = _benchmark()
    shipped = tomllib.loads((BENCHMARK.parents[1] / "experiments" / "quickstart.toml")
                            .read_text())
    assert {k: shipped["training"][k] for k in bench.RECIPE_TRAINING} == bench.RECIPE_TRAINING
    assert {k: shipped["search"]["conv"][k.split(".")[1]] for k in bench.RECIPE_SEARCH} == \
        bench.RECIPE_SEARCH
    for path, choices in bench.SPACE.items():
        head, _, field = path.partition(".")
        assert (shipped["search"][head][field] if field else shipped["search"][head]) == choices
    assert shipped["training"]["epochs"] == bench.SCALES["quickstart"].epochs
    assert shipped["training"]["train_size"] == bench.SCALES["quickstart"].train_size
