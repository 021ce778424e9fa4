"""Train one network and record it in MLflow: ``train_and_record``, and ``cnnlab train``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.names import COMMAND_TAG, KIND_TAG, KIND_TRAIN
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking import runs as tracking
from cnnlab.train.data import MnistSplits, load_mnist
from cnnlab.train.fit import TrainResult, train


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
    """Train ``spec`` on MNIST's training split and record the run in MLflow (``cnnlab train``);
    with ``epoch_lines``, a line per finished epoch on standard output (``train_and_record``).

    Bad input (architecture, data, sizes) raises before the store is touched.
    """
    spec.architecture.layer_table()
    data = load_mnist(data_dir, train_size=train_size, val_size=val_size)
    uri = tracking.use_tracking_store(tracking_uri)
    tags = {KIND_TAG: KIND_TRAIN, COMMAND_TAG: tracking.command_line()}
    with tracking.tracked_run(experiment, run_name or spec.architecture.describe(), tags,
                              uri) as run:
        result = train_and_record(spec, data, label=run_name or "train",
                                  epoch_lines=epoch_lines)
    return RunOutcome(run.info.run_id, run.info.experiment_id, result)


def train_and_record(spec: TrialSpec, data: MnistSplits, *, label: str,
                     callbacks: Sequence[Any] = (), extra_params: dict[str, Any] | None = None,
                     log_model: bool = True, epoch_lines: bool = False) -> TrainResult:
    """Train ``spec`` on ``data`` in the active MLflow run and record it: the inputs before
    (``tracking.runs.log_run_inputs``, with ``extra_params``), every epoch's metrics during, the
    curves' plots and (with ``log_model``) the model after. On a terminal one live status line
    (``label``, on standard error) replaces Keras's own output; with ``epoch_lines`` each
    finished epoch's line stays, on standard output, on a terminal or not (``cnnlab train``, as
    Keras keeps a line per epoch). ``callbacks`` are added to fit's (stopping on NaN,
    say). ``cnnlab train`` and each seed of ``cnnlab confirm`` are trained through here; a
    study's trial records the same things through its run's hooks (``cnnlab.study.study_run``),
    since the objective, not tracking, drives its training."""
    from cnnlab.train.callbacks import progress_callback

    tracking.log_run_inputs(spec, data, extra_params)
    progress = progress_callback(label, spec.training.epochs,
                                 epoch_lines=sys.stdout if epoch_lines else None)
    every = [tracking.epoch_metrics_callback(), *callbacks]
    if progress is not None:
        every.append(progress)
    try:
        result = train(spec, data, callbacks=every)
    finally:  # Keras skips on_train_end when fit raises: the line is erased here then.
        if progress is not None:
            progress.clear()
    tracking.log_curve_plots(result.history)
    if log_model:
        tracking.log_model(result.model, data.validation.x)
    return result
