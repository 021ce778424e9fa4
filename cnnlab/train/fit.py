"""Train an architecture on the training split, validating on the validation split each epoch.

No tracking here: callers pass Keras callbacks (MLflow logging, Optuna pruning) in, so that the
same function serves ``cnnlab train`` and every trial of a study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlab.spec.architecture import check_architecture
from cnnlab.spec.schedules import steps_per_epoch
from cnnlab.spec.shapes import LayerTable
from cnnlab.spec.trialspec import TrainConfig, TrialSpec
from cnnlab.train import faults
from cnnlab.train.data import MnistSplits

__all__ = ["HISTORY_KEYS", "TrainConfig", "TrainResult", "train"]

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class TrainResult:
    """The trained model, its per-epoch history and its layer table."""

    model: Any
    history: dict[str, list[float]]
    table: LayerTable
    epochs_run: int = field(init=False)

    def __post_init__(self) -> None:
        self.epochs_run = len(self.history.get("loss", []))


def train(
    spec: TrialSpec,
    data: MnistSplits,
    callbacks: Sequence[Any] = (),
    verbose: int | str = 0,
) -> TrainResult:
    """Build, compile and fit ``spec``'s architecture as its training settings say (the
    recipe's schedule, weight decay, label smoothing and training-only augmentation too,
    ``cnnlab.train.model.build_model``); returns the model and the per-epoch history."""
    from cnnlab.train.model import (  # Keras: only when training.
        build_model,
        check_layer_table,
        fit_options,
    )

    arch, config = spec.architecture, spec.training
    table = check_architecture(arch, None)  # Buildable, and under cnnlab's ceiling.
    model = build_model(arch, seed=config.seed, training=config,
                        steps_per_epoch=steps_per_epoch(len(data.train), config.batch_size))
    check_layer_table(model, table)
    faults.reach("building")
    history = model.fit(
        data.train.x, data.train.y_onehot,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(data.validation.x, data.validation.y_onehot),
        callbacks=list(callbacks),
        verbose=verbose,
        **fit_options(),
    )
    curves = {key: [float(v) for v in history.history.get(key, [])] for key in HISTORY_KEYS}
    return TrainResult(model, curves, table)
