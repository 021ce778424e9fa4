"""Build and compile an ``Architecture`` in Keras 3, as the notebook does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.spec import schedules
from cnnlab.spec.architecture import Architecture
from cnnlab.spec.defaults import BN_MOMENTUM, LOSS, METRICS, OPTIMIZER
from cnnlab.spec.shapes import LayerTable
from cnnlab.spec.trialspec import MOMENTUM_OPTIMIZERS, TrainConfig
from cnnlab.train.quiet import import_keras

keras = import_keras()  # TensorFlow's start-up lines filtered out (cnnlab.tf_quiet).
layers = keras.layers


AUGMENTATION_LAYERS = ("augment_rotation", "augment_translation", "augment_zoom")
"""The names of the augmentation layers (training only, no parameters, the input's shape)
that a ``TrainConfig`` with ``rotation``, ``translation`` or ``zoom`` puts after the input;
they are no part of the architecture's layer table."""


@dataclass(frozen=True)
class Execution:
    """How Keras runs a recipe's training and validation steps; neither changes what is
    computed (the same updates in the same order, the same metrics), only how often Python
    hears of it.

    ``steps_per_execution``: training steps per call into TensorFlow's graph
    (``model.compile``); batch-level callbacks (``TerminateOnNaN``, the live progress line)
    then run once per call, after its last step, while epoch-end callbacks still run after
    every epoch. ``validation_batch_size``: the batch of the validation pass each epoch
    (``model.fit``), None for the training batch; inference only (batch normalization uses its
    moving statistics), so the scores do not depend on it beyond float rounding.
    ``min_steps_per_epoch``: below it, one step a call (``steps_per_call``): a call of several
    steps is a loop in the graph, slower to trace than one step, which a short epoch does not
    win back."""

    steps_per_execution: int = 1
    validation_batch_size: int | None = None
    min_steps_per_epoch: int = 0

    def steps_per_call(self, steps_per_epoch: int | None) -> int:
        """``steps_per_execution``, or 1 for an epoch of fewer than ``min_steps_per_epoch``."""
        if steps_per_epoch is not None and steps_per_epoch < self.min_steps_per_epoch:
            return 1
        return self.steps_per_execution


EXECUTION = Execution(steps_per_execution=8, min_steps_per_epoch=64)
"""What ``build_model`` and ``cnnlab.train.fit.train`` use for a recipe (``fit_options``).
8 steps a call: the same curves, and less CPU time per trial and per trace than one step a call
at 79 steps an epoch, but more at 4 (docs/benchmarks.md, "Trials per hour", measured with
benchmarks/trials_per_hour.py against ``Execution()``, Keras's defaults); a larger validation
batch was not faster."""


def fit_options() -> dict[str, Any]:
    """``model.fit``'s keyword arguments from ``EXECUTION`` (none at Keras's defaults)."""
    if EXECUTION.validation_batch_size is None:
        return {}
    return {"validation_batch_size": EXECUTION.validation_batch_size}


def build_model(arch: Architecture, *, seed: int | None = None,
                optimizer: str = OPTIMIZER, learning_rate: float | None = None,
                training: TrainConfig | None = None, steps_per_epoch: int | None = None,
                total_steps: int | None = None) -> keras.Model:
    """The Keras model of ``arch``: Conv2D or SeparableConv2D (ReLU) layers, each maybe followed by
    BatchNormalization (momentum ``training.bn_momentum``, else Keras's 0.99),
    MaxPooling2D/AveragePooling2D and Dropout/SpatialDropout2D; Flatten or GlobalAveragePooling2D;
    Dense (ReLU) layers and the Dense softmax output, each after a Dropout if ``arch.dropout``.

    With ``training`` (a ``TrainConfig``; its optimizer and learning rate then win over
    ``optimizer`` and ``learning_rate``), the model is compiled with its recipe
    (``compile_options``) to run as ``EXECUTION`` says, and its augmentation layers come
    first (``augmentation_layers``): Keras's preprocessing layers act only when called with
    ``training=True``, so ``fit`` augments the training batches and ``evaluate``/``predict``
    and a saved model see the images as they are. A schedule needs ``steps_per_epoch``
    (``schedules.steps_per_epoch``); ``total_steps`` is the training's optimizer updates in all
    when they are not ``epochs x steps_per_epoch`` (rungs on growing training sets:
    ``Fidelity.total_steps``).

    The spec is checked with the shape arithmetic first, so an architecture whose feature map
    would shrink below 1x1 raises ``ArchitectureError`` before any layer exists. ``seed`` makes
    the initial weights reproducible.
    """
    arch.layer_table()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=arch.input_shape, name="image")
    x = inputs
    if training is not None:
        for layer in augmentation_layers(training):
            x = layer(x)
    for i, conv in enumerate(arch.conv):
        kind = layers.SeparableConv2D if conv.separable else layers.Conv2D
        x = kind(filters=conv.filters, kernel_size=conv.kernel_size, strides=conv.strides,
                 padding=conv.padding, activation="relu", name=arch.conv_name(i))(x)
        if conv.batchnorm:
            momentum = training.bn_momentum if training is not None else BN_MOMENTUM
            x = layers.BatchNormalization(momentum=momentum, name=arch.batchnorm_name(i))(x)
        if conv.pool != "none":
            pool = layers.MaxPooling2D if conv.pool == "max" else layers.AveragePooling2D
            x = pool(pool_size=conv.pool_size, strides=conv.pool_size, padding="valid",
                     name=arch.pool_name(i))(x)
        if conv.dropout > 0:
            drop = layers.SpatialDropout2D if conv.spatial_dropout else layers.Dropout
            x = drop(rate=conv.dropout, name=arch.conv_dropout_name(i))(x)
    if arch.head == "gap":
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(arch.dense):
        if arch.dropout > 0:
            x = layers.Dropout(rate=arch.dropout, name=arch.dropout_name(i))(x)
        x = layers.Dense(units=units, activation="relu", name=arch.dense_name(i))(x)
    if arch.dropout > 0:
        x = layers.Dropout(rate=arch.dropout, name=arch.dropout_name(len(arch.dense)))(x)
    outputs = layers.Dense(units=arch.num_classes, activation="softmax", name="output")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="cnnlab_cnn")
    if training is not None:
        model.compile(**compile_options(training, steps_per_epoch, total_steps),
                      metrics=list(METRICS),
                      steps_per_execution=EXECUTION.steps_per_call(steps_per_epoch))
        return model
    if learning_rate is not None:
        optimizer = keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    model.compile(optimizer=optimizer, loss=LOSS, metrics=list(METRICS))
    return model


