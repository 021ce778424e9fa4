"""The notebook's convolution by hand, in NumPy (no TensorFlow).

``conv2d`` computes what ``keras.layers.Conv2D`` computes (a cross-correlation: the kernel is not
flipped), channels-last, with strides, ``valid``/``same`` padding by Keras's rule, several input
channels, several filters and a bias. The tests check it against the notebook's worked numbers and
against Keras itself.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.spec import shapes


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: int | tuple[int, int] = 1,
    padding: str = "valid",
) -> np.ndarray:
    """Channels-last 2-D convolution as Keras's Conv2D computes it (no activation).

    ``x`` is ``(batch, height, width, in_channels)``, or ``(height, width)`` for the notebook's
    single-channel exercises. ``kernel`` is Keras's layout ``(kh, kw, in_channels, filters)``, or
    ``(kh, kw)`` for one filter on one channel. ``bias`` has one value per filter. The result has
    the rank of ``x``: ``(batch, out_h, out_w, filters)`` or ``(out_h, out_w)``.
    """
    x = np.asarray(x)
    kernel = np.asarray(kernel)
    two_d = x.ndim == 2
    if two_d:
        if kernel.ndim != 2:
            raise ValueError(f"a 2-D input needs a 2-D kernel, not shape {kernel.shape}.")
        x = x[None, :, :, None]
        kernel = kernel[:, :, None, None]
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"x must be (batch, h, w, c) and kernel (kh, kw, c, filters); "
                         f"got shapes {x.shape} and {kernel.shape}.")
    kh, kw, in_c, filters = kernel.shape
    if x.shape[3] != in_c:
        raise ValueError(f"x has {x.shape[3]} channels but the kernel expects {in_c}.")
    sh, sw = shapes._pair(strides, "strides")
    if padding == "same":
        top, bottom = shapes.same_padding(x.shape[1], kh, sh)
        left, right = shapes.same_padding(x.shape[2], kw, sw)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    elif padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}.")
    if x.shape[1] < kh or x.shape[2] < kw:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {x.shape[1]}x{x.shape[2]} input.")

    # windows: (batch, out_h, out_w, in_c, kh, kw), taking every stride-th window.
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    out = np.einsum("bhwcij,ijcf->bhwf", windows, kernel, optimize=True)
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (filters,):
            raise ValueError(f"bias must have one value per filter ({filters}), not {bias.shape}.")
        out = out + bias
    return out[0, :, :, 0] if two_d else out
