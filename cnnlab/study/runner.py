"""Run a study: create or resume it in Optuna's storage, train trials up to its total, track it.

The trial budget is the study's total of *trained* trials, as KerasTuner's ``max_trials`` is:
running the same command again after an interruption continues until the total is reached, a
finished study says so and stops, and ``n_trials`` given here sets a new total. Draws that were
not trained (infeasible architectures, duplicates of judged configurations) do not count; a
bound on such draws in a row ends a study whose space is exhausted, with a message.

A study's identity is its file (all but the budget and the words), its data (the digests of the
training and validation splits) and its storage (a random id kept in the study, which names its
MLflow study run): resuming with another file or other data is refused. A study that was
evaluated on the test set takes no more trials.
"""

from __future__ import annotations

import gc
import logging
import math
import re
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.study import liveness
from cnnlab.tracking import runs as tracking
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig, check_runnable
from cnnlab.train.data import MnistSplits, load_mnist
from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.names import (
    ARCHITECTURE_ATTR,
    CONFIG_ATTR,
    COPIED_FROM_ATTR,
    CURVE_ATTR,
    DATA_ATTR,
    DESCRIPTION_ATTR,
    DUPLICATE_OF_ATTR,
    EVALUATION_ATTR,
    FAIL_REASON_ATTR,
    N_PARAMS_ATTR,
    OUTCOME_ATTR,
    PARENT_RUN_ATTR,
    REASON_ATTR,
    UID_ATTR,
    WORKER_ATTR,
)
from cnnlab.study.objective import DivergedError, DuplicateRunningError, Objective
from cnnlab.search.space import MIN_FEASIBLE
from cnnlab.tracking.stores import redact, resolve_storage

HEARTBEAT_INTERVAL = 10
"""Seconds between a running trial's heartbeats in the Optuna storage."""
GRACE_PERIOD = 60
"""A running trial without a heartbeat for this long belongs to a dead worker: it is failed."""


