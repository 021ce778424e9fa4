"""The study loop's small callbacks (``cnnlab.study.runner.optimize``): the budget that stops it,
and one printed line per trial."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.names import (
    CURVE_ATTR,
    DUPLICATE_OF_ATTR,
    FAIL_REASON_ATTR,
    FIDELITY_ATTR,
    N_PARAMS_ATTR,
    REASON_ATTR,
    SPEC_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig
from cnnlab.search.design import SEED_PARAM as DESIGN_SEED_PARAM
from cnnlab.search.design import SETTING_PARAM as DESIGN_SETTING_PARAM
from cnnlab.search.space import MIN_FEASIBLE
from cnnlab.spec.trialspec import TRAINING_FIELDS, TrialSpec


def untrained_limit(fraction: float) -> int:
    """Draws in a row that may go untrained before a study is stopped: ten times the draws
    that one trainable architecture takes at the space's feasible fraction, and at least 100
    (duplicates count too: a small space can be exhausted)."""
    return max(100, math.ceil(10 / max(fraction, MIN_FEASIBLE)))


class Budget:
    """Stops the study loop (``done``) when enough trials were trained: ``to_train`` by this
    process (a worker's share, ``mine_only``), or the study's ``total`` counting the trials
    running elsewhere (the same command started by hand several times). Also stops, with a
    message in ``stopped``, after ``max_untrained`` draws in a row that were not trained."""

    def __init__(self, total: int | None, to_train: int | None, *, mine_only: bool,
                 max_untrained: int) -> None:
        self.total = total
        self.to_train = to_train
        self.mine_only = mine_only
        self.max_untrained = max_untrained
        self.trained = self.duplicates = self.infeasible = 0
        self.in_a_row = 0
        self.stopped: str | None = None
        self.reached = False
        """Whether the loop was stopped because the budget was reached."""

    @property
    def done(self) -> bool:
        """Whether the loop is to stop: the budget was reached, or the space gave nothing."""
        return self.reached or self.stopped is not None

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        kind = T.outcome(trial)
        if T.counts(trial):
            self.trained += 1
            self.in_a_row = 0
        elif kind in ("duplicate", "infeasible"):
            self.duplicates += kind == "duplicate"
            self.infeasible += kind == "infeasible"
            self.in_a_row += 1
        if self.in_a_row >= self.max_untrained:
            self.stopped = (
                f"stopped: the last {self.in_a_row} draws could not be trained (infeasible "
                "architectures or configurations already judged); the space seems exhausted "
                "for this sampler: widen the search or allow larger networks (max_params).")
        elif self.mine_only:
            if self.to_train is not None and self.trained >= self.to_train:
                self.reached = True
        elif self.total is not None:
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            if T.counted(study) + running >= self.total:
                self.reached = True


class ProgressPrinter:
    """One line per finished trial: state, score or why it was not trained, size, time, the
    best so far, and the trial's architecture (``Architecture.short``)."""

    def __init__(self, config: StudyConfig, out: Callable[[str], None]) -> None:
        self.config = config
        self.out = out
        self.started = time.monotonic()

    def __call__(self, study: Any, trial: Any) -> None:
        state = trial.state.name
        kind = T.outcome(trial)
        seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
        size = trial.user_attrs.get(N_PARAMS_ATTR)
        size_text = f"{size:>10,} params" if size is not None else " " * 17
        if kind == "infeasible":
            state = "INFEASIBLE"
            detail = _why_infeasible(trial.user_attrs.get(REASON_ATTR, "infeasible"))
        elif state == "COMPLETE":
            detail = f"{self.config.metric} {trial.values[0]:.4f}"
        elif state == "PRUNED":
            # One value per epoch run, to Optuna or in the curve: "after epoch N", N epochs ran.
            ran = len(trial.intermediate_values) or len(trial.user_attrs.get(CURVE_ATTR) or [])
            detail = f"pruned after epoch {ran}" if ran else "pruned"
            if self.config.fidelity is not None and FIDELITY_ATTR in trial.user_attrs:
                fidelity = trial.user_attrs[FIDELITY_ATTR]
                detail = f"stopped at rung {fidelity['rung']}/{fidelity['rungs']}"
        else:
            detail = trial.user_attrs.get(FAIL_REASON_ATTR, "failed")
        if kind == "duplicate":
            earlier = trial.user_attrs.get(DUPLICATE_OF_ATTR)
            detail = f"{detail} (reused #{earlier}, not retrained)"
        best = T.best_trial(study) if self.config.design is None else None  # A design: none.
        best_text = f"best: #{best.number} {best.values[0]:.4f}" if best is not None else ""
        self.out(f"trial {trial.number:>3}  {state:<10}  {detail:<28} {size_text}  "
                 f"{seconds:6.1f} s   {best_text:<17}  {_setting(trial)}{_architecture(trial)}"
                 .rstrip())


def _setting(trial: Any) -> str:
    """A designed experiment's trial: its setting and seed, e.g. ``filters x2, seed 1: ``."""
    label = trial.params.get(DESIGN_SETTING_PARAM)
    if label is None:
        return ""
    return f"{label}, seed {trial.params.get(DESIGN_SEED_PARAM)}: "


def _architecture(trial: Any) -> str:
    """The trial's architecture in short (``Architecture.short``), then the training settings
    the study searched with their drawn values (``learning_rate=0.00312 rotation=8``), from
    the spec stored with it; empty for a trial that ended before its spec was known."""
    data = trial.user_attrs.get(SPEC_ATTR)
    if data is None:
        return ""
    try:
        spec = TrialSpec.from_dict(data)
    except CnnlabError:
        return ""
    searched = [f"{name}={_short(getattr(spec.training, name))}" for name in TRAINING_FIELDS
                if name in trial.params]
    return " ".join([spec.architecture.short(), *searched])


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _why_infeasible(reason: str) -> str:
    """An infeasible draw's reason, shortened for its line (which names the architecture and
    its size already): ``over max_params 500,000``, ``conv2 shrinks 7x7x4 to 0x0``; another
    reason whole."""
    if match := re.search(r"over the study's max_params of ([0-9,]+)", reason):
        return f"over max_params {match[1]}"
    if "over cnnlab's ceiling" in reason:
        return "over cnnlab's ceiling"
    if match := re.search(r"layer (\w+) \(.*?\) would shrink its (\S+) input to (\S+?):",
                          reason):
        return f"{match[1]} shrinks {match[2]} to {match[3]}"
    return reason