def augmentation_layers(training: TrainConfig) -> list[Any]:
    """Keras's RandomRotation (``rotation`` degrees either way), RandomTranslation
    (``translation`` of the height and of the width) and RandomZoom (``zoom`` in or out, the
    aspect kept), those that ``training`` asks for, in that order, each seeded from the
    trial's seed and filling with 0 (MNIST's background); none without augmentation."""
    made = []
    seed = training.seed
    if training.rotation:
        made.append(layers.RandomRotation(factor=training.rotation / 360, fill_mode="constant",
                                          seed=seed, name=AUGMENTATION_LAYERS[0]))
    if training.translation:
        made.append(layers.RandomTranslation(
            height_factor=training.translation, width_factor=training.translation,
            fill_mode="constant", seed=seed + 1, name=AUGMENTATION_LAYERS[1]))
    if training.zoom:
        made.append(layers.RandomZoom(height_factor=training.zoom, fill_mode="constant",
                                      seed=seed + 2, name=AUGMENTATION_LAYERS[2]))
    return made


def learning_rate_schedule(training: TrainConfig, steps_per_epoch: int | None,
                           total_steps: int | None = None) -> Any:
    """The learning rate as Keras takes it: a float (``constant``; None for Keras's default)
    or a ``keras.optimizers.schedules`` object whose values are ``schedules.learning_rate_at``'s
    (``ExponentialDecay``, staircase for ``step``; ``CosineDecay`` with its linear warm-up from
    0). A schedule starts from ``learning_rate`` or, if None, the optimizer's default in Keras.
    The cosine schedule spans ``total_steps`` (default ``epochs x steps_per_epoch``). Raises
    ``ValueError`` if a schedule has no ``steps_per_epoch``."""
    if training.schedule == "constant":
        return training.learning_rate
    if steps_per_epoch is None or steps_per_epoch < 1:
        raise ValueError(f"a {training.schedule} schedule needs the steps per epoch, not "
                         f"{steps_per_epoch!r}.")
    peak = training.learning_rate
    if peak is None:
        peak = float(keras.optimizers.get(training.optimizer).learning_rate)
    S = keras.optimizers.schedules
    if training.schedule in ("step", "exponential"):
        return S.ExponentialDecay(peak, decay_steps=training.decay_epochs * steps_per_epoch,
                                  decay_rate=training.decay_rate,
                                  staircase=training.schedule == "step")
    total = total_steps or training.epochs * steps_per_epoch
    warm = schedules.warmup_steps(training.warmup, total)
    return S.CosineDecay(0.0 if warm else peak, decay_steps=max(total - warm, 1),
                         warmup_target=peak if warm else None, warmup_steps=warm)


