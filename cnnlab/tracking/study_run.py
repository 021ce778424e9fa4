"""MLflow for a study: one parent run per study, one nested child run per trial.

Three parts, each with one job:

- ``StudyTracker`` is a context manager around the study's optimization: it keeps the study's
  run (found or created, active while the study runs, ended when the block exits, KILLED after
  an interrupt), makes MLflow agree with Optuna on trials that ended elsewhere
  (``close_orphan_runs``), and is the objective's ``TrialHooks``: ``trial(trial, spec)`` gives
  the trial's run. A new local store is created when the first trial's first epoch ends;
- ``TrialRun`` is one trial's run, a context manager: it opens when the trial's spec is known
  (with the inputs), hands training its Keras callbacks (per-epoch curves), and on exit records
  how the trial ended (its state, why it failed or was pruned, the curves' plots, the model) and
  ends the run, all before the objective returns, so before Optuna is told;
- ``StudySummary`` is an Optuna callback (``StudyTracker.after_trial``): after Optuna recorded a
  trial, the study's summary on the study run (counts, best trial, the front's tags); the
  study's plots when the study's process ends.

The objective never calls MLflow itself.

Links: the Optuna trial has the user attribute ``mlflow_run_id``; the MLflow run has the tags
``cnnlab.study``, ``cnnlab.study_uid`` and ``cnnlab.trial_number``; the study has
``mlflow_parent_run_id``. The study run is found by the study's random id (``cnnlab.study_uid``),
never by its name alone: a study of the same name in another Optuna storage that logs to the
same tracking store gets a study run of its own.

No user text (a study's name or description) goes into an MLflow filter string: MLflow's
search parser takes a quoted value as it stands, with no escape for a quote or a backslash in
it, so a name that ends in a backslash or holds both kinds of quote cannot be written as one.
Runs are searched by the kind tag cnnlab sets (``cnnlab.kind``) and matched on their study's
name and id in Python.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from cnnlab.names import (
    ARCHITECTURE_ATTR,
    BEST_RUN_ID_TAG,
    BEST_TRIAL_TAG,
    COMMAND_TAG,
    CONFIRM_RANK_TAG,
    CONFIRM_TIED_TAG,
    CONFIRMED_BEST_TAG,
    CONFIRMED_TIED_TAG,
    COPIED_FROM_ATTR,
    DESIGN_KNOB_ATTR,
    DESIGN_VALUE_ATTR,
    DUPLICATE_OF_ATTR,
    DUPLICATE_OF_TAG,
    FAIL_REASON_ATTR,
    FIDELITY_ATTR,
    FIDELITY_TAG,
    FRONT_ATTR,
    FRONT_TAG,
    KIND_STUDY,
    KIND_TAG,
    KIND_TRIAL,
    N_PARAMS_ATTR,
    NOTE_TAG,
    OPTUNA_STUDY_TAG,
    OUTCOME_TAG,
    PARENT_RUN_ATTR,
    PARENT_RUN_TAG,
    PRUNED_AT_EPOCH_TAG,
    PRUNED_BY_ATTR,
    REASON_ATTR,
    REASON_TAG,
    RUN_ID_ATTR,
    STATE_TAG,
    STUDY_TAG,
    STUDY_UID_TAG,
    TRIAL_NUMBER_TAG,
    UID_ATTR,
    WARM_START_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig
from cnnlab.spec.ranking import Ranking, Summary
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking import preflight
from cnnlab.tracking import runs as tracking
from cnnlab.tracking.stores import resolve_tracking_uri, sqlite_path
from cnnlab.tracking.training_run import TrainingRun
from cnnlab.train import faults
from cnnlab.train.data import MnistSplits


class TrialLost(RuntimeError):
    """This process's trial was ended by another process while this one was silent (stopped,
    or cut off from the storage, past the heartbeat's grace period, on another host): Optuna
    cannot be told its result any more. The study loop ends it with one line and goes on."""


LOST = ("failed by another process: no heartbeat from this one for over the grace period "
        "(stopped, suspended or cut off from the storage); its result is dropped")
"""The reason on the run of a trial that another process failed (``TrialLost``)."""

RAISED = "the trial raised an error"
"""The reason on a trial's run that ended in an error of no known reason."""


