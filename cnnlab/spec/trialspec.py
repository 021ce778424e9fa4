"""What a trial is: one ``TrialSpec``, the architecture and how to train it.

The search space builds a ``TrialSpec`` from a trial's draws (``cnnlab.search.space``); the
objective, its hooks, tracking, ``compare`` and ``evaluate`` pass it on unchanged. It is plain
data (no framework import): frozen dataclasses that check their own values, so that a study
file's choices are judged by the same rules that build the network.

A spec has *paths* (``conv2.strides``, ``head``, ``training.learning_rate``): the keys of a
study's search space, and the names of its parameters in Optuna and MLflow (``conv2_strides``,
``head``, ``learning_rate``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.spec import defaults
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer

OPTIMIZERS = ("adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "ftrl", "lion",
              "nadam", "rmsprop", "sgd")
"""Keras 3's optimizers by name (``keras.optimizers.get``), without importing Keras."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the notebook's defaults (rmsprop, batch 256, 10 epochs), and an explicit
    seed."""

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
                or not isinstance(self.learning_rate, (int, float))
                or not 0 < self.learning_rate < float("inf")):
            raise ConfigError(f"learning_rate must be a positive number, not "
                              f"{self.learning_rate!r}.")
        if self.learning_rate is not None:
            object.__setattr__(self, "learning_rate", float(self.learning_rate))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {self.seed!r}.")
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (Keras's "
                              f"names), not {self.optimizer!r}.")


ARCHITECTURE_FIELDS = tuple(f.name for f in fields(Architecture)
                            if f.name not in ("conv", "dense", "input_shape", "num_classes"))
"""Architecture-wide settings a space may search (``head``, ``dropout`` ...)."""
CONV_FIELDS = tuple(f.name for f in fields(ConvLayer))
"""What a conv layer has (``filters``, ``kernel_size`` ...): ``conv.FIELD`` for every layer,
``convN.FIELD`` for layer N."""
TRAINING_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("seed", "epochs"))
"""Training settings a space may search (``training.learning_rate`` ...). The seed is the
trial's; the epochs are the study's budget per trial."""


@dataclass(frozen=True)
class TrialSpec:
    """A trial: its ``architecture`` and its ``training`` (room for the data's settings later)."""

    architecture: Architecture = field(default_factory=lambda: NOTEBOOK_CNN)
    training: TrainConfig = field(default_factory=TrainConfig)

    def with_seed(self, seed: int) -> TrialSpec:
        return dataclasses.replace(self, training=dataclasses.replace(self.training, seed=seed))

    def describe(self) -> str:
        """The architecture's compact form, with the training settings that differ from the
        notebook's, e.g. ``16k3s1same-d64 adam lr=0.001 batch=128``."""
        t, parts = self.training, [self.architecture.describe()]
        if t.optimizer != defaults.OPTIMIZER:
            parts.append(t.optimizer)
        if t.learning_rate is not None:
            parts.append(f"lr={t.learning_rate:.3g}")
        if t.batch_size != defaults.BATCH_SIZE:
            parts.append(f"batch={t.batch_size}")
        return " ".join(parts)

    def to_params(self) -> dict[str, Any]:
        """Flat parameters for tracking and DataFrames: the architecture's (``n_conv``,
        ``conv1_filters`` ...) and the training settings (``epochs``, ``batch_size``, ``seed``,
        ``optimizer``, ``learning_rate``)."""
        return {**self.architecture.to_params(), **dataclasses.asdict(self.training)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``TrialSpec.from_dict`` reads it back (``trial_spec.json`` of a run)."""
        return {"architecture": self.architecture.to_dict(),
                "training": dataclasses.asdict(self.training)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "trial spec") -> TrialSpec:
        if not isinstance(data, dict) or set(data) - {"architecture", "training"}:
            raise ConfigError(f"{where} must be a table of 'architecture' and 'training'.")
        training = data.get("training", {})
        unknown = set(training) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"{where}: training has unknown key(s) {sorted(unknown)}.")
        try:
            arch = Architecture.from_dict(data.get("architecture", {}), where=where)
        except ArchitectureError as err:
            raise ConfigError(str(err)) from None
        return cls(arch, TrainConfig(**training))

    def key(self) -> str:
        """A digest of the whole configuration but the seed (which differs per trial by
        design): equal keys, the same trial."""
        settings = {k: v for k, v in dataclasses.asdict(self.training).items() if k != "seed"}
        text = json.dumps({"architecture": self.architecture.to_dict(), "training": settings},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def param_name(path: str) -> str:
    """The Optuna and MLflow parameter name of a path: ``conv2.strides`` -> ``conv2_strides``,
    ``dense1.units`` -> ``dense1_units``, ``training.learning_rate`` -> ``learning_rate``,
    ``head`` -> ``head``."""
    if path.startswith("training."):
        return path[len("training."):]
    return path.replace(".", "_")
