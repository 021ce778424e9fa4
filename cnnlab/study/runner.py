"""Run a study: open it, train trials up to its total inside its MLflow run, report.

``run_study`` reads as its four steps: ``open_study`` (create or resume it in Optuna's storage,
after every check), one ``with`` block for the study's MLflow run (``StudyTracker``), ``optimize``
(Optuna's loop with small callbacks), ``report``. Workers (``--workers N``) run the same steps.

The trial budget is the study's total of *trained* trials, as KerasTuner's ``max_trials`` is:
running the same command again after an interruption continues until the total is reached, a
finished study says so and stops, and a larger ``n_trials`` (``dataclasses.replace`` of the
configuration, as the command line's ``--n-trials`` does) sets a new total. Draws that were not
trained (infeasible architectures, duplicates of judged configurations) do not count; a bound on
such draws in a row ends a study whose space is exhausted, with a message. Identity and the
refusals are in ``cnnlab.study.identity``.
"""

from __future__ import annotations

import gc
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnlab.names import (
    ARCHITECTURE_ATTR,
    COPIED_FROM_ATTR,
    N_PARAMS_ATTR,
    PARENT_RUN_ATTR,
    WORKER_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig, check_runnable
from cnnlab.search.factory import make_pruner, make_sampler
from cnnlab.spec.words import count
from cnnlab.study import identity, warm
from cnnlab.study.loop import Budget, ProgressPrinter, untrained_limit
from cnnlab.study.objective import KNOWN_FAILURES, Objective, current
from cnnlab.tracking import liveness
from cnnlab.tracking import runs as tracking
from cnnlab.tracking.preflight import (
    STORAGE,
    TRACKING,
    check_stores,
    check_writable_stores,
    create_store,
    inspect,
)
from cnnlab.tracking.stores import (
    Stores,
    cnnlab_command,
    fail_stale,
    heartbeat,
    heartbeats,
    open_storage,
    password_note,
    shown_uri,
    sqlite_path,
    trial_id,
)
from cnnlab.tracking.study_run import StudyTracker, TrialLost
from cnnlab.train.data import MnistSplits, load_mnist

Out = Callable[[str], None]


@dataclass
class StudyOutcome:
    """What a run of the study did."""

    study: Any
    data: MnistSplits
    ran: int
    """Trials drawn by this run (trained, reused, infeasible)."""
    parent_run_id: str | None
    stopped: str | None = None
    """Why the study stopped short of its total, if it did (a space that gives nothing
    trainable any more)."""
    changed: bool = True
    """Whether this run wrote anything (a finished study with nothing to do writes nothing)."""


def run_study(config: StudyConfig, stores: Stores | None = None, *,
              data: MnistSplits | None = None, data_dir: str | None = None,
              share: int | None = None, from_study: str | None = None,
              out: Out = print) -> StudyOutcome:
    """Create or resume the study and run it up to ``config.n_trials`` trained trials.

    Everything that can be checked is checked (configuration, the space's feasible fraction,
    data, that the stores can be reached, that the study is this one and was not evaluated)
    before anything is written. ``data`` gives the training and validation splits directly
    instead of reading MNIST from ``data_dir``; ``share`` is the number of trials this process
    trains (one of several workers); ``from_study`` starts a new study from the finished trials
    of another one in the same storage. Raises ``ConfigError`` (and ``DataError``) for bad input.
    """
    stores = stores or Stores.resolve()
    feasible = check_runnable(config)
    if data is None:
        data = load_mnist(data_dir, train_size=config.train_size, val_size=config.val_size)
    study, storage = open_study(config, stores, data, from_study=from_study, out=out)
    done, total = T.counted(study), config.n_trials
    out(f"study '{config.name}' in {shown_uri(stores.storage)}: {done} trial(s) so far"
        + (f", total {total}" if total is not None else "")
        + (f", time budget {config.timeout:g} s" if config.timeout is not None else "")
        + T.not_counted(study)
        + "; " + (feasible.describe() if config.design is None else
                  f"a design of {count(len(config.design.settings()), 'setting')} x "
                  f"{count(config.design.seeds, 'seed')}"))
    for note in config.notes:  # Optuna's warnings about the file's options: once, not per trial.
        out(f"note: {note}")
    if total is not None and done >= total:
        more = ("every setting has its seeds; more seeds (seeds in [design]) make a new "
                "design, under a new name" if config.design is not None else
                "give a larger --n-trials to run more")
        out(f"study '{config.name}' is finished: {done} of {total} trials; nothing to do "
            f"({more}).")
        changed = StudyTracker(study, config, data, stores.tracking_uri).settle()
        print_best(study, config, out)
        return StudyOutcome(study, data, 0, study.user_attrs.get(PARENT_RUN_ATTR),
                            changed=changed)
    to_train = None if total is None else total - done
    if share is not None:
        to_train = share if to_train is None else min(to_train, share)
    budget = Budget(total, to_train, mine_only=share is not None,
                    max_untrained=untrained_limit(feasible.fraction))
    with StudyTracker(study, config, data, stores.tracking_uri) as tracker:
        for note in tracker.notes:
            out(f"note: {note}")
        def lost(trial: Any) -> None:
            tracker.trial_lost(trial)
            out(f"trial {trial.number:>3}  FAIL        failed by another process while this one "
                f"was stopped or cut off from the storage for over {heartbeat()[1]} s (no "
                "heartbeat); its result is dropped and the study goes on")

        ran = optimize(study, storage, Objective(config, data, hooks=tracker),
                       [tracker.after_trial, ProgressPrinter(config, out), budget], budget, config,
                       lost)
    report(study, config, budget, ran, tracker, out)
    return StudyOutcome(study, data, ran, tracker.parent_run_id, budget.stopped)


def open_study(config: StudyConfig, stores: Stores, data: MnistSplits, *,
               from_study: str | None = None, out: Out = print) -> tuple[Any, Any]:
    """The study and its Optuna storage (``open_storage``), the study created or resumed once
    every check has passed: the stores are whole and of this MLflow's and Optuna's schema
    (``check_stores``), and can be written unless the study is finished; the tracking store can
    be reached and its experiment is not deleted, the study is this one (or new), it was not
    evaluated; a new study started ``from_study`` gets copies of its trials. The RUNNING trials
    of workers that are gone are failed here. A finished study is loaded, not created: it
    writes nothing."""
    import optuna

    check_stores(stores, write=False)
    tracking.check_reachable(stores.tracking_uri)
    tracking.check_experiment(config.name, stores.tracking_uri)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Every trial builds new models: TensorFlow's warning that functions are traced again is
    # expected here and says nothing useful.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    storage = None
    if from_study is None and _stores_whole(stores):
        storage = open_storage(stores.storage)
    finished = storage is not None and _finished(config, storage)
    if not finished:
        check_writable_stores(stores)
        if sqlite_path(stores.storage) is not None:  # Made whole, or not at all.
            create_store(sqlite_path(stores.storage), STORAGE)
        storage = storage or open_storage(stores.storage)
    source = identity.source_study(from_study, config, storage, stores.storage)
    warm_sources = warm.check_sources(config, storage, stores.storage,
                                      identity.data_identity(data))
    sampler = make_sampler(config, say=lambda text: out(f"note: {text}"))
    if finished:
        study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler,
                                  pruner=make_pruner(config))
    else:
        study = optuna.create_study(
            storage=storage, study_name=config.name, directions=config.directions,
            sampler=sampler, pruner=make_pruner(config), load_if_exists=True)
    identity.refuse_if_evaluated(study, config, stores.tracking_uri)
    if source is not None and any(
            t.user_attrs.get(COPIED_FROM_ATTR, {}).get("study") == from_study
            for t in study.get_trials(deepcopy=False)):
        source = None  # Started from it before: this is a resume.
    identity.check_same_study(study, config, data, new=source is not None)
    if study.metric_names != config.objectives:
        with warnings.catch_warnings():  # Experimental in Optuna, and what dashboards read.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(config.objectives)
    started = warm.warm_start(study, warm_sources, config) if not finished else None
    if started is not None:
        out(f"study '{config.name}' starts warm from {started.describe()} (copies: they teach "
            "the sampler and do not count).")
    if source is not None:
        copied = identity.copy_trials(source, study)
        out(f"study '{config.name}' starts from {copied} finished trial(s) of study "
            f"'{source.study_name}' (copies: they teach the sampler and do not count).")
    for params in config.enqueue:  # Trained first; once only (skip_if_exists).
        study.enqueue_trial(params, skip_if_exists=True)
    fail_dead_trials(study)
    return study, storage


