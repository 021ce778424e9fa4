"""Train an architecture on the training split, validating on the validation split each epoch.

No tracking here: callers pass Keras callbacks (MLflow logging, Optuna pruning) in, so that the
same function serves ``cnnlab train`` and every trial of a study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlab import defaults, faults
from cnnlab.data import MnistSplits
from cnnlab.errors import ConfigError
from cnnlab.shapes import LayerTable
from cnnlab.space import check_architecture
from cnnlab.spec import Architecture

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the notebook's defaults (batch 256, 10 epochs), and an explicit seed."""

    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    seed: int = 0
    optimizer: str = defaults.OPTIMIZER
    """A Keras optimizer name (the notebook's is rmsprop)."""
    learning_rate: float | None = None
    """The optimizer's learning rate; None keeps Keras's default for it."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}.")
        if self.learning_rate is not None and (
                isinstance(self.learning_rate, bool)
                or not isinstance(self.learning_rate, (int, float)) or self.learning_rate <= 0):
            raise ConfigError(f"learning_rate must be a positive number, not "
                              f"{self.learning_rate!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {self.seed!r}.")


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
    arch: Architecture,
    data: MnistSplits,
    config: TrainConfig | None = None,
    callbacks: Sequence[Any] = (),
    verbose: int | str = 0,
) -> TrainResult:
    """Build, compile and fit ``arch``; returns the model and the per-epoch history."""
    from cnnlab.model import build_model, check_layer_table  # Keras: only when training.

    config = config or TrainConfig()
    table = check_architecture(arch, None)  # Buildable, and under cnnlab's ceiling.
    model = build_model(arch, seed=config.seed, optimizer=config.optimizer,
                        learning_rate=config.learning_rate)
    check_layer_table(model, table)
    faults.reach("building")
    history = model.fit(
        data.train.x, data.train.y_onehot,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(data.validation.x, data.validation.y_onehot),
        callbacks=list(callbacks),
        verbose=verbose,
    )
    curves = {key: [float(v) for v in history.history.get(key, [])] for key in HISTORY_KEYS}
    return TrainResult(model, curves, table)
