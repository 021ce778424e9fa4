"""Shape, parameter and MAC arithmetic, checked against Keras's own answers."""

from __future__ import annotations

import pytest

from cnnlab.errors import ArchitectureError
from cnnlab.spec import shapes
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer

# The notebook's exercises: 2 filters of 3x3, stride 1, valid padding, on a batch of 4.
EXERCISES = [
    ((4, 28, 28, 3), (4, 26, 26, 2)),
    ((4, 30, 28, 3), (4, 28, 26, 2)),
    ((4, 28, 30, 3), (4, 26, 28, 2)),
    ((4, 28, 28, 1), (4, 26, 26, 2)),
]


@pytest.mark.parametrize(("input_shape", "expected"), EXERCISES)
def test_notebook_shape_exercises(input_shape: tuple, expected: tuple) -> None:
    import keras
    import numpy as np

    ours = (input_shape[0], *shapes.conv2d_output_shape(input_shape[1:], 2, 3, 1, "valid"))
    assert ours == expected
    layer = keras.layers.Conv2D(2, 3, strides=1, padding="valid")
    out = layer(np.zeros(input_shape, np.float32))
    assert tuple(out.shape) == expected
    assert shapes.conv2d_params(input_shape[3], 2, 3) == layer.count_params()


def test_notebook_cnn_table_equals_keras() -> None:
    from cnnlab.train.model import build_model, keras_layer_table

    table = NOTEBOOK_CNN.layer_table()
    assert table.total_params == 361_322
    model = build_model(NOTEBOOK_CNN, seed=0)
    assert model.count_params() == 361_322
    assert [(r.name, r.output_shape, r.params) for r in table.rows] == keras_layer_table(model)
    assert [r.output_shape for r in table.rows] == [
        (28, 28, 32), (13, 13, 32), (13, 13, 64), (6, 6, 64), (2304,), (128,), (10,)]


VARIANTS = [
    Architecture(conv=(ConvLayer(16, 5, 1, "valid"),), dense=(64,)),
    Architecture(conv=(ConvLayer(8, 7, 3, "same"), ConvLayer(4, 2, 2, "valid")), dense=()),
    Architecture(conv=(ConvLayer(6, (3, 5), (2, 1), "same"), ConvLayer(12, 4, 3, "same"),
                       ConvLayer(10, 1, 1, "valid")), dense=(32, 16)),
    Architecture(conv=(ConvLayer(3, 5, 2, "valid"), ConvLayer(3, 5, 2, "valid"),
                       ConvLayer(3, 2, 1, "valid")), dense=(20,)),
    Architecture(conv=(), dense=(10,)),
]


@pytest.mark.parametrize("arch", VARIANTS, ids=lambda a: a.describe())
def test_variants_equal_keras(arch: Architecture) -> None:
    from cnnlab.train.model import build_model, keras_layer_table

    model = build_model(arch, seed=0)
    table = arch.layer_table()
    assert [(r.name, r.output_shape, r.params) for r in table.rows] == keras_layer_table(model)
    assert table.total_params == model.count_params()


def test_same_padding_rule() -> None:
    # TensorFlow's rule: the odd zero goes after; the total makes ceil(n/s) outputs fit.
    assert shapes.same_padding(28, 3, 1) == (1, 1)
    assert shapes.same_padding(28, 4, 1) == (1, 2)
    assert shapes.same_padding(28, 3, 2) == (0, 1)
    assert shapes.same_padding(7, 1, 3) == (0, 0)
    assert shapes.conv_output_length(28, 3, 2, "same") == 14
    assert shapes.conv_output_length(28, 3, 2, "valid") == 13
    assert shapes.conv_output_length(2, 3, 1, "valid") == 0


def test_macs_by_hand() -> None:
    rows = {r.name: r for r in NOTEBOOK_CNN.layer_table().rows}
    assert rows["conv1"].macs == 28 * 28 * 32 * 3 * 3 * 1
    assert rows["conv2"].macs == 13 * 13 * 32 * 3 * 3 * 32
    assert rows["dense1"].macs == 2304 * 128
    assert rows["flatten"].macs == 0


def test_shrinking_below_one_pixel_names_layer_and_shapes() -> None:
    arch = Architecture(conv=(ConvLayer(8, 5, 3), ConvLayer(8, 5, 3), ConvLayer(8, 5, 3)))
    with pytest.raises(ArchitectureError, match=r"conv3 \(8k5s3valid\).*2x2x8 input to 0x0"):
        arch.layer_table()


def test_rejected_before_anything_is_built() -> None:
    from cnnlab.train.model import build_model

    arch = Architecture(conv=(ConvLayer(4, 29, 1),))
    with pytest.raises(ArchitectureError, match="conv1"):
        build_model(arch)


def test_table_text_has_totals() -> None:
    text = NOTEBOOK_CNN.layer_table().format()
    assert "total params: 361,322" in text
    assert "conv2    Conv2D   (None, 13, 13, 32)" in text


