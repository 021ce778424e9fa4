"""The architecture spec: frozen dataclasses for the MNIST CNN, with the notebook's CNN as default.

A spec is plain data. ``Architecture.layer_table()`` judges it with the pure arithmetic in
``cnnlab.spec.shapes`` (a feature map that would shrink below 1x1 is an ``ArchitectureError``
naming the layer and the shapes) before any framework is imported; ``cnnlab.train.model`` builds
it in Keras.

Options that default to "absent" (batch normalisation, pooling, the GAP head, dropout) are left
out of ``to_dict()`` when absent, so the dict of an architecture without them is what it was
before they existed (run artifacts and trial keys stay comparable); ``from_dict`` reads both.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cnnlab.errors import ArchitectureError
from cnnlab.spec import shapes

MNIST_INPUT_SHAPE = (28, 28, 1)
MNIST_CLASSES = 10


class ShrinkError(ArchitectureError):
    """A layer would shrink its feature map below 1x1, so the network cannot be built. Besides
    the message (naming the layer and the shapes): ``input_shape``, and ``rows``, the layer
    table's rows up to and including the failing layer's (whose output is 0 high or wide), for
    ``shapes.format_failed_rows``."""

    def __init__(self, message: str, input_shape: tuple[int, ...] = (),
                 rows: list[shapes.LayerRow] | tuple[shapes.LayerRow, ...] = ()) -> None:
        # Defaults, so that a copy made by pickle (from the message alone) is still one.
        super().__init__(message)
        self.input_shape = tuple(input_shape)
        self.rows = tuple(rows)


@dataclass(frozen=True)
class ConvLayer:
    """One Conv2D layer (ReLU): filters, square or rectangular kernel (1 for a 1x1
    convolution), strides and padding, or with ``separable`` a SeparableConv2D of the same
    (a depthwise kernel per input channel, then a 1x1 convolution to ``filters``); then,
    optionally, BatchNormalization (``batchnorm``), a
    pool (``pool`` "max" or "avg", window ``pool_size`` = its strides, 'valid' padding) and
    dropout of rate ``dropout`` (``Dropout``, or ``SpatialDropout2D`` that drops whole feature
    maps with ``spatial_dropout``; a rate of 0 is no layer)."""

    filters: int
    kernel_size: int | tuple[int, int] = 3
    strides: int | tuple[int, int] = 1
    padding: str = "valid"
    batchnorm: bool = False
    pool: str = "none"
    pool_size: int = 2
    dropout: float = 0.0
    spatial_dropout: bool = False
    separable: bool = False

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
        if not isinstance(self.batchnorm, bool):
            raise ArchitectureError(f"batchnorm must be true or false, not {self.batchnorm!r}.")
        if self.pool not in shapes.POOLS:
            raise ArchitectureError(
                f"pool must be 'none', 'max' or 'avg', not {self.pool!r}.")
        if (isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int)
                or self.pool_size < 2):
            raise ArchitectureError(
                f"pool_size must be an integer of at least 2, not {self.pool_size!r}.")
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float)
                or not 0 <= self.dropout < 1):
            raise ArchitectureError(
                f"dropout must be a rate from 0 up to (not including) 1, not {self.dropout!r}.")
        object.__setattr__(self, "dropout", float(self.dropout))
        if not isinstance(self.spatial_dropout, bool):
            raise ArchitectureError(
                f"spatial_dropout must be true or false, not {self.spatial_dropout!r}.")
        if not isinstance(self.separable, bool):
            raise ArchitectureError(f"separable must be true or false, not {self.separable!r}.")

    def describe(self) -> str:
        """Compact form used in run names and parameters, e.g. ``32k3s2valid``, then ``+sep`` for
        a separable convolution, ``+bn`` with batch normalisation, ``+max2``/``+avg3`` with a
        pool and ``+do0.1``/``+sdo0.1`` with
        (spatial) dropout: ``32k3s1same+bn+max2+sdo0.1``."""
        kernel, strides = _fmt_pair(self.kernel_size), _fmt_pair(self.strides)
        text = f"{self.filters}k{kernel}s{strides}{self.padding}"
        if self.separable:
            text += "+sep"
        if self.batchnorm:
            text += "+bn"
        if self.pool != "none":
            text += f"+{self.pool}{self.pool_size}"
        if self.dropout > 0:
            text += f"+{self.dropout_label()}"
        return text

    def dropout_label(self) -> str:
        """``do0.1`` (Dropout) or ``sdo0.1`` (SpatialDropout2D); empty without dropout."""
        if self.dropout == 0:
            return ""
        return f"{'s' if self.spatial_dropout else ''}do{self.dropout:.3g}"


@dataclass(frozen=True)
class Architecture:
    """Conv2D layers (each maybe with BatchNormalization and a pool), then Flatten (``head``
    "flatten") or GlobalAveragePooling2D ("gap"), then Dense (ReLU) layers, then Dense(10,
    softmax); with ``dropout`` > 0, a Dropout of that rate before every Dense layer."""

    conv: tuple[ConvLayer, ...] = field(default_factory=lambda: NOTEBOOK_CONV)
    dense: tuple[int, ...] = (128,)
    input_shape: tuple[int, int, int] = MNIST_INPUT_SHAPE
    num_classes: int = MNIST_CLASSES
    head: str = "flatten"
    dropout: float = 0.0

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
        if self.head not in shapes.HEADS:
            raise ArchitectureError(f"head must be 'flatten' or 'gap', not {self.head!r}.")
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float)
                or not 0 <= self.dropout < 1):
            raise ArchitectureError(
                f"dropout must be a rate from 0 up to (not including) 1, not {self.dropout!r}.")
        object.__setattr__(self, "dropout", float(self.dropout))

    # Names follow the Keras layers that cnnlab.train.model builds, so tables can be compared.
    def conv_name(self, index: int) -> str:
        return f"conv{index + 1}"

    def batchnorm_name(self, index: int) -> str:
        return f"{self.conv_name(index)}_bn"

    def pool_name(self, index: int) -> str:
        return f"{self.conv_name(index)}_pool"

    def conv_dropout_name(self, index: int) -> str:
        return f"{self.conv_name(index)}_dropout"

    def dense_name(self, index: int) -> str:
        return f"dense{index + 1}"

    def dropout_name(self, index: int) -> str:
        """The Dropout before the ``index``-th Dense layer (0-based; the output layer is last)."""
        return f"dropout{index + 1}"

    def layer_table(self) -> shapes.LayerTable:
        """Per-layer output shapes, parameters and multiply-adds (one row per Keras layer),
        with the receptive field, effective stride and final feature map. Worked out once per
        architecture (a frozen value, so is its table): a trial's judging, constraints,
        records and model build all ask for it.

        Raises ``ShrinkError`` (an ``ArchitectureError``) if a feature map would shrink below
        1x1; it holds the rows up to and including that layer's.
        """
        table = self.__dict__.get("_layer_table")
        if table is None:
            table = self._work_out_layer_table()
            object.__setattr__(self, "_layer_table", table)  # Not a field: eq and hash ignore it.
        return table

    def _work_out_layer_table(self) -> shapes.LayerTable:
        rows = []
        windows: list[tuple[int | tuple[int, int], int | tuple[int, int]]] = []
        shape = self.input_shape
        for i, layer in enumerate(self.conv):
            out = shapes.conv2d_output_shape(shape, layer.filters, layer.kernel_size,
                                             layer.strides, layer.padding)
            if layer.separable:
                rows.append(shapes.LayerRow(
                    self.conv_name(i), "SeparableConv2D", out,
                    shapes.separable_conv2d_params(shape[2], layer.filters, layer.kernel_size),
                    shapes.separable_conv2d_macs(out, shape[2], layer.kernel_size)))
            else:
                rows.append(shapes.LayerRow(
                    self.conv_name(i), "Conv2D", out,
                    shapes.conv2d_params(shape[2], layer.filters, layer.kernel_size),
                    shapes.conv2d_macs(out, shape[2], layer.kernel_size)))
            if min(out[:2]) < 1:
                raise ShrinkError(
                    f"layer {self.conv_name(i)} ({layer.describe()}) would shrink its "
                    f"{shape[0]}x{shape[1]}x{shape[2]} input to {out[0]}x{out[1]}: the kernel "
                    f"does not fit; use a smaller kernel, stride 1 or 'same' padding.",
                    self.input_shape, rows)
            windows.append((layer.kernel_size, layer.strides))
            shape = out
            if layer.batchnorm:
                rows.append(shapes.LayerRow(self.batchnorm_name(i), "BatchNormalization", shape,
                                            shapes.batchnorm_params(shape[2]), 0))
            if layer.pool != "none":
                out = shapes.pool2d_output_shape(shape, layer.pool_size)
                kind = "MaxPooling2D" if layer.pool == "max" else "AveragePooling2D"
                rows.append(shapes.LayerRow(self.pool_name(i), kind, out, 0, 0))
                if min(out[:2]) < 1:
                    raise ShrinkError(
                        f"layer {self.pool_name(i)} ({layer.pool}{layer.pool_size}) would "
                        f"shrink its {shape[0]}x{shape[1]}x{shape[2]} input to "
                        f"{out[0]}x{out[1]}: the pool window does not fit; use a smaller "
                        "pool_size or no pool.", self.input_shape, rows)
                windows.append((layer.pool_size, layer.pool_size))
                shape = out
            if layer.dropout > 0:
                kind = "SpatialDropout2D" if layer.spatial_dropout else "Dropout"
                rows.append(shapes.LayerRow(self.conv_dropout_name(i), kind, shape, 0, 0))
        final_map = (shape[0], shape[1], shape[2])
        if self.head == "gap":
            (features,) = shapes.global_average_pool_shape(final_map)
            rows.append(shapes.LayerRow("gap", "GlobalAveragePooling2D", (features,), 0, 0))
        else:
            features = shape[0] * shape[1] * shape[2]
            rows.append(shapes.LayerRow("flatten", "Flatten", (features,), 0, 0))
        names = [self.dense_name(i) for i in range(len(self.dense))] + ["output"]
        for i, (name, units) in enumerate(zip(names, (*self.dense, self.num_classes),
                                              strict=True)):
            if self.dropout > 0:
                rows.append(shapes.LayerRow(self.dropout_name(i), "Dropout", (features,), 0, 0))
            rows.append(shapes.LayerRow(name, "Dense", (units,),
                                        shapes.dense_params(features, units),
                                        shapes.dense_macs(features, units)))
            features = units
        field_, jump = shapes.receptive_field(windows)
        return shapes.LayerTable(self.input_shape, tuple(rows), receptive_field=field_,
                                 effective_stride=jump, final_feature_map=final_map)

    def describe(self) -> str:
        """Compact one-line form, e.g. ``32k3s1same-32k3s2valid-64k3s1same-64k3s2valid-d128``;
        conv layers may end in ``+sep``, ``+bn`` and ``+max2``/``+avg3``, a GAP head adds
        ``gap`` after the
        conv layers and dropout adds ``do0.25`` at the end:
        ``32k3s1same+bn+max2-64k3s1valid-gap-d64-do0.25``."""
        parts = [layer.describe() for layer in self.conv]
        if self.head == "gap":
            parts.append("gap")
        parts += [f"d{u}" for u in self.dense]
        if self.dropout > 0:
            parts.append(f"do{self.dropout:.3g}")
        return "-".join(parts) or "d0"

    def short(self) -> str:
        """A shorter one-line form, knob by knob rather than layer by layer, for the lines a
        study prints: the conv layers' filters, then ``k`` kernel sizes, ``s`` strides and the
        paddings, each given once when every layer has the same value and layer by layer
        (joined by ``-``) when they differ; then the dense units. The notebook's CNN is
        ``32-32-64-64 k3 s1-2-1-2 same-valid-same-valid d128``; ``8-16 k5 s2 same d64``
        is two 5x5 stride-2 'same' layers of 8 and 16 filters and a Dense layer of 64.

        Options appear only when a layer has them: ``sep`` (separable convolutions, on every
        layer, or ``sep@2,3`` on some), ``bn`` (batch normalisation on every conv
        layer) or ``bn@1,3`` (on conv1 and conv3), a pool likewise (``max2``, ``avg3@2``),
        conv-block dropout likewise (``do0.1``, ``sdo0.1@2,4``),
        ``gap`` for the GAP head, ``do0.25`` for dropout. No dense layer: no ``d`` part; no
        layer at all: ``d0``. ``describe()`` is the layer-by-layer form runs are named with.
        """
        conv = self.conv
        parts = []
        if conv:
            parts.append("-".join(str(layer.filters) for layer in conv))
            parts.append("k" + _per_layer([_fmt_pair(layer.kernel_size) for layer in conv]))
            parts.append("s" + _per_layer([_fmt_pair(layer.strides) for layer in conv]))
            parts.append(_per_layer([layer.padding for layer in conv]))
            parts += _where(["sep" if layer.separable else "" for layer in conv])
            parts += _where(["bn" if layer.batchnorm else "" for layer in conv])
            parts += _where(["" if layer.pool == "none" else f"{layer.pool}{layer.pool_size}"
                             for layer in conv])
            parts += _where([layer.dropout_label() for layer in conv])
        if self.head == "gap":
            parts.append("gap")
        if self.dense:
            parts.append("d" + "-".join(str(u) for u in self.dense))
        if self.dropout > 0:
            parts.append(f"do{self.dropout:.3g}")
        return " ".join(parts) or "d0"

    def to_params(self) -> dict[str, Any]:
        """Flat parameters for tracking: ``n_conv``, ``conv1_filters`` ... ``conv1_pool_size``
        (every ``ConvLayer`` field), ``dense1_units`` ..., ``head`` and ``dropout``."""
        params: dict[str, Any] = {"n_conv": len(self.conv), "n_dense": len(self.dense),
                                  "architecture": self.describe()}
        for i, layer in enumerate(self.conv):
            for f in fields(ConvLayer):
                params[f"{self.conv_name(i)}_{f.name}"] = getattr(layer, f.name)
        for i, units in enumerate(self.dense):
            params[f"{self.dense_name(i)}_units"] = units
        params["head"] = self.head
        params["dropout"] = self.dropout
        return params

    def derived_params(self) -> dict[str, str]:
        """What the shape arithmetic derives, as text for tracking: ``receptive_field`` and
        ``effective_stride`` (height x width, on the input) and ``final_feature_map`` (height x
        width x channels before Flatten/GAP), e.g. ``{"receptive_field": "13x13",
        "effective_stride": "4x4", "final_feature_map": "6x6x64"}`` for the notebook's CNN.

        Raises ``ArchitectureError`` as ``layer_table()`` does.
        """
        table = self.layer_table()
        return {"receptive_field": shapes.format_dims(table.receptive_field),
                "effective_stride": shapes.format_dims(table.effective_stride),
                "final_feature_map": shapes.format_dims(table.final_feature_map)}

    def to_dict(self) -> dict[str, Any]:
        """A TOML/JSON-ready dict that ``Architecture.from_dict`` reads back.

        Options at their "absent" defaults (``batchnorm``, ``pool``, ``pool_size``, ``head``,
        ``dropout``) are left out, so that an architecture without them has the dict it had
        before they existed.
        """
        data: dict[str, Any] = {
            "conv": [{f.name: _plain(getattr(layer, f.name)) for f in fields(ConvLayer)
                      if f.name in _CONV_BASE or getattr(layer, f.name) != f.default}
                     for layer in self.conv],
            "dense": list(self.dense),
        }
        if self.head != "flatten":
            data["head"] = self.head
        if self.dropout > 0:
            data["dropout"] = self.dropout
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "architecture") -> Architecture:
        """Read ``{"conv": [{"filters": 32, ...}, ...], "dense": [128]}``, with optional
        ``"head"`` and ``"dropout"``.

        Unknown keys are errors that name the key.
        """
        if not isinstance(data, dict):
            raise ArchitectureError(f"{where} must be a table, not {type(data).__name__}.")
        unknown = set(data) - {"conv", "dense", "head", "dropout"}
        if unknown:
            raise ArchitectureError(f"{where} has unknown key(s) {sorted(unknown)}; "
                                    "expected some of 'conv', 'dense', 'head' and 'dropout'.")
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
        try:
            return cls(conv=tuple(conv), dense=tuple(dense), head=data.get("head", "flatten"),
                       dropout=data.get("dropout", 0.0))
        except ArchitectureError as err:
            raise ArchitectureError(f"{where}: {err}") from None

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
    def from_name(cls, name: str) -> Architecture:
        """Read the one-line form that ``describe()`` writes (run names, the ``architecture``
        parameter and column): conv layers ``FILTERSkKERNELsSTRIDESPADDING`` with ``+sep``, ``+bn``,
        ``+maxN``/``+avgN`` and ``+doRATE``/``+sdoRATE``, then ``gap``, then ``dUNITS`` per Dense
        layer, then ``doRATE``, joined by ``-``; ``d0`` is no layer at all.
        ``Architecture.from_name(a.describe()) == a`` for every architecture on MNIST's input
        whose dropout rates have at most 3 significant digits (``describe`` writes 3). Raises
        ``ArchitectureError`` naming the part that is not one of these, or out of this order."""
        text = name.strip()
        if text == "d0":
            return cls(conv=(), dense=())
        order = ("conv", "gap", "dense", "dropout")  # Each kind in turn; gap and dropout once.
        layers: list[ConvLayer] = []
        dense: list[int] = []
        head, dropout, last = "flatten", 0.0, -1
        for part in text.split("-"):
            match = _CONV_NAME.fullmatch(part)
            kind = ("conv" if match else "gap" if part == "gap" else
                    "dense" if re.fullmatch(r"d\d+", part) else
                    "dropout" if re.fullmatch(r"do\d*\.?\d+(e-?\d+)?", part) else None)
            rank = order.index(kind) if kind is not None else -1
            if rank < last or rank == last and kind in ("gap", "dropout") or kind is None:
                raise ArchitectureError(
                    f"architecture name {name!r}: {part!r} is not a part a name has there; a "
                    "name is conv layers such as 32k3s1same (with +sep, +bn, +max2, +avg3, "
                    "+do0.1 or "
                    "+sdo0.1), then "
                    "gap, then Dense layers such as d128, then dropout such as do0.25, joined "
                    "by '-', e.g. 32k3s1same-32k3s2valid-64k3s1same-64k3s2valid-d128.")
            last = rank
            try:
                if match:
                    layers.append(ConvLayer(
                        int(match["filters"]), _parse_pair(match["kernel"]),
                        _parse_pair(match["strides"]), match["padding"],
                        separable=match["sep"] is not None,
                        batchnorm=match["bn"] is not None, pool=match["pool"] or "none",
                        pool_size=int(match["pool_size"]) if match["pool"] else 2,
                        dropout=float(match["dropout"]) if match["dropout"] else 0.0,
                        spatial_dropout=bool(match["sdo"])))
                elif kind == "gap":
                    head = "gap"
                elif kind == "dense":
                    dense.append(int(part[1:]))
                else:
                    dropout = float(part[2:])
            except ArchitectureError as err:
                where = f"{name!r}" if part == text else f"{name!r}, {part!r}"
                raise ArchitectureError(f"architecture name {where}: {err}") from None
        try:
            return cls(conv=tuple(layers), dense=tuple(dense), head=head, dropout=dropout)
        except ArchitectureError as err:
            raise ArchitectureError(f"architecture name {name!r}: {err}") from None

    @classmethod
    def from_strings(cls, conv: list[str], dense: list[str] | None = None, *,
                     head: str = "flatten", dropout: float = 0.0) -> Architecture:
        """Parse the command-line form: each conv layer
        ``FILTERS:KERNEL[:STRIDES[:PADDING[:OPTION...]]]`` (kernel and strides may be ``3x5``;
        options, in any order and each at most once: ``sep`` for a separable convolution,
        ``bn`` for batch normalisation, ``maxN`` or
        ``avgN`` for a pool of size N, ``doR`` or ``sdoR`` for dropout or spatial dropout of
        rate R, e.g. ``32:3:1:same:bn:max2:sdo0.1``), dense units as integers or
        comma lists; ``head`` and ``dropout`` go to the ``Architecture``."""
        layers = []
        for text in conv:
            parts = text.strip().split(":")
            if len(parts) < 2:
                raise ArchitectureError(
                    f"conv layer {text!r} must look like FILTERS:KERNEL[:STRIDES[:PADDING"
                    "[:OPTION...]]], e.g. 32:3:2:valid or 32:3:1:same:bn:max2.")
            early = [part for part in parts[2:4] if _OPTION.fullmatch(part)]
            if early:
                raise ArchitectureError(
                    f"conv layer {text!r} gives option {early[0]!r} before STRIDES and PADDING; "
                    "options come after both, e.g. 32:3:1:same:bn.")
            options = _parse_options(text, parts[4:])
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
                layers.append(ConvLayer(filters, kernel, strides, padding, **options))
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
                    if units[-1] == 0:
                        raise ArchitectureError(
                            f"dense units {piece.strip()!r}: a Dense layer needs at least 1 "
                            "unit; for no hidden Dense layer give --dense ''.")
        return cls(conv=tuple(layers), dense=tuple(units), head=head, dropout=dropout)


_CONV_BASE = ("filters", "kernel_size", "strides", "padding")
"""ConvLayer's fields that ``to_dict`` always writes; the others only when not at default."""

