"""One tracked training run (``cnnlab train``): data, training and tracking put together."""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.names import COMMAND_TAG, KIND_TAG, KIND_TRAIN
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking import runs as tracking
from cnnlab.train.callbacks import progress_callback
from cnnlab.train.data import load_mnist
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
    verbose: int | str = 0,
) -> RunOutcome:
    """Train ``spec`` on MNIST's training split and record the run in MLflow.

    Bad input (architecture, data, sizes) raises before the store is touched.
    """
    arch, config = spec.architecture, spec.training
    arch.layer_table()
    data = load_mnist(data_dir, train_size=train_size, val_size=val_size)
    uri = tracking.use_tracking_store(tracking_uri)
    tags = {KIND_TAG: KIND_TRAIN, COMMAND_TAG: tracking.command_line()}
    with tracking.tracked_run(experiment, run_name or arch.describe(), tags, uri) as run:
        tracking.log_run_inputs(spec, data)
        callbacks = [tracking.epoch_metrics_callback()]
        # On a terminal one live status line replaces Keras's own output (no mix of the two).
        progress = progress_callback(run_name or "train", config.epochs)
        if progress is not None:
            callbacks.append(progress)
            verbose = 0
        try:
            result = train(spec, data, callbacks=callbacks, verbose=verbose)
        finally:  # Keras skips on_train_end when fit raises: the line is erased here then.
            if progress is not None:
                progress.clear()
        tracking.log_run_outputs(result.model, result.history, data.validation.x)
    return RunOutcome(run.info.run_id, run.info.experiment_id, result)
