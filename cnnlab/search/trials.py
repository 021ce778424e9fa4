"""A trial in the study's books: what became of a trial (its outcome), and whether it counts
toward the study's total. The names of the attributes it reads are in ``cnnlab.names``.

Pure bookkeeping on Optuna's ``FrozenTrial`` (read through ``state.name`` and ``user_attrs``):
no framework import, so every module and the tests can share one definition.

Outcomes:

- ``trained``: the network was built and trained (it may still be pruned or diverge);
- ``infeasible``: it could not be built, or is over ``max_params``; known from the shape
  arithmetic before anything is built, told to Optuna as a PRUNED trial with constraint values,
  so that constrained samplers (TPE, NSGA-II) learn to avoid such architectures;
- ``duplicate``: the same configuration (architecture and training settings) was judged by an
  earlier trial, whose result is reused instead of training it again;
- ``copied``: a finished trial copied from another study (``--from-study``).

Only trained trials that ended (complete, pruned, or failed for a reason of their own such as a
diverging loss) count toward ``n_trials``; a trial whose worker was killed does not.
"""

from __future__ import annotations

from typing import Any

from cnnlab import names
from cnnlab.names import CURVE_ATTR, N_PARAMS_ATTR

OUTCOMES = ("trained", "infeasible", "duplicate", "copied")


def outcome(trial: Any) -> str:
    """What became of ``trial`` (see the module's docstring). Trials recorded before cnnlab kept
    outcomes are read from their failure reason."""
    found = trial.user_attrs.get(names.OUTCOME_ATTR)
    if found is not None:
        return found
    reason = trial.user_attrs.get(names.FAIL_REASON_ATTR, "")
    if "over the study's max_params" in reason or "would shrink" in reason:
        return "infeasible"
    return "trained"


INFEASIBLE = "INFEASIBLE"
"""The state cnnlab shows for an infeasible draw (Optuna keeps it as PRUNED: see the module's
docstring), so that no table or count takes it for a trained trial that the pruner stopped."""


def state(trial: Any) -> str:
    """The trial's state as cnnlab shows it: Optuna's (COMPLETE, PRUNED, FAIL, RUNNING,
    WAITING), but ``INFEASIBLE`` for an infeasible draw, which was never built."""
    return INFEASIBLE if outcome(trial) == "infeasible" else trial.state.name


def counts(trial: Any) -> bool:
    """Whether ``trial`` counts toward the study's total: trained, and ended for a reason of
    its own (complete, pruned, or failed with a reason such as a diverging loss)."""
    state = trial.state.name
    if outcome(trial) != "trained":
        return False
    return state in ("COMPLETE", "PRUNED") or (
        state == "FAIL" and names.FAIL_REASON_ATTR in trial.user_attrs)


def counted(study: Any) -> int:
    """Trials that count towards the study's total (``counts``): trained, and ended for a
    reason of their own. Infeasible draws, duplicates, copies and trials whose worker was
    killed do not count."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False))


def not_counted(study: Any) -> str:
    """The study's ended trials that do not count toward its total, by why, in a clause for a
    line (``" (3 more not counted: 2 infeasible, 1 interrupted)"``); "" when there are none.
    Running and waiting trials are left out."""
    why: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name in ("RUNNING", "WAITING") or counts(trial):
            continue
        kind = outcome(trial)
        kind = "interrupted" if kind == "trained" else kind  # Failed with no reason of its own.
        why[kind] = why.get(kind, 0) + 1
    if not why:
        return ""
    return (f" ({sum(why.values())} more not counted: "
            + ", ".join(f"{n} {kind}" for kind, n in why.items()) + ")")


def score(trial: Any) -> float | None:
    """The trial's first objective (its validation metric): the value Optuna was told, or for
    a pruned trial the last one it reported or recorded in its curve."""
    if trial.values:
        return trial.values[0]
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    curve = trial.user_attrs.get(CURVE_ATTR)
    return curve[-1] if curve else None


def _judged(study: Any) -> list[Any]:
    """Complete trials with a model of their own (trained here, or copied from a study)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state.name == "COMPLETE" and outcome(t) in ("trained", "copied")]