def test_notebook_cnn_derived_values() -> None:
    # By hand, per axis, r_out = r_in + (k - 1) * j_in and j_out = j_in * s from r = j = 1:
    # conv1 k3 s1: r = 1 + 2*1 = 3,  j = 1
    # conv2 k3 s2: r = 3 + 2*1 = 5,  j = 2
    # conv3 k3 s1: r = 5 + 2*2 = 9,  j = 2
    # conv4 k3 s2: r = 9 + 2*2 = 13, j = 4
    # Final map: 28 -same-> 28 -valid s2-> 13 -same-> 13 -valid s2-> 6, with 64 channels.
    table = NOTEBOOK_CNN.layer_table()
    assert table.receptive_field == (13, 13)
    assert table.effective_stride == (4, 4)
    assert table.final_feature_map == (6, 6, 64)
    assert NOTEBOOK_CNN.derived_params() == {
        "receptive_field": "13x13", "effective_stride": "4x4", "final_feature_map": "6x6x64"}
    assert table.format().endswith(
        "receptive field: 13x13\neffective stride: 4x4\nfinal feature map: 6x6x64")


def test_pool_and_gap_and_batchnorm_rules() -> None:
    # Keras's pools, strides = pool size, 'valid': floor((n - p) / p) + 1, 0 if p > n.
    assert shapes.pool2d_output_shape((25, 25, 4), 2) == (12, 12, 4)
    assert shapes.pool2d_output_shape((25, 24, 4), 3) == (8, 8, 4)
    assert shapes.pool2d_output_shape((3, 7, 1), (3, 2)) == (1, 3, 1)
    assert shapes.pool2d_output_shape((2, 9, 1), 3) == (0, 3, 1)
    assert shapes.global_average_pool_shape((6, 6, 64)) == (64,)
    assert shapes.batchnorm_params(32) == 128


def test_receptive_field_rule() -> None:
    assert shapes.receptive_field([]) == ((1, 1), (1, 1))
    # conv 3 s1, pool 2: r = 3, then 3 + 1*1 = 4; j = 2.
    assert shapes.receptive_field([(3, 1), (2, 2)]) == ((4, 4), (2, 2))
    # Rectangular: height k3 s1 then k2 s2; width k5 s2 then k3 s1.
    # h: r = 3, j = 1; r = 3 + 1*1 = 4, j = 2.  w: r = 5, j = 2; r = 5 + 2*2 = 9, j = 2.
    assert shapes.receptive_field([((3, 5), (1, 2)), ((2, 3), (2, 1))]) == ((4, 9), (2, 2))


def test_no_convolutions_sees_one_pixel() -> None:
    table = Architecture(conv=(), dense=(10,)).layer_table()
    assert (table.receptive_field, table.effective_stride) == ((1, 1), (1, 1))
    assert table.final_feature_map == (28, 28, 1)


# --- cnnlab shapes on a network that cannot be built ----------------------------------------

def test_shapes_prints_the_table_up_to_the_layer_that_cannot_be_built(capsys) -> None:
    from cnnlab import cli

    argv = ["shapes", "--conv", "8:5:2", "--conv", "8:5:2", "--conv", "8:5:2", "--conv", "8:3"]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "architecture 8k5s2valid-8k5s2valid-8k5s2valid-8k3s1valid-d128"
    body = [line for line in lines if line.startswith("conv")]
    assert [line.split()[0] for line in body] == ["conv1", "conv2", "conv3"]  # Not conv4.
    assert body[1].split()[2:] == ["(None,", "4,", "4,", "8)", "1,608", "25,600"]
    assert body[2].endswith(shapes.FAILED_MARK) and "(None, 0, 0, 8)" in body[2]
    assert not any(shapes.FAILED_MARK in line for line in body[:2])
    assert "total params" not in captured.out  # No network, no totals.
    err = captured.err.strip()
    assert "\n" not in err and err.startswith("cnnlab shapes: error: layer conv3 (8k5s2valid)")


def test_a_pool_that_does_not_fit_is_the_marked_row() -> None:
    arch = Architecture.from_strings(["8:3:1:same:max2", "8:3:2:valid:max8"], ["16"])
    with pytest.raises(ArchitectureError, match=r"conv2_pool \(max8\)") as caught:
        arch.layer_table()
    rows = caught.value.rows
    assert [row.name for row in rows] == ["conv1", "conv1_pool", "conv2", "conv2_pool"]
    assert rows[-1].output_shape == (0, 0, 8)
    text = shapes.format_failed_rows(caught.value.input_shape, rows)
    assert text.splitlines()[-2].startswith("conv2_pool  MaxPooling2D")
    assert text.splitlines()[-2].endswith(shapes.FAILED_MARK)
    # The rows that fit are those of the table the same layers make when they do fit.
    fits = Architecture.from_strings(["8:3:1:same:max2", "8:3:2:valid"], ["16"]).layer_table()
    assert rows[:3] == fits.rows[:3]


def test_dense_0_suggests_the_option_for_no_dense_layer_as_typed(capsys) -> None:
    import shlex

    from cnnlab import cli

    assert cli.main(["shapes", "--dense", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab shapes: error: dense units '0'") and "\n" not in err
    suggested = err.split("give ", 1)[1].rstrip(".")
    assert suggested == "--dense ''"
    # The suggestion, pasted after the same command, is a network with no hidden Dense layer.
    assert cli.main(["shapes", *shlex.split(suggested)]) == 0
    out = capsys.readouterr().out
    assert "dense1" not in out and "output   Dense    (None, 10)" in out
