"""Designed experiments as data: settings, labels, the grid, and errors that name the key."""

from __future__ import annotations

import optuna
import pytest

from cnnlab.errors import ConfigError
from cnnlab.search.config import parse_study
from cnnlab.search.design import BASE, SEED_PARAM, SETTING_PARAM, parse_design
from cnnlab.search.sampling import DesignSampler
from cnnlab.spec.architecture import NOTEBOOK_CNN

DESIGN = {"seeds": 2, "filters": [0.5, 1, 2], "kernel_size": [3, 5],
          "strides": [[1, 2, 1, 1], [1, 2, 1, 2]], "padding": ["same", "valid",
                                                             ["same", "valid", "same", "valid"]]}


def study(**design):
    return parse_study({"name": "d", "training": {"epochs": 1}, "design": design or DESIGN})


def test_settings_change_one_knob_on_every_layer_around_the_notebook_cnn():
    design = parse_design(DESIGN, "design")
    settings = {s.label: s for s in design.settings()}
    # The base once; a knob's value that is the base's own is the base, not a second setting.
    assert list(settings) == [BASE, "filters x0.5", "filters x2", "kernel_size 5",
                              "strides 1-2-1-1", "padding same", "padding valid"]
    assert settings[BASE].architecture == NOTEBOOK_CNN
    assert [c.filters for c in settings["filters x2"].architecture.conv] == [64, 64, 128, 128]
    assert [c.filters for c in settings["filters x0.5"].architecture.conv] == [16, 16, 32, 32]
    five = settings["kernel_size 5"].architecture
    assert [c.kernel_size for c in five.conv] == [5, 5, 5, 5]
    assert [(c.filters, c.strides, c.padding) for c in five.conv] == \
        [(c.filters, c.strides, c.padding) for c in NOTEBOOK_CNN.conv]
    assert [c.strides for c in settings["strides 1-2-1-1"].architecture.conv] == [1, 2, 1, 1]
    assert [c.padding for c in settings["padding valid"].architecture.conv] == ["valid"] * 4
    assert settings["padding same"].knob == "padding" and settings["padding same"].value == "same"
    assert design.size == 7 * 2


def test_factorial_adds_only_new_combinations():
    design = parse_design({**DESIGN, "factorial": ["filters", "kernel_size"]}, "design")
    labels = [s.label for s in design.settings()]
    assert "filters x2, kernel_size 5" in labels and "filters x0.5, kernel_size 5" in labels
    # (x1, 3) is the base and (x2, 3) is "filters x2": not listed twice.
    assert len(labels) == len(set(labels)) == 7 + 2
    assert len({s.architecture for s in design.settings()}) == len(labels)


def test_a_design_is_a_study_over_every_setting_and_seed():
    config = study()
    assert config.design is not None and config.n_trials == 14
    assert config.sampler.name == "design" and config.pruner.name == "none"
    grid = config.design.grid()
    assert list(grid) == [SEED_PARAM, SETTING_PARAM] and grid[SEED_PARAM] == [0, 1]


def test_the_sampler_walks_the_grid_seed_by_seed_and_every_setting_shares_the_seeds():
    config = study()
    design = config.design
    sampled = []
    s = optuna.create_study(sampler=DesignSampler(design.grid()))

    def objective(trial):
        spec = design.suggest(trial, config.training)
        sampled.append((trial.params[SETTING_PARAM], trial.params[SEED_PARAM],
                        spec.training.seed, spec.architecture))
        return 0.5

    s.optimize(objective, n_trials=100)  # The sampler stops the study when the grid is done.
    assert len(sampled) == design.size
    assert [x[1] for x in sampled] == [0] * 7 + [1] * 7
    assert {(x[0], x[1]) for x in sampled} == {(s.label, i) for s in design.settings()
                                               for i in (0, 1)}
    assert {x[2] for x in sampled if x[1] == 1} == {config.seed + 1}
    assert all(x[3] == design.setting(x[0]).architecture for x in sampled)


def test_a_failed_cell_is_trained_again():
    design = study().design
    s = optuna.create_study(sampler=DesignSampler(design.grid()))
    calls = []

    def objective(trial):
        design.suggest(trial)
        calls.append(trial.params[SETTING_PARAM])
        if len(calls) == 1:
            raise RuntimeError("lost")
        return 0.5

    s.optimize(objective, n_trials=100, catch=(RuntimeError,))
    assert calls[0] == calls[1] == BASE  # Optuna's GridSampler would count it visited.
    complete = [t for t in s.trials if t.state.name == "COMPLETE"]
    assert len(complete) == design.size


@pytest.mark.parametrize(("design", "words"), [
    ({"seeds": 2}, "varies no knob"),
    ({"filters": [0]}, "design.filters must hold scales"),
    ({"filters": [1, 1.0]}, "lists a value twice"),
    ({"kernel_size": [3, 30]}, "design.kernel_size must hold integers from 1 to 28"),
    ({"strides": [[1, 2]]}, "gives 2 values, but the base network has 4 conv layers"),
    ({"padding": ["full"]}, "padding must be 'valid' or 'same'"),
    ({"kernel_size": [13]}, "design.kernel_size = 13: this network cannot be built"),
    ({"filters": [2], "factorial": ["filters", "strides"]}, "'strides' is not a knob"),
    ({"filters": [2], "seeds": 0}, "design.seeds must be an integer from 1"),
    ({"filters": [2], "dense": [3]}, "unknown key 'dense'"),
    ({"filters": [2], "base": "nowhere.toml"}, "design.base"),
])
def test_bad_designs_name_the_culprit(design, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("[", r"\[")):
        study(**design)


@pytest.mark.parametrize("key", ["search", "sampler", "pruner", "confirm"])
def test_a_design_refuses_what_only_a_search_has(key):
    with pytest.raises(ConfigError, match=f"'{key}' cannot be given with \\[design\\]"):
        parse_study({"name": "d", "design": DESIGN, key: {"name": "tpe"}})


def test_a_design_refuses_more_trials_than_its_grid_and_settings_over_max_params():
    with pytest.raises(ConfigError, match="n_trials 15 is more than the design's 14 trials"):
        parse_study({"name": "d", "n_trials": 15, "design": DESIGN})
    with pytest.raises(ConfigError, match="design setting 'filters x2' has 850,250 parameters"):
        parse_study({"name": "d", "max_params": 500_000, "design": DESIGN})