_CONV_NAME = re.compile(r"(?P<filters>\d+)k(?P<kernel>\d+(?:x\d+)?)s(?P<strides>\d+(?:x\d+)?)"
                        r"(?P<padding>same|valid)(?P<sep>\+sep)?(?P<bn>\+bn)?(?:\+(?P<pool>max|avg)(?P<pool_size>\d+))?"
                        r"(?:\+(?P<sdo>s?)do(?P<dropout>\d*\.?\d+(?:e-?\d+)?))?")
"""A conv layer in ``Architecture.describe()``'s form: ``32k3s1same``,
``16k3x5s2valid+sep+bn+max2+sdo0.1``."""

_OPTION = re.compile(r"sep|bn|(max|avg)(\d+)|(s?do)(\d*\.?\d+)")
"""A conv layer's option on the command line: ``sep``, ``bn``, ``max2``, ``avg3``, ``do0.1``,
``sdo0.1`` ..."""


def _parse_options(text: str, options: list[str]) -> dict[str, Any]:
    """``["bn", "max2", "sdo0.1"]`` as ConvLayer keyword arguments; errors name the option."""
    values: dict[str, Any] = {}
    for option in options:
        match = _OPTION.fullmatch(option)
        if match is None:
            raise ArchitectureError(
                f"conv layer {text!r} has unknown option {option!r}; expected 'sep', 'bn', "
                "'maxN' or "
                "'avgN' (a pool of size N), 'doR' or 'sdoR' (dropout or spatial dropout of "
                "rate R).")
        key = ("separable" if option == "sep" else "batchnorm" if option == "bn" else
               "dropout" if match.group(3) else "pool")
        if key in values:
            what = {"separable": "sep", "batchnorm": "bn", "pool": "a pool",
                    "dropout": "dropout"}[key]
            raise ArchitectureError(f"conv layer {text!r} gives {what} more than once.")
        if key in ("separable", "batchnorm"):
            values[key] = True
        elif key == "dropout":
            values["dropout"] = float(match.group(4))
            values["spatial_dropout"] = match.group(3) == "sdo"
        else:
            values["pool"], values["pool_size"] = match.group(1), int(match.group(2))
    return values