def _stores_whole(stores: Stores) -> bool:
    """Whether the local stores are there whole (``preflight.inspect``; a store on a server is
    taken as there): only then can the study be finished, and its storage be opened before
    anything is made (a store that an interrupted creation left half-made is made again
    first, by ``create_store``)."""
    return all(path is None or inspect(path, kind, quick=True) == "whole"
               for path, kind in ((sqlite_path(stores.storage), STORAGE),
                                  (sqlite_path(stores.tracking_uri), TRACKING)))


def _finished(config: StudyConfig, storage: Any) -> bool:
    """Whether the study is in the opened ``storage`` with its total of trials (a finished
    study then has nothing to write)."""
    import optuna

    if config.n_trials is None or \
            config.name not in optuna.study.get_all_study_names(storage=storage):
        return False
    return T.counted(optuna.load_study(study_name=config.name, storage=storage)) \
        >= config.n_trials


def optimize(study: Any, storage: Any, objective: Objective, callbacks: list[Any],
             budget: Budget, config: StudyConfig,
             lost: Callable[[Any], None] | None = None) -> int:
    """The study's loop, on Optuna's ask-and-tell interface: ask for a trial, train and record
    it (``objective``: build, train, record its run), tell Optuna how it ended, once, then the
    ``callbacks`` in order with the trial as told; until the budget is spent or stops it (said
    in ``budget.stopped``), the time budget ends, or the sampler has nothing left to draw.
    Returns the number of trials drawn.

    What ``study.optimize`` did around each trial is done here: stale trials of silent
    processes failed first (``fail_stale``), the trial's heartbeats while it runs
    (``heartbeats``), known failures (``KNOWN_FAILURES``) told as FAIL and the loop goes on,
    anything else (an interrupt included) told as FAIL and raised. A trial of this process that
    another one failed while this one was silent (``TrialLost``) is not told: it is handed to
    ``lost`` and the loop goes on."""
    import optuna
    from optuna.trial import TrialState

    def drawn() -> int:  # Enqueued trials wait in the study before they are drawn.
        return sum(t.state.name != "WAITING" for t in study.get_trials(deepcopy=False))

    if not budget.done:
        objective.load_frameworks()
    before = drawn()
    started = time.monotonic()
    exhausted = False
    study_id = storage.get_study_id_from_name(study.study_name)
    # The objective freezes the heap (gc.freeze) as its first trials begin; unfrozen at the end
    # unless the caller had frozen objects of its own, which gc.unfreeze would thaw with ours.
    thaw = gc.get_freeze_count() == 0
    try:
        while not budget.done and (budget.to_train is None or budget.to_train > 0):
            if config.timeout is not None and time.monotonic() - started >= config.timeout:
                break
            fail_stale(study)
            trial = _ask(study)
            with heartbeats(storage, trial_id(storage, study_id, trial.number)):
                try:
                    values, state = objective(trial), TrialState.COMPLETE
                except optuna.TrialPruned:
                    values, state = None, TrialState.PRUNED
                except TrialLost:
                    if lost is not None:
                        lost(current(study, trial.number))
                    continue
                except KNOWN_FAILURES:
                    values, state = None, TrialState.FAIL
                except (Exception, KeyboardInterrupt):
                    _tell(study, trial, None, TrialState.FAIL)
                    raise
            if values is not None and not all(map(math.isfinite, _as_list(values))):
                values, state = None, TrialState.FAIL  # As study.optimize tells a NaN.
            frozen, exhausted = _tell(study, trial, values, state)
            if frozen.state != state and frozen.state == TrialState.FAIL and values is not None:
                if lost is not None:  # Failed elsewhere between its last check and the tell.
                    lost(frozen)
                continue
            for callback in callbacks:
                callback(study, frozen)
            if exhausted:
                break
    finally:
        if thaw:
            gc.unfreeze()
        getattr(storage, "remove_session", lambda: None)()  # As study.optimize ends.
    if exhausted and budget.stopped is None and not budget.reached:
        budget.stopped = (
            f"stopped: the sampler has nothing left to draw ({config.sampler.name} has judged "
            "every configuration of the space); widen the search or lower n_trials.")
    return drawn() - before


