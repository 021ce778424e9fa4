"""The training recipe in Keras (issue 24): each schedule's learning rate at given steps is its
formula (``cnnlab.spec.schedules``), the optimizer and loss take the recipe's settings, and
augmentation changes training batches only: inference, evaluation and a saved model see the
images as they are."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cnnlab.spec import schedules
from cnnlab.spec.architecture import Architecture, ConvLayer
from cnnlab.spec.trialspec import TrainConfig, TrialSpec
from cnnlab.train.model import (
    AUGMENTATION_LAYERS,
    augmentation_layers,
    build_model,
    check_layer_table,
    compile_options,
    learning_rate_schedule,
)

SMALL = Architecture(conv=(ConvLayer(4, 3, 2, "same", batchnorm=True),
                           ConvLayer(6, 3, 2, "valid", dropout=0.1, spatial_dropout=True)),
                     dense=(8,))
AUGMENTED = TrainConfig(rotation=15, translation=0.1, zoom=0.1, seed=3)


@pytest.mark.parametrize("config", [
    TrainConfig(schedule="step", learning_rate=0.1, decay_rate=0.5, decay_epochs=2),
    TrainConfig(schedule="step", learning_rate=0.1, decay_rate=0.3, decay_epochs=0.5),
    TrainConfig(schedule="exponential", learning_rate=0.01, decay_rate=0.1, decay_epochs=3),
    TrainConfig(schedule="cosine", learning_rate=3e-3, epochs=10),
    TrainConfig(schedule="cosine", learning_rate=3e-3, warmup=0.2, epochs=10),
    TrainConfig(schedule="cosine", learning_rate=1e-2, warmup=0.5, epochs=3),
    TrainConfig(schedule="cosine", optimizer="sgd", warmup=0.1, epochs=4),  # Keras's 0.01.
], ids=lambda c: f"{c.schedule}-{c.warmup}-{c.decay_epochs}")
def test_a_schedules_learning_rate_at_each_step_is_its_formula(config: TrainConfig) -> None:
    spe = 38  # ceil(1,000 images / 27 a batch): a short last batch.
    assert schedules.steps_per_epoch(1000, 27) == spe
    total = config.epochs * spe
    keras_schedule = learning_rate_schedule(config, spe)
    peak = config.learning_rate or 0.01
    for step in sorted({0, 1, 2, spe - 1, spe, spe + 1, total // 5, total // 5 + 1, total // 2,
                        total - 1, total, total + 10}):
        expected = schedules.learning_rate_at(
            step, schedule=config.schedule, learning_rate=peak, steps_per_epoch=spe,
            total_steps=total, decay_rate=config.decay_rate, decay_epochs=config.decay_epochs,
            warmup=config.warmup)
        assert float(keras_schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9), step


def test_constant_is_no_schedule_and_a_schedule_needs_the_steps() -> None:
    assert learning_rate_schedule(TrainConfig(), None) is None
    assert learning_rate_schedule(TrainConfig(learning_rate=0.01), None) == 0.01
    with pytest.raises(ValueError, match="needs the steps per epoch"):
        learning_rate_schedule(TrainConfig(schedule="cosine"), None)


def test_the_optimizer_and_loss_take_the_recipe() -> None:
    import keras

    # The notebook's: the optimizer by name, Keras's own defaults, the plain loss.
    assert compile_options(TrainConfig()) == {"optimizer": "rmsprop",
                                              "loss": "categorical_crossentropy"}
    options = compile_options(TrainConfig(optimizer="sgd", learning_rate=0.05, weight_decay=5e-4,
                                          momentum=0.9, nesterov=True, label_smoothing=0.1))
    config = options["optimizer"].get_config()
    assert isinstance(options["optimizer"], keras.optimizers.SGD)
    assert (config["learning_rate"], config["weight_decay"], config["momentum"],
            config["nesterov"]) == pytest.approx((0.05, 5e-4, 0.9, True))
    assert options["loss"].get_config()["label_smoothing"] == pytest.approx(0.1)
    adamw = compile_options(TrainConfig(optimizer="adamw"))["optimizer"]
    assert adamw == "adamw"  # Keras's AdamW and its weight decay of 0.004, as before.
    # Momentum where the optimizer has it, not elsewhere (recorded, without effect).
    assert compile_options(TrainConfig(optimizer="rmsprop", momentum=0.5))[
        "optimizer"].get_config()["momentum"] == pytest.approx(0.5)
    assert compile_options(TrainConfig(optimizer="adam", momentum=0.5)) == {
        "optimizer": "adam", "loss": "categorical_crossentropy"}


def test_batch_normalization_takes_the_momentum_and_updates_by_it() -> None:
    # Keras's default where the recipe does not say, the recipe's where it does; one training
    # step moves the moving mean by (1 - momentum) of the batch's mean, as the docstring says.
    assert TrainConfig().bn_momentum == 0.99 and "bn_momentum" not in TrainConfig().to_dict()
    assert build_model(SMALL, seed=0).get_layer("conv1_bn").momentum == pytest.approx(0.99)
    for momentum in (0.9, 0.5):
        model = build_model(SMALL, seed=0, training=TrainConfig(bn_momentum=momentum,
                                                                 optimizer="sgd",
                                                                 learning_rate=1e-9))
        bn = model.get_layer("conv1_bn")
        assert bn.momentum == pytest.approx(momentum)
        conv = model.get_layer("conv1")
        x = _images(8)
        features = np.asarray(conv(x))
        y = np.eye(10, dtype="float32")[np.arange(8) % 10]
        model.train_on_batch(x, y)
        expected = (1 - momentum) * features.mean(axis=(0, 1, 2))  # From a moving mean of 0.
        # The learning rate is tiny, so conv1's output barely moved during the step.
        np.testing.assert_allclose(np.asarray(bn.moving_mean), expected, rtol=1e-3, atol=1e-6)


def test_conv_dropout_and_one_by_one_convolutions_match_the_arithmetic() -> None:
    arch = Architecture(conv=(ConvLayer(6, 3, 1, "same", batchnorm=True, pool="max",
                                        dropout=0.2, spatial_dropout=True),
                              ConvLayer(8, 3, 1, "same", dropout=0.1),
                              ConvLayer(10, 1)), dense=(), head="gap")
    model = build_model(arch, seed=0, training=AUGMENTED)
    check_layer_table(model, arch.layer_table())  # Raises if Keras disagrees.
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    assert kinds["conv1_dropout"] == "SpatialDropout2D" and kinds["conv2_dropout"] == "Dropout"
    assert set(AUGMENTATION_LAYERS) <= set(kinds)


def _images(n: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((n, 28, 28, 1), dtype="float32")
    x[:, 8:20, 10:18, 0] = rng.uniform(0.5, 1.0, size=(n, 12, 8))  # A bar off the border.
    return x


def test_augmentation_changes_training_batches_only() -> None:
    x = _images()
    for layer in augmentation_layers(AUGMENTED):
        np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
        assert not np.allclose(np.asarray(layer(x, training=True)), x), layer.name
    assert augmentation_layers(TrainConfig()) == []


def test_augmentation_is_seeded_by_the_trial() -> None:
    x = _images()

    def batch(seed: int) -> np.ndarray:
        out = x
        for layer in augmentation_layers(dataclasses.replace(AUGMENTED, seed=seed)):
            out = layer(out, training=True)
        return np.asarray(out)

    np.testing.assert_array_equal(batch(3), batch(3))
    assert not np.allclose(batch(3), batch(4))


def test_inference_and_a_saved_model_see_the_images_as_they_are(tmp_path: Path) -> None:
    import mlflow.keras

    x, y = _images(), np.eye(10, dtype="float32")[np.arange(16) % 10]
    arch = dataclasses.replace(SMALL, conv=SMALL.conv[:1])  # No dropout: augmentation alone.
    plain = build_model(arch, seed=0, training=TrainConfig())
    augmented = build_model(arch, seed=1, training=AUGMENTED)
    augmented.set_weights(plain.get_weights())  # Identical weights: augmentation has none.
    expected = plain.predict(x, verbose=0)
    np.testing.assert_allclose(augmented.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(augmented(x, training=False), expected, rtol=1e-6, atol=1e-7)
    assert augmented.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0))
    # The model as MLflow stores it (Keras's format) predicts as the unaugmented one.
    mlflow.keras.save_model(augmented, str(tmp_path / "model"))
    loaded = mlflow.keras.load_model(str(tmp_path / "model"))
    assert set(AUGMENTATION_LAYERS) <= {layer.name for layer in loaded.layers}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
    # In training mode (last: it moves the batch normalisation's statistics) the augmented
    # model sees other images.
    assert not np.allclose(augmented(x, training=True), plain(x, training=True))


@pytest.mark.slow
def test_training_follows_the_schedule(mnist_dir: Path) -> None:
    from cnnlab.train.data import load_mnist
    from cnnlab.train.fit import train

    data = load_mnist(mnist_dir, train_size=300, val_size=100)
    config = TrainConfig(epochs=2, batch_size=64, optimizer="sgd", learning_rate=0.05,
                         schedule="cosine", warmup=0.3, momentum=0.9, rotation=10)
    result = train(TrialSpec(SMALL, config), data)
    spe = schedules.steps_per_epoch(300, 64)
    optimizer = result.model.optimizer
    assert int(optimizer.iterations) == 2 * spe == 10
    # The rate the optimizer would use next is the formula's at the steps it made.
    assert float(optimizer.learning_rate) == pytest.approx(schedules.learning_rate_at(
        10, schedule="cosine", learning_rate=0.05, steps_per_epoch=spe, total_steps=10,
        warmup=0.3), abs=1e-9)
    assert result.epochs_run == 2