class StudyTracker:
    """Records a study in MLflow; see the module's docstring."""

    def __init__(self, study: Any, config: StudyConfig, data: MnistSplits,
                 tracking_uri: str | None = None) -> None:
        self.study = study
        self.config = config
        self.data = data
        self.uri = resolve_tracking_uri(tracking_uri)
        self.notes: list[str] = []
        """What the tracker found and worked around (a deleted study run, say), to be said."""
        self.uid = study.user_attrs.get(UID_ATTR, "")
        self.opened = False
        """Whether the study's records are open in MLflow (``open``)."""
        self.summary: StudySummary | None = None
        """The study's summary on its run, once the records are found."""
        self._trial_run: TrialRun | None = None
        """The last trial's run, while it is open."""

    def open(self) -> None:
        """Open the study's records in MLflow, once: the store (created if new), the study's
        experiment and run (found, or created on the first run of the study), made the active
        run; MLflow made to agree with Optuna on trials that ended elsewhere."""
        if self.opened:
            return
        self._find_records()
        self.opened = True
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=self.parent_run_id)
        # Every worker tags the shared study run as it starts: the writes may race.
        tracking.once_more_on_a_race(mlflow.set_tag, COMMAND_TAG, tracking.command_line())

    # -- the parent run --------------------------------------------------------------------

    def _parent_run(self) -> str:
        """The study's run: the same one on every resume, created on the first."""
        run_id = self.study.user_attrs.get(PARENT_RUN_ATTR)
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
                if run.info.lifecycle_stage != "active":
                    self.notes.append(
                        f"the study's MLflow run {run_id} was deleted (in the MLflow UI?); its "
                        "trial runs stay under it, and a new study run takes the new ones.")
                elif run.data.tags.get(STUDY_UID_TAG, self.uid) == self.uid:
                    if STUDY_UID_TAG not in run.data.tags:  # Recorded before study ids.
                        self.client.set_tag(run_id, STUDY_UID_TAG, self.uid)
                    return run_id
            except mlflow.exceptions.MlflowException as err:
                # Removed for good (mlflow gc), or the study was tracked in another store:
                # a study run of its own here.
                if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                    self.notes.append(
                        f"the study's MLflow run {run_id} is not in this tracking store "
                        "(removed for good with mlflow gc, or the study was tracked in another "
                        "store); a new study run takes the trials from here.")
        found = self._parent_runs()
        if found:
            run_id = found[0].info.run_id
        else:
            others = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{KIND_STUDY}'",
                max_results=1)
            if others and run_id is None:
                self.notes.append(
                    f"MLflow experiment '{self.config.name}' holds the runs of an earlier study "
                    "of this name (deleted from Optuna, or in another storage); this study gets "
                    "a study run of its own.")
            run = self.client.create_run(self.experiment_id, run_name=self.config.name, tags={
                KIND_TAG: KIND_STUDY, STUDY_TAG: self.config.name,
                STUDY_UID_TAG: self.uid,
                NOTE_TAG: self.config.description,
                OPTUNA_STUDY_TAG: self.study.study_name})
            run_id = run.info.run_id
            # Workers started together may each have made one: all keep the earliest.
            earliest = self._parent_runs()[0].info.run_id
            if earliest != run_id:
                self.client.delete_run(run_id)
                run_id = earliest
            else:
                self._log_study_config(run_id)
        self.study.set_user_attr(PARENT_RUN_ATTR, run_id)
        return run_id

    def _parent_runs(self) -> list[Any]:
        """The runs of this study (by its id) in its experiment, earliest first."""
        return [run for run in _runs_of_kind(self.client, self.experiment_id, KIND_STUDY)
                if run.data.tags.get(STUDY_UID_TAG) == self.uid]

    def _log_study_config(self, run_id: str) -> None:
        c = self.config
        params = {
            "study_name": c.name, "seed": c.seed, "metric": c.metric, "direction": c.direction,
            "sampler": c.sampler.name, "pruner": c.pruner.name, "max_params": c.max_params,
            "max_macs": c.max_macs,
            "epochs": c.training.epochs, "batch_size": c.training.batch_size,
            "optimizer": c.training.optimizer, "train_size": len(self.data.train),
            "val_size": len(self.data.validation), **tracking.data_params(self.data),
        }
        started = self.study.user_attrs.get(WARM_START_ATTR)
        if started:
            params["warm_start"] = ",".join(started["studies"])
            params["warm_start_copied"] = sum(started["copied"].values())
            params["warm_start_left_out"] = sum(sum(v.values())
                                                for v in started["left_out"].values())
        params.update({f"sampler_{k}": v for k, v in c.sampler.options.items()})
        params.update({f"pruner_{k}": v for k, v in c.pruner.options.items()})
        for key, value in params.items():
            self.client.log_param(run_id, key, value)
        name = c.path.name if c.path is not None else "study.toml"
        self.client.log_text(run_id, c.text, f"config/{name}")
        if started:
            copies = [{"trial": t.number, **t.user_attrs[COPIED_FROM_ATTR],
                       "run_id": t.user_attrs.get(RUN_ID_ATTR)}
                      for t in self.study.get_trials(deepcopy=False)
                      if COPIED_FROM_ATTR in t.user_attrs]
            self.client.log_dict(run_id, {**started, "copies": copies}, "warm_start.json")

    def close_orphan_runs(self, study: Any, runs: dict[str, Any] | None = None) -> list[int]:
        """Make MLflow agree with Optuna on every trial that is not running (Optuna decides
        what counts): a run left RUNNING by a worker that died is ended, and a run that was
        closed just before its worker died, so that Optuna failed the trial, is marked as
        failed too (``runs``: the study's live trial runs by id, if read already; a trial whose
        run is gone is left run-less). Returns the trial numbers whose runs were changed."""
        from optuna.trial import TrialState

        if runs is None:
            runs = {r.info.run_id: r for r in self._trial_runs()}
        changed = []
        for trial in study.get_trials(deepcopy=False):
            run = runs.get(trial.user_attrs.get(RUN_ID_ATTR))
            if run is None or trial.state == TrialState.RUNNING or \
                    run.info.run_id == self._open_run_id():
                continue
            state = T.state(trial)  # INFEASIBLE for a draw never built, as on its run.
            killed = state == "FAIL" and FAIL_REASON_ATTR not in trial.user_attrs
            status = ("KILLED" if killed else "FAILED") if state == "FAIL" else "FINISHED"
            if run.info.status == status and run.data.tags.get(STATE_TAG) == state:
                continue
            race = tracking.once_more_on_a_race  # Workers starting together reconcile alike.
            race(self.client.set_tag, run.info.run_id, STATE_TAG, state)
            if killed:
                race(self.client.set_tag, run.info.run_id, REASON_TAG,
                     "its worker was killed or interrupted before the trial was recorded in "
                     "Optuna, or silent for longer than the heartbeat's grace period")
            elif state == "FAIL" and REASON_TAG not in run.data.tags:
                race(self.client.set_tag, run.info.run_id, REASON_TAG,
                     trial.user_attrs[FAIL_REASON_ATTR])
            self.client.set_terminated(run.info.run_id, status)
            changed.append(trial.number)
        return changed

    def _trial_runs(self) -> list[Any]:
        """The study's trial runs, every page of them: those tagged with the study's id, and
        those recorded before studies had ids (a same-named study elsewhere has another id)."""
        return [run for run in _runs_of_kind(self.client, self.experiment_id, KIND_TRIAL)
                if run.data.tags.get(STUDY_TAG) == self.config.name
                and run.data.tags.get(STUDY_UID_TAG, self.uid) == self.uid]

    def _find_records(self) -> None:
        """The store, the experiment and the study's run; MLflow made to agree with Optuna."""
        if self.summary is not None:
            return
        tracking.use_tracking_store(self.uri)
        self.client = MlflowClient(self.uri)
        self.experiment_id = tracking.get_or_create_experiment(self.config.name, self.uri)
        self.parent_run_id = self._parent_run()
        self.summary = StudySummary(self.client, self.parent_run_id, self.config,
                                    self.experiment_id)
        runs = {r.info.run_id: r for r in self._trial_runs()}
        self.close_orphan_runs(self.study, runs)
        self._say_gone(runs)

    def _say_gone(self, runs: dict[str, Any]) -> None:
        """A note on the trials whose runs are gone (deleted, or removed for good): they stay
        in the study, run-less."""
        ids = {t.number: t.user_attrs[RUN_ID_ATTR] for t in self.study.get_trials(deepcopy=False)
               if t.user_attrs.get(RUN_ID_ATTR)}
        _, gone = tracking.find_runs(self.client, ids.values(), runs)
        if gone:
            by_trial = {number: gone[run_id] for number, run_id in ids.items() if run_id in gone}
            self.notes.append(f"{tracking.gone_in_words(by_trial)}; the trials stay in the "
                              "study, without runs (nothing is written to them).")

    def __enter__(self) -> StudyTracker:
        """Open the study's records (``open``), unless the store is a new local one: creating
        it takes seconds, which would delay the first trial's first epoch, so it is created
        when that epoch ends (``TrialRun``) and the epoch's metrics keep its end as their time.
        Trials' runs nest under the study's run. Room to end the study's run on a disk that
        fills up is kept aside (``preflight.reserve``) until the block exits."""
        self._reserve = preflight.reserve(self.uri)
        db = sqlite_path(self.uri)
        if db is None or db.exists():
            try:
                self.open()
            except BaseException as error:  # The study's run may be open: end it, as on exit.
                with contextlib.suppress(Exception):
                    self.__exit__(type(error), error, error.__traceback__)
                raise
        return self

    def after_trial(self, study: Any, trial: Any) -> None:
        """The Optuna callback: the study's summary on its run, after Optuna recorded a trial."""
        self.open()
        self.summary(study, trial)

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        """End any trial run still open as KILLED (an interrupt) or FAILED (an error), make
        MLflow agree with what Optuna recorded (an interrupt may come between a run's end and
        Optuna's tell), draw the study's plots, then end the study's run.

        A tracking server that does not answer gets no more writes: the error becomes its one
        sentence (``TrackingServerGone``) and the runs are left for the next run of the command
        to close. After an interrupt the writes get one short try each
        (``tracking.impatient``), and a second interrupt stops them, so that Ctrl-C ends the
        command within seconds whether the server answers or not."""
        gone = tracking.server_gone_error(error, self.uri) if error is not None else None
        if gone is not None:
            tracking.forget_active_runs()
            if gone is error:
                return
            raise gone from None
        interrupted = isinstance(error, KeyboardInterrupt)
        try:
            with tracking.impatient() if interrupted else contextlib.nullcontext():
                self._close(error)
        except KeyboardInterrupt:
            tracking.forget_active_runs()
            raise
        except Exception as err:
            late = tracking.server_gone_error(err, self.uri)
            if late is None:
                raise
            tracking.forget_active_runs()
            if not interrupted:
                raise late from None
            # An interrupt: its one line says how the command ended.

    def _close(self, error: BaseException | None) -> None:
        status = ("FINISHED" if error is None else
                  "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        try:
            self.open()  # The study's run exists once the command ran, however it ended.
            if self._open_run_id() is not None:
                self._trial_run.abandon(status)
            self._trial_run = None
            mlflow.flush_async_logging()
            if status != "FINISHED":
                self.close_orphan_runs(self.study)
            self.summary.flush(self.study)
        except Exception:
            # A store that fails the records (a full disk takes the plots first): the study's
            # run still ends, FAILED, where its one row can be written.
            status = "FAILED"
            raise
        finally:
            preflight.release(getattr(self, "_reserve", None))  # Room for the run's last row.
            for _ in range(3):  # A trial's run left active by a failed write, then the study's.
                if mlflow.active_run() is None:
                    break
                with contextlib.suppress(Exception):
                    mlflow.end_run(status)

    def settle(self) -> bool:
        """For a finished study whose last process died after Optuna recorded the last trial:
        make its runs agree with Optuna, and, when no trial is running anywhere, refresh the
        study run's summary and plots and end it. Returns whether the study run was ended
        (else nothing but the runs that disagreed was written)."""
        from optuna.trial import TrialState

        self._find_records()
        if self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return False  # Other workers are still at it; the last of them ends the study run.
        if self.client.get_run(self.parent_run_id).info.status == "RUNNING":
            self.summary.refresh(self.study)
            self.summary.plots(self.study)
            self.client.set_terminated(self.parent_run_id, "FINISHED")
            return True
        return False

    def trial_lost(self, trial: Any) -> None:
        """Make the run of ``trial``, which another process failed while this one was silent
        (``TrialLost``), say so: FAIL, KILLED as a killed worker's, with the reason. Its run
        may have been closed as finished just before Optuna was to be told."""
        run = self._trial_run
        run_id = (run.run_id if run is not None and run.trial.number == trial.number
                  else trial.user_attrs.get(RUN_ID_ATTR))
        if run is not None and not run.closed:
            run.abandon("KILLED")
        self._trial_run = None
        if run_id is None:
            return  # It ended before its run was opened.
        self.client.set_tag(run_id, STATE_TAG, "FAIL")
        self.client.set_tag(run_id, REASON_TAG, LOST)
        self.client.set_terminated(run_id, "KILLED")

    def _open_run_id(self) -> str | None:
        """The id of the trial run still open in this process, if any."""
        run = self._trial_run
        return run.run_id if run is not None and not run.closed else None

    # -- TrialHooks ----------------------------------------------------------------------

    def trial(self, trial: Any, spec: TrialSpec) -> TrialRun:
        """The trial's run, to be entered (``with``) once its spec is known."""
        self._trial_run = TrialRun(self, trial, spec)
        return self._trial_run


class TrialRun(TrainingRun):
    """One trial's MLflow run, nested under the study's run: a ``TrainingRun`` whose opening
    and end say what the trial is and how it ended.

    Opening it starts the run (tagged with the study and the trial's number; the trial gets
    the user attribute ``mlflow_run_id``) and logs the inputs. ``keras_callbacks()`` gives
    training the per-epoch logging, a recorder of the history and the model, and the progress
    line. The objective says how the trial ended (``ended``) before the block exits; on exit
    the run records it (state, outcome and reason tags, the objective, the curves' plots, the
    model) and ends FINISHED, or FAILED for a failed trial, so that Optuna, told only after
    the objective returns, never counts a trial whose run is open or whose model is missing.
    An unexpected error ends the run FAILED with its reason. An interrupt leaves it open: the
    study tracker's exit ends it as KILLED (or FAILED).

    On a new local store (the study's records not open yet) the run is opened when the trial's
    first epoch ends, or on exit if the trial ends before that (``open_later``), so that
    creating the store does not delay the first epoch; an interrupt before then leaves no run,
    as one before the trial's spec is known does.
    """

    def __init__(self, tracker: StudyTracker, trial: Any, spec: TrialSpec) -> None:
        super().__init__(spec, tracker.data, client=None, experiment_id="",
                         run_name=f"trial-{trial.number}", tags={},
                         label=f"trial {trial.number}", open_later=not tracker.opened,
                         interrupt_leaves_open=True)
        self.trial = trial
        self.config = tracker.config
        self._tracker = tracker
        self._state: str | None = None
        self._value: float | None = None

    def __enter__(self) -> TrialRun:
        if not self.open_later:
            with self._failed_if_server_gone():
                self.open()
        return self

    @contextlib.contextmanager
    def _failed_if_server_gone(self) -> Iterator[None]:
        """A tracking server that did not answer fails the trial, with the reason, as one
        sentence (``TrackingServerGone``), which Optuna records as the trial's failure."""
        try:
            yield
        except Exception as err:
            gone = tracking.server_gone_error(err, self._tracker.uri, self.trial.number)
            if gone is None:
                raise
            self.trial.set_user_attr(FAIL_REASON_ATTR, "the MLflow tracking server did not "
                                     f"answer ({tracking.server_cause(err)})")
            raise gone from None

    def open(self) -> str:
        """Start the trial's run under the study's (opening the study's records first if they
        are not open yet) and log its inputs."""
        if self.run_id is not None:
            return self.run_id
        tracker, trial = self._tracker, self.trial
        tracker.open()
        self.client, self.experiment_id = tracker.client, tracker.experiment_id
        # The run starts when its trial did, also when it is opened after the first epoch.
        started = getattr(trial, "datetime_start", None)
        self.start_time = int(started.timestamp() * 1000) if started is not None else None
        self.tags = {PARENT_RUN_TAG: tracker.parent_run_id, KIND_TAG: KIND_TRIAL,
                     STUDY_TAG: self.config.name, STUDY_UID_TAG: tracker.uid,
                     TRIAL_NUMBER_TAG: str(trial.number),
                     OPTUNA_STUDY_TAG: tracker.study.study_name}
        extra: dict[str, Any] = {"trial_number": trial.number}
        attrs = trial.user_attrs
        if DESIGN_KNOB_ATTR in attrs:  # A design's trial: its setting, by knob, and its seed.
            extra.update({DESIGN_KNOB_ATTR: attrs[DESIGN_KNOB_ATTR],
                          DESIGN_VALUE_ATTR: attrs[DESIGN_VALUE_ATTR], **trial.params})
        self.params = extra
        run_id = super().open()
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        return run_id

    def ended(self, state: str, value: float | None = None) -> None:
        """How the trial ended (COMPLETE, PRUNED or FAIL, and its score), recorded on exit."""
        self._state, self._value = state, value

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        self.clear_progress()
        if error is not None and not isinstance(error, Exception):
            return  # An interrupt leaves the run open, for the study tracker's exit to end.
        with self._failed_if_server_gone():
            if error is not None and tracking.server_gone(error):
                raise error  # Nothing more is written to it; the run is left open.
            self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        if isinstance(error, TrialLost):  # Failed by another process: as a killed worker's.
            self.fail(str(error), "KILLED")
        elif error is None and self._state is not None:
            self._record_end(self._state, self._value)
        else:  # An error of no known reason.
            self.open()
            self.fail(self.trial.user_attrs.get(FAIL_REASON_ATTR, RAISED), "FAILED")

    def _record_end(self, state: str, value: float | None) -> None:
        """The end tags, the objective, the curves' plots and the model; then the end."""
        attrs, config = self.trial.user_attrs, self.config
        kind = T.outcome(self.trial)
        # An infeasible draw (Optuna's PRUNED) is tagged INFEASIBLE, as cnnlab shows it.
        tags = {STATE_TAG: T.INFEASIBLE if kind == "infeasible" else state, OUTCOME_TAG: kind}
        history = self.take_history()
        if kind in ("infeasible", "duplicate"):
            tags[REASON_TAG] = attrs.get(REASON_ATTR, kind)
            if kind == "duplicate":
                tags[DUPLICATE_OF_TAG] = str(attrs.get(DUPLICATE_OF_ATTR))
        elif state == "PRUNED":
            curve = history.get(config.metric, [])
            last = len(curve) if curve else None  # Epochs count from 1: the epochs it ran.
            tags[PRUNED_AT_EPOCH_TAG] = str(last)
            score = f"{config.metric} {curve[-1] if curve else float('nan'):.4f}"
            if config.fidelity is not None:  # Stopped at a rung: it says which, and why.
                tags[REASON_TAG] = f"{attrs.get(PRUNED_BY_ATTR, 'stopped at a rung')}; {score}"
            else:
                tags[REASON_TAG] = f"pruned by {config.pruner.name} after epoch {last} ({score})"
                if PRUNED_BY_ATTR in attrs:  # The dominance pruner says by which trial.
                    tags[REASON_TAG] += ": " + attrs[PRUNED_BY_ATTR]
        elif state == "FAIL":
            tags[REASON_TAG] = attrs.get(FAIL_REASON_ATTR, RAISED)
        if FIDELITY_ATTR in attrs and kind == "trained":
            tags[FIDELITY_TAG] = T.fidelity_words(attrs[FIDELITY_ATTR])
        self.finish(tags=tags, objective=value, model=state in ("COMPLETE", "PRUNED"),
                    status="FAILED" if state == "FAIL" else "FINISHED")

    def abandon(self, status: str) -> None:
        """End the run left open by an interrupt (``status`` KILLED) or an error (FAILED); a
        run that was never opened (an interrupt in the first trial on a new store, before its
        first epoch ended) stays absent, as for an interrupt before the trial's spec is known."""
        killed = status == "KILLED"
        self.fail("interrupted" if killed else RAISED, "KILLED" if killed else "FAILED")


class StudySummary:
    """The study's summary on its run, as an Optuna callback: after Optuna recorded a trial,
    the counts of trials by state and outcome, the best trial, the front's tags and table. The
    study's plots are drawn when the study's process ends (``flush``): drawing them takes about
    a second, more than a short trial trains."""

    def __init__(self, client: Any, parent_run_id: str, config: StudyConfig,
                 experiment_id: str | None = None) -> None:
        self.client = client
        self.parent_run_id = parent_run_id
        self.config = config
        self.experiment_id = experiment_id  # The study's: where its trials' runs are.
        self._plots_due = False  # Whether trials ended since the study's plots were drawn.
        self._best_written: tuple[int, float] | None = None  # The best trial this process wrote.

    def __call__(self, study: Any, trial: Any) -> None:
        faults.reach("refresh", trial.number)
        self._plots_due = True
        self.refresh(study)

    def flush(self, study: Any) -> None:
        """Draw the study's plots if trials ended since they were last drawn."""
        if self._plots_due:
            self.plots(study)

    def refresh(self, study: Any) -> None:
        """The study's summary on its run: counts, best trial, the front."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        trained = [t for t in trials if T.outcome(t) == "trained"]
        counts = {state: sum(t.state == state for t in trained) for state in
                  (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        metrics = {"n_trials_complete": counts[TrialState.COMPLETE],
                   "n_trials_pruned": counts[TrialState.PRUNED],
                   "n_trials_failed": counts[TrialState.FAIL],
                   "n_trials_counted": sum(T.counts(t) for t in trials),
                   "n_draws_infeasible": sum(T.outcome(t) == "infeasible" for t in trials),
                   "n_draws_duplicate": sum(T.outcome(t) == "duplicate" for t in trials)}
        best = T.best_trial(study)
        if best is not None:
            metrics["best_value"] = best.values[0]
            metrics["best_n_params"] = best.user_attrs.get(N_PARAMS_ATTR, float("nan"))
        # The best trial's tags and summary, when it changed since this process wrote them
        # (most trials do not change it: a read of its run and three writes saved each).
        if best is not None and (best.number, best.values[0]) != self._best_written:
            (run_id,) = self._live_run_ids([best]) or (None,)
            summary = {
                "number": best.number, "value": best.values[0], "metric": self.config.metric,
                "params": best.params, "architecture": best.user_attrs.get(ARCHITECTURE_ATTR),
                "n_params": best.user_attrs.get(N_PARAMS_ATTR), "run_id": run_id,
            }
            # Workers refresh the one study run side by side: their writes may race.
            race = tracking.once_more_on_a_race
            race(self.client.set_tag, self.parent_run_id, BEST_TRIAL_TAG, str(best.number))
            if run_id is not None:
                race(self.client.set_tag, self.parent_run_id, BEST_RUN_ID_TAG, run_id)
            else:  # A best trial whose run is gone is run-less: no tag points to it.
                with contextlib.suppress(mlflow.exceptions.MlflowException):
                    self.client.delete_tag(self.parent_run_id, BEST_RUN_ID_TAG)
            self.client.log_dict(self.parent_run_id, summary, "best_trial.json")
            self._best_written = (best.number, best.values[0])
        metrics["front_size"] = len(self._tag_front(study))
        step = max((t.number for t in trials), default=0)
        stamp = int(time.time() * 1000)
        tracking.once_more_on_a_race(self.client.log_batch, self.parent_run_id, metrics=[
            Metric(key, float(value), stamp, step) for key, value in metrics.items()])

    def _tag_front(self, study: Any) -> list[Any]:
        """Tag the runs of the trials that joined or left the front (``cnnlab.front`` true or
        false), keep the front's numbers on the study and its table on the study run."""
        front = T.front(study, self.config.size_attr)
        now = [t.number for t in front]
        before = set(study.user_attrs.get(FRONT_ATTR, []))
        if set(now) == before:
            return front
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        changed = [by_number[n] for n in sorted(before ^ set(now)) if n in by_number]
        live = set(self._live_run_ids([*changed, *front]))
        race = tracking.once_more_on_a_race
        for trial in changed:  # Those whose runs are gone are run-less: left untagged.
            run_id = trial.user_attrs.get(RUN_ID_ATTR)
            if run_id in live:
                race(self.client.set_tag, run_id, FRONT_TAG, str(trial.number in now).lower())
        study.set_user_attr(FRONT_ATTR, now)
        race(self.client.set_tag, self.parent_run_id, FRONT_TAG,
             " ".join(f"#{n}" for n in now))
        self.client.log_dict(self.parent_run_id, [
            {"trial": t.number, self.config.metric: t.values[0],
             self.config.size_attr: t.user_attrs.get(self.config.size_attr),
             "architecture": t.user_attrs.get(ARCHITECTURE_ATTR),
             "run_id": t.user_attrs.get(RUN_ID_ATTR)
             if t.user_attrs.get(RUN_ID_ATTR) in live else None} for t in front], "front.json")
        return front

    def _live_run_ids(self, trials: list[Any]) -> list[str]:
        """The ids of the trials' runs that are in the tracking store and live
        (``tracking.find_runs``), in the trials' order; a trial whose run is gone (deleted, or
        removed for good) has none."""
        ids = [t.user_attrs.get(RUN_ID_ATTR) for t in trials]
        live, _ = tracking.find_runs(self.client, ids, experiment_id=self.experiment_id)
        return [run_id for run_id in ids if run_id in live]

    def plots(self, study: Any) -> None:
        """Draw the study's plots on its run (Optuna's, and the front); none for a designed
        experiment, whose figures are its report's (a search's history, importances and front
        over single seeds of fixed settings would say nothing)."""
        from cnnlab.tracking import study_plots

        self._plots_due = False
        if self.config.design is not None:
            return
        for path, fig in study_plots.study_figures(study, self.config.metric,
                                                   self.config.size_attr).items():
            self.client.log_figure(self.parent_run_id, fig, path)
            study_plots.close(fig)


def record_confirmation(client: Any, parent: str, study: Any, ranking: Ranking,
                        record: dict[str, Any], base: Summary | None, config: Any) -> None:
    """A confirmation (``cnnlab.results.confirm``) in MLflow: the study run gets the record
    (``confirm.json``) and tags; each confirmed trial's run its mean, standard deviation,
    interval, seed count and rank."""
    from mlflow.entities import Metric, RunTag

    from cnnlab.tracking import study_plots

    race = tracking.once_more_on_a_race
    client.log_dict(parent, record, "confirm.json")
    # Now with the confirmed means.
    fig = study_plots.front_figure(study, config.metric, config.size_attr)
    client.log_figure(parent, fig, "plots/front.png")
    study_plots.close(fig)
    race(client.set_tag, parent, CONFIRMED_BEST_TAG, str(ranking.best.key))
    race(client.set_tag, parent, CONFIRMED_TIED_TAG,
         " ".join(f"#{k}" for k in ranking.tied_with_best))
    if base is not None:
        stamp = int(time.time() * 1000)
        client.log_batch(parent, metrics=[Metric("notebook_confirm_mean", base.mean, stamp, 0),
                                          Metric("notebook_confirm_std", base.std, stamp, 0)])
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    stamp = int(time.time() * 1000)
    for summary in ranking.entries:
        trial = trials.get(int(summary.key))
        run_id = trial.user_attrs.get(RUN_ID_ATTR) if trial is not None else None
        if run_id is None:
            continue
        values = {"confirm_mean": summary.mean, "confirm_std": summary.std,
                  "confirm_n": summary.n, "confirm_ci_low": summary.ci_low,
                  "confirm_ci_high": summary.ci_high}
        try:
            client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0)
                                              for k, v in values.items()],
                             tags=[RunTag(CONFIRM_RANK_TAG,
                                          str(ranking.rank(summary.key))),
                                   RunTag(CONFIRM_TIED_TAG,
                                          str(summary.key in ranking.tied_with_best).lower())])
        except Exception:  # A copied trial's run lives in another study's experiment.
            continue


def _runs_of_kind(client: Any, experiment_id: str, kind: str) -> list[Any]:
    """Every run of ``kind`` (a value of the ``cnnlab.kind`` tag, which cnnlab sets and which
    has no characters a filter string would need to escape) in the experiment, earliest first,
    every page of them."""
    return tracking.search_all_runs(client, [experiment_id], f"tags.`{KIND_TAG}` = '{kind}'",
                                    order_by=["attributes.start_time ASC"])
