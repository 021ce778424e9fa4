"""Output-shape, parameter-count and multiply-add arithmetic for Conv2D, SeparableConv2D,
BatchNormalization, MaxPooling2D/AveragePooling2D, Flatten/GlobalAveragePooling2D, Dropout and
Dense, and the receptive field and effective stride of a stack of convolutions and pools.

This is the notebook's "work out the shapes and the parameters by hand" as code. It is pure
Python: no NumPy, no TensorFlow, so it can judge an architecture (for example a trial's) before
anything is built. The tests check every rule here against Keras's own answers.

Multiply-adds (MACs) count the products of an input with a learned weight, those of Conv2D,
SeparableConv2D (its depthwise and its pointwise products) and Dense only. BatchNormalization
counts 0: at inference it is an elementwise per-channel scale and shift (one multiply and one
add per output value), like the ReLU that MAC counts leave out too, not a sum of products over a
window. Pooling, global average pooling, Flatten and Dropout count 0 as well (comparisons, sums,
copies).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Padding = Literal["valid", "same"]
PADDINGS = ("valid", "same")
POOLS = ("none", "max", "avg")
"""Pooling after a convolution: none, MaxPooling2D or AveragePooling2D."""
HEADS = ("flatten", "gap")
"""From the last feature map to the Dense layers: Flatten or GlobalAveragePooling2D."""


def _pair(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a positive integer or a pair of them, not {value!r}.")
    if isinstance(value, int):
        pair = (value, value)
    else:
        pair = tuple(value)
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise ValueError(f"{what} must be a positive integer or a pair of them, not {value!r}.")
    if min(pair) < 1:
        raise ValueError(f"{what} must be at least 1, not {value!r}.")
    return pair  # type: ignore[return-value]


def conv_output_length(length: int, kernel: int, stride: int, padding: str) -> int:
    """Length of one spatial axis after a convolution, by Keras's rules.

    ``valid``: ``floor((n - k) / s) + 1`` (0 when the kernel does not fit);
    ``same``: ``ceil(n / s)``, whatever the kernel.
    """
    if padding == "valid":
        return 0 if length < kernel else (length - kernel) // stride + 1
    if padding == "same":
        return math.ceil(length / stride)
    raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}.")


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """Zeros Keras (TensorFlow) adds before and after one axis for ``padding='same'``.

    The total is what makes ``ceil(n / s)`` outputs fit; an odd total puts the extra zero
    after, not before.
    """
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def conv2d_output_shape(
    input_shape: tuple[int, int, int],
    filters: int,
    kernel_size: int | tuple[int, int],
    strides: int | tuple[int, int] = 1,
    padding: str = "valid",
) -> tuple[int, int, int]:
    """(height, width, channels) after a channels-last Conv2D; batch dimension excluded."""
    height, width, _ = input_shape
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(strides, "strides")
    return (
        conv_output_length(height, kh, sh, padding),
        conv_output_length(width, kw, sw, padding),
        filters,
    )


def conv2d_params(in_channels: int, filters: int, kernel_size: int | tuple[int, int]) -> int:
    """Weights plus biases of a Conv2D: ``(kh * kw * in_channels + 1) * filters``."""
    kh, kw = _pair(kernel_size, "kernel_size")
    return (kh * kw * in_channels + 1) * filters


def conv2d_macs(output_shape: tuple[int, int, int], in_channels: int,
                kernel_size: int | tuple[int, int]) -> int:
    """Multiply-adds of one Conv2D forward pass for one image."""
    kh, kw = _pair(kernel_size, "kernel_size")
    out_h, out_w, out_c = output_shape
    return out_h * out_w * out_c * kh * kw * in_channels


def separable_conv2d_params(in_channels: int, filters: int,
                            kernel_size: int | tuple[int, int], depth_multiplier: int = 1) -> int:
    """Weights plus biases of a SeparableConv2D: a depthwise ``kh x kw`` kernel per input channel
    (``depth_multiplier`` of them), no bias, then a pointwise 1x1 convolution to ``filters``
    with a bias: ``kh * kw * in_channels * m + in_channels * m * filters + filters``.

    Keras 3's ``SeparableConv2D`` weights: ``depthwise_kernel`` (kh, kw, in, m),
    ``pointwise_kernel`` (1, 1, in * m, filters), ``bias`` (filters,); Howard et al., "MobileNets"
    (arXiv:1704.04861), section 3.1."""
    kh, kw = _pair(kernel_size, "kernel_size")
    depthwise = in_channels * depth_multiplier
    return kh * kw * depthwise + depthwise * filters + filters


def separable_conv2d_macs(output_shape: tuple[int, int, int], in_channels: int,
                          kernel_size: int | tuple[int, int], depth_multiplier: int = 1) -> int:
    """Multiply-adds of one SeparableConv2D forward pass for one image: the depthwise step
    ``kh * kw * in * m`` per output position, then the pointwise step ``in * m * filters`` per
    output position, both at the output's ``H_out x W_out`` (the stride is the depthwise
    step's; MobileNets eq. 5, with D_F x D_F read as the output's size)."""
    kh, kw = _pair(kernel_size, "kernel_size")
    out_h, out_w, out_c = output_shape
    depthwise = in_channels * depth_multiplier
    return out_h * out_w * depthwise * (kh * kw + out_c)


def pool2d_output_shape(input_shape: tuple[int, int, int],
                        pool_size: int | tuple[int, int]) -> tuple[int, int, int]:
    """(height, width, channels) after MaxPooling2D/AveragePooling2D with strides equal to the
    pool size and ``padding='valid'`` (Keras's rule ``floor((n - p) / p) + 1``; 0 when the window
    does not fit)."""
    height, width, channels = input_shape
    ph, pw = _pair(pool_size, "pool_size")
    return (conv_output_length(height, ph, ph, "valid"),
            conv_output_length(width, pw, pw, "valid"), channels)


def batchnorm_params(channels: int) -> int:
    """Parameters of a BatchNormalization over ``channels``, as Keras's ``count_params()``
    counts them: gamma and beta (trained) plus the moving mean and variance (not trained)."""
    return 4 * channels


def global_average_pool_shape(input_shape: tuple[int, int, int]) -> tuple[int]:
    """Output of GlobalAveragePooling2D: one average per channel."""
    return (input_shape[2],)


def receptive_field(
    windows: Iterable[tuple[int | tuple[int, int], int | tuple[int, int]]],
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Receptive field and effective stride (the jump), per axis, of one position of the last
    feature map on the input, for a stack of (kernel or pool window, strides) in order.

    ``r_out = r_in + (k - 1) * j_in`` and ``j_out = j_in * s``, from ``r = j = 1`` on the input.
    Padding moves where the field sits, not its size.
    """
    field, jump = [1, 1], [1, 1]
    for kernel, strides in windows:
        k, s = _pair(kernel, "kernel_size"), _pair(strides, "strides")
        for axis in (0, 1):
            field[axis] += (k[axis] - 1) * jump[axis]
            jump[axis] *= s[axis]
    return (field[0], field[1]), (jump[0], jump[1])


