"""A design's seed is recorded, not searched: Optuna's importances, as `cnnlab dashboard`
(optuna-dashboard) shows them, rank the setting, never the seed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.studies import _free_port

DESIGN = """
name = "seeded"
seed = 7

[design]
seeds = 4
filters = [0.5, 2]
"""


def _design_study(root: Path):
    """The design's trials as cnnlab's sampler and space draw them, in a SQLite storage, each
    scored by a stand-in (as ``cnnlab study check``'s dry run scores them; nothing trained):
    the seed moves the score five times more than the setting does, as seeds do in a real
    design of small networks and few epochs."""
    import optuna

    from cnnlab.search.config import load_study_config
    from cnnlab.search.design import SEED_PARAM, SETTING_PARAM
    from cnnlab.search.factory import make_sampler

    file = root / "design.toml"
    file.write_text(DESIGN)
    config = load_study_config(file)
    storage = f"sqlite:///{root / 'optuna.db'}"
    study = optuna.create_study(study_name="seeded", storage=storage, direction="maximize",
                                sampler=make_sampler(config))
    labels = [s.label for s in config.design.settings()]

    def objective(trial):
        config.space.suggest(trial, config.training)
        return (0.9 + 0.05 * trial.params[SEED_PARAM]
                + 0.01 * labels.index(trial.params[SETTING_PARAM]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=config.design.size)
    return storage, study, config


def _api(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow  # Starts `cnnlab dashboard`.
def test_the_dashboard_ranks_the_setting_and_gives_the_seed_no_importance(
        tmp_path: Path) -> None:
    storage, study, config = _design_study(tmp_path)
    # Every cell of the grid once, each seed's index recorded as before.
    cells = {(t.params["design_setting"], t.params["design_seed"]) for t in study.trials}
    assert cells == {(s.label, i) for s in config.design.settings() for i in range(4)}
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 12
    for trial in study.trials:
        # The seed is a parameter of one value: recorded, never a searched dimension.
        seed = trial.distributions["design_seed"]
        assert seed.single() and seed.low == seed.high == trial.params["design_seed"]
        assert len(trial.distributions["design_setting"].choices) == 3

    for _ in range(3):  # A free port can be taken before the server binds it: try another.
        port = _free_port()
        out = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "dashboard", "--port",
                                 str(port), "--storage", storage],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    study_id = _api(base, "/api/studies")["study_summaries"][0]["study_id"]
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                continue
            found = _api(base, f"/api/studies/{study_id}/param_importances")
            (importances,) = found["param_importances"]
            ranked = {row["name"]: row["importance"] for row in importances}
            assert [row["name"] for row in importances][0] == "design_setting", importances
            assert ranked["design_setting"] > 0 and ranked.get("design_seed", 0) == 0, ranked
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 128 + signal.SIGTERM
            return
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    raise AssertionError("cnnlab dashboard did not serve, three times")


def test_a_design_stored_by_an_earlier_cnnlab_goes_on_with_its_categorical_seed(
        tmp_path: Path) -> None:
    """A design whose trials drew the seed's index as a categorical (every cnnlab before this
    one) goes on the same way: Optuna refuses two kinds of distribution for one parameter of
    a study, and the stored trials stay as they are."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from cnnlab.search.config import load_study_config
    from cnnlab.search.design import CELL_ATTR
    from cnnlab.search.factory import make_sampler

    file = tmp_path / "design.toml"
    file.write_text(DESIGN)
    config = load_study_config(file)
    labels = [s.label for s in config.design.settings()]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="seeded", storage=storage, direction="maximize",
                                sampler=make_sampler(config))
    old = {"design_setting": CategoricalDistribution(labels),
           "design_seed": CategoricalDistribution([0, 1, 2, 3])}
    study.add_trials([optuna.trial.create_trial(
        params={"design_setting": label, "design_seed": 0}, distributions=old, value=0.9,
        system_attrs={CELL_ATTR: i}) for i, label in enumerate(labels)])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(lambda trial: (config.space.suggest(trial, config.training), 0.9)[1],
                   n_trials=config.design.size - len(labels))
    study = optuna.load_study(study_name="seeded", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 12
    assert {(t.params["design_setting"], t.params["design_seed"]) for t in study.trials} == {
        (label, i) for label in labels for i in range(4)}
    assert {t.distributions["design_seed"] for t in study.trials} == {old["design_seed"]}
