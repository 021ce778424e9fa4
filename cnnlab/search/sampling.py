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

import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler

from cnnlab.search.design import CELL_ATTR


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number`` of a study with seed ``seed`` (32 bits)."""
    return int(np.random.SeedSequence([seed, number + 1]).generate_state(1)[0])


def _to_stderr(text: str) -> None:
    print(f"cnnlab: note: {text}", file=sys.stderr, flush=True)


class TrialSeededSampler(BaseSampler):
    """Delegates to ``factory(trial_seed(seed, trial.number))``, built afresh for each trial.
    What the sampler warns of while it samples is said once, through ``say`` (default: a
    ``cnnlab: note:`` line on stderr), not before every trial.

    The samplers cnnlab offers (TPE, random, brute force, NSGA-II) keep no state of their own
    between trials beyond their random stream: what they learn they read from the storage, so
    building one per trial changes only where its randomness comes from.
    """

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int,
                 say: Callable[[str], None] | None = None) -> None:
        self._factory = factory
        self._seed = seed
        self._say = say or _to_stderr
        self._said: set[str] = set()
        self._inner = factory(seed)  # Until the first trial starts.

    @contextmanager
    def _once(self) -> Iterator[None]:
        """Whatever Optuna's sampler warns of while it samples (the same words before every
        trial, as a rule), said once through ``say`` as a line of its own."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for warning in caught:
            text = (f"optuna.samplers.{type(self._inner).__name__} warns: "
                    f"{' '.join(str(warning.message).split())}")
            if text not in self._said:
                self._said.add(text)
                self._say(text)

    @property
    def inner(self) -> BaseSampler:
        """The sampler of the current trial."""
        return self._inner

    def __str__(self) -> str:
        return f"TrialSeeded({self._inner})"

    def before_trial(self, study: Any, trial: Any) -> None:
        self._inner = self._factory(trial_seed(self._seed, trial.number))
        with self._once():
            self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        with self._once():
            return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict:
        with self._once():
            return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        with self._once():
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        with self._once():
            self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


DESIGN_CELL = CELL_ATTR
"""The system attribute in which ``DesignSampler`` keeps a trial's cell of the grid."""


class DesignSampler(BaseSampler):
    """Walks a designed experiment's grid (``cnnlab.search.design.Design.grid``) in order: each
    trial takes the first cell that no trial has completed, been pruned in or is running now.

    Optuna's ``GridSampler`` does nearly this, but counts a *failed* trial's cell as visited: a
    design interrupted mid-trial (its trial failed on the next start) or a trial that diverged
    would never train that setting again, and a design must train every cell. When every cell
    is taken, a trial takes the first cell again (the objective then reuses that result as a
    duplicate) and the study stops."""

    def __init__(self, grid: dict[str, list[Any]]) -> None:
        import itertools

        self._names = list(grid)
        self._cells = list(itertools.product(*grid.values()))

    def __str__(self) -> str:
        return f"DesignSampler({len(self._cells)} cells)"

    def _taken(self, study: Any, trial: Any) -> set[int]:
        from optuna.trial import TrialState

        taken = set()
        for other in study.get_trials(deepcopy=False):
            cell = other.system_attrs.get(DESIGN_CELL)
            if cell is None or other.number == trial.number:
                continue
            if other.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                taken.add(cell)
        return taken

    def before_trial(self, study: Any, trial: Any) -> None:
        if DESIGN_CELL in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        taken = self._taken(study, trial)
        free = [i for i in range(len(self._cells)) if i not in taken]
        cell = free[0] if free else 0
        study._storage.set_trial_system_attr(trial._trial_id, DESIGN_CELL, cell)
        # No free cell: this trial takes the first again and its end stops the study
        # (``after_trial``; a stop here, in ``study.ask``, would raise outside study.optimize).

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        if param_name not in self._names:
            raise ValueError(f"the design's grid has no parameter {param_name!r}.")
        cell = trial.system_attrs[DESIGN_CELL]
        return self._cells[cell][self._names.index(param_name)]

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        from optuna.trial import TrialState

        taken = self._taken(study, trial)
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            taken.add(trial.system_attrs.get(DESIGN_CELL))
        if len(taken) >= len(self._cells):
            study.stop()