KNOWN_FAILURES = (ArchitectureError, DivergedError, DuplicateRunningError)
"""Failures that end one trial, with its reason, while the study goes on."""


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``, with heartbeats so that a killed worker's trial is failed.

    A local SQLite file gets its folder and a patient lock (several workers may share it). An
    unreachable or malformed URL is a ``ConfigError`` that names it (password hidden).
    """
    import optuna

    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_INTERVAL,
                              "grace_period": GRACE_PERIOD}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 10},
                                   "pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as err:  # SQLAlchemy's and Optuna's errors alike: say which URL and why.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot open the Optuna storage {redact(url)}: {reason}") from None


def open_existing_storage(storage: str | None = None) -> tuple[str, Any]:
    """(URL, storage) of a storage that studies have run in, for evaluate and compare: a local
    SQLite file that does not exist yet is an error, not a new empty store."""
    url = resolve_storage(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).expanduser().exists():
        raise ConfigError(f"there is no Optuna storage at {url} (no study has run there); "
                          "run `cnnlab study run` first, or name the storage with --storage.")
    return url, open_storage(url)


def counted(study: Any) -> int:
    """Trials that count towards the total (``cnnlab.search.trials.counts``): trained, and ended for a
    reason of their own. Infeasible draws, duplicates, copies and trials whose worker was
    killed do not count."""
    return sum(T.counts(t) for t in study.get_trials(deepcopy=False))


def fail_dead_trials(study: Any) -> list[int]:
    """Fail the RUNNING trials of workers that are gone, now: those whose process is known to
    be gone (this host and boot, no process with its pid and start time; see
    ``cnnlab.study.liveness``), and (through Optuna's heartbeats) any whose heartbeat stopped more
    than the grace period ago. A process that cannot be checked is left to the heartbeats.
    Returns the trial numbers failed here."""
    import optuna
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if liveness.is_gone(trial.user_attrs.get(WORKER_ATTR, {})):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
                failed.append(trial.number)
            except (ValueError, RuntimeError):
                pass  # Another worker got there first.
    with warnings.catch_warnings():  # Experimental in Optuna since 2.9, and what it is for.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # Other hosts' workers, by heartbeat.
    return failed


@dataclass
class StudyOutcome:
    study: Any
    total: int | None
    ran: int
    parent_run_id: str | None
    stopped: str | None = None
    """Why the study stopped short of its total, if it did (a space that gives nothing
    trainable any more)."""


def run_study(
    config: StudyConfig,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    share: int | None = None,
    data: MnistSplits | None = None,
    from_study: str | None = None,
    out: Callable[[str], None] = print,
) -> StudyOutcome:
    """Create or resume the study and run it up to its total number of trained trials.

    Everything that can be checked is checked (configuration, the space's feasible fraction,
    data, that the stores can be reached, that the study is this one and was not evaluated)
    before anything is written. ``share`` is the number of trials this process trains (one of
    several workers). ``data`` gives the training and validation splits directly (from the
    Python API) instead of reading MNIST through ``data_dir``. ``from_study`` starts a new
    study from the finished trials of another one in the same storage.
    """
    import optuna

    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1, not {n_trials}.")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout}.")
    total = n_trials if n_trials is not None else config.n_trials
    timeout = timeout if timeout is not None else config.timeout
    feasible = check_runnable(config)
    if data is None:
        data = load_mnist(data_dir, train_size=config.train_size, val_size=config.val_size)

    url = resolve_storage(storage)
    tracking.check_reachable(tracking_uri)
    tracking.check_experiment(config.name, tracking_uri)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Every trial builds new models; TensorFlow's warning that its functions are retraced
    # is expected here and says nothing useful.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    storage_obj = open_storage(url)
    source = _source_study(from_study, config, storage_obj, url)
    study = optuna.create_study(
        storage=storage_obj, study_name=config.name, directions=config.directions,
        sampler=config.make_sampler(), pruner=config.make_pruner(), load_if_exists=True)
    _refuse_if_evaluated(study, config, tracking_uri)
    if source is not None and any(
            t.user_attrs.get(COPIED_FROM_ATTR, {}).get("study") == from_study
            for t in study.get_trials(deepcopy=False)):
        source = None  # Started from it before: this is a resume.
    _check_same_study(study, config, data, new=source is not None)
    if study.metric_names != config.objectives:
        with warnings.catch_warnings():  # Experimental in Optuna, and what dashboards read.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(config.objectives)
    if source is not None:
        copied = _copy_trials(source, study)
        out(f"study '{config.name}' starts from {copied} finished trial(s) of study "
            f"'{source.study_name}' (copies: they teach the sampler and do not count).")

    fail_dead_trials(study)
    done = counted(study)
    out(f"study '{config.name}' in {redact(url)}: {done} trial(s) so far"
        + (f", total {total}" if total is not None else "")
        + (f", time budget {timeout:g} s" if timeout is not None else "")
        + f"; {feasible.describe()}")
    from cnnlab.study.study_run import StudyTracker

    if total is not None and done >= total:
        out(f"study '{config.name}' is finished: {done} of {total} trials; nothing to do "
            "(give a larger --n-trials to run more).")
        _settle_finished(study, StudyTracker(study, config, data, tracking_uri))
        _print_best(study, config, out)
        if share is None:
            confirm_if_asked(config, study, storage=url, tracking_uri=tracking_uri, data=data,
                             out=out, total=total)
        return StudyOutcome(study, total, 0, study.user_attrs.get(PARENT_RUN_ATTR))

    tracker = StudyTracker(study, config, data, tracking_uri)
    for note in tracker.notes:
        out(f"note: {note}")
    tracker.close_orphan_runs(study)
    objective = Objective(config, data, hooks=tracker)
    to_train = None if total is None else total - done
    if share is not None:
        to_train = share if to_train is None else min(to_train, share)
    budget = _Budget(total, to_train, mine_only=share is not None,
                     max_untrained=_untrained_limit(feasible.fraction))
    callbacks: list[Any] = [tracker.summary, ProgressPrinter(config, out), budget]
    before = len(study.trials)
    started = time.monotonic()
    tracker.start()
    status = "FAILED"
    quiet = _QuietKnownFailures()
    # Optuna logs from child loggers through handlers on its root logger: filter those.
    handlers = logging.getLogger("optuna").handlers
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        if to_train is None or to_train > 0:
            # No n_trials for Optuna: only trained trials count, and _Budget stops the loop.
            study.optimize(objective, n_trials=None, timeout=timeout, callbacks=callbacks,
                           catch=KNOWN_FAILURES)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
        gc.unfreeze()  # The objective froze the heap after its first trial's collection.
        tracker.finish(status)
    ran = len(study.trials) - before
    if (budget.stopped is None and not budget.reached and to_train is not None
            and budget.trained < to_train
            and (timeout is None or time.monotonic() - started < timeout)):
        # Optuna's loop ended by itself: the sampler stopped the study (brute force does once
        # it has drawn every configuration).
        budget.stopped = (
            f"stopped: the sampler has nothing left to draw ({config.sampler.name} has judged "
            "every configuration of the space); widen the search or lower n_trials.")
    out(f"ran {ran} trial(s): {budget.trained} trained, {budget.duplicates} duplicate(s) "
        f"reused, {budget.infeasible} infeasible; study '{config.name}' has {counted(study)}"
        + (f" of {total}" if total is not None else "") + " trials")
    if budget.stopped is not None:
        out(budget.stopped)
    _print_best(study, config, out)
    out(f"MLflow: experiment '{config.name}', study run {tracker.parent_run_id} "
        f"({redact(tracker.uri)}); browse with: cnnlab ui")
    if share is None:
        confirm_if_asked(config, study, storage=url, tracking_uri=tracking_uri, data=data,
                         out=out, total=total)
    return StudyOutcome(study, total, ran, tracker.parent_run_id, budget.stopped)


def confirm_if_asked(config: StudyConfig, study: Any, *, storage: str | None,
                     tracking_uri: str | None, data: MnistSplits | None = None,
                     data_dir: str | None = None, out: Callable[[str], None] = print,
                     total: int | None = None) -> None:
    """Run the study file's ``[confirm]`` once the study has all its trials (``total``, else
    the file's ``n_trials``) and was not evaluated, unless every trial it asks for (the top K
    or the front as they are now, and the baseline) already has its seeds: a study resumed
    with more trials confirms its new leaders, and seeds already done are not trained again
    (``cnnlab.results.confirm``)."""
    from cnnlab.results.confirm import BASELINE, candidates, confirm_study, load_record

    asked = config.confirm
    if asked is None or study.user_attrs.get(EVALUATION_ATTR):
        return
    total = total if total is not None else config.n_trials
    if total is not None and counted(study) < total:
        return  # Not finished yet: the next run of the same command goes on, then confirms.
    try:
        wanted = [str(t.number) for t in candidates(study, config, top=asked.top,
                                                    front=asked.front)]
    except ConfigError:
        return  # No complete trial: nothing to confirm.
    wanted += [BASELINE] if asked.baseline else []
    entries = (load_record(study) or {}).get("entries", {})
    if all(len(entries.get(key, {}).get("values", [])) >= asked.seeds for key in wanted):
        return
    confirm_study(config.name, top=asked.top, front=asked.front, seeds=asked.seeds,
                  baseline=asked.baseline, storage=storage, tracking_uri=tracking_uri,
                  data=data, data_dir=data_dir, config=config, out=out)


def _settle_finished(study: Any, tracker: Any) -> None:
    """A finished study whose last process died after Optuna recorded the last trial: make its
    runs agree with Optuna, and, when no trial is running anywhere, refresh the study run's
    summary and end it."""
    from optuna.trial import TrialState

    tracker.close_orphan_runs(study)
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        return  # Other workers are still at it; the last of them ends the study run.
    if tracker.client.get_run(tracker.parent_run_id).info.status == "RUNNING":
        tracker.summary.refresh(study)
        tracker.client.set_terminated(tracker.parent_run_id, "FINISHED")


def _untrained_limit(fraction: float) -> int:
    """Draws in a row that may go untrained before a study is stopped: ten times the draws
    that one trainable architecture takes at the space's feasible fraction, and at least 100
    (duplicates count too: a small space can be exhausted)."""
    return max(100, math.ceil(10 / max(fraction, MIN_FEASIBLE)))


def data_identity(data: MnistSplits) -> dict[str, Any]:
    """What names the data a study runs on (kept in the study; compared on resume)."""
    return {"train_sha256": data.train.sha256, "val_sha256": data.validation.sha256,
            "train_size": len(data.train), "val_size": len(data.validation)}


def _refuse_if_evaluated(study: Any, config: StudyConfig, tracking_uri: str | None) -> None:
    """An evaluated study takes no more trials: its best model was tested, and going on would
    let the test set steer the search. Every record of an evaluation counts (see
    ``cnnlab.results.evaluate.evaluation_records``), a claim of one in progress too."""
    record = study.user_attrs.get(EVALUATION_ATTR)
    if record is None and study.get_trials(deepcopy=False):
        from cnnlab.results.evaluate import evaluation_records

        tracking.use_tracking_store(tracking_uri)
        records = evaluation_records(study)
        if records:
            record = records[0][1]
    if not record:
        return
    raise ConfigError(
        f"study '{config.name}' was evaluated on the test set at "
        f"{record.get('evaluated_at', record.get('claimed_at'))} (trial {record.get('trial')}"
        + (f", test accuracy {float(record['test_accuracy']):.4f}"
           if "test_accuracy" in record else "") + "), so "
        "it takes no more trials (the test set would steer the search); to go on, give the "
        "study a new name in its file and run it with --from-study "
        f"'{config.name}' to start from its trials.")


def _check_same_study(study: Any, config: StudyConfig, data: MnistSplits,
                      new: bool = False) -> None:
    """A study name stands for one configuration and one data set: resuming with others is
    refused. A new study gets its identity (config, data digests, a random id) here."""
    identity = config.identity()
    attrs = study.user_attrs
    stored = attrs.get(CONFIG_ATTR)
    if new and (stored is not None or study.trials):
        raise ConfigError(f"study '{config.name}' already exists and did not start from that "
                          "study; --from-study starts a new study: give it a new name in its "
                          "file.")
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, identity)
        study.set_user_attr(DESCRIPTION_ATTR, config.description)
    elif stored != identity:
        keys = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise ConfigError(
            f"study '{config.name}' already exists with a different configuration "
            f"(differs in: {', '.join(keys)}); give the study a new name, or restore the file.")
    now = data_identity(data)
    was = attrs.get(DATA_ATTR)
    if was is None:
        study.set_user_attr(DATA_ATTR, now)
    elif (was["train_sha256"], was["val_sha256"]) != (now["train_sha256"], now["val_sha256"]):
        raise ConfigError(
            f"study '{config.name}' ran on other data (training {was['train_sha256'][:12]}, "
            f"validation {was['val_sha256'][:12]}; given now: training "
            f"{now['train_sha256'][:12]}, validation {now['val_sha256'][:12]}); point "
            "--data-dir or CNNLAB_MNIST_DIR at the data it ran on, or give the study a new name.")
    if UID_ATTR not in attrs:
        study.set_user_attr(UID_ATTR, uuid.uuid4().hex)


def _source_study(name: str | None, config: StudyConfig, storage: Any, url: str) -> Any:
    """The study that --from-study names, checked: it exists, is another study, and searched
    the same space with the same training (all but its name and budget)."""
    import optuna

    if name is None:
        return None
    if name == config.name:
        raise ConfigError(f"--from-study names the study itself ('{name}'); give the new study "
                          "a new name in its file.")
    if name not in optuna.study.get_all_study_names(storage=storage):
        raise ConfigError(f"--from-study: no study named {name!r} in {redact(url)}.")
    source = optuna.load_study(study_name=name, storage=storage)
    theirs = dict(source.user_attrs.get(CONFIG_ATTR, {}))
    ours = config.identity()
    theirs.pop("name", None)
    ours.pop("name", None)
    if theirs != ours:
        keys = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ConfigError(f"--from-study: study '{name}' was run with a different "
                          f"configuration (differs in: {', '.join(keys)}); a study can start "
                          "from trials of the same search only.")
    return source


def _copy_trials(source: Any, study: Any) -> int:
    """Add the source study's finished, trained trials to the new study, marked as copies."""
    import optuna

    copies = []
    for trial in source.get_trials(deepcopy=False):
        if not T.counts(trial) or trial.state.name == "FAIL":
            continue
        attrs = {k: v for k, v in trial.user_attrs.items()
                 if k not in (EVALUATION_ATTR, OUTCOME_ATTR)}
        attrs[OUTCOME_ATTR] = "copied"
        attrs[COPIED_FROM_ATTR] = {"study": source.study_name, "trial": trial.number}
        copies.append(optuna.trial.create_trial(
            state=trial.state,
            values=trial.values if trial.state.name == "COMPLETE" else None,
            params=trial.params, distributions=trial.distributions, user_attrs=attrs,
            system_attrs={k: v for k, v in trial.system_attrs.items()
                          if k.startswith("constraints")},
            intermediate_values=trial.intermediate_values))
    study.add_trials(copies)
    return len(copies)