def _per_layer(values: list[str]) -> str:
    """One value if every layer has it, else each layer's, joined by ``-``."""
    return values[0] if len(set(values)) == 1 else "-".join(values)


def _where(labels: list[str]) -> list[str]:
    """An option's parts for ``Architecture.short``: ``[]`` if no layer has one, ``["bn"]``
    if every layer has the same, else one part per option naming its layers (``max2@1,3``)."""
    if not any(labels):
        return []
    if all(labels) and len(set(labels)) == 1:
        return [labels[0]]
    return [label + "@" + ",".join(str(i + 1) for i, other in enumerate(labels)
                                   if other == label)
            for label in dict.fromkeys(label for label in labels if label)]


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


HARD_MAX_PARAMS = 100_000_000
"""No architecture over this many parameters is built (400 MB of float32 weights, before the
optimizer's copies): more than a 2-core CPU can train, and a typo away from exhausting memory."""


def check_architecture(arch: Architecture, max_params: int | None,
                       max_macs: int | None = None) -> shapes.LayerTable:
    """The layer table, or ``ArchitectureError`` if it cannot be built or is over budget: more
    than ``max_params`` parameters or ``max_macs`` multiply-adds per image."""
    table = arch.layer_table()
    if max_params is not None and table.total_params > max_params:
        raise ArchitectureError(
            f"{arch.describe()} has {table.total_params:,} parameters, over the study's "
            f"max_params of {max_params:,}.")
    if max_macs is not None and table.total_macs > max_macs:
        raise ArchitectureError(
            f"{arch.describe()} has {table.total_macs:,} multiply-adds per image, over the "
            f"study's max_macs of {max_macs:,}.")
    if table.total_params > HARD_MAX_PARAMS:
        raise ArchitectureError(
            f"{arch.describe()} has {table.total_params:,} parameters, over cnnlab's ceiling of "
            f"{HARD_MAX_PARAMS:,} (more than this kind of machine can train).")
    return table
