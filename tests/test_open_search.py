"""benchmarks/open_search.py at a tiny scale, through its real code paths: one seed, the
warm start's source and the five strategies, each a real search (cnnlab's `study run` of the
file the benchmark writes, KerasTuner's Hyperband in its child process) on 256 training images
for a budget of seconds, then the table. What is checked is read back from the searches' own
stores (Optuna, MLflow, KerasTuner's log): which strategy started warm, from what, with which
sampler and rungs; no timing, no accuracy, no trial count that the budget decides."""

from __future__ import annotations

import json

import pytest

from tests.studies import load_script


def _benchmark():
    return load_script("benchmarks/open_search.py", "open_search_benchmark")


@pytest.mark.slow  # Six searches and KerasTuner, each in its own process.
def test_the_open_search_benchmark_at_a_tiny_scale(tmp_path, mnist_dir, monkeypatch, capsys):
    pytest.importorskip("keras_tuner")
    import optuna
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("CNNLAB_MNIST_DIR", str(mnist_dir))
    bench = _benchmark()
    root = tmp_path / "bench"
    # The warm start's source first, on a budget its first trained trial fits in whatever the
    # first draws (an infeasible one is told in a moment, but a search's first trial also
    # carries the process's start); `run` then skips it (done) and runs the strategies.
    bench.run(root, [0], 40.0, (), 256)
    assert bench.main(["run", "--root", str(root), "--seeds", "0", "--budget", "8",
                       "--train-size", "256"]) == 0
    printed = capsys.readouterr().out

    for strategy in ("source", *bench.STRATEGIES):  # Each ran to its budget.
        assert (root / f"{strategy}-s0.done").exists(), strategy
    storage = f"sqlite:///{root / 'optuna.db'}"
    studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert set(studies) == {f"open-search-{s}-s0" for s in
                            ("source", "shipped", "cold", "tpe", "random")}

    def load(strategy):
        return optuna.load_study(study_name=f"open-search-{strategy}-s0", storage=storage)

    source = load("source")
    trained = [t for t in source.get_trials(deepcopy=False)
               if t.state.name in ("COMPLETE", "PRUNED")
               and t.user_attrs.get("cnnlab_outcome") == "trained"]
    assert trained, "the source trained nothing to start from"
    # Only `shipped` starts warm: a copy of every trial the source trained (its space is
    # inside the open one), marked as such, and the same count logged on its MLflow study run.
    shipped = load("shipped")
    started = shipped.user_attrs["cnnlab_warm_start"]
    assert started["studies"] == ["open-search-source-s0"]
    copies = [t for t in shipped.get_trials(deepcopy=False)
              if t.user_attrs.get("cnnlab_outcome") == "copied"]
    assert sorted(t.user_attrs["cnnlab_copied_from"]["trial"] for t in copies) == \
        sorted(t.number for t in trained) and started["copied"] == {
            "open-search-source-s0": len(trained)}
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("open-search-shipped-s0")
    (run,) = client.search_runs([experiment.experiment_id],
                                filter_string="tags.`cnnlab.kind` = 'study'")
    assert run.data.params["warm_start"] == "open-search-source-s0"
    assert run.data.params["warm_start_copied"] == str(len(trained))
    for strategy in ("cold", "tpe", "random"):
        study = load(strategy)
        assert "cnnlab_warm_start" not in study.user_attrs, strategy
        assert not [t for t in study.get_trials(deepcopy=False)
                    if t.user_attrs.get("cnnlab_outcome") == "copied"], strategy
    # The samplers and rungs each file asked for, as the study kept them.
    for strategy, sampler, rungs in (("shipped", "tpe", 3), ("cold", "tpe", 3),
                                     ("tpe", "tpe", 0), ("random", "random", 0)):
        config = load(strategy).user_attrs["cnnlab_config"]
        assert config["sampler"]["name"] == sampler, strategy
        assert len(config.get("fidelity", {}).get("rungs", [])) == rungs, strategy
    # KerasTuner's trials, as its child logged them: at most its 3 epochs each.
    logged = [json.loads(line) for line in
              (root / "kt-hyperband-s0.jsonl").read_text().splitlines()]
    assert logged and all(r["epochs_total"] in (1, 2, 3) for r in logged)

    # The table names every strategy, and runs again on its own (the `table` action).
    for strategy in ("source", *bench.STRATEGIES):
        assert f"\n{strategy} " in printed, strategy
    assert bench.main(["table", "--root", str(root), "--seeds", "0", "--budget", "8"]) == 0
    assert "shipped minus each other strategy" in capsys.readouterr().out