def _as_list(values: Any) -> list[float]:
    return list(values) if isinstance(values, tuple | list) else [values]


def _ask(study: Any) -> Any:
    """A new trial (an enqueued one first)."""
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for study.optimize: this loop beats itself.
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        return study.ask()


def _tell(study: Any, trial: Any, values: Any, state: Any) -> tuple[Any, bool]:
    """Tell Optuna how ``trial`` ended; returns the trial as recorded (a trial that another
    process failed meanwhile stays failed: ``skip_if_finished``) and whether the sampler asked
    to stop. A sampler that has drawn everything (Optuna's grid and brute-force samplers,
    cnnlab's ``DesignSampler``) calls ``study.stop()`` from ``tell``, which outside
    ``study.optimize`` raises ``RuntimeError`` once the trial is recorded (Optuna's documented
    behaviour, in ``GridSampler``'s notes): read back as recorded, that is the stop."""
    from optuna.trial import TrialState

    try:
        return study.tell(trial, values, state=state, skip_if_finished=True), False
    except RuntimeError:
        frozen = current(study, trial.number)
        if frozen.state == TrialState.RUNNING:
            raise
        return frozen, True


def report(study: Any, config: StudyConfig, budget: Budget, ran: int, tracker: StudyTracker,
           out: Out) -> None:
    """What the run did, why it stopped short (if it did), the best trial and where the
    records are."""
    total = config.n_trials
    out(f"ran {ran} trial(s): {budget.trained} trained, {budget.duplicates} duplicate(s) "
        f"reused, {budget.infeasible} infeasible; study '{config.name}' has {T.counted(study)}"
        + (f" of {total}" if total is not None else "") + " trials")
    if budget.stopped is not None:
        out(budget.stopped)
    print_best(study, config, out)
    out(f"MLflow: experiment '{config.name}', study run {tracker.parent_run_id} "
        f"({shown_uri(tracker.uri)}); browse with: "
        f"{cnnlab_command('ui', tracking_uri=tracker.uri, stores=('tracking',))}"
        f"{password_note((tracker.uri, 'MLFLOW_TRACKING_URI'))}")


