"""The study's books (``cnnlab.search.trials``) read from a real Optuna study."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from cnnlab import names
from cnnlab.search import trials as T


def _study_with(*trials: tuple[TrialState, dict]) -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    for state, attrs in trials:
        value = 0.5 if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    return study


def test_the_trials_that_do_not_count_are_said_by_why():
    study = _study_with(
        (TrialState.COMPLETE, {names.OUTCOME_ATTR: "trained"}),
        (TrialState.PRUNED, {names.OUTCOME_ATTR: "infeasible"}),
        (TrialState.PRUNED, {names.OUTCOME_ATTR: "infeasible"}),
        (TrialState.FAIL, {names.OUTCOME_ATTR: "trained"}),  # Its process was interrupted.
        (TrialState.FAIL, {names.OUTCOME_ATTR: "trained", names.FAIL_REASON_ATTR: "diverged"}),
        (TrialState.COMPLETE, {names.OUTCOME_ATTR: "duplicate"}))
    assert T.counted(study) == 2
    assert T.not_counted(study) == " (4 more not counted: 2 infeasible, 1 interrupted, " \
                                   "1 duplicate)"
    assert T.not_counted(_study_with((TrialState.COMPLETE, {}))) == ""