def _print_best(study: Any, config: StudyConfig, out: Callable[[str], None]) -> None:
    from cnnlab.study.study_run import _best_trial

    best = _best_trial(study)
    if best is None:
        out("no trial has completed yet.")
        return
    out(f"best: trial {best.number}, {config.metric} {best.values[0]:.4f}, "
        f"{best.user_attrs.get(N_PARAMS_ATTR, 0):,} parameters, "
        f"{best.user_attrs.get(ARCHITECTURE_ATTR, '')}")


class _Budget:
    """Stops the optimization loop when enough trials were trained: ``to_train`` by this
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
            study.stop()
        elif self.mine_only:
            if self.to_train is not None and self.trained >= self.to_train:
                self.reached = True
                study.stop()
        elif self.total is not None:
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            if counted(study) + running >= self.total:
                self.reached = True
                study.stop()


class ProgressPrinter:
    """One line per finished trial: state, score or why it was not trained, size, time, and
    the best so far."""

    def __init__(self, config: StudyConfig, out: Callable[[str], None]) -> None:
        self.config = config
        self.out = out
        self.started = time.monotonic()

    def __call__(self, study: Any, trial: Any) -> None:
        from cnnlab.study.study_run import _best_trial

        state = trial.state.name
        kind = T.outcome(trial)
        seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
        size = trial.user_attrs.get(N_PARAMS_ATTR)
        size_text = f"{size:>10,} params" if size is not None else " " * 17
        if kind == "infeasible":
            state = "INFEASIBLE"
            detail = "not trained: " + trial.user_attrs.get(REASON_ATTR, "infeasible")
        elif state == "COMPLETE":
            detail = f"{self.config.metric} {trial.values[0]:.4f}"
        elif state == "PRUNED":
            step = max(trial.intermediate_values, default=None)
            if step is None and trial.user_attrs.get(CURVE_ATTR):
                step = len(trial.user_attrs[CURVE_ATTR]) - 1
            detail = (f"pruned after epoch {step}" if step is not None else "pruned")
        else:
            detail = trial.user_attrs.get(FAIL_REASON_ATTR, "failed")
        if kind == "duplicate":
            earlier = trial.user_attrs.get(DUPLICATE_OF_ATTR)
            detail = (f"drawn again: #{earlier} is training it" if state == "FAIL" else
                      f"{detail} (reused #{earlier}, not retrained)")
        best = _best_trial(study)
        best_text = f"best: #{best.number} {best.values[0]:.4f}" if best is not None else ""
        self.out(f"trial {trial.number:>3}  {state:<10}  {detail:<28} {size_text}  "
                 f"{seconds:6.1f} s   {best_text}")


class _QuietKnownFailures(logging.Filter):
    """Optuna logs two warnings, one with a traceback, for every caught known failure; the
    progress line already says why the trial failed, so those records are dropped (other
    failures are kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.trials: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        match = re.match(r"Trial (\d+) failed with ", message)
        error = record.exc_info[1] if record.exc_info else None
        known = isinstance(error, KNOWN_FAILURES) or any(
            f"because of the following error: {cls.__name__}(" in message
            for cls in KNOWN_FAILURES)
        if known:
            if match:
                self.trials.add(match.group(1))
            return False
        return not (match and match.group(1) in self.trials
                    and message.endswith("failed with value None."))
