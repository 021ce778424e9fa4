"""Samplers whose randomness belongs to the trial, not to the process.

Optuna's samplers take one ``seed`` and draw from one random stream per process. A study that is
resumed, or run by several workers, builds its sampler again from the same seed in every
process, so every process restarts the same stream: a resumed TPE study re-draws its first
architectures, and two workers draw the same ones side by side.

``TrialSeededSampler`` seeds the study's sampler for each trial from the study's seed and the
trial's number (``trial_seed``). Trial numbers are unique in a study whatever process runs the
trial, so a resume or a second worker never restarts a sequence, while a given history still
gives a reproducible next draw: the same file and seed, run fresh, give the same trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number`` of a study with seed ``seed`` (32 bits)."""
    return int(np.random.SeedSequence([seed, number + 1]).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """Delegates to ``factory(trial_seed(seed, trial.number))``, built afresh for each trial.

    The samplers cnnlab offers (TPE, random, brute force, NSGA-II) keep no state of their own
    between trials beyond their random stream: what they learn they read from the storage, so
    building one per trial changes only where its randomness comes from.
    """

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int) -> None:
        self._factory = factory
        self._seed = seed
        self._inner = factory(seed)  # Until the first trial starts.

    @property
    def inner(self) -> BaseSampler:
        """The sampler of the current trial."""
        return self._inner

    def __str__(self) -> str:
        return f"TrialSeeded({self._inner})"

    def before_trial(self, study: Any, trial: Any) -> None:
        self._inner = self._factory(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
