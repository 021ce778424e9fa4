"""Optuna's samplers and pruners for a study, built from its configuration (``StudyConfig``).

The configuration holds them as data (a name and options, checked when the file is read); the
study runner, ``study check``'s dry run and the objective build them here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.search.config import StudyConfig
    from cnnlab.search.pruning import DominancePruner

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "bruteforce": "BruteForceSampler",
    "nsgaii": "NSGAIISampler",
}
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "dominance": "DominancePruner",
}
"""Optuna's pruners by cnnlab name, and cnnlab's own dominance pruner (``cnnlab.search.pruning``),
the one that works with two objectives."""


def make_sampler(config: StudyConfig, say: Callable[[str], None] | None = None) -> Any:
    """The study's sampler, seeded per trial from the study's seed and the trial's number
    (``cnnlab.search.sampling``): a resume or another worker never restarts its sequence.
    What the sampler warns of while it samples goes to ``say`` once (see
    ``TrialSeededSampler``)."""
    import optuna

    from cnnlab.search.sampling import DesignSampler, TrialSeededSampler

    if config.design is not None:
        return DesignSampler(config.design.grid())
    cls = getattr(optuna.samplers, SAMPLERS[config.sampler.name])

    def build(seed: int) -> Any:
        # Made again for every trial: whatever Optuna warns of when it is made was said once
        # (``StudyConfig.notes``), not before every trial.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(seed=seed, **config.sampler.options)

    return TrialSeededSampler(build, config.seed, say)


def make_pruner(config: StudyConfig) -> Any:
    """Optuna's pruner for the study (a no-op one when the dominance pruner judges trials
    from the objective instead; see ``make_dominance_pruner``)."""
    import optuna

    if config.pruner.name == "dominance":
        return optuna.pruners.NopPruner()
    cls = getattr(optuna.pruners, PRUNERS[config.pruner.name])
    with warnings.catch_warnings():  # What it warns of was said once (``StudyConfig.notes``).
        warnings.simplefilter("ignore")
        return cls(**config.pruner.options)


def make_dominance_pruner(config: StudyConfig) -> DominancePruner:
    """The study's ``cnnlab.search.pruning.DominancePruner``: it stops dominated trials when the
    study's pruner is ``dominance``, and otherwise only records each trial's curve (what the
    front and ``benchmarks/dominance_pruner.py`` read)."""
    from cnnlab.search.pruning import DominancePruner

    options = config.pruner.options if config.pruner.name == "dominance" else {}
    return DominancePruner(**options, monitor=config.metric, size_attr=config.size_attr,
                           stop=config.pruner.name == "dominance")
