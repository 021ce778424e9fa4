"""Output-shape, parameter-count and multiply-add arithmetic for Conv2D, Flatten and Dense.

This is the notebook's "work out the shapes and the parameters by hand" as code. It is pure
Python: no NumPy, no TensorFlow, so it can judge an architecture (for example a trial's) before
anything is built. The tests check every rule here against Keras's own answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Padding = Literal["valid", "same"]
PADDINGS = ("valid", "same")


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
    """The per-layer table of an architecture and its totals."""

    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    def format(self) -> str:
        """The table as text, in the manner of ``model.summary()``."""
        header = ("layer", "type", "output shape", "params", "MACs")
        lines = [header] + [
            (r.name, r.kind, "(None, " + ", ".join(map(str, r.output_shape)) + ")",
             f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        align = ("<", "<", "<", ">", ">")

        def fmt(line: tuple[str, ...]) -> str:
            cells = zip(line, align, widths, strict=True)
            return "  ".join(f"{cell:{a}{w}}" for cell, a, w in cells).rstrip()

        rule = "-" * len(fmt(lines[0]))
        body = [fmt(line) for line in lines[1:]]
        input_text = "(None, " + ", ".join(map(str, self.input_shape)) + ")"
        return "\n".join(
            [f"input {input_text}", rule, fmt(lines[0]), rule, *body, rule,
             f"total params: {self.total_params:,}", f"total MACs per image: {self.total_macs:,}"]
        )
