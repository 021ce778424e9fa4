"""Batch normalisation, pooling, the GAP head and dropout: the arithmetic against real Keras
(rows, shapes, parameters), and the receptive field and effective stride against the gradient
support of a built trunk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnnlab.errors import ArchitectureError
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer

VARIANTS = [
    # Batch normalisation alone, and on a 'same' strided conv.
    Architecture(conv=(ConvLayer(8, 3, batchnorm=True),), dense=(16,)),
    Architecture(conv=(ConvLayer(6, 3, 2, "same", batchnorm=True),
                       ConvLayer(4, 3, batchnorm=True)), dense=()),
    # Pools of 2 and 3 on odd maps (25x25 after a 4x4 'valid' conv; 13x13 after 'same' s2).
    Architecture(conv=(ConvLayer(4, 4, pool="max"),), dense=(8,)),
    Architecture(conv=(ConvLayer(4, 4, pool="max", pool_size=3),), dense=(8,)),
    Architecture(conv=(ConvLayer(4, 4, pool="avg"),), dense=(8,)),
    Architecture(conv=(ConvLayer(4, 4, pool="avg", pool_size=3),), dense=(8,)),
    Architecture(conv=(ConvLayer(4, 3, 2, "same", pool="max", pool_size=3),
                       ConvLayer(4, 2, pool="avg", pool_size=3)), dense=()),
    # A pool that leaves exactly 1x1 is fine.
    # 28 -> conv 3 s3 -> 9 -> max3 -> 3 -> conv 1 -> 3 -> avg3 -> 1.
    Architecture(conv=(ConvLayer(4, 3, 3, "valid", pool="max", pool_size=3),
                       ConvLayer(4, 1, 1, "valid", pool="avg", pool_size=3)), dense=()),
    # The GAP head, with and without convolutions.
    Architecture(conv=(ConvLayer(8, 3), ConvLayer(16, 3, 2)), dense=(32,), head="gap"),
    Architecture(conv=(), dense=(), head="gap"),
    # Dropout: before the output only, and before every Dense.
    Architecture(conv=(ConvLayer(4, 5, 2),), dense=(), dropout=0.5),
    Architecture(conv=(ConvLayer(4, 5, 2),), dense=(32, 16), dropout=0.25),
    # A stack mixing everything, with rectangular kernels, strides and pools after them.
    Architecture(conv=(ConvLayer(8, 3, 1, "same", batchnorm=True, pool="max"),
                       ConvLayer(16, (3, 2), (1, 2), "valid", pool="avg", pool_size=3),
                       ConvLayer(12, (1, 3), 1, "same", batchnorm=True)),
                 dense=(32,), head="gap", dropout=0.25),
    # Dropout after conv blocks (plain and spatial), and 1x1 convolutions (issue 24).
    Architecture(conv=(ConvLayer(8, 3, 1, "same", batchnorm=True, pool="max", dropout=0.1,
                                 spatial_dropout=True),
                       ConvLayer(12, 1, dropout=0.2), ConvLayer(10, 1)), dense=(), head="gap"),
    Architecture(conv=(ConvLayer(4, 3, 2, dropout=0.3),), dense=(8,), dropout=0.5),
    Architecture(conv=(ConvLayer(6, (5, 3), (2, 1), "same", pool="max", pool_size=3),
                       ConvLayer(10, 3, (1, 2), "valid", batchnorm=True, pool="avg")),
                 dense=(24, 12), dropout=0.1),
    # Separable convolutions (issue 33): strided, 'valid', rectangular, 1x1, after a plain one,
    # with BN, pools and a GAP head.
    Architecture(conv=(ConvLayer(8, 3, 1, "same", separable=True, batchnorm=True),
                       ConvLayer(12, 5, 2, "valid", separable=True, pool="max"),
                       ConvLayer(10, 1, separable=True)), dense=(), head="gap"),
    Architecture(conv=(ConvLayer(6, 3, 2, "same"),
                       ConvLayer(16, (3, 5), (2, 1), "same", separable=True, pool="avg",
                                 dropout=0.1)), dense=(16,)),
]


@pytest.mark.parametrize("arch", VARIANTS, ids=lambda a: a.describe())
def test_rows_and_params_equal_keras(arch: Architecture) -> None:
    from cnnlab.train.model import build_model, check_layer_table, keras_layer_table

    model = build_model(arch, seed=0)
    table = arch.layer_table()
    assert [(r.name, r.output_shape, r.params) for r in table.rows] == keras_layer_table(model)
    assert table.total_params == model.count_params()
    check_layer_table(model, table)
    # The final feature map is what Flatten/GAP receives in Keras.
    head = model.get_layer(arch.head)
    assert tuple(head.input.shape[1:]) == table.final_feature_map
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    assert all(kinds[r.name] == r.kind for r in table.rows)


def test_no_dropout_means_no_dropout_layers() -> None:
    from cnnlab.train.model import build_model

    names = [layer.name for layer in build_model(NOTEBOOK_CNN, seed=0).layers]
    assert names == ["image", "conv1", "conv2", "conv3", "conv4", "flatten", "dense1", "output"]
    arch = Architecture(dense=(64, 32), dropout=0.5)
    names = [layer.name for layer in build_model(arch, seed=0).layers]
    assert names[5:] == ["flatten", "dropout1", "dense1", "dropout2", "dense2", "dropout3",
                         "output"]


def test_macs_by_hand() -> None:
    arch = VARIANTS[12]
    assert arch.describe() == (
        "8k3s1same+bn+max2-16k3x2s1x2valid+avg3-12k1x3s1same+bn-gap-d32-do0.25")
    rows = {r.name: r for r in arch.layer_table().rows}
    # conv1: 28x28x8 outputs, each 3*3*1 products.
    assert rows["conv1"].macs == 28 * 28 * 8 * 3 * 3 * 1
    # conv1_pool: 28 -> 14; conv2 on 14x14x8, kernel 3x2, strides 1x2 'valid': 12x7x16, each
    # 3*2*8 products; conv2_pool (avg3): 12x7 -> 4x2.
    assert rows["conv1_pool"].output_shape == (14, 14, 8)
    assert rows["conv2"].output_shape == (12, 7, 16)
    assert rows["conv2"].macs == 12 * 7 * 16 * 3 * 2 * 8
    assert rows["conv2_pool"].output_shape == (4, 2, 16)
    # conv3 (1x3 'same') on 4x2x16: 4x2x12, each 1*3*16 products; BN 4*12 parameters.
    assert rows["conv3"].macs == 4 * 2 * 12 * 1 * 3 * 16
    assert rows["conv3_bn"].params == 4 * 12
    # GAP: 12 features; dense1 12*32, output 32*10.
    assert rows["dense1"].macs == 12 * 32
    assert rows["output"].macs == 32 * 10
    # Batch normalisation, pools, GAP and dropout count no multiply-adds.
    for name in ("conv1_bn", "conv1_pool", "conv2_pool", "conv3_bn", "gap", "dropout1",
                 "dropout2"):
        assert rows[name].macs == 0
    assert arch.layer_table().total_macs == sum(r.macs for r in rows.values())


def test_pool_shrinking_below_one_pixel_names_the_layer() -> None:
    from cnnlab.train.model import build_model

    # 28 -> conv 5 s3 'valid' -> 8 -> max3 -> 2 -> conv 2 -> 1 -> max2 -> 0.
    arch = Architecture(conv=(ConvLayer(4, 5, 3, pool="max", pool_size=3),
                              ConvLayer(4, 2, pool="max")))
    with pytest.raises(ArchitectureError,
                       match=r"conv2_pool \(max2\) would shrink its 1x1x4 input to 0x0"):
        arch.layer_table()
    with pytest.raises(ArchitectureError, match="conv2_pool"):
        build_model(arch)
    with pytest.raises(ArchitectureError, match="conv1_pool"):
        Architecture(conv=(ConvLayer(4, 3, pool="avg", pool_size=27),)).derived_params()


# Receptive field and effective stride, measured: the trunk (convolutions, batch
# normalisation, pools) with all-ones kernels and zero biases on an all-ones input has only
# positive values and gradients, so the gradient of one final-map position with respect to the
# input is nonzero exactly on that position's receptive field. Average pools, because a max
# pool passes the gradient to one element of each window only. 'valid' padding, so that the
# field of position (p, q) starts at (p * jump_h, q * jump_w).
TRUNKS = [
    Architecture(conv=(ConvLayer(2, 3, 1), ConvLayer(2, 3, 2), ConvLayer(2, 3, 1),
                       ConvLayer(2, 3, 2)), dense=()),
    Architecture(conv=(ConvLayer(2, 3, batchnorm=True, pool="avg"),
                       ConvLayer(2, 3, batchnorm=True, pool="avg")), dense=()),
    Architecture(conv=(ConvLayer(2, 5, 2, pool="avg", pool_size=3), ConvLayer(2, 3)), dense=(),
                 head="gap"),
    Architecture(conv=(ConvLayer(2, (3, 5), (1, 2), pool="avg", pool_size=3),
                       ConvLayer(2, (2, 3), (2, 1), batchnorm=True),
                       ConvLayer(2, (4, 1), 1, pool="avg")), dense=()),
]


def _trunk_gradient_support(arch: Architecture, position: tuple[int, int]) -> tuple[int, ...]:
    """(top, left, height, width) of the input pixels on which final-map ``position`` depends."""
    import keras
    import tensorflow as tf

    from cnnlab.train.model import build_model

    model = build_model(arch, seed=0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.ones_like(kernel), np.zeros_like(bias)])
    trunk = keras.Model(inputs=model.inputs, outputs=model.get_layer(arch.head).input)
    x = tf.ones((1, *arch.input_shape))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = trunk(x, training=False)
        target = y[0, position[0], position[1], 0]
    grad = tape.gradient(target, x).numpy()[0].sum(axis=-1)
    rows, cols = np.nonzero(grad)
    return (int(rows.min()), int(cols.min()), int(rows.max() - rows.min() + 1),
            int(cols.max() - cols.min() + 1))


@pytest.mark.parametrize("arch", TRUNKS, ids=lambda a: a.describe())
def test_receptive_field_and_stride_equal_gradient_support(arch: Architecture) -> None:
    arch = dataclasses.replace(arch, input_shape=(64, 64, 1))
    table = arch.layer_table()
    field, jump = table.receptive_field, table.effective_stride
    height, width, _ = table.final_feature_map
    p, q = height // 2, width // 2
    assert p + 1 < height and q + 1 < width  # room to shift by one
    top, left, *size = _trunk_gradient_support(arch, (p, q))
    assert tuple(size) == field
    assert (top, left) == (p * jump[0], q * jump[1])
    # Moving the output position by one moves the field by the stride.
    down = _trunk_gradient_support(arch, (p + 1, q))
    right = _trunk_gradient_support(arch, (p, q + 1))
    assert down == (top + jump[0], left, *field)
    assert right == (top, left + jump[1], *field)


def test_notebook_receptive_field_with_same_padding() -> None:
    # 'same' padding moves the field, not its size: the notebook's CNN on 64x64 inputs, at the
    # centre of its 15x15 final map, sees 13x13 pixels; one step moves it by 4.
    arch = dataclasses.replace(NOTEBOOK_CNN, input_shape=(64, 64, 1), dense=())
    table = arch.layer_table()
    assert table.final_feature_map == (15, 15, 64)
    assert (table.receptive_field, table.effective_stride) == ((13, 13), (4, 4))
    top, left, *size = _trunk_gradient_support(arch, (7, 7))
    assert tuple(size) == (13, 13)
    assert _trunk_gradient_support(arch, (8, 7)) == (top + 4, left, 13, 13)


def test_separable_macs_by_hand_and_by_tensorflow() -> None:
    """A SeparableConv2D's multiply-adds are its depthwise products (kh*kw*C_in per output
    position) plus its pointwise ones (C_in*F per output position), both at the output's size
    (MobileNets eq. 5): checked by hand and against TensorFlow's own op statistics
    (``tf.compat.v1.profiler``'s float operations, 2 per multiply-add)."""
    import tensorflow as tf

    arch = Architecture(conv=(ConvLayer(8, 3, 1, "same"),
                              ConvLayer(16, 5, 2, "valid", separable=True)), dense=())
    rows = {r.name: r for r in arch.layer_table().rows}
    # conv2 on 28x28x8, 5x5 stride 2 'valid': 12x12x16; 5*5*8 + 8*16 products per position.
    assert rows["conv2"].output_shape == (12, 12, 16)
    assert rows["conv2"].params == 5 * 5 * 8 + 8 * 16 + 16
    assert rows["conv2"].macs == 12 * 12 * (5 * 5 * 8 + 8 * 16)

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, 28, 28, 8))
        tf.keras.layers.SeparableConv2D(16, 5, strides=2, padding="valid")(image)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        found = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    flops, stack = {}, list(found.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        flops[node.name] = node.float_ops
    assert flops["DepthwiseConv2dNative"] + flops["Conv2D"] == 2 * rows["conv2"].macs
