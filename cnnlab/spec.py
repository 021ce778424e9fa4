"""The architecture spec: frozen dataclasses for the MNIST CNN, with the notebook's CNN as default.

A spec is plain data. ``Architecture.layer_table()`` judges it with the pure arithmetic in
``cnnlab.shapes`` (a feature map that would shrink below 1x1 is an ``ArchitectureError`` naming
the layer and the shapes) before any framework is imported; ``cnnlab.model`` builds it in Keras.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cnnlab import shapes
from cnnlab.errors import ArchitectureError

MNIST_INPUT_SHAPE = (28, 28, 1)
MNIST_CLASSES = 10


@dataclass(frozen=True)
class ConvLayer:
    """One Conv2D layer (ReLU): filters, square or rectangular kernel, strides and padding."""

    filters: int
    kernel_size: int | tuple[int, int] = 3
    strides: int | tuple[int, int] = 1
    padding: str = "valid"

    def __post_init__(self) -> None:
        if isinstance(self.filters, bool) or not isinstance(self.filters, int) or self.filters < 1:
            raise ArchitectureError(f"filters must be a positive integer, not {self.filters!r}.")
        # Normalise pairs given as lists (from TOML) to tuples, so that specs stay hashable.
        for name in ("kernel_size", "strides"):
            value = getattr(self, name)
            try:
                pair = shapes._pair(value, name)
            except ValueError as err:
                raise ArchitectureError(str(err)) from None
            object.__setattr__(self, name, pair[0] if pair[0] == pair[1] else pair)
        if self.padding not in shapes.PADDINGS:
            raise ArchitectureError(f"padding must be 'valid' or 'same', not {self.padding!r}.")

    def describe(self) -> str:
        """Compact form used in run names and parameters, e.g. ``32k3s2valid``."""
        kernel, strides = _fmt_pair(self.kernel_size), _fmt_pair(self.strides)
        return f"{self.filters}k{kernel}s{strides}{self.padding}"


@dataclass(frozen=True)
class Architecture:
    """Conv2D layers, then Flatten, then Dense (ReLU) layers, then Dense(10, softmax)."""

    conv: tuple[ConvLayer, ...] = field(default_factory=lambda: NOTEBOOK_CONV)
    dense: tuple[int, ...] = (128,)
    input_shape: tuple[int, int, int] = MNIST_INPUT_SHAPE
    num_classes: int = MNIST_CLASSES

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv", tuple(
            layer if isinstance(layer, ConvLayer) else ConvLayer(**layer) for layer in self.conv))
        object.__setattr__(self, "dense", tuple(self.dense))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        for units in self.dense:
            if isinstance(units, bool) or not isinstance(units, int) or units < 1:
                raise ArchitectureError(f"dense units must be positive integers, not {units!r}.")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ArchitectureError(
                f"input_shape must be (height, width, channels), not {self.input_shape!r}.")

    # Names follow the Keras layers that cnnlab.model builds, so tables can be compared.
    def conv_name(self, index: int) -> str:
        return f"conv{index + 1}"

    def dense_name(self, index: int) -> str:
        return f"dense{index + 1}"

    def layer_table(self) -> shapes.LayerTable:
        """Per-layer output shapes, parameters and multiply-adds.

        Raises ``ArchitectureError`` if a feature map would shrink below 1x1.
        """
        rows = []
        shape = self.input_shape
        for i, layer in enumerate(self.conv):
            out = shapes.conv2d_output_shape(shape, layer.filters, layer.kernel_size,
                                             layer.strides, layer.padding)
            if min(out[:2]) < 1:
                raise ArchitectureError(
                    f"layer {self.conv_name(i)} ({layer.describe()}) would shrink its "
                    f"{shape[0]}x{shape[1]}x{shape[2]} input to {out[0]}x{out[1]}: the kernel "
                    f"does not fit; use a smaller kernel, stride 1 or 'same' padding.")
            rows.append(shapes.LayerRow(
                self.conv_name(i), "Conv2D", out,
                shapes.conv2d_params(shape[2], layer.filters, layer.kernel_size),
                shapes.conv2d_macs(out, shape[2], layer.kernel_size)))
            shape = out
        features = shape[0] * shape[1] * shape[2]
        rows.append(shapes.LayerRow("flatten", "Flatten", (features,), 0, 0))
        for i, units in enumerate(self.dense):
            rows.append(shapes.LayerRow(self.dense_name(i), "Dense", (units,),
                                        shapes.dense_params(features, units),
                                        shapes.dense_macs(features, units)))
            features = units
        rows.append(shapes.LayerRow("output", "Dense", (self.num_classes,),
                                    shapes.dense_params(features, self.num_classes),
                                    shapes.dense_macs(features, self.num_classes)))
        return shapes.LayerTable(self.input_shape, tuple(rows))

    def describe(self) -> str:
        """Compact one-line form, e.g. ``32k3s1same-32k3s2valid-64k3s1same-64k3s2valid-d128``."""
        parts = [layer.describe() for layer in self.conv] + [f"d{u}" for u in self.dense]
        return "-".join(parts) or "d0"

    def to_params(self) -> dict[str, Any]:
        """Flat parameters for tracking: ``n_conv``, ``conv1_filters`` ... ``dense1_units``."""
        params: dict[str, Any] = {"n_conv": len(self.conv), "n_dense": len(self.dense),
                                  "architecture": self.describe()}
        for i, layer in enumerate(self.conv):
            for f in fields(ConvLayer):
                params[f"{self.conv_name(i)}_{f.name}"] = getattr(layer, f.name)
        for i, units in enumerate(self.dense):
            params[f"{self.dense_name(i)}_units"] = units
        return params

    def to_dict(self) -> dict[str, Any]:
        """A TOML/JSON-ready dict that ``Architecture.from_dict`` reads back."""
        return {
            "conv": [{f.name: _plain(getattr(layer, f.name)) for f in fields(ConvLayer)}
                     for layer in self.conv],
            "dense": list(self.dense),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "architecture") -> Architecture:
        """Read ``{"conv": [{"filters": 32, ...}, ...], "dense": [128]}``.

        Unknown keys are errors that name the key.
        """
        if not isinstance(data, dict):
            raise ArchitectureError(f"{where} must be a table, not {type(data).__name__}.")
        unknown = set(data) - {"conv", "dense"}
        if unknown:
            raise ArchitectureError(f"{where} has unknown key(s) {sorted(unknown)}; "
                                    "expected 'conv' and 'dense'.")
        conv_known = {f.name for f in fields(ConvLayer)}
        conv = []
        for i, layer in enumerate(data.get("conv", [])):
            if not isinstance(layer, dict):
                raise ArchitectureError(f"{where}.conv[{i}] must be a table.")
            bad = set(layer) - conv_known
            if bad:
                raise ArchitectureError(f"{where}.conv[{i}] has unknown key(s) {sorted(bad)}; "
                                        f"expected some of {sorted(conv_known)}.")
            if "filters" not in layer:
                raise ArchitectureError(f"{where}.conv[{i}] needs 'filters'.")
            try:
                conv.append(ConvLayer(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in layer.items()}))
            except ArchitectureError as err:
                raise ArchitectureError(f"{where}.conv[{i}]: {err}") from None
        dense = data.get("dense", [128])
        if isinstance(dense, int):
            dense = [dense]
        return cls(conv=tuple(conv), dense=tuple(dense))

    @classmethod
    def from_file(cls, path: str | Path) -> Architecture:
        """Read an architecture from TOML (``[[conv]]`` tables and ``dense = [...]``) or from the
        ``architecture.json`` that every tracked run stores."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ArchitectureError(f"architecture file {path} does not exist.") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            kind = "JSON" if path.suffix == ".json" else "TOML"
            raise ArchitectureError(
                f"architecture file {path} is not valid {kind}: {err}.") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_strings(cls, conv: list[str], dense: list[str] | None = None) -> Architecture:
        """Parse the command-line form: each conv layer ``FILTERS:KERNEL[:STRIDES[:PADDING]]``
        (kernel and strides may be ``3x5``), dense units as integers or comma lists."""
        layers = []
        for text in conv:
            parts = text.strip().split(":")
            if not 2 <= len(parts) <= 4:
                raise ArchitectureError(
                    f"conv layer {text!r} must look like FILTERS:KERNEL[:STRIDES[:PADDING]], "
                    "e.g. 32:3:2:valid.")
            try:
                filters = int(parts[0])
                kernel = _parse_pair(parts[1])
                strides = _parse_pair(parts[2]) if len(parts) > 2 else 1
            except ValueError:
                raise ArchitectureError(
                    f"conv layer {text!r} must look like FILTERS:KERNEL[:STRIDES[:PADDING]] "
                    "with integers, e.g. 32:3:2:valid.") from None
            padding = parts[3] if len(parts) > 3 else "valid"
            try:
                layers.append(ConvLayer(filters, kernel, strides, padding))
            except ArchitectureError as err:
                raise ArchitectureError(f"conv layer {text!r}: {err}") from None
        units: list[int] = []
        for text in dense if dense is not None else ["128"]:
            for piece in str(text).split(","):
                if piece.strip():
                    try:
                        units.append(int(piece))
                    except ValueError:
                        raise ArchitectureError(
                            f"dense units {piece.strip()!r} must be an integer.") from None
        return cls(conv=tuple(layers), dense=tuple(units))


def _fmt_pair(value: int | tuple[int, int]) -> str:
    return str(value) if isinstance(value, int) else f"{value[0]}x{value[1]}"


def _parse_pair(text: str) -> int | tuple[int, int]:
    if "x" in text:
        a, b = text.split("x", 1)
        return (int(a), int(b))
    return int(text)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


NOTEBOOK_CONV = (
    ConvLayer(32, 3, 1, "same"),
    ConvLayer(32, 3, 2, "valid"),
    ConvLayer(64, 3, 1, "same"),
    ConvLayer(64, 3, 2, "valid"),
)
"""The notebook's convolutional stack."""

NOTEBOOK_CNN = Architecture()
"""The notebook's CNN: 361,322 parameters."""
