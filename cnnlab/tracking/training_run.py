"""One network trained and recorded as one MLflow run: ``TrainingRun``, through which a study's
trial, each seed of ``cnnlab confirm`` and ``cnnlab train`` all train and record; and
``cnnlab train`` itself (``run_training``)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from cnnlab.names import COMMAND_TAG, KIND_TAG, KIND_TRAIN, REASON_TAG, STATE_TAG
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking import runs as tracking
from cnnlab.train.data import MnistSplits, load_mnist
from cnnlab.train.fit import TrainResult, train


class TrainingRun:
    """One network trained and recorded as one MLflow run, a context manager.

    Entering it opens the run (``open``): created in ``experiment_id`` with ``tags``, started
    at ``start_time`` if given, made
    the active run (nested under the active one, if any), and the inputs logged
    (``tracking.log_run_inputs``, with ``params``). With ``open_later`` (a study's first trial
    on a new local store, whose creation would delay the first epoch) it is opened when the
    first epoch ends, the model's setup then logged, or when it ends, whichever comes first.

    ``keras_callbacks()`` gives training what it records while it trains: every epoch's
    metrics, the history and model kept for the end, the live status line (``label``; with
    ``epoch_lines`` a line per epoch on standard output). ``train()`` trains ``spec`` on
    ``data`` with them, for a caller that has nothing else to do in between.

    ``finish`` records the end (tags, the objective, the curves' plots, the model with
    ``model``) and ends the run; ``fail`` ends it as failed, with the reason. Exiting without
    either: an error ends it FAILED with ``reason`` (the error's own words by default); an
    interrupt too, unless ``interrupt_leaves_open`` (a study's tracker ends it KILLED).
    Raises what MLflow raises for a store that cannot be written."""

    def __init__(self, spec: TrialSpec, data: MnistSplits, *, client: Any, experiment_id: str,
                 run_name: str, tags: dict[str, str], label: str,
                 params: dict[str, Any] | None = None, start_time: int | None = None,
                 open_later: bool = False, epoch_lines: bool = False,
                 interrupt_leaves_open: bool = False) -> None:
        self.spec = spec
        self.data = data
        self.client = client
        self.experiment_id = experiment_id
        self.run_name = run_name
        self.tags = tags
        self.label = label
        self.params = params
        self.start_time = start_time
        self.open_later = open_later
        self.epoch_lines = epoch_lines
        self.interrupt_leaves_open = interrupt_leaves_open
        self.run_id: str | None = None
        self.closed = False
        self.history: dict[str, list[float]] = {}
        self.model: Any = None
        self._recorder: Any = None
        self._progress: Any = None

    # -- opening -------------------------------------------------------------------------

    def __enter__(self) -> TrainingRun:
        if not self.open_later:
            self.open()
        return self

    def open(self) -> str:
        """Create and start the run, and log its inputs, once; returns its id."""
        if self.run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=self.run_name,
                                         start_time=self.start_time, tags=self.tags)
            mlflow.start_run(run_id=run.info.run_id, nested=mlflow.active_run() is not None)
            self.run_id = run.info.run_id
            tracking.log_run_inputs(self.spec, self.data, self.params)
        return self.run_id

    # -- training ------------------------------------------------------------------------

    def keras_callbacks(self, *others: Any) -> list[Any]:
        """Keras callbacks to train with: every epoch's metrics on the run, the history and
        model kept for the end, ``others``, and last the live status line."""
        from cnnlab.train.callbacks import EpochEnd, HistoryRecorder, progress_callback

        self._recorder = HistoryRecorder()
        self._progress = progress_callback(
            self.label, self.spec.training.epochs,
            epoch_lines=sys.stdout if self.epoch_lines else None)
        logging = (tracking.epoch_metrics_callback() if self.run_id is not None else
                   EpochEnd(self._log_epoch_opening, on_train_begin=self._keep_model))
        return [logging, self._recorder, *others,
                *([self._progress] if self._progress is not None else [])]

    def _keep_model(self, model: Any) -> None:
        self.model = model

    def _log_epoch_opening(self, epoch: int, logs: dict[str, Any]) -> None:
        """The epoch's metrics, timed at the epoch's end; the run opened first if it is not,
        with the model's setup."""
        stamp = int(time.time() * 1000)
        if self.run_id is None:
            self.open()
            tracking.log_model_setup(self.model)
        tracking.log_epoch_metrics(epoch, logs, timestamp=stamp)

    def train(self, callbacks: Sequence[Any] = ()) -> TrainResult:
        """Train the spec on the data with ``keras_callbacks()`` and ``callbacks``."""
        try:
            return train(self.spec, self.data, callbacks=self.keras_callbacks(*callbacks))
        finally:  # Keras skips on_train_end when fit raises: the line is erased here then.
            self.clear_progress()

    def clear_progress(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.clear()

    def take_history(self) -> dict[str, list[float]]:
        """Each epoch's metrics as training recorded them (the recorder let go)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            self.history = recorder.history
            model = getattr(recorder, "model", None)
            self.model = model if model is not None else self.model
        return self.history

    # -- ending --------------------------------------------------------------------------

    def finish(self, *, tags: dict[str, str] | None = None, objective: float | None = None,
               model: bool = True, status: str = "FINISHED") -> None:
        """Record the end in one write (``tags``; ``objective`` when finite), the curves'
        plots, with ``model`` the trained model; then end the run as ``status``."""
        self.clear_progress()
        self.open()
        history = self.take_history()
        metrics = ({"objective": objective} if objective is not None and
                   math.isfinite(objective) else None)
        if tags or metrics:
            tracking.log_batch(tags=tags, metrics=metrics)
        if history:
            from cnnlab.train import faults

            faults.reach("plots")
            tracking.log_curve_plots(history)
        if model and self.model is not None:
            from cnnlab.train import faults

            faults.reach("model_logging")
            tracking.log_model(self.model, self.data.validation.x)
        self.model = None
        self._end(status)

    def fail(self, reason: str, status: str = "FAILED") -> None:
        """End the run as failed (``status`` FAILED, or KILLED), with ``reason``; a run never
        opened stays absent."""
        self.clear_progress()
        self._recorder = self.model = None
        if self.run_id is None or self.closed:
            self.closed = True
            return
        mlflow.set_tags({STATE_TAG: "FAIL", REASON_TAG: reason})
        self._end(status)

    def _end(self, status: str) -> None:
        mlflow.end_run(status)
        self.closed = True

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        self.clear_progress()
        if self.closed or error is None:
            return
        if not isinstance(error, Exception) and self.interrupt_leaves_open:
            return
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")
            if mlflow.active_run() is not None and mlflow.active_run().info.run_id == self.run_id:
                mlflow.end_run("FAILED")
        self.closed = True


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    experiment_id: str
    result: TrainResult


def run_training(
    spec: TrialSpec,
    *,
    data_dir: str | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    epoch_lines: bool = False,
) -> RunOutcome:
    """Train ``spec`` on MNIST's training split and record the run in MLflow (``cnnlab train``):
    a ``TrainingRun``; with ``epoch_lines``, a line per finished epoch on standard output.

    Bad input (architecture, data, sizes) raises before the store is touched.
    """
    spec.architecture.layer_table()
    data = load_mnist(data_dir, train_size=train_size, val_size=val_size)
    uri = tracking.use_tracking_store(tracking_uri)
    experiment_id = tracking.get_or_create_experiment(experiment, uri)
    # MLflow's own start tags too (user, source), as mlflow.start_run gives a run.
    tags = tracking.new_run_tags({KIND_TAG: KIND_TRAIN, COMMAND_TAG: tracking.command_line()})
    with TrainingRun(spec, data, client=MlflowClient(uri), experiment_id=experiment_id,
                     run_name=run_name or spec.architecture.describe(), tags=tags,
                     label=run_name or "train", epoch_lines=epoch_lines) as run:
        result = run.train()
        run.finish()
    mlflow.flush_async_logging()
    assert run.run_id is not None
    return RunOutcome(run.run_id, experiment_id, result)
