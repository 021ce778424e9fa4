"""What ``study check`` accepts is what runs (issue 22, kind 6): a range Optuna would narrow at
every trial is refused by the check; what Optuna warns of when the sampler or pruner is made from
the file's options is said once, by the check and at the start of a run, never before every
trial; and cnnlab reads every run of a study from MLflow, page after page."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.errors import ConfigError
from cnnlab.search.config import dry_run, load_study_config
from cnnlab.search.factory import make_pruner, make_sampler

BASE = """
name = "checked"
seed = 3
n_trials = 2

[sampler]
name = "tpe"
{sampler}

[pruner]
name = "median"

[training]
epochs = 1

[search]
n_conv = [1, 2]
{search}
"""


def _file(tmp_path: Path, search: str = "", sampler: str = "") -> Path:
    path = tmp_path / "study.toml"
    path.write_text(BASE.format(search=search, sampler=sampler))
    return path


@pytest.mark.parametrize("search, where, fix", [
    ("filters = { low = 4, high = 30, step = 8 }", "search.filters", "make 'high' 28 or 36"),
    ("dropout = { low = 0.0, high = 0.45, step = 0.1 }", "search.dropout",
     "make 'high' 0.4 or 0.5"),
])
def test_a_range_that_optuna_would_narrow_is_refused_by_the_check(
        tmp_path: Path, search: str, where: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=rf"{where}: the range .* does not end on a step "
                                          rf"\(Optuna would search .* only\); {fix}\."):
        load_study_config(_file(tmp_path, search))


def test_a_range_that_ends_on_a_step_searches_every_step(tmp_path: Path) -> None:
    import optuna

    config = load_study_config(_file(tmp_path, "filters = { low = 4, high = 28, step = 8 }"))
    (param,) = [p for path, p in config.space.params.items() if path.endswith("filters")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Not a word from Optuna about the range.
        study.optimize(lambda t: param.suggest(t, "f") * 0.0, n_trials=6)
    seen = {t.params["f"] for t in study.trials}
    assert seen == {4, 12, 20, 28}


def test_optunas_warnings_about_options_are_said_once_not_before_every_trial(
        tmp_path: Path, capsys) -> None:
    import optuna

    path = _file(tmp_path, "filters = [4, 8]", "prior_weight = 1.5")  # Deprecated in 4.9.
    config = load_study_config(path)
    assert len(config.notes) == 1 and "`prior_weight` has been deprecated" in config.notes[0]
    assert config.notes[0].startswith(f"{path}: sampler: optuna.samplers.TPESampler warns: ")
    assert cli.main(["study", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.count("note: ") == 1 and "prior_weight" in out and err == ""

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dry_run(config)
        study = optuna.create_study(sampler=make_sampler(config), pruner=make_pruner(config))
        study.optimize(lambda t: config.space.suggest(t) and 0.5, n_trials=4)
    assert [str(w.message) for w in caught] == []
    assert len(study.trials) == 4


def test_what_the_sampler_warns_of_while_it_samples_is_said_once(tmp_path: Path,
                                                                   capsys) -> None:
    import optuna

    # TPE's group without multivariate, with two objectives: Optuna warns at every trial.
    path = tmp_path / "study.toml"
    path.write_text(BASE.format(search="filters = [4, 8]", sampler="group = true").replace(
        'n_trials = 2', 'n_trials = 2\nobjectives = ["val_accuracy", "n_params"]').replace(
        'name = "median"', 'name = "none"'))
    config = load_study_config(path)
    assert cli.main(["study", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.count("note: ") == 1 and "``group``" in out and err == ""

    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = optuna.create_study(directions=config.directions,
                                    sampler=make_sampler(config, say=said.append))
        study.optimize(lambda t: (config.space.suggest(t) and 0.5, 1000.0 + t.number),
                       n_trials=5)
    assert [str(w.message) for w in caught] == []
    assert len(said) == 1 and said[0].startswith("optuna.samplers.TPESampler warns: ")


def test_every_run_of_a_study_is_read_page_after_page(tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from cnnlab.names import KIND_TAG, KIND_TRIAL
    from cnnlab.results.compare import _trial_runs
    from cnnlab.tracking.runs import search_all_runs

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("paged")
    made = {client.create_run(experiment, tags={KIND_TAG: KIND_TRIAL}).info.run_id
            for _ in range(5)}
    client.create_run(experiment, tags={KIND_TAG: "study"})
    assert len(client.search_runs([experiment], max_results=2)) == 2  # One call: one page.
    assert set(_trial_runs(client, "paged", page_size=2)) == made
    assert len(search_all_runs(client, [experiment], page_size=2)) == 6
