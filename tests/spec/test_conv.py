"""The NumPy convolution against the notebook's worked numbers and against Keras's Conv2D."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.spec.conv import conv2d

X = np.array([[6, 1, 7, 3, 6, 7], [3, 2, 2, 8, 6, 1], [8, 5, 3, 0, 1, 8],
              [8, 7, 8, 3, 4, 8], [5, 4, 7, 3, 6, 4], [7, 3, 2, 5, 5, 2]])
F = np.array([[0, 3, 0], [-1, 1, 2], [4, 0, 1]])
F2 = np.array([[-3, 0, 3, -1, 3], [3, 0, -3, -5, 0], [-2, -3, -5, 1, 2],
               [-4, 2, 4, -1, -4], [1, -1, 0, -4, -2]])


def test_notebook_v() -> None:
    expected = [[41, 57, 40, 26], [49, 35, 59, 55], [57, 35, 37, 36], [64, 50, 30, 45]]
    np.testing.assert_array_equal(conv2d(X, F), expected)


def test_notebook_v2() -> None:
    np.testing.assert_array_equal(conv2d(X, F2), [[-91, -100], [-81, -43]])


def test_is_cross_correlation_not_flipped_convolution() -> None:
    # A flipped kernel (true convolution) would give a different top-left value.
    assert conv2d(X, F)[0, 0] == int((X[:3, :3] * F).sum()) == 41
    assert conv2d(X, F)[0, 0] != int((X[:3, :3] * F[::-1, ::-1]).sum())


def test_same_padding_and_strides_on_notebook_input() -> None:
    assert conv2d(X, F, padding="same").shape == (6, 6)
    assert conv2d(X, F, strides=2).shape == (2, 2)
    np.testing.assert_array_equal(conv2d(X, F, strides=2), [[41, 40], [57, 37]])
    # 'same' keeps the valid results in the middle.
    np.testing.assert_array_equal(conv2d(X, F, padding="same")[1:5, 1:5], conv2d(X, F))


def test_rejects_mismatched_channels_and_bad_padding() -> None:
    with pytest.raises(ValueError, match="channels"):
        conv2d(np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 3, 4)))
    with pytest.raises(ValueError, match="padding"):
        conv2d(X, F, padding="full")
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(X, np.ones((7, 7)))


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_equals_keras_conv2d(kernel: int, strides: int, padding: str) -> None:
    import keras

    rng = np.random.default_rng(1000 * kernel + 10 * strides + (padding == "same"))
    x = rng.normal(size=(2, 11, 9, 3)).astype(np.float32)
    w = rng.normal(size=(kernel, kernel, 3, 4)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    layer = keras.layers.Conv2D(4, kernel, strides=strides, padding=padding)
    layer.build(x.shape)
    layer.set_weights([w, b])
    expected = keras.ops.convert_to_numpy(layer(x))
    ours = conv2d(x, w, b, strides=strides, padding=padding)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_rectangular_kernel_and_strides_equal_keras() -> None:
    import keras

    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 10, 13, 2)).astype(np.float32)
    w = rng.normal(size=(2, 4, 2, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    for padding in ("valid", "same"):
        layer = keras.layers.Conv2D(3, (2, 4), strides=(3, 2), padding=padding)
        layer.build(x.shape)
        layer.set_weights([w, b])
        np.testing.assert_allclose(conv2d(x, w, b, (3, 2), padding),
                                   keras.ops.convert_to_numpy(layer(x)), rtol=1e-4, atol=1e-4)
