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
import math
from dataclasses import dataclass, field, fields
from typing import Any

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.spec import defaults
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer
from cnnlab.spec.schedules import SCHEDULES

OPTIMIZERS = ("adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "ftrl", "lion",
              "nadam", "rmsprop", "sgd")
"""Keras 3's optimizers by name (``keras.optimizers.get``), without importing Keras."""


MOMENTUM_OPTIMIZERS = ("rmsprop", "sgd")
"""The Keras optimizers that take ``momentum``; of them, only ``sgd`` takes ``nesterov``."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the notebook's defaults (rmsprop at Keras's learning rate, batch 256, 10
    epochs, no schedule, no weight decay, no label smoothing, no augmentation), an explicit
    seed, and the training recipe's options (all off by default).

    The recipe: a learning-rate ``schedule`` (``cnnlab.spec.schedules``: constant, step,
    exponential, cosine with an optional linear ``warmup``, the one-cycle form), decoupled
    ``weight_decay`` (Keras's, every optimizer; AdamW is ``adamw``), ``momentum`` and
    ``nesterov`` (SGD; RMSprop takes momentum too), ``label_smoothing`` of the one-hot targets,
    and data augmentation of the training images only: a random ``rotation`` (degrees),
    ``translation`` and ``zoom`` (fractions of the image's side), seeded by the trial's seed.

    A setting that the rest does not use is kept and recorded but has no effect: ``decay_rate``
    and ``decay_epochs`` without a step or exponential schedule, ``warmup`` without cosine,
    ``momentum`` and ``nesterov`` with an optimizer that has none (``ignored()`` names them),
    so that a search may combine them freely. Bad values raise ``ConfigError`` naming the field.
    """

    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    seed: int = 0
    optimizer: str = defaults.OPTIMIZER
    """A Keras optimizer name (the notebook's is rmsprop)."""
    learning_rate: float | None = None
    """The optimizer's learning rate (a schedule's peak); None keeps Keras's default for it."""
    schedule: str = "constant"
    """The learning-rate schedule: one of ``schedules.SCHEDULES``."""
    decay_rate: float = 0.1
    """``step``/``exponential``: the factor the learning rate is multiplied by every
    ``decay_epochs`` epochs, in (0, 1]."""
    decay_epochs: float = 5.0
    """``step``/``exponential``: the epochs over which the rate falls by ``decay_rate``."""
    warmup: float = 0.0
    """``cosine``: the fraction of all steps, in [0, 1), of a linear warm-up from 0."""
    weight_decay: float | None = None
    """Decoupled weight decay (Keras's ``weight_decay``, applied as ``w -= lr * wd * w``);
    None keeps the optimizer's default (none; 0.004 for adamw)."""
    momentum: float | None = None
    """SGD's or RMSprop's momentum in [0, 1); None keeps Keras's default (0)."""
    nesterov: bool = False
    """SGD: Nesterov momentum."""
    label_smoothing: float = 0.0
    """Label smoothing of the targets in [0, 1) (``CategoricalCrossentropy``); the losses
    reported, ``val_loss`` too, are then the smoothed ones."""
    rotation: float = 0.0
    """Augmentation: a random rotation of each training image by up to this many degrees
    either way (``RandomRotation``), in [0, 180]."""
    translation: float = 0.0
    """Augmentation: a random shift of up to this fraction of the height and of the width
    (``RandomTranslation``), in [0, 1)."""
    zoom: float = 0.0
    """Augmentation: a random zoom in or out by up to this fraction (``RandomZoom``), in
    [0, 1)."""
    bn_momentum: float = defaults.BN_MOMENTUM
    """The momentum of every BatchNormalization layer's moving mean and variance, in [0, 1):
    after each training batch ``moving = momentum * moving + (1 - momentum) * batch``
    (``keras.layers.BatchNormalization(momentum=...)``, Keras's default 0.99). Validation,
    test and saved models use the moving statistics, which after ``n`` steps still weigh
    their starting values (mean 0, variance 1) by ``momentum ** n``: 0.99 over 117 steps (3
    epochs of 10,000 images at batch 256) leaves 31% of them, so short trainings need a lower
    momentum (0.9: 0.0005%). No effect without batch normalization."""

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
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, not "
                              f"{self.schedule!r}.")
        if not isinstance(self.nesterov, bool):
            raise ConfigError(f"nesterov must be true or false, not {self.nesterov!r}.")
        for name, low, high, closed, what in _RANGES:
            value = getattr(self, name)
            if value is None and name in ("weight_decay", "momentum"):
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not low <= value
                    or not (value <= high if closed else value < high)
                    or (name in _POSITIVE and value == 0)):
                raise ConfigError(f"{name} must be {what}, not {value!r}.")
            object.__setattr__(self, name, float(value))

    def ignored(self) -> list[str]:
        """The recipe settings given (not at their defaults) that this configuration does not
        use: ``decay_rate``/``decay_epochs`` without a step or exponential schedule, ``warmup``
        without cosine, ``momentum`` unless sgd or rmsprop, ``nesterov`` unless sgd."""
        return [name for name in USED_WITH
                if not self.uses(name) and getattr(self, name) != _DEFAULTS[name]]

    def uses(self, name: str) -> bool:
        """Whether this configuration uses the setting ``name``: every setting but those of
        ``USED_WITH``, which only some schedules or optimizers use."""
        if name in ("decay_rate", "decay_epochs"):
            return self.schedule in ("step", "exponential")
        if name == "warmup":
            return self.schedule == "cosine"
        if name == "momentum":
            return self.optimizer.lower() in MOMENTUM_OPTIMIZERS
        if name == "nesterov":
            return self.optimizer.lower() == "sgd"
        return True

    @property
    def augmentation(self) -> bool:
        """Whether training images are augmented (rotation, translation or zoom)."""
        return bool(self.rotation or self.translation or self.zoom)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict; the recipe's (``RECIPE_FIELDS``) only when not at
        their defaults, so that a configuration without them has the dict, and the trial key,
        it had before they existed."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in RECIPE_FIELDS or v != _DEFAULTS[k]}

    def describe_recipe(self) -> str:
        """The recipe settings in use, compactly, e.g. ``cosine warmup=0.2 wd=0.0001
        ls=0.1 aug(rot=10,shift=0.1,zoom=0.1)``; empty for the notebook's."""
        parts = []
        if self.schedule in ("step", "exponential"):
            parts.append(f"{self.schedule}({self.decay_rate:.3g}/{self.decay_epochs:.3g}ep)")
        elif self.schedule == "cosine":
            parts.append("cosine" + (f" warmup={self.warmup:.3g}" if self.warmup else ""))
        if self.weight_decay is not None:
            parts.append(f"wd={self.weight_decay:.3g}")
        if self.momentum is not None and "momentum" not in self.ignored():
            parts.append(f"momentum={self.momentum:.3g}")
        if self.nesterov and "nesterov" not in self.ignored():
            parts.append("nesterov")
        if self.label_smoothing:
            parts.append(f"ls={self.label_smoothing:.3g}")
        if self.bn_momentum != defaults.BN_MOMENTUM:
            parts.append(f"bn_momentum={self.bn_momentum:.3g}")
        if self.augmentation:
            aug = [f"{label}={getattr(self, name):.3g}" for name, label in
                   (("rotation", "rot"), ("translation", "shift"), ("zoom", "zoom"))
                   if getattr(self, name)]
            parts.append(f"aug({','.join(aug)})")
        return " ".join(parts)


