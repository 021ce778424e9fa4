"""Which trials a confirmation re-trains: the top K, the front, or the top K of the front,
chosen from a real Optuna study's trials."""

from __future__ import annotations

import optuna
import pytest

from cnnlab.errors import ConfigError
from cnnlab.results.confirm import candidates
from cnnlab.search.config import parse_study

# (validation accuracy, parameters): the front is 0 (small), 2, 3 and 5 (accurate); 1 and 4
# are beaten on both.
POINTS = [(0.970, 1_000), (0.965, 2_000), (0.980, 3_000), (0.985, 5_000), (0.975, 6_000),
          (0.990, 9_000)]


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, size in POINTS:
        study.add_trial(optuna.trial.create_trial(
            values=[acc, size], user_attrs={"cnnlab_outcome": "trained", "n_params": size}))
    return study


def _config(confirm: dict) -> object:
    return parse_study({"name": "c", "n_trials": 6, "objectives": ["val_accuracy", "n_params"],
                        "search": {"conv.filters": [8, 16]}, "confirm": confirm}, where="c")


def test_front_with_top_confirms_the_most_accurate_of_the_front_only() -> None:
    study = _study()
    config = _config({"front": True, "top": 2})
    assert (config.confirm.front, config.confirm.top) == (True, 2)
    chosen = candidates(study, config, top=config.confirm.top, front=True)
    assert [t.number for t in chosen] == [3, 5]          # smallest first, as the front
    whole = candidates(study, _config({"front": True}), top=None, front=True)
    assert [t.number for t in whole] == [0, 2, 3, 5]
    assert [t.number for t in candidates(study, config, top=2, front=False)] == [5, 3]


def test_a_confirm_top_below_one_is_refused_with_front_too() -> None:
    with pytest.raises(ConfigError, match="top"):
        _config({"front": True, "top": 0})


def test_the_baseline_is_trained_as_the_study_or_as_the_notebook_says() -> None:
    assert _config({"top": 1, "baseline": True}).confirm.baseline_training == "study"
    config = _config({"top": 1, "baseline": True, "baseline_training": "notebook"})
    assert config.confirm.baseline_training == "notebook"
    with pytest.raises(ConfigError, match="'baseline_training' must be one of study, notebook"):
        _config({"top": 1, "baseline": True, "baseline_training": "recipe"})


def test_the_smallest_of_the_front_at_least_as_good_as_a_bar() -> None:
    """``at_least`` keeps the front's trials that scored at least the bar, ``smallest`` the K
    smallest of them: the candidates for "the smallest network as good as the notebook's"."""
    study = _study()
    config = _config({"front": True, "at_least": 0.98, "smallest": 2})
    assert (config.confirm.at_least, config.confirm.smallest) == (0.98, 2)
    chosen = candidates(study, config, top=None, front=True, at_least=0.98, smallest=2)
    assert [t.number for t in chosen] == [2, 3]       # 0.980 at 3,000 and 0.985 at 5,000
    assert [t.number for t in candidates(study, config, top=None, front=True,
                                         at_least=0.98)] == [2, 3, 5]
    with pytest.raises(ConfigError, match="give front = true too"):
        _config({"top": 1, "at_least": 0.98})
    with pytest.raises(ConfigError, match="'at_least' must be a number"):
        _config({"front": True, "at_least": "high"})


def test_the_front_figure_shows_the_public_anchors_beside_the_front() -> None:
    from cnnlab.spec.front import PUBLIC_ANCHORS
    from cnnlab.tracking.study_plots import close, front_figure

    fig = front_figure(_study(), "val_accuracy")
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("public anchors") for label in labels)
    stars = [c for c in ax.collections if c.get_label().startswith("public anchors")][0]
    assert [tuple(p) for p in stars.get_offsets()] == [
        (a.params, a.test_accuracy) for a in PUBLIC_ANCHORS]
    close(fig)
    fig = front_figure(_study(), "val_loss")  # Anchors are accuracies: not on a loss plot.
    assert not any(label.startswith("public") for label in
                   fig.axes[0].get_legend_handles_labels()[1])
    close(fig)


def test_an_accuracy_front_is_drawn_near_its_best_and_says_what_it_leaves_out() -> None:
    """A search's worst draws (0.11: a network that learned nothing) would squeeze the tenths
    of a point between small networks into one line: the axis starts 0.05 below the best."""
    from cnnlab.tracking.study_plots import FRONT_ZOOM, close, front_figure

    study = _study()
    study.add_trial(optuna.trial.create_trial(
        values=[0.11, 500], user_attrs={"cnnlab_outcome": "trained", "n_params": 500}))
    fig = front_figure(study, "val_accuracy")
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == pytest.approx(0.990 - FRONT_ZOOM)
    from cnnlab.spec.front import PUBLIC_ANCHORS  # Above the best trial: still in view.

    assert ax.get_ylim()[1] > max(a.test_accuracy for a in PUBLIC_ANCHORS) > 0.990
    assert [t.get_text() for t in ax.texts if "shown" in t.get_text()] == [
        "1 trial below 0.940 not shown"]
    close(fig)
    fig = front_figure(_study(), "val_accuracy")  # Nothing that far below: the whole range.
    assert not [t for t in fig.axes[0].texts if "not shown" in t.get_text()]
    assert fig.axes[0].get_ylim()[0] < 0.965
    close(fig)
