"""The Optuna objective: sample a trial's configuration, judge it, train it, return its score.

It computes and returns a number and nothing else: tracking reaches a trial through the hooks it
is given (``TrialHooks``: a context around each trial) and through Optuna callbacks, never from in
here.

Before anything is built, a trial is judged with the shape arithmetic alone: an architecture
that cannot be built or is over ``max_params`` is *infeasible* (pruned at once, with Optuna
constraint values so that constrained samplers learn from it), and a configuration that an
earlier trial already judged is a *duplicate* (the earlier result is reused, not retrained,
unless the study sets ``allow_repeats``; one that another process is training now is waited
for, then reused). See ``cnnlab.search.trials`` for the outcomes.
"""

from __future__ import annotations

import functools
import gc
import math
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from cnnlab.errors import ArchitectureError
from cnnlab.names import (
    ARCHITECTURE_ATTR,
    CONFIG_KEY_ATTR,
    DESIGN_KNOB_ATTR,
    DESIGN_VALUE_ATTR,
    DUPLICATE_OF_ATTR,
    FAIL_REASON_ATTR,
    MACS_ATTR,
    N_PARAMS_ATTR,
    OUTCOME_ATTR,
    REASON_ATTR,
    SAMPLER_SEED_ATTR,
    SEED_ATTR,
    SPEC_ATTR,
    WORKER_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig
from cnnlab.search.design import SETTING_PARAM as DESIGN_SETTING_PARAM
from cnnlab.search.factory import make_dominance_pruner
from cnnlab.search.pruning import enter_rung, optuna_callback, promote_at_rung
from cnnlab.search.space import constraints
from cnnlab.spec.architecture import check_architecture
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking import liveness
from cnnlab.tracking.stores import fail_stale
from cnnlab.tracking.study_run import LOST, TrialLost
from cnnlab.train import faults
from cnnlab.train.data import MnistSplits


class TrialRecord(Protocol):
    """What an objective tells the world about one trial while it runs (``TrialHooks.trial``)."""

    def keras_callbacks(self) -> list[Any]:
        """Keras callbacks to train this trial with (per-epoch logging, say)."""

    def ended(self, state: str, value: float | None = None) -> None:
        """The trial ended as ``state`` (COMPLETE, PRUNED or FAIL), with ``value`` if it
        completed; recorded when the context exits."""


class TrialHooks(Protocol):
    """How an objective tells the world about its trials."""

    def trial(self, trial: Any, spec: TrialSpec) -> AbstractContextManager[TrialRecord]:
        """A context around the trial, entered once its spec is known (its architecture may
        still prove invalid; its seed is the trial's). Its exit records how the trial ended,
        before Optuna is told: a trial that Optuna records as ended has been recorded
        everywhere else first."""


class NoHooks:
    def trial(self, trial: Any, spec: TrialSpec) -> _NoRecord:
        return _NoRecord()


class _NoRecord:
    def __enter__(self) -> _NoRecord:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def keras_callbacks(self) -> list[Any]:
        return []

    def ended(self, state: str, value: float | None = None) -> None:
        return None


class DivergedError(ArithmeticError):
    """A trial whose loss became NaN or infinite."""


def is_lost(trial: Any) -> bool:
    """Whether ``trial`` (this process's, running) was ended in the storage by another."""
    from optuna.trial import TrialState

    running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return all(t.number != trial.number for t in running)


def current(study: Any, number: int) -> Any:
    """Trial ``number`` of ``study`` as the storage has it now."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


KNOWN_FAILURES = (ArchitectureError, DivergedError)
"""Failures that end one trial, with its reason, while the study goes on."""


def config_key(spec: TrialSpec) -> str:
    """A digest of a trial's whole configuration but its seed (``TrialSpec.key``)."""
    return spec.key()


class Objective:
    """Trains one sampled architecture per call on the study's data and returns its score
    (the last epoch's ``metric`` on the validation split; the test split is never seen)."""

    def __init__(self, config: StudyConfig, data: MnistSplits, hooks: TrialHooks | None = None):
        self.config = config
        self.data = data
        self.hooks = hooks or NoHooks()
        self._trained = 0  # Trials this process has started training (gc.freeze at 0 and 1).

    @staticmethod
    def load_frameworks() -> None:
        """Import Keras and TensorFlow (seconds, once per process) and the modules that train
        with them, before the first trial is asked for: so that its duration, and a time
        budget, count its own work, not the process's start (the study loop calls it)."""
        from cnnlab.train.quiet import import_keras

        import_keras()
        import cnnlab.train.callbacks  # noqa: F401
        import cnnlab.train.fit  # noqa: F401

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        from optuna.exceptions import UpdateFinishedTrialError

        faults.current_trial = trial.number
        try:
            return self._trial(trial)
        except UpdateFinishedTrialError:  # A write to a trial another process has failed.
            if not is_lost(trial):
                raise
            raise TrialLost(LOST) from None

    def _trial(self, trial: Any) -> float | tuple[float, float]:
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError

        from cnnlab.search.sampling import trial_seed

        trial.set_user_attr(WORKER_ATTR, liveness.identity())
        trial.set_user_attr(SAMPLER_SEED_ATTR, trial_seed(self.config.seed, trial.number))
        spec = self.config.space.suggest(trial, self.config.training)
        if self.config.design is None:
            spec = spec.with_seed(self.config.seed + trial.number)
        else:  # The design's seed (the same seeds for every setting); its setting's labels.
            setting = self.config.design.setting(trial.params[DESIGN_SETTING_PARAM])
            trial.set_user_attr(DESIGN_KNOB_ATTR, setting.knob)
            trial.set_user_attr(DESIGN_VALUE_ATTR, setting.value)
        faults.reach("sampling", trial.number)
        trial.set_user_attr(ARCHITECTURE_ATTR, spec.architecture.describe())
        trial.set_user_attr(SPEC_ATTR, spec.to_dict())
        key = config_key(spec)
        if self.config.design is not None:  # Each seed of a setting is trained.
            key = f"{key}-seed{spec.training.seed}"
        trial.set_user_attr(CONFIG_KEY_ATTR, key)
        for name, value in constraints(spec.architecture, self.config.max_params,
                                       self.config.max_macs).items():
            trial.set_constraint(name, value)
        # The trial's records are complete before Optuna is told how it ended (the tell comes
        # when this returns or raises): the hooks' context records the end as it exits, so that
        # Optuna never counts a trial whose run or model is missing; an interrupt in between
        # leaves a RUNNING trial, failed on the next start.
        value = math.nan
        ending: Exception | None = None  # How a trial that did not complete ended.
        with self.hooks.trial(trial, spec) as record:
            try:
                value = self._judge_and_train(trial, spec, key, record)
            except optuna.TrialPruned as pruned:
                record.ended("PRUNED")
                ending = pruned
            except DivergedError as failed:
                record.ended("FAIL")
                ending = failed
            except UpdateFinishedTrialError:  # In fit, say: the trial's run ends as KILLED.
                if not is_lost(trial):
                    raise
                raise TrialLost(LOST) from None
            else:
                record.ended("COMPLETE", value)
            if is_lost(trial):  # Ended elsewhere while this process was stopped.
                raise TrialLost(LOST)
        faults.reach("tell", trial.number)
        if ending is not None:
            raise ending
        return self._values(trial, value)

    def _values(self, trial: Any, value: float) -> float | tuple[float, float]:
        """What Optuna is told: the metric, and the size when the study has two objectives."""
        size = self.config.size_objective
        return value if size is None else (value, float(trial.user_attrs[size]))

    def _judge_and_train(self, trial: Any, spec: TrialSpec, key: str,
                         record: TrialRecord) -> float:
        import optuna

        from cnnlab.train.quiet import import_keras

        keras = import_keras()
        from cnnlab.train.callbacks import TerminateOnNaN
        from cnnlab.train.fit import train

        arch = spec.architecture
        try:
            table = arch.layer_table()
            trial.set_user_attr(N_PARAMS_ATTR, table.total_params)
            trial.set_user_attr(MACS_ATTR, table.total_macs)
            check_architecture(arch, self.config.max_params, self.config.max_macs)
        except ArchitectureError as err:
            trial.set_user_attr(OUTCOME_ATTR, "infeasible")
            trial.set_user_attr(REASON_ATTR, str(err))
            raise optuna.TrialPruned(str(err)) from None
        if not self.config.allow_repeats:
            earlier = _claim(trial, key)
            if earlier is not None:
                return _reuse(trial, earlier)
        if self._trained == 0:
            # What is alive now (TensorFlow, MLflow, Optuna, the data: most of the heap) lives
            # to the study's end: out of the garbage collector's sight from here on, so that the
            # collection of every trial's clear_session, the first one's too, scans only what
            # trials make (a full collection of a fresh process's heap costs about 0.3 CPU-s,
            # of a long-lived one's, a test runner's, several times that). The runner's
            # optimize unfreezes (unless its caller had frozen objects of its own).
            gc.freeze()
        # Each trial starts from a clean Keras state, so that memory does not grow trial
        # after trial, with its own explicit seed.
        keras.backend.clear_session(free_memory=True)
        if self._trained == 1:
            # The first trial made what also lives to the study's end (the modules and caches
            # of saving, plotting and logging a model, TensorFlow's function machinery); its
            # own garbage was just collected: frozen too, or every later trial's collection
            # scans it again: 0.11 CPU-s a clear_session against 0.05, in a study of 12 tiny
            # trials (trial_overhead.py's).
            gc.freeze()
        self._trained += 1
        trial.set_user_attr(SEED_ATTR, spec.training.seed)
        if self.config.allow_repeats:  # Else _claim wrote it.
            trial.set_user_attr(OUTCOME_ATTR, "trained")
        # TerminateOnNaN stops a diverging trial at once; it is then failed, with the reason.
        # Every trial records its curve for the dominance pruner (which stops it only when it
        # is the study's pruner); a one-objective study also reports to Optuna's pruner, at
        # step = the epoch's number (from 1). Neither decides after the trial's last epoch.
        epochs = spec.training.epochs
        pruning = [make_dominance_pruner(self.config).keras_callback(trial, epochs)]
        if self.config.size_objective is None:
            pruning.append(optuna_callback(trial, self.config.metric, epochs))
        callbacks = [*record.keras_callbacks(), TerminateOnNaN(),
                     *pruning, *faults.keras_callbacks(trial.number)]
        # With rungs, the trial goes on from each only while it ranks well there.
        fidelity, n_train, on_rung = self.config.fidelity, len(self.data.train), None
        if fidelity is not None:
            enter_rung(trial, fidelity, 0, n_train)
            on_rung = functools.partial(
                promote_at_rung, trial, fidelity, n_train=n_train,
                maximize=self.config.direction == "maximize",
                size_attr=self.config.size_objective)
        result = train(spec, self.data, callbacks=callbacks, fidelity=fidelity, on_rung=on_rung)
        losses = result.history.get("loss", [])
        if result.epochs_run < spec.training.epochs or not all(map(math.isfinite, losses)):
            reason = (f"training diverged: the loss became "
                      f"{losses[-1] if losses else float('nan')} in epoch "
                      f"{max(len(losses), 1)} and training was stopped.")
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
            raise DivergedError(reason)
        return result.history[self.config.metric][-1]


CLAIM_POLL = 0.05
"""Seconds between looks while a later trial of the same configuration decides whether to
train it (a few storage writes away)."""
WAIT_POLL = 1.0
"""Seconds between looks while another trial trains this trial's configuration."""
STALE_CHECK = 10.0
"""Seconds between heartbeat checks (``fail_stale``) while a trial waits for another."""


def _claim(trial: Any, key: str) -> Any:
    """The trial whose result ``trial`` takes, or None once ``trial`` has claimed its
    configuration for training (outcome ``trained``, written here).

    A finished trial of the configuration (trained, or copied) is taken at once. One that
    another process is training now is waited for (``trial`` is marked a duplicate of it
    meanwhile), and then taken, as a finished duplicate is: Optuna's sampler is told its value,
    and the configuration is trained once, whichever process or machine drew it. If it ends
    without a result of its own (its worker killed), this trial claims the configuration.

    Claims are decided through the storage alone (no lock is shared across machines): each
    trial writes its configuration's key before it looks (``Objective``), and writes its
    decision after. Of two undecided trials of one configuration, the later-numbered one defers
    to the earlier (and waits for its result), and the earlier one looks again until the later
    has decided: no two trials claim it, since whichever looked last saw the other's key, and
    so its claim or its indecision."""
    stale_check = time.monotonic() + STALE_CHECK
    while True:
        finished, claimed, earlier, later = _same_configuration(trial, key)
        if finished is not None:
            return finished
        ahead = claimed or earlier
        if ahead is not None:
            trial.set_user_attr(OUTCOME_ATTR, "duplicate")
            trial.set_user_attr(DUPLICATE_OF_ATTR, ahead.number)
            _wait_for(trial, current(trial.study, ahead.number))
            trial.set_user_attr(OUTCOME_ATTR, None)  # Undecided again, and looks again.
        elif later:
            time.sleep(CLAIM_POLL)
            if time.monotonic() > stale_check:  # A later one silent on another host.
                fail_stale(trial.study)
                stale_check = time.monotonic() + STALE_CHECK
        else:
            faults.reach("claim", trial.number)
            trial.set_user_attr(OUTCOME_ATTR, "trained")
            return None


def _same_configuration(trial: Any, key: str) -> tuple[Any, Any, Any, bool]:
    """The other trials of ``key``: the first finished one (trained or copied), the running one
    that has claimed it, the first running undecided one numbered before ``trial``, and whether
    a running undecided one is numbered after it. Trials of processes known to be gone
    (``liveness.is_gone``) are passed over."""
    finished = claimed = earlier = None
    later = False
    for other in trial.study.get_trials(deepcopy=False):
        if other.number == trial.number or other.user_attrs.get(CONFIG_KEY_ATTR) != key:
            continue
        if other.state.name != "RUNNING":
            if finished is None and (T.counts(other) or T.outcome(other) == "copied"):
                finished = other
            continue
        if liveness.is_gone(other.user_attrs.get(WORKER_ATTR, {})):
            continue
        decided = other.user_attrs.get(OUTCOME_ATTR)
        if decided == "trained":
            claimed = claimed or other
        elif decided is None and other.number < trial.number:
            earlier = earlier or other
        elif decided is None:
            later = True
    return finished, claimed, earlier, later


def _wait_for(trial: Any, other: Any) -> None:
    """Until ``other`` is no longer running, or its process is known to be gone. Stale trials
    of other machines are failed meanwhile, as Optuna does at each trial's start."""
    from optuna.trial import TrialState

    stale_check = time.monotonic() + STALE_CHECK
    while other.state == TrialState.RUNNING and \
            not liveness.is_gone(other.user_attrs.get(WORKER_ATTR, {})):
        time.sleep(WAIT_POLL)
        if time.monotonic() > stale_check:
            fail_stale(trial.study)
            stale_check = time.monotonic() + STALE_CHECK
        other = current(trial.study, other.number)


def _reuse(trial: Any, earlier: Any) -> float:
    """End ``trial`` as ``earlier`` (finished) ended, without training: the same value, the
    same state, the same failure.

    The duplicate reports no intermediate values: a pruner's statistics (the median pruner's
    median at each epoch) must count each configuration once, and TPE re-draws its leader often
    (a copied curve would be one more vote at the leader's score for every re-draw)."""
    import optuna

    trial.set_user_attr(OUTCOME_ATTR, "duplicate")
    trial.set_user_attr(DUPLICATE_OF_ATTR, earlier.number)
    state = earlier.state.name
    reason = f"same configuration as trial {earlier.number}: its result is reused, not retrained"
    trial.set_user_attr(REASON_ATTR, reason)
    if state == "COMPLETE":
        return earlier.values[0]
    if state == "PRUNED":
        raise optuna.TrialPruned(reason)
    failure = earlier.user_attrs.get(FAIL_REASON_ATTR, "the earlier trial failed")
    trial.set_user_attr(FAIL_REASON_ATTR, failure)
    raise DivergedError(failure)