def print_best(study: Any, config: StudyConfig, out: Out) -> None:
    """The study's "best:" line (none for a designed experiment: one seed of one setting is
    not its answer; the per-knob tables are)."""
    if config.design is not None:
        return
    best = T.best_trial(study)
    if best is None:
        out("no trial has completed yet.")
        return
    out(f"best: trial {best.number}, {config.metric} {best.values[0]:.4f}, "
        f"{best.user_attrs.get(N_PARAMS_ATTR, 0):,} parameters, "
        f"{best.user_attrs.get(ARCHITECTURE_ATTR, '')}")


def fail_dead_trials(study: Any) -> list[int]:
    """Fail the RUNNING trials of workers that are gone, now: those whose process is known to
    be gone (this host and boot, no process with its pid and start time; see
    ``cnnlab.tracking.liveness``), and (through Optuna's heartbeats) any whose heartbeat stopped
    more than the grace period ago, unless its process is known to be alive here (stopped with
    Ctrl-Z, say: ``cnnlab.tracking.stores.open_storage``). A process that cannot be checked
    (another host) is left to the heartbeats.
    Returns the trial numbers failed here."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if liveness.is_gone(trial.user_attrs.get(WORKER_ATTR, {})):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
                failed.append(trial.number)
            except (ValueError, RuntimeError):
                pass  # Another worker got there first.
    fail_stale(study)  # Other hosts' workers, by heartbeat.
    return failed
