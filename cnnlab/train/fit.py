"""Train an architecture on the training split, validating on the validation split each epoch.

No tracking here: callers pass Keras callbacks (MLflow logging, Optuna pruning) in, so that the
same function serves ``cnnlab train`` and every trial of a study.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlab.spec.architecture import check_architecture
from cnnlab.spec.fidelity import Fidelity
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
    *,
    fidelity: Fidelity | None = None,
    on_rung: Callable[[int], None] | None = None,
) -> TrainResult:
    """Build, compile and fit ``spec``'s architecture as its training settings say (the
    recipe's schedule, weight decay, label smoothing and training-only augmentation too,
    ``cnnlab.train.model.build_model``); returns the model and the per-epoch history.

    With ``fidelity`` the model is trained rung by rung (``cnnlab.spec.fidelity``): up to each
    rung's epochs on the first ``train_size`` training images, one ``fit`` per rung continuing
    the same model and optimizer (``initial_epoch``), the learning-rate schedule spread over
    every rung's steps. ``on_rung(index)`` is called after each rung but the last (index from
    0) and may raise to stop the training there (``optuna.TrialPruned``, say). Training stops
    too when a rung ends short (a callback stopped it: a NaN loss)."""
    from cnnlab.train.model import (  # Keras: only when training.
        build_model,
        check_layer_table,
        fit_options,
    )

    arch, config = spec.architecture, spec.training
    table = check_architecture(arch, None)  # Buildable, and under cnnlab's ceiling.
    n_train = len(data.train)
    segments = fidelity.segments(n_train) if fidelity is not None else [(config.epochs, n_train)]
    total = fidelity.total_steps(n_train, config.batch_size) if fidelity is not None else None
    model = build_model(arch, seed=config.seed, training=config,
                        steps_per_epoch=steps_per_epoch(n_train, config.batch_size),
                        total_steps=total)
    check_layer_table(model, table)
    faults.reach("building")
    curves: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    done = 0
    for index, (epochs, size) in enumerate(segments):
        history = model.fit(
            data.train.x[:size], data.train.y_onehot[:size],  # Views: the first ``size``.
            batch_size=config.batch_size,
            epochs=epochs,
            initial_epoch=done,
            validation_data=(data.validation.x, data.validation.y_onehot),
            callbacks=list(callbacks),
            verbose=verbose,
            **fit_options(),
        )
        for key in HISTORY_KEYS:
            curves[key] += [float(v) for v in history.history.get(key, [])]
        if len(history.epoch) < epochs - done:  # Stopped by a callback.
            break
        done = epochs
        if on_rung is not None and index < len(segments) - 1:
            on_rung(index)
    return TrainResult(model, curves, table)