def dense_params(in_features: int, units: int) -> int:
    """Weights plus biases of a Dense layer: ``(in_features + 1) * units``."""
    return (in_features + 1) * units


def dense_macs(in_features: int, units: int) -> int:
    """Multiply-adds of one Dense forward pass for one example."""
    return in_features * units


@dataclass(frozen=True)
class LayerRow:
    """One line of the per-layer table, as ``model.summary()`` shows it, plus multiply-adds."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class LayerTable:
    """The per-layer table of an architecture, its totals, and what its convolutions and pools
    make of the input: the receptive field and effective stride (height, width) of one position
    of the final feature map, and that map's (height, width, channels) before Flatten/GAP."""

    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    receptive_field: tuple[int, int]
    effective_stride: tuple[int, int]
    final_feature_map: tuple[int, int, int]

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    def format(self) -> str:
        """The table as text, in the manner of ``model.summary()``."""
        return "\n".join(
            [*_table_lines(self.input_shape, self.rows),
             f"total params: {self.total_params:,}", f"total MACs per image: {self.total_macs:,}",
             f"receptive field: {format_dims(self.receptive_field)}",
             f"effective stride: {format_dims(self.effective_stride)}",
             f"final feature map: {format_dims(self.final_feature_map)}"]
        )


FAILED_MARK = "<- cannot be built"
"""What ``format_failed_rows`` writes after the row of the layer that cannot be built."""


def format_failed_rows(input_shape: tuple[int, ...], rows: Iterable[LayerRow]) -> str:
    """The table of an architecture that cannot be built, as ``LayerTable.format`` lays it out:
    ``rows`` are those up to and including the failing layer, whose row (the last, its output 0
    high or wide) ends in ``FAILED_MARK``; no totals, since there is no network to total."""
    lines = _table_lines(input_shape, tuple(rows))
    lines[-2] += f"  {FAILED_MARK}"
    return "\n".join(lines)


def _table_lines(input_shape: tuple[int, ...], rows: tuple[LayerRow, ...]) -> list[str]:
    """The input line, then the rows between rules under a header, aligned."""
    header = ("layer", "type", "output shape", "params", "MACs")
    lines = [header] + [
        (r.name, r.kind, "(None, " + ", ".join(map(str, r.output_shape)) + ")",
         f"{r.params:,}", f"{r.macs:,}")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    align = ("<", "<", "<", ">", ">")

    def fmt(line: tuple[str, ...]) -> str:
        cells = zip(line, align, widths, strict=True)
        return "  ".join(f"{cell:{a}{w}}" for cell, a, w in cells).rstrip()

    rule = "-" * len(fmt(lines[0]))
    input_text = "(None, " + ", ".join(map(str, input_shape)) + ")"
    return [f"input {input_text}", rule, fmt(lines[0]), rule,
            *(fmt(line) for line in lines[1:]), rule]


def format_dims(dims: Iterable[int]) -> str:
    """``(7, 7, 64)`` as ``7x7x64``."""
    return "x".join(str(d) for d in dims)
