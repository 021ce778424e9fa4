"""Run a study: create or resume it in Optuna's storage, train trials up to its total, track it.

The trial budget is the study's total, as KerasTuner's ``max_trials`` is: running the same
command again after an interruption continues until the total is reached, a finished study says
so and stops, and ``n_trials`` given here sets a new total.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab import tracking
from cnnlab.config import StudyConfig
from cnnlab.data import MnistSplits, load_mnist
from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.objective import FAIL_REASON, WORKER_ATTR, DivergedError, Objective
from cnnlab.stores import redact, resolve_storage

CONFIG_ATTR = "cnnlab_config"


HEARTBEAT_INTERVAL = 10
"""Seconds between a running trial's heartbeats in the Optuna storage."""
GRACE_PERIOD = 60
"""A running trial without a heartbeat for this long belongs to a dead worker: it is failed."""


KNOWN_FAILURES = (ArchitectureError, DivergedError)
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
    """Trials that count towards the total: complete, pruned, and failed for a reason of their
    own (an invalid or diverging architecture). A trial that failed because its worker was
    killed or interrupted does not count: its architecture was never judged."""
    return sum(_counts(t) for t in study.get_trials(deepcopy=False))


def _counts(trial: Any) -> bool:
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and FAIL_REASON in trial.user_attrs)


def fail_dead_trials(study: Any) -> list[int]:
    """Fail the RUNNING trials of workers that are gone, now: those of a process on this host
    that no longer exists, and (through Optuna's heartbeats) any whose heartbeat stopped more
    than the grace period ago. Returns the trial numbers failed."""
    import optuna
    from optuna.trial import TrialState

    failed = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR, {})
        if worker.get("host") == host and not _alive(worker.get("pid", -1)):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
                failed.append(trial.number)
            except (ValueError, RuntimeError):
                pass  # Another worker got there first.
    with warnings.catch_warnings():  # Experimental in Optuna since 2.9, and what it is for.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # Other hosts' workers, by heartbeat.
    return failed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A pid can be reused: only a cnnlab process counts as the worker.
    try:
        return b"cnnlab" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


@dataclass
class StudyOutcome:
    study: Any
    total: int | None
    ran: int
    parent_run_id: str | None


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
    out: Callable[[str], None] = print,
) -> StudyOutcome:
    """Create or resume the study and run it up to its total number of trials.

    Everything that can be checked is checked (configuration, data, that the stores can be
    reached) before anything is written. ``share`` caps the trials this process runs (one of
    several workers). ``data`` gives the training and validation splits directly (from the
    Python API) instead of reading MNIST through ``data_dir``.
    """
    import optuna

    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1, not {n_trials}.")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout}.")
    total = n_trials if n_trials is not None else config.n_trials
    timeout = timeout if timeout is not None else config.timeout
    if data is None:
        data = load_mnist(data_dir, train_size=config.train_size, val_size=config.val_size)

    url = resolve_storage(storage)
    tracking.check_reachable(tracking_uri)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Every trial builds new models; TensorFlow's warning that its functions are retraced
    # is expected here and says nothing useful.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    study = optuna.create_study(
        storage=open_storage(url), study_name=config.name, direction=config.direction,
        sampler=config.make_sampler(), pruner=config.make_pruner(), load_if_exists=True)
    _check_same_study(study, config)
    if study.metric_names != [config.metric]:
        with warnings.catch_warnings():  # Experimental in Optuna, and what dashboards read.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([config.metric])

    fail_dead_trials(study)
    done = counted(study)
    out(f"study '{config.name}' in {redact(url)}: {done} trial(s) so far"
        + (f", total {total}" if total is not None else "")
        + (f", time budget {timeout:g} s" if timeout is not None else ""))
    if total is not None and done >= total:
        out(f"study '{config.name}' is finished: {done} of {total} trials; nothing to do "
            "(give a larger --n-trials to run more).")
        _print_best(study, config, out)
        return StudyOutcome(study, total, 0, study.user_attrs.get("mlflow_parent_run_id"))

    from cnnlab.study_tracking import StudyTracker

    tracker = StudyTracker(study, config, data, tracking_uri)
    tracker.close_orphan_runs(study)
    objective = Objective(config, data, hooks=tracker)
    callbacks: list[Any] = [tracker, ProgressPrinter(config, out)]
    if total is not None and share is None:
        # A worker of --workers N has its exact share of the trials; the shared check is for
        # the same command started by hand several times.
        callbacks.append(_Budget(total))
    n_trials = None if total is None else total - done
    if share is not None:
        n_trials = share if n_trials is None else min(n_trials, share)
    before = len(study.trials)
    tracker.start()
    status = "FAILED"
    quiet = _QuietKnownFailures()
    # Optuna logs from child loggers through handlers on its root logger: filter those.
    handlers = logging.getLogger("optuna").handlers
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks,
                       catch=KNOWN_FAILURES, gc_after_trial=True)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
        tracker.finish(status)
    ran = len(study.trials) - before
    out(f"ran {ran} trial(s); study '{config.name}' has {counted(study)}"
        + (f" of {total}" if total is not None else "") + " trials")
    _print_best(study, config, out)
    out(f"MLflow: experiment '{config.name}', study run {tracker.parent_run_id} "
        f"({redact(tracker.uri)}); browse with: cnnlab ui")
    return StudyOutcome(study, total, ran, tracker.parent_run_id)


def _check_same_study(study: Any, config: StudyConfig) -> None:
    """A study name stands for one configuration: resuming with another is refused."""
    identity = config.identity()
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, identity)
        study.set_user_attr("description", config.description)
        return
    if stored != identity:
        keys = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise ConfigError(
            f"study '{config.name}' already exists with a different configuration "
            f"(differs in: {', '.join(keys)}); give the study a new name, or restore the file.")


def _print_best(study: Any, config: StudyConfig, out: Callable[[str], None]) -> None:
    from cnnlab.study_tracking import _best_trial

    best = _best_trial(study)
    if best is None:
        out("no trial has completed yet.")
        return
    out(f"best: trial {best.number}, {config.metric} {best.value:.4f}, "
        f"{best.user_attrs.get('n_params', 0):,} parameters, "
        f"{best.user_attrs.get('architecture', '')}")


class _Budget:
    """Stop this worker once the study's counted trials, with those running elsewhere, reach
    the total (several workers may share one study)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if counted(study) + running >= self.total:
            study.stop()


class ProgressPrinter:
    """One line per finished trial: state, score, size, time, and the best so far."""

    def __init__(self, config: StudyConfig, out: Callable[[str], None]) -> None:
        self.config = config
        self.out = out
        self.started = time.monotonic()

    def __call__(self, study: Any, trial: Any) -> None:
        from cnnlab.study_tracking import _best_trial

        state = trial.state.name
        seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
        size = trial.user_attrs.get("n_params")
        size_text = f"{size:>10,} params" if size is not None else " " * 17
        if state == "COMPLETE":
            detail = f"{self.config.metric} {trial.value:.4f}"
        elif state == "PRUNED":
            step = max(trial.intermediate_values, default=None)
            detail = (f"pruned after epoch {step}" if step is not None else "pruned")
        else:
            detail = trial.user_attrs.get(FAIL_REASON, "failed")
        best = _best_trial(study)
        best_text = f"best: #{best.number} {best.value:.4f}" if best is not None else ""
        self.out(f"trial {trial.number:>3}  {state:<8}  {detail:<28} {size_text}  "
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