def make_optimizer(training: TrainConfig, steps_per_epoch: int | None = None,
                   total_steps: int | None = None) -> Any:
    """The Keras optimizer ``training`` names, with its learning rate or schedule, its weight
    decay, and momentum/Nesterov where the optimizer has them; Keras's defaults for all that
    ``training`` leaves at None."""
    config: dict[str, Any] = {}
    rate = learning_rate_schedule(training, steps_per_epoch, total_steps)
    if rate is not None:
        config["learning_rate"] = rate
    if training.weight_decay is not None:
        config["weight_decay"] = training.weight_decay
    name = training.optimizer.lower()
    if training.momentum is not None and name in MOMENTUM_OPTIMIZERS:
        config["momentum"] = training.momentum
    if training.nesterov and name == "sgd":
        config["nesterov"] = True
    if not config:
        return training.optimizer  # As the notebook compiles it: by name.
    return keras.optimizers.get({"class_name": training.optimizer, "config": config})


def compile_options(training: TrainConfig, steps_per_epoch: int | None = None,
                    total_steps: int | None = None) -> dict[str, Any]:
    """``model.compile``'s optimizer and loss for ``training``: ``make_optimizer``, and the
    categorical cross-entropy, with ``label_smoothing`` when it is not 0."""
    loss: Any = LOSS
    if training.label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=training.label_smoothing)
    return {"optimizer": make_optimizer(training, steps_per_epoch, total_steps), "loss": loss}


def keras_layer_table(model: keras.Model) -> list[tuple[str, tuple[int, ...], int]]:
    """Keras's own answer per layer: (name, output shape without batch, count_params()), the
    augmentation layers (``AUGMENTATION_LAYERS``, the recipe's, not the architecture's) left
    out."""
    return [(layer.name, tuple(layer.output.shape[1:]), layer.count_params())
            for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
            and layer.name not in AUGMENTATION_LAYERS]


def check_layer_table(model: keras.Model, table: LayerTable) -> None:
    """Raise if the shape arithmetic and Keras disagree on any layer's shape or parameters."""
    ours = [(row.name, tuple(row.output_shape), row.params) for row in table.rows]
    theirs = keras_layer_table(model)
    if ours != theirs or table.total_params != model.count_params():
        raise RuntimeError(f"shape arithmetic {ours} disagrees with Keras {theirs}; "
                           "this is a bug in cnnlab.shapes.")