_RANGES = (
    ("decay_rate", 0.0, 1.0, True, "a factor in (0, 1]"),
    ("decay_epochs", 0.0, float("inf"), False, "a positive number of epochs"),
    ("warmup", 0.0, 1.0, False, "a fraction of the steps from 0 up to (not including) 1"),
    ("weight_decay", 0.0, float("inf"), False, "a non-negative number"),
    ("momentum", 0.0, 1.0, False, "from 0 up to (not including) 1"),
    ("label_smoothing", 0.0, 1.0, False, "from 0 up to (not including) 1"),
    ("rotation", 0.0, 180.0, True, "a number of degrees from 0 to 180"),
    ("translation", 0.0, 1.0, False, "a fraction of the image from 0 up to (not including) 1"),
    ("zoom", 0.0, 1.0, False, "a fraction from 0 up to (not including) 1"),
    ("bn_momentum", 0.0, 1.0, False, "from 0 up to (not including) 1"),
)
"""Each numeric recipe field: (name, low, high, whether high is allowed, the rule in words)."""
USED_WITH = {"decay_rate": ("schedule", "step or exponential"),
             "decay_epochs": ("schedule", "step or exponential"),
             "warmup": ("schedule", "cosine"), "momentum": ("optimizer", "sgd or rmsprop"),
             "nesterov": ("optimizer", "sgd")}
"""The recipe settings that only some configurations use: (the field they depend on, the values
that use them), as ``TrainConfig.ignored`` judges them."""
_POSITIVE = ("decay_rate", "decay_epochs")
"""Of those, the ones that must not be 0."""
RECIPE_FIELDS = ("schedule", "decay_rate", "decay_epochs", "warmup", "weight_decay", "momentum",
                 "nesterov", "label_smoothing", "rotation", "translation", "zoom", "bn_momentum")
"""The training recipe's fields (issue 24), left out of ``TrainConfig.to_dict`` at their
defaults."""
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}

BASELINE_TRAININGS = ("study", "notebook")
"""How a confirmation trains the notebook's CNN beside a study's networks: with the study's
``[training]`` (``study``) or as the notebook does (``notebook``: ``TrainConfig()``)."""


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
        notebook's, e.g. ``16k3s1same-d64 adam lr=0.001 batch=128``, then the recipe's
        (``TrainConfig.describe_recipe``: ``cosine warmup=0.2 aug(rot=10)``)."""
        t, parts = self.training, [self.architecture.describe()]
        if t.optimizer != defaults.OPTIMIZER:
            parts.append(t.optimizer)
        if t.learning_rate is not None:
            parts.append(f"lr={t.learning_rate:.3g}")
        if t.batch_size != defaults.BATCH_SIZE:
            parts.append(f"batch={t.batch_size}")
        if t.describe_recipe():
            parts.append(t.describe_recipe())
        return " ".join(parts)

    def to_params(self) -> dict[str, Any]:
        """Flat parameters for tracking and DataFrames: the architecture's (``n_conv``,
        ``conv1_filters`` ...) and the training settings (``epochs``, ``batch_size``, ``seed``,
        ``optimizer``, ``learning_rate`` and the recipe's: ``schedule``, ``weight_decay`` ...,
        every one, at its default too)."""
        return {**self.architecture.to_params(), **dataclasses.asdict(self.training)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``TrialSpec.from_dict`` reads it back (``trial_spec.json`` of a run)."""
        return {"architecture": self.architecture.to_dict(),
                "training": self.training.to_dict()}

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
        settings = {k: v for k, v in self.training.to_dict().items() if k != "seed"}
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
