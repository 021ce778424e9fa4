"""Build and compile an ``Architecture`` in Keras 3, as the notebook does."""

from __future__ import annotations

from cnnlab.spec.architecture import Architecture
from cnnlab.spec.defaults import LOSS, METRICS, OPTIMIZER
from cnnlab.spec.shapes import LayerTable
from cnnlab.train.quiet import import_keras

keras = import_keras()  # TensorFlow's start-up lines filtered out (cnnlab.tf_quiet).
layers = keras.layers


def build_model(arch: Architecture, *, seed: int | None = None,
                optimizer: str = OPTIMIZER, learning_rate: float | None = None) -> keras.Model:
    """The Keras model of ``arch``: Conv2D (ReLU) layers, each maybe followed by
    BatchNormalization and MaxPooling2D/AveragePooling2D; Flatten or GlobalAveragePooling2D;
    Dense (ReLU) layers and the Dense softmax output, each after a Dropout if ``arch.dropout``.

    The spec is checked with the shape arithmetic first, so an architecture whose feature map
    would shrink below 1x1 raises ``ArchitectureError`` before any layer exists. ``seed`` makes
    the initial weights reproducible.
    """
    arch.layer_table()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=arch.input_shape, name="image")
    x = inputs
    for i, conv in enumerate(arch.conv):
        x = layers.Conv2D(filters=conv.filters, kernel_size=conv.kernel_size,
                          strides=conv.strides, padding=conv.padding, activation="relu",
                          name=arch.conv_name(i))(x)
        if conv.batchnorm:
            x = layers.BatchNormalization(name=arch.batchnorm_name(i))(x)
        if conv.pool != "none":
            pool = layers.MaxPooling2D if conv.pool == "max" else layers.AveragePooling2D
            x = pool(pool_size=conv.pool_size, strides=conv.pool_size, padding="valid",
                     name=arch.pool_name(i))(x)
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
    if learning_rate is not None:
        optimizer = keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    model.compile(optimizer=optimizer, loss=LOSS, metrics=list(METRICS))
    return model


def keras_layer_table(model: keras.Model) -> list[tuple[str, tuple[int, ...], int]]:
    """Keras's own answer per layer: (name, output shape without batch, count_params())."""
    return [(layer.name, tuple(layer.output.shape[1:]), layer.count_params())
            for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def check_layer_table(model: keras.Model, table: LayerTable) -> None:
    """Raise if the shape arithmetic and Keras disagree on any layer's shape or parameters."""
    ours = [(row.name, tuple(row.output_shape), row.params) for row in table.rows]
    theirs = keras_layer_table(model)
    if ours != theirs or table.total_params != model.count_params():
        raise RuntimeError(f"shape arithmetic {ours} disagrees with Keras {theirs}; "
                           "this is a bug in cnnlab.shapes.")
