"""Accuracy against size, and rankings that survive seed noise, read back from the stores:
a tiny two-objective study's front, tags, plot and DataFrame; the evaluation rules; a
confirmation's nested runs and statistics."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.errors import ConfigError
from tests.studies import TINY, Stores

TWO = TINY.replace('seed = 5', 'seed = 5\nobjectives = ["val_accuracy", "n_params"]').replace(
    "n_trials = 3", "n_trials = 5").replace('[pruner]\nname = "none"',
                                            '[pruner]\nname = "dominance"')


def _front_by_hand(trials: list) -> set[int]:
    """The front by its definition: no other complete trial at least as good on both
    objectives and better on one."""
    done = [t for t in trials if t.state.name == "COMPLETE"
            and t.user_attrs.get("cnnlab_outcome") == "trained"]
    return {t.number for t in done if not any(
        o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
        for o in done)}


@pytest.mark.slow
def test_a_two_objective_study_has_its_front_in_every_store(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    from cnnlab.results.compare import front, trials_frame
    from cnnlab.results.evaluate import choose_trial

    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, TWO)
    assert stores.run() == 0
    study = stores.study("tiny")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "n_params"]
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert trial.values[1] == trial.user_attrs["n_params"]
        if trial.user_attrs.get("cnnlab_outcome") == "trained":
            assert len(trial.user_attrs["cnnlab_curve"]) >= 1  # Recorded for the pruner.
    expected = _front_by_hand(study.trials)
    assert expected and study.user_attrs["cnnlab_front"] == sorted(expected)
    parent, runs = stores.runs("tiny")
    tagged = {n for n, run in runs.items() if run.data.tags.get("cnnlab.front") == "true"}
    assert tagged == expected
    assert parent.data.tags["cnnlab.front"] == " ".join(f"#{n}" for n in sorted(expected))
    assert parent.data.metrics["front_size"] == len(expected)
    artifacts = {a.path for a in stores.client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/front.png" in artifacts
    listed = json.loads(Path(stores.client.download_artifacts(
        parent.info.run_id, "front.json", str(tmp_path))).read_text())
    assert {row["trial"] for row in listed} == expected

    frame = trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)
    assert set(frame.loc[frame["on_front"].astype(bool), "trial"]) == expected
    rows = front(frame)
    assert list(rows["n_params"]) == sorted(rows["n_params"])
    capsys.readouterr()
    assert cli.main(["compare", "tiny", "--front", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking, "--columns", "trial"]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(int(x) for x in printed[1:]) == sorted(expected)

    # The rules pick trials on the front; with two objectives there is no single best.
    with pytest.raises(ConfigError, match="no single best trial"):
        choose_trial(study)
    on_front = [t for t in study.trials if t.number in expected]
    best = max(on_front, key=lambda t: t.values[0])
    assert choose_trial(study, within=0.0).number == best.number
    smallest = min(on_front, key=lambda t: t.values[1])
    assert choose_trial(study, within=1.0).number == smallest.number
    assert choose_trial(study, max_params=int(smallest.values[1])).number == smallest.number


def test_optuna_pruners_are_refused_with_two_objectives(tmp_path: Path, capsys) -> None:
    stores = Stores(tmp_path, TWO.replace('name = "dominance"', 'name = "median"'))
    assert stores.run() == 2
    err = capsys.readouterr().err
    assert "do not work with two objectives" in err and "'dominance'" in err
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.slow
def test_confirm_retrains_with_the_same_seeds_as_nested_runs(tmp_path: Path,
                                                             monkeypatch) -> None:
    from cnnlab.results.confirm import confirm_seeds, confirm_study
    from cnnlab.results.evaluate import choose_trial
    from cnnlab.spec.ranking import summarize

    monkeypatch.chdir(tmp_path)
    text = TINY.replace("epochs = 2", "epochs = 1")
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    out: list[str] = []
    result = confirm_study("tiny", top=2, seeds=2, baseline=True,
                           stores=stores.resolved, out=out.append)
    study = stores.study("tiny")
    record = study.user_attrs["cnnlab_confirmed"]
    seeds = confirm_seeds(5, 2)
    assert record["seeds"] == seeds
    client = stores.client
    experiment = client.get_experiment_by_name("tiny")
    nested = client.search_runs([experiment.experiment_id],
                                filter_string="tags.`cnnlab.kind` = 'confirm'")
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    assert len(nested) == 3 * 2  # Two trials and the notebook CNN, two seeds each.
    assert {r.data.tags["mlflow.parentRunId"] for r in nested} == {parent_id}
    by_entry: dict[str, dict[int, float]] = {}
    for run in nested:
        assert run.info.status == "FINISHED"
        assert int(run.data.params["seed"]) in seeds  # The same seeds for every entry.
        by_entry.setdefault(run.data.tags["cnnlab.confirms"], {})[
            int(run.data.params["seed"])] = run.data.metrics["objective"]
    assert set(by_entry) == {*(str(s.key) for s in result.ranking.entries), "notebook"}
    top2 = sorted((t for t in study.trials if t.state.name == "COMPLETE"),
                  key=lambda t: (-t.value, t.number))[:2]
    assert {int(k) for k in by_entry if k != "notebook"} == {t.number for t in top2}
    # The statistics are those of the runs' own scores, read back from MLflow.
    for summary in result.ranking.entries:
        values = [by_entry[str(summary.key)][s] for s in seeds]
        assert summary.mean == pytest.approx(statistics.fmean(values))
        assert summary.std == pytest.approx(statistics.stdev(values))
        run = client.get_run(study.trials[summary.key].user_attrs["mlflow_run_id"])
        assert run.data.metrics["confirm_mean"] == pytest.approx(summary.mean)
        assert run.data.metrics["confirm_n"] == 2
        assert run.data.tags["cnnlab.confirm_rank"] == str(result.ranking.rank(summary.key))
    means = [s.mean for s in result.ranking.entries]
    assert means == sorted(means, reverse=True)
    assert result.ranking.best.key in result.ranking.tied_with_best
    assert result.baseline.mean == pytest.approx(statistics.fmean(by_entry["notebook"].values()))
    # cnnlab evaluate chooses from the confirmed ranking.
    assert choose_trial(study).number == result.ranking.best.key
    # More seeds later: only the new ones are trained, the first ones are kept.
    confirm_study("tiny", top=2, seeds=3, stores=stores.resolved, out=out.append)
    again = client.search_runs([experiment.experiment_id],
                               filter_string="tags.`cnnlab.kind` = 'confirm'")
    assert len(again) == 6 + 2
    record = stores.study("tiny").user_attrs["cnnlab_confirmed"]
    assert record["seeds"] == confirm_seeds(5, 3) and record["seeds"][:2] == seeds
    for key, entry in record["entries"].items():
        assert len(entry["values"]) == (2 if key == "notebook" else 3)
        assert summarize(key, entry["values"]).n == len(entry["seeds"])


@pytest.mark.slow
def test_the_study_file_confirm_table_runs_after_the_last_trial(tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = TINY.replace("n_trials = 3", "n_trials = 2").replace("epochs = 2", "epochs = 1") + \
        "\n[confirm]\ntop = 1\nseeds = 2\n"
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    record = stores.study("tiny").user_attrs["cnnlab_confirmed"]
    assert record["rule"] == "top 1" and record["n_seeds"] == 2
    assert [len(e["values"]) for e in record["entries"].values()] == [2]
    # Running the finished study again confirms nothing more.
    assert stores.run() == 0
    runs = stores.client.search_runs(
        [stores.client.get_experiment_by_name("tiny").experiment_id],
        filter_string="tags.`cnnlab.kind` = 'confirm'")
    assert len(runs) == 2
    # A resumed study with a larger total confirms its leader as it is then, whichever it is.
    assert stores.run("--n-trials", "3") == 0
    study = stores.study("tiny")
    record = study.user_attrs["cnnlab_confirmed"]
    leader = max((t for t in study.trials if t.state.name == "COMPLETE"),
                 key=lambda t: (t.value, -t.number))
    assert len(record["entries"][str(leader.number)]["values"]) == 2