def maximizes(study: Any) -> bool:
    return study.directions[0].name == "MAXIMIZE"


def best(study: Any) -> Any:
    """The best complete trial: the first complete trial in the order of the project's one
    ranking rule (``cnnlab.spec.ranking.trial_rank_key``: by the first objective, the
    validation metric, in the study's direction, the earliest among equals), whatever the other
    objectives; pruned trials never. Trials with a model of their own (trained or copied) are
    preferred to duplicates, which repeat an earlier trial's score. None before any completes."""
    from cnnlab.spec.ranking import best_of

    trials = _judged(study) or [t for t in study.get_trials(deepcopy=False)
                                if t.state.name == "COMPLETE"]
    by_number = {t.number: t for t in trials}
    key = best_of([(t.number, t.state.name, t.values[0], t.number) for t in trials],
                  maximize=maximizes(study))
    return None if key is None else by_number[key]


def ranked(trials: Any, *, maximize: bool) -> list[Any]:
    """``trials`` (Optuna's ``FrozenTrial``) in the order of the one ranking rule
    (``cnnlab.spec.ranking.trial_rank_key``): complete ones by score in the study's direction,
    then pruned ones (the higher rung first, in a study with rungs), then the rest."""
    from cnnlab.spec.ranking import trial_rank_key

    return sorted(trials, key=lambda t: trial_rank_key(
        t.state.name, t.values[0] if t.values else None, t.number, maximize=maximize,
        rung=rung(t)))


def rung(trial: Any) -> int:
    """The fidelity rung a trial of a study with rungs trained in last (from 1); 0 without."""
    found = trial.user_attrs.get(names.FIDELITY_ATTR)
    return found.get("rung", 0) if isinstance(found, dict) else 0


def size_attr(study: Any) -> str:
    """The size a study's front is drawn against: its second objective, else parameters."""
    names = study.metric_names or []
    return names[1] if len(study.directions) > 1 and len(names) > 1 else N_PARAMS_ATTR


def front(study: Any, size_attr: str = N_PARAMS_ATTR) -> list[Any]:
    """The complete trials on the front of the validation metric against size (``n_params``
    or ``macs``), smallest first: none of them is beaten on both by another."""
    from cnnlab.spec.front import Point, pareto_front

    by_number = {}
    points = []
    for trial in _judged(study):
        size = trial.user_attrs.get(size_attr)
        if isinstance(size, int | float) and not isinstance(size, bool):
            by_number[trial.number] = trial
            points.append(Point(trial.number, trial.values[0], size))
    return [by_number[p.key] for p in pareto_front(points, maximize=maximizes(study))]


def best_trial(study: Any) -> Any:
    """The study's best trial by the project's one ranking rule (``best``), for one objective
    as for two; None before any completes."""
    return best(study)


def fidelity_words(fidelity: dict[str, Any]) -> str:
    """A trial's ``cnnlab_fidelity`` in words: ``rung 2 of 3: 3 epochs on 50,000 images``."""
    from cnnlab.spec.fidelity import Rung

    rung = Rung(fidelity["epochs"], fidelity["train_size"])
    return f"rung {fidelity['rung']} of {fidelity['rungs']}: {rung.describe()}"


def fidelity_short(trial: Any) -> str:
    """A trial's fidelity for a table: ``2/3 (3 ep x 50,000)``; empty for a trial of a study
    without rungs, or one not trained."""
    found = trial.user_attrs.get(names.FIDELITY_ATTR)
    if not isinstance(found, dict) or outcome(trial) != "trained":
        return ""
    return (f"{found['rung']}/{found['rungs']} ({found['epochs']} ep x "
            f"{found['train_size']:,})")
