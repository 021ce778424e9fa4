"""Warm starts across studies: a new study seeded with the finished trials of earlier studies
that searched other spaces on the same data.

A study file names them (``warm_start = ["open-front"]``; same Optuna storage). When the study
is created, every trial those studies trained (complete, or stopped early by the pruner or at a
rung) is mapped into the new study's space: its whole configuration (the ``TrialSpec`` each
trial keeps, ``cnnlab_spec``) is drawn again from the new space with Optuna's ``FixedTrial``,
and it is copied only if the new space can draw exactly it: every value the new space searches
is one of its choices or in its range, and every value it fixes is the one the trial had (the
same epochs too: ``TrialSpec.key``), and it is within the new study's budget (``max_params``,
``max_macs``). The others are left out and counted by reason (``LEFT_OUT``). A copy is added with
Optuna's ``Study.add_trials`` as the frozen trial the new space would have made: its parameters
and distributions are the new space's, its value (and size, in a two-objective study), its
per-epoch intermediate values and its user attributes are the source's, its constraints the new
study's. Copies teach the sampler (TPE reads every COMPLETE and PRUNED trial) and the pruner,
and do not count toward ``n_trials`` (outcome ``copied``, with ``cnnlab_copied_from``).

Fidelity: a copy keeps its rung record and per-epoch curve (what ASHA's promotion compares) only
if its study trained the same rungs (``[fidelity]`` equal); from a study with other rungs its
scores were made on other training sets at the same epochs, so it keeps its intermediate values
(Optuna ranks pruned trials by the step they reached) but takes no part in promotion.

Optuna itself has no warm start across spaces (optuna#1930 asks for one): ``add_trials`` copies
frozen trials whose distributions are their own, and a new space with other categorical choices
for the same name then fails every trial ("CategoricalDistribution does not support dynamic
value space"), which is why a copy is re-drawn in the new space rather than copied as it was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.names import (
    CONFIG_ATTR,
    CONFIG_KEY_ATTR,
    COPIED_FROM_ATTR,
    CURVE_ATTR,
    DATA_ATTR,
    EVALUATION_ATTR,
    FIDELITY_ATTR,
    OUTCOME_ATTR,
    RUN_ID_ATTR,
    SPEC_ATTR,
    WARM_START_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig, outside_the_space
from cnnlab.search.space import SearchSpace, constraints
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking.stores import redact

LEFT_OUT = {
    "untrained": "not trained in its study (infeasible, a duplicate, failed, running, or a "
                 "copy itself)",
    "outside the space": "a value the new space does not offer",
    "trained otherwise": "a setting the new space fixes at another value (epochs included)",
    "over the budget": "over the new study's max_params or max_macs",
    "no spec": "recorded before trials kept their whole configuration, or by a cnnlab whose "
               "configuration this one cannot read",
}
"""Why a source trial was not copied, by the key counted in ``WarmStart.left_out``."""


@dataclass
class WarmStart:
    """What a warm start copies: ``copies`` (Optuna frozen trials for ``Study.add_trials``), and
    per source study the trials copied and those left out, by reason (``LEFT_OUT``)."""

    sources: tuple[str, ...]
    copies: list[Any] = field(default_factory=list)
    copied: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    """One entry per copy: the source study, its trial number and MLflow run id."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the sources, the counts copied and left out (kept in the new study's
        user attribute ``cnnlab_warm_start`` and logged on its MLflow run)."""
        return {"studies": list(self.sources), "copied": dict(self.copied),
                "left_out": {k: dict(v) for k, v in self.left_out.items()}}

    def describe(self) -> str:
        """One line per source: ``'open-front': 41 trials copied, 12 left out (7 outside the
        space, 5 untrained)``."""
        lines = []
        for name in self.sources:
            out = self.left_out.get(name, {})
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(
                out.items(), key=lambda item: -item[1]))
            lines.append(f"'{name}': {self.copied.get(name, 0)} trial(s) copied, "
                         f"{sum(out.values())} left out" + (f" ({why})" if why else ""))
        return "; ".join(lines)


def check_sources(config: StudyConfig, storage: Any, url: str,
                  data_identity: dict[str, Any]) -> list[Any]:
    """The studies ``config.warm_start`` names, loaded from ``storage``, each checked: it exists,
    it is another study, it ran on the same data (the digests of the training and validation
    splits) and scored its trials by the same metric. An empty list for a study started warm
    already (a resume needs no source). Raises ``ConfigError`` naming the study and what differs;
    reads only."""
    import optuna

    if not config.warm_start:
        return []
    if not isinstance(config.space, SearchSpace):
        raise ConfigError(f"study '{config.name}': warm_start needs a [search] space.")
    names = optuna.study.get_all_study_names(storage=storage)
    if config.name in names and WARM_START_ATTR in optuna.load_study(
            study_name=config.name, storage=storage).user_attrs:
        return []  # Started warm already: its sources are not needed (nor read) again.
    found = []
    for name in config.warm_start:
        where = f"study '{config.name}': warm_start"
        if name == config.name:
            raise ConfigError(f"{where} names the study itself ('{name}').")
        if name not in names:
            raise ConfigError(f"{where}: no study named {name!r} in {redact(url)} (a warm start "
                              "reads studies of the same Optuna storage).")
        source = optuna.load_study(study_name=name, storage=storage)
        theirs = source.user_attrs.get(DATA_ATTR) or {}
        if (theirs.get("train_sha256"), theirs.get("val_sha256")) != (
                data_identity["train_sha256"], data_identity["val_sha256"]):
            raise ConfigError(f"{where}: study '{name}' ran on other data (its scores do not "
                              "compare with this study's); warm starts take studies of the same "
                              "training and validation splits.")
        metric = (source.metric_names or [None])[0]
        if metric != config.metric:
            raise ConfigError(f"{where}: study '{name}' scored its trials by {metric!r}, this "
                              f"study by {config.metric!r}; warm starts take studies of the same "
                              "metric.")
        found.append(source)
    return found


def plan(sources: list[Any], config: StudyConfig,
         done: frozenset[tuple[str, int]] | set[tuple[str, int]] = frozenset()) -> WarmStart:
    """The copies of ``sources``' trials that ``config``'s space can draw (see the module's
    docstring), all but those already copied (``done``: (study, trial) pairs)."""
    warm = WarmStart(tuple(s.study_name for s in sources))
    rungs = config.source.get("fidelity")
    for source in sources:
        reasons: Counter[str] = Counter()
        same_rungs = (source.user_attrs.get(CONFIG_ATTR) or {}).get("fidelity") == rungs
        for trial in source.get_trials(deepcopy=False):
            if (source.study_name, trial.number) in done:
                continue
            copy, reason = _copy(trial, source.study_name, config, same_rungs)
            if copy is None:
                reasons[reason] += 1
                continue
            warm.copies.append(copy)
            warm.pairs.append({"study": source.study_name, "trial": trial.number,
                               "run_id": trial.user_attrs.get(RUN_ID_ATTR)})
        warm.copied[source.study_name] = sum(
            1 for p in warm.pairs if p["study"] == source.study_name)
        warm.left_out[source.study_name] = dict(reasons)
    return warm


def _copy(trial: Any, study_name: str, config: StudyConfig,
          same_rungs: bool) -> tuple[Any, str]:
    """The frozen trial to add for ``trial`` of study ``study_name``, or None and why not."""
    import warnings

    import optuna

    state = trial.state.name
    if state not in ("COMPLETE", "PRUNED") or T.outcome(trial) != "trained":
        return None, "untrained"
    stored = trial.user_attrs.get(SPEC_ATTR)
    if stored is None:
        return None, "no spec"
    try:
        spec = TrialSpec.from_dict(stored)
    except (ConfigError, ArchitectureError, TypeError):  # A spec this cnnlab cannot read.
        return None, "no spec"
    fixed = optuna.trial.FixedTrial({k: v for k, v in spec.to_params().items()
                                     if k != "architecture"})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # A value out of a range: judged just below.
            drawn = config.space.suggest(fixed, config.training)
    except (ValueError, ConfigError, KeyError):
        return None, "outside the space"
    if outside_the_space(fixed) is not None:
        return None, "outside the space"
    if drawn.key() != spec.key():
        return None, "trained otherwise"
    limits = constraints(drawn.architecture, config.max_params, config.max_macs)
    if any(value > 0 for value in limits.values()):
        return None, "over the budget"
    attrs = {k: v for k, v in trial.user_attrs.items() if k not in (EVALUATION_ATTR,)}
    attrs[OUTCOME_ATTR] = "copied"
    attrs[COPIED_FROM_ATTR] = {"study": study_name, "trial": trial.number}
    attrs[CONFIG_KEY_ATTR] = drawn.key()
    if not same_rungs:
        attrs.pop(FIDELITY_ATTR, None)
        attrs.pop(CURVE_ATTR, None)
    values = None
    if state == "COMPLETE":
        values = [trial.values[0]]
        if config.size_objective is not None:
            values.append(float(trial.user_attrs[config.size_objective]))
    return optuna.trial.create_trial(
        state=trial.state, values=values, params=dict(fixed.params),
        distributions=dict(fixed.distributions), user_attrs=attrs, constraints=limits,
        intermediate_values=dict(trial.intermediate_values)), ""


def warm_start(study: Any, sources: list[Any], config: StudyConfig) -> WarmStart | None:
    """Copy into the new ``study`` what ``plan`` finds, once: a study that has a warm-start
    record, or trials of its own, is not warm-started again. A start cut off while copying
    resumes it (the pairs copied already are skipped). Returns what was done, or None."""
    if not sources or WARM_START_ATTR in study.user_attrs:
        return None
    trials = study.get_trials(deepcopy=False)
    if any(T.outcome(t) != "copied" for t in trials):
        return None
    done = {(t.user_attrs[COPIED_FROM_ATTR]["study"], t.user_attrs[COPIED_FROM_ATTR]["trial"])
            for t in trials if COPIED_FROM_ATTR in t.user_attrs}
    warm = plan(sources, config, done)
    study.add_trials(warm.copies)
    summary = warm.summary()
    summary["copied"] = {name: n + sum(1 for s, _ in done if s == name)
                         for name, n in summary["copied"].items()}
    warm.copied = summary["copied"]
    study.set_user_attr(WARM_START_ATTR, summary)
    return warm
