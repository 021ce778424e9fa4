"""Fidelity rungs as arithmetic (``cnnlab.spec.fidelity``) and as study-file data
(``[fidelity]`` in ``cnnlab.search.config``): no training here."""

from __future__ import annotations

import math

import pytest

from cnnlab.errors import ConfigError
from cnnlab.search.config import parse_study
from cnnlab.spec.fidelity import Fidelity, Rung, nondominated_fronts, promoted

RUNGS = (Rung(1, 10_000), Rung(3), Rung(10))


def test_segments_and_total_steps_follow_each_rung() -> None:
    fidelity = Fidelity(RUNGS)
    assert fidelity.epochs == 10
    assert fidelity.segments(50_000) == [(1, 10_000), (3, 50_000), (10, 50_000)]
    # 1 epoch of ceil(10,000/256) = 40 steps, then 9 epochs of ceil(50,000/256) = 196.
    assert fidelity.total_steps(50_000, 256) == 40 + 9 * 196
    assert fidelity.segments(5_000) == [(1, 5_000), (3, 5_000), (10, 5_000)]
    assert [fidelity.rung_ending_at(e) for e in (1, 2, 3, 10)] == [0, None, 1, 2]
    assert fidelity.describe(50_000) == ("1 epoch on 10,000 images -> 3 epochs on 50,000 "
                                         "images -> 10 epochs on 50,000 images; the best 33% "
                                         "of each rung go on")


@pytest.mark.parametrize(("rungs", "words"), [
    ((Rung(3), Rung(3)), "epochs must grow"),
    ((Rung(1, 20_000), Rung(2, 10_000), Rung(3)), "must not shrink"),
    ((Rung(1), Rung(2, 10_000), Rung(3)), "cannot be followed"),
    ((Rung(1, 5_000), Rung(2, 10_000)), "last rung"),
])
def test_impossible_rungs_are_refused(rungs: tuple[Rung, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Fidelity(rungs)


def test_the_best_fraction_goes_on_and_ties_go_on() -> None:
    others = [0.90, 0.95, 0.80, 0.85, 0.70]  # With this one, 6 trials: the best 2 go on.
    assert promoted(0.96, others, fraction=1 / 3, min_trials=3)[0]
    assert promoted(0.91, others, fraction=1 / 3, min_trials=3)[0]  # One ahead: second.
    go_on, why = promoted(0.89, others, fraction=1 / 3, min_trials=3)
    assert not go_on and why == "not among the best 2 of 6 at this rung, 2 ahead of it"
    assert promoted(0.90, [0.90], fraction=1 / 3, min_trials=1)[0]  # Equal: not behind.
    # While floor(n * fraction) is 0, only the best goes on.
    assert not promoted(0.5, [0.6], fraction=1 / 3, min_trials=1)[0]
    # Fewer trials than min_trials: every one goes on.
    go_on, why = promoted(0.1, [0.9], fraction=1 / 3, min_trials=3)
    assert go_on and "fewer than min_trials 3" in why
    # A loss is minimized; a NaN ranks last.
    assert promoted(0.1, [0.2, 0.3], fraction=1 / 3, min_trials=1, maximize=False)[0]
    assert not promoted(math.nan, [0.2, 0.3], fraction=1 / 3, min_trials=1)[0]
    assert promoted(0.2, [math.nan, math.nan], fraction=1 / 3, min_trials=1)[0]


def test_two_objectives_rank_by_front_then_metric() -> None:
    # (metric, size): a small network a little less accurate is on the front; a big one
    # beaten by a smaller, better one is not.
    others, sizes = [0.95, 0.90, 0.97], [1000.0, 200.0, 5000.0]
    assert nondominated_fronts([0.95, 0.90, 0.97, 0.93], [-1000, -200, -5000, -6000]) == \
        [0, 0, 0, -1]
    # 4 trials, the best 1 by (front, metric): on the front and most accurate.
    assert promoted(0.98, others, fraction=1 / 3, min_trials=1, size=300.0,
                    other_sizes=sizes)[0]
    go_on, _ = promoted(0.93, others, fraction=1 / 3, min_trials=1, size=6000.0,
                        other_sizes=sizes)
    assert not go_on
    with pytest.raises(ValueError, match="one size per other trial"):
        promoted(0.9, others, fraction=0.5, min_trials=1, size=1.0, other_sizes=[1.0])


STUDY = {"name": "r", "n_trials": 4, "search": {"n_conv": [1, 2]},
         "training": {"train_size": 20_000}}


def _study(**fidelity: object) -> dict:
    return {**STUDY, "fidelity": fidelity}


def test_a_study_file_declares_rungs_and_its_epochs_follow_the_last() -> None:
    config = parse_study(_study(rungs=[{"epochs": 1, "train_size": 5000}, {"epochs": 4}],
                                promote=0.5, min_trials=2))
    assert config.fidelity == Fidelity((Rung(1, 5000), Rung(4)), 0.5, 2)
    assert config.training.epochs == 4
    assert config.pruner.name == "none"
    # The last rung on the study's whole training split may say so.
    config = parse_study(_study(rungs=[{"epochs": 1, "train_size": 5000},
                                       {"epochs": 2, "train_size": 20_000}]))
    assert config.fidelity.rungs[-1] == Rung(2)


@pytest.mark.parametrize(("data", "words"), [
    (_study(rungs=[{"epochs": 1}]), "'rungs' must be a list of at least two tables"),
    (_study(rungs=[{"epochs": 1, "size": 3}, {"epochs": 2}]), "rung 1: unknown key 'size'"),
    (_study(rungs=[{"train_size": 3}, {"epochs": 2}]), "rung 1: 'epochs' is required"),
    (_study(rungs=[{"epochs": 1, "train_size": 30_000}, {"epochs": 2}]),
     "'train_size' 30,000 is not below the study's 20,000"),
    (_study(rungs=[{"epochs": 2}, {"epochs": 1}]), "epochs must grow"),
    (_study(rungs=[{"epochs": 1}, {"epochs": 2}], promote=0), "'promote' must be a fraction"),
    (_study(rungs=[{"epochs": 1}, {"epochs": 2}], eta=3), "unknown key 'eta'"),
    ({**STUDY, "training": {"epochs": 5}, "fidelity": {"rungs": [{"epochs": 1},
                                                                  {"epochs": 2}]}},
     "the last rung's epochs \\(2\\) are the study's; training's 'epochs' says 5"),
    ({**_study(rungs=[{"epochs": 1}, {"epochs": 2}]), "pruner": {"name": "median"}},
     "\\[fidelity\\] and pruner 'median' both stop trials early"),
])
def test_bad_rungs_are_one_sentence_naming_the_key(data: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_study(data)
