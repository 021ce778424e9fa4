"""The search space as data, and the one function that turns an Optuna trial into a ``TrialSpec``.

A space maps *paths* into the trial spec (``cnnlab.spec.trialspec``) to what a trial may choose
there: a list of choices, an integer range or a float range (``{low, high, step, log}``). A list
of one value is fixed: it is not sampled, and Optuna does not see it. In a study file the
paths are the keys of ``[search]`` (TOML's dotted keys and nested tables are the same thing):

```toml
[search]
n_conv = [1, 2, 3]                                 # depth
"conv.filters" = [8, 16, 32]                       # every conv layer (or: filters = [...])
conv2.strides = [1, 2]                             # conv layer 2 only
conv.pool = ["none", "max"]                        # any ConvLayer field: batchnorm, pool ...
head = ["flatten", "gap"]                          # any Architecture field: dropout ...
n_dense = [0, 1]
dense.units = [32, 64]                             # every dense layer (or: dense_units)
training.learning_rate = { low = 1e-4, high = 1e-2, log = true }
training.optimizer = ["rmsprop", "adam"]
```

A field the file does not give is fixed (not sampled, not an Optuna parameter) at the *base
network*'s value, the notebook's CNN (``NOTEBOOK_CNN``), as ``cnnlab train`` builds it: 4 conv
layers, each with its own filters, kernel size, strides and padding (32k3s1same, 32k3s2valid,
64k3s1same, 64k3s2valid), one Dense layer of 128 units, and every other field at the spec's
default (no batch normalisation, no pool, a Flatten head, no dropout). ``conv.FIELD`` replaces
the base's value on every layer; ``convN.FIELD`` on layer N only, and wins over ``conv.FIELD``.
A layer beyond the base's depth (conv5 when ``n_conv`` reaches 5) repeats the base's last layer
with stride 1, 'same' padding and no pool, so that it keeps its input's size and any depth
can be built; a Dense layer beyond the base's takes the base's last Dense layer's units.
``SearchSpace.resolve`` says, for any path, what a trial may choose there and where it comes
from (``SOURCES``).

Values are checked by the spec's own classes (``ConvLayer``, ``Architecture``, ``TrainConfig``),
so a new field there is a new searchable knob with nothing to add here. Parameter names are
``trialspec.param_name(path)`` (``conv2_strides``, ``learning_rate``), the names the spec
gives its MLflow parameters, so Optuna's and MLflow's columns line up.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.spec.architecture import (
    HARD_MAX_PARAMS,
    NOTEBOOK_CNN,
    Architecture,
    ConvLayer,
)
from cnnlab.spec.trialspec import (
    ARCHITECTURE_FIELDS,
    CONV_FIELDS,
    TRAINING_FIELDS,
    TrainConfig,
    TrialSpec,
    param_name,
)


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that a space uses."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...


@dataclass(frozen=True)
class Choices:
    """Pick one of ``values`` (categorical); a single value is fixed."""

    values: tuple[Any, ...]

    def suggest(self, trial: Suggester, name: str) -> Any:
        if len(self.values) == 1:
            return self.values[0]
        return trial.suggest_categorical(name, self.values)

    @property
    def bounds(self) -> tuple[Any, Any]:
        return min(self.values), max(self.values)

    def all_values(self) -> tuple[Any, ...]:
        return self.values


@dataclass(frozen=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive, by ``step``, or on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: Suggester, name: str) -> int:
        if self.low == self.high:
            return self.low
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    @property
    def bounds(self) -> tuple[int, int]:
        return self.low, self.high

    def all_values(self) -> tuple[int, ...]:
        if self.log:
            raise ConfigError("a log-scale range has no finite grid of values.")
        return tuple(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class FloatRange:
    """A float from ``low`` to ``high``, uniform, by ``step``, or on a log scale."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: Suggester, name: str) -> float:
        if self.low == self.high:
            return self.low
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def all_values(self) -> tuple[float, ...]:
        raise ConfigError("a float range has no finite grid of values.")


Param = Choices | IntRange | FloatRange

STRUCTURE = ("n_conv", "n_dense")
"""Paths that set a depth."""
SOURCES = {
    "search": "the file's [search]",
    "base": "the base network, the notebook's CNN",
    "default": "the spec's default",
    "training": "the file's [training]",
}
"""Where a resolved value comes from (``Resolved.source``)."""
ALIASES = {**{f: f"conv.{f}" for f in ("filters", "kernel_size", "strides", "padding",
                                        "batchnorm", "pool", "pool_size")},
           "dense_units": "dense.units"}
"""The keys of study files written before paths (``filters``, ``dense_units``): the conv fields
of that time only, so that a bare ``dropout`` stays the architecture's (before the Dense
layers), not ``conv.dropout``."""

# Bounds past anything trainable here, so that a typo cannot ask for a model that exhausts
# memory while it is built (the parameter ceiling below catches the rest).
LIMITS: dict[str, tuple[int, int]] = {
    "n_conv": (1, 20), "n_dense": (0, 10), "filters": (1, 4096), "kernel_size": (1, 28),
    "strides": (1, 28), "pool_size": (1, 28), "units": (1, 65536), "batch_size": (1, 60_000)}
MAX_LAYERS = {"n_conv": LIMITS["n_conv"][1], "n_dense": LIMITS["n_dense"][1]}
MAX_UNITS = LIMITS["units"][1]


CONV_USED_WITH = {"pool_size": ("pool", lambda pool: pool != "none"),
                  "spatial_dropout": ("dropout", lambda rate: rate > 0)}
"""Conv layer fields that only some layers use, with the field (drawn first) and the rule: a
searched one is drawn only where it is used (a pool's size with a pool), else it keeps the
spec's default; the space is conditional there, as Optuna's define-by-run spaces are."""
DEPENDED_ON = ("schedule", "optimizer")
"""The training fields that decide whether others are used (``TrainConfig.uses``): drawn first,
so that a searched ``warmup`` is drawn only with the cosine schedule, a searched ``momentum``
only with an optimizer that has one, and so on."""


def fixed(param: Param) -> bool:
    """Whether ``param`` is one value (not sampled, not an Optuna parameter)."""
    if isinstance(param, Choices):
        return len(param.values) == 1
    return param.low == param.high


@dataclass(frozen=True)
class Resolved:
    """What a trial may choose at ``path`` (``param``: searched, or fixed when it is one value)
    and where that comes from (``source``, a key of ``SOURCES``)."""

    path: str
    param: Param
    source: str

    @property
    def searched(self) -> bool:
        return not fixed(self.param)


def base_layer(base: Architecture, number: int) -> ConvLayer:
    """Conv layer ``number`` (1-based) of ``base``; past its depth, its last layer with stride
    1, 'same' padding and no pool (it keeps its input's size, so any depth can be built)."""
    if number <= len(base.conv):
        return base.conv[number - 1]
    last = base.conv[-1] if base.conv else NOTEBOOK_CNN.conv[-1]
    return dataclasses.replace(last, strides=1, padding="same", pool="none")


@functools.lru_cache(maxsize=256)
def _stated(arch: Architecture, layer: ConvLayer | None = None) -> frozenset[str]:
    """The fields a network states rather than leaves at the spec's default: the keys of its
    ``to_dict`` (a conv layer's filters, kernel size, strides, padding, and any option it
    sets; the head or dropout only when not the default)."""
    if layer is not None:
        return frozenset(Architecture(conv=(layer,), dense=()).to_dict()["conv"][0])
    return frozenset(arch.to_dict())


@dataclass(frozen=True)
class SearchSpace:
    """What a study file searches (``params``, by path) around a ``base`` network, whose values
    every other field keeps; ``suggest`` turns a trial into a ``TrialSpec``."""

    params: dict[str, Param] = field(default_factory=dict)
    base: Architecture = NOTEBOOK_CNN

    def given(self, path: str) -> Param | None:
        """What the file says at ``path``: its own entry, or for ``convN.FIELD`` and
        ``denseN.units`` the entry for every layer (``conv.FIELD``, ``dense.units``); None
        when it says nothing there."""
        if path in self.params:
            return self.params[path]
        layer = re.fullmatch(r"(conv|dense)\d+\.(\w+)", path)
        if layer:
            return self.params.get(f"{layer.group(1)}.{layer.group(2)}")
        return None

    def resolve(self, path: str) -> Resolved:
        """What a trial may choose at ``path`` and where it comes from: the file's entry, else
        the base network's value (``base_layer`` past its depth), else the spec's default.
        ``path`` is ``n_conv``, ``n_dense``, ``convN.FIELD``, ``denseN.units``, an architecture
        field, or a searched ``training.FIELD`` (the others are the study's ``[training]``)."""
        found = self.given(path)
        if found is not None:
            return Resolved(path, found, "search")
        base = self.base
        if path in STRUCTURE:
            return Resolved(path, Choices((len(base.conv if path == "n_conv" else base.dense),)),
                            "base")
        layer = re.fullmatch(r"conv(\d+)\.(\w+)", path)
        if layer and layer.group(2) in CONV_FIELDS:
            conv = base_layer(base, int(layer.group(1)))
            name = layer.group(2)
            return Resolved(path, Choices((getattr(conv, name),)),
                            "base" if name in _stated(base, conv) else "default")
        dense = re.fullmatch(r"dense(\d+)\.units", path)
        if dense:
            units = base.dense or NOTEBOOK_CNN.dense
            return Resolved(path, Choices((units[min(int(dense.group(1)), len(units)) - 1],)),
                            "base")
        if path in ARCHITECTURE_FIELDS:
            return Resolved(path, Choices((getattr(base, path),)),
                            "base" if path in _stated(base) else "default")
        raise KeyError(f"{path} is not given by the file and has no base value")

    def param(self, path: str) -> Param:
        """What a trial may choose at ``path`` (``resolve``'s ``param``)."""
        return self.resolve(path).param

    def layer_param(self, index: int, key: str) -> Param:
        """What a trial may choose for ``key`` of conv layer ``index`` (0-based)."""
        return self.param(f"conv{index + 1}.{key}")

    @property
    def n_conv(self) -> Param:
        return self.param("n_conv")

    @property
    def n_dense(self) -> Param:
        return self.param("n_dense")

    def suggest(self, trial: Suggester, training: TrainConfig | None = None) -> TrialSpec:
        """Sample a trial's spec; names as ``trialspec.param_name`` gives them. Fixed values
        are not suggested, so they are not Optuna parameters."""
        def pick(path: str) -> Any:
            return self.param(path).suggest(trial, param_name(path))

        def layer(i: int) -> ConvLayer:
            values: dict[str, Any] = {}
            for f in CONV_FIELDS:
                needs = CONV_USED_WITH.get(f)
                path = f"conv{i}.{f}"
                if needs is not None and not needs[1](values[needs[0]]) and \
                        not fixed(self.param(path)):
                    continue  # Unused by this layer: not drawn, the spec's default.
                values[f] = pick(path)
            return ConvLayer(**values)

        layers = [layer(i) for i in range(1, pick("n_conv") + 1)]
        dense = tuple(pick(f"dense{i}.units") for i in range(1, pick("n_dense") + 1))
        arch = Architecture(conv=tuple(layers), dense=dense, input_shape=self.base.input_shape,
                            num_classes=self.base.num_classes,
                            **{f: pick(f) for f in ARCHITECTURE_FIELDS})
        config = training or TrainConfig()
        for f in sorted(TRAINING_FIELDS, key=lambda f: f not in DEPENDED_ON):
            if f"training.{f}" in self.params and config.uses(f):
                config = dataclasses.replace(config, **{f: pick(f"training.{f}")})
        return TrialSpec(arch, config)

    def architecture_rows(self) -> list[Resolved]:
        """Every architecture path up to the largest depths the space allows, resolved:
        ``n_conv``, each conv field of each layer (conv1.filters, conv2.filters ...,
        conv1.kernel_size ...), ``n_dense``, each Dense layer's units, then the architecture
        fields (head, dropout)."""
        rows = [self.resolve("n_conv")]
        rows += [self.resolve(f"conv{i}.{f}") for f in CONV_FIELDS
                 for i in range(1, self.n_conv.bounds[1] + 1)]
        rows.append(self.resolve("n_dense"))
        rows += [self.resolve(f"dense{i}.units") for i in range(1, self.n_dense.bounds[1] + 1)]
        rows += [self.resolve(f) for f in ARCHITECTURE_FIELDS]
        return rows

    def paths(self) -> list[str]:
        return sorted(self.params)


def _kind(cls: type, name: str) -> type:
    """The type of a spec field's values, read from its annotation (``int | tuple[int, int]``
    is an int for a search; ``float | None`` a float)."""
    annotation = str(next(f.type for f in dataclasses.fields(cls) if f.name == name))
    for word, kind in (("bool", bool), ("float", float), ("int", int), ("str", str)):
        if re.search(rf"\b{word}\b", annotation):
            return kind
    return object


def _target(path: str, where: str) -> tuple[type, str]:
    """The spec class and field that ``path`` names, or a ``ConfigError`` naming it."""
    known = ("n_conv, n_dense, conv.FIELD / convN.FIELD (FIELD: " + ", ".join(CONV_FIELDS)
             + "), dense.units / denseN.units, " + ", ".join(ARCHITECTURE_FIELDS)
             + ", training.FIELD (FIELD: " + ", ".join(TRAINING_FIELDS) + ")")
    if path in STRUCTURE:
        return Architecture, path
    if path in ARCHITECTURE_FIELDS:
        return Architecture, path
    layer = re.fullmatch(r"conv(\d*)\.(\w+)", path)
    if layer and layer.group(2) in CONV_FIELDS and layer.group(1) != "0":
        return ConvLayer, layer.group(2)
    dense = re.fullmatch(r"dense(\d*)\.(\w+)", path)
    if dense and dense.group(2) == "units" and dense.group(1) != "0":
        return Architecture, "units"
    if path.startswith("training.") and path[len("training."):] in TRAINING_FIELDS:
        return TrainConfig, path[len("training."):]
    if path == "training.epochs":
        raise ConfigError(f"{where}.{path} cannot be searched: the epochs are the study's "
                          "budget per trial; set them in [training].")
    raise ConfigError(f"{where}.{path} is not a search-space path; expected one of {known}.")


def _check_value(value: Any, cls: type, name: str, kind: type, where: str) -> Any:
    """``value`` checked by the spec class that will hold it; returns it as that field
    takes it (an integer for a float field becomes a float)."""
    if kind is bool and not isinstance(value, bool) or \
            kind is int and (isinstance(value, bool) or not isinstance(value, int)) or \
            kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                               or not math.isfinite(value)) or \
            kind is str and not isinstance(value, str):
        noun = {bool: "true or false", int: "integers", float: "numbers", str: "strings"}[kind]
        raise ConfigError(f"{where} must hold {noun}, not {value!r}.")
    if kind is float:
        value = float(value)
    bounds = LIMITS.get(name)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        side = "at least" if value < bounds[0] else "at most"
        limit = bounds[0] if value < bounds[0] else bounds[1]
        raise ConfigError(f"{where} must hold values of {side} {limit}, not {value!r}.")
    try:
        if cls is ConvLayer:
            ConvLayer(**{"filters": 1, name: value})
        elif cls is Architecture and name in ARCHITECTURE_FIELDS:
            Architecture(conv=(), dense=(), **{name: value})
        elif cls is TrainConfig:
            TrainConfig(**{name: value})
    except (ArchitectureError, ConfigError) as err:
        raise ConfigError(f"{where}: {_lower_first(str(err))}") from None
    return value


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def parse_param(value: Any, where: str, cls: type, name: str) -> Param:
    """Read a list of choices or an ``{low, high, step, log}`` table for the spec field
    ``cls.name``; errors name ``where``."""
    kind = int if name in STRUCTURE or name == "units" else _kind(cls, name)
    if isinstance(value, dict):
        if kind not in (int, float):
            raise ConfigError(f"{where} must be a list of choices, not a range.")
        unknown = set(value) - {"low", "high", "step", "log"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {sorted(unknown)}; a range has "
                              "low, high and optionally step and log.")
        if "low" not in value or "high" not in value:
            raise ConfigError(f"{where} needs both 'low' and 'high'.")
        low, high = value["low"], value["high"]
        step, log = value.get("step", 1 if kind is int else None), value.get("log", False)
        for key, v in (("low", low), ("high", high), ("step", step)):
            if v is None:
                continue
            if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
                raise ConfigError(f"{where}.{key} must be an integer, not {v!r}.")
            if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v)):
                raise ConfigError(f"{where}.{key} must be a number, not {v!r}.")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log must be true or false, not {log!r}.")
        if low > high:
            raise ConfigError(f"{where} is an impossible range: low {low} > high {high}.")
        low = _check_value(low, cls, name, kind, f"{where}.low")
        high = _check_value(high, cls, name, kind, f"{where}.high")
        if step is not None and step <= 0:
            raise ConfigError(f"{where}.step must be positive, not {step}.")
        if log and step not in (None, 1) or log and kind is float and step is not None:
            raise ConfigError(f"{where} cannot have both log = true and a step.")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log-scale range needs low > 0, not {low}.")
        if step is not None and not log:
            _refuse_a_range_off_its_step(low, high, step, kind, where)
        if kind is int:
            return IntRange(low, high, step, log)
        return FloatRange(low, high, None if step is None else float(step), log)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where} is an empty list of choices.")
    values = [_check_value(v, cls, name, kind, where) for v in values]
    if len(set(values)) != len(values):
        raise ConfigError(f"{where} lists a choice twice: {values}.")
    return Choices(tuple(values))


def _refuse_a_range_off_its_step(low: float, high: float, step: float, kind: type,
                                 where: str) -> None:
    """A range whose ``high`` is not ``low`` plus a whole number of steps: Optuna would
    narrow it to the last step below ``high`` at every trial, with a warning each time, so
    that the study would search another range than the one checked. Refused here, by
    Optuna's own rule (its distributions adjust ``high`` when they are made)."""
    import warnings

    from optuna.distributions import FloatDistribution, IntDistribution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # The adjustment is said below, in one sentence.
        if kind is int:
            reached = IntDistribution(int(low), int(high), step=int(step)).high
        else:
            reached = FloatDistribution(float(low), float(high), step=float(step)).high
    if reached != high:
        above = reached + step
        raise ConfigError(f"{where}: the range {low} to {high} by {step} does not end on a step "
                          f"(Optuna would search {low} to {reached:g} only); make 'high' "
                          f"{reached:g} or {above:g}.")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables to paths; a table with ``low``/``high`` is a range, not a level."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not {"low", "high"} & set(value) and \
                not set(value) <= {"step", "log"}:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def parse_space(data: dict[str, Any], where: str = "search") -> SearchSpace:
    """Read the ``[search]`` table of a study file; unknown paths and bad values are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table.")
    params: dict[str, Param] = {}
    given: dict[str, str] = {}
    for key, value in _flatten(data).items():
        path = ALIASES.get(key, key)
        if re.fullmatch(r"conv\d+", key) or re.fullmatch(r"dense\d+", key):
            raise ConfigError(f"{where}.{key} must be a table of per-layer choices.")
        if path in given:
            raise ConfigError(f"{where}.{key} says again what {where}.{given[path]} says.")
        given[path] = key
        cls, name = _target(path, where)
        params[path] = parse_param(value, f"{where}.{key}", cls, name)
    space = SearchSpace(params)
    max_conv = space.n_conv.bounds[1]
    for path in params:
        layer = re.fullmatch(r"conv(\d+)\.\w+", path)
        if layer and int(layer.group(1)) > max_conv:
            raise ConfigError(f"{where}.conv{layer.group(1)} is beyond the largest number of "
                              f"conv layers ({max_conv}) that {_depth(where, 'n_conv', params)}.")
        layer = re.fullmatch(r"dense(\d+)\.\w+", path)
        if layer and int(layer.group(1)) > space.n_dense.bounds[1]:
            raise ConfigError(f"{where}.dense{layer.group(1)} is beyond the largest number of "
                              f"dense layers ({space.n_dense.bounds[1]}) that "
                              f"{_depth(where, 'n_dense', params)}.")
    return space


def _depth(where: str, path: str, params: dict[str, Param]) -> str:
    """Who sets a depth, for an error: the file's entry, or the base network."""
    if path in params:
        return f"{where}.{path} allows"
    return f"the base network has (search {path} to go deeper)"


# -- feasibility: what can be trained, known before anything is built -----------------------

FEASIBILITY_DRAWS = 2000
"""Random architectures drawn to estimate how much of a space can be trained."""
MIN_FEASIBLE = 0.01
"""A study whose space is less feasible than this is refused before any store is touched."""


def constraints(arch: Architecture, max_params: int | None,
                max_macs: int | None = None) -> dict[str, float]:
    """Optuna constraint values for ``arch`` (feasible when every value is <= 0).

    ``buildable`` is 1 for an architecture whose feature maps would shrink below 1x1, and
    ``max_params`` the relative excess over the budget (``params / max_params - 1``), so that a
    constrained sampler (TPE, NSGA-II) ranks a near miss above a far one; with ``max_macs``
    (a study's cost budget, multiply-adds per image), ``max_macs`` likewise."""
    extra = {} if max_macs is None else {"max_macs": 0.0}
    try:
        table = arch.layer_table()
    except ArchitectureError:
        return {"buildable": 1.0, "max_params": 0.0, **extra}
    limit = HARD_MAX_PARAMS if max_params is None else min(max_params, HARD_MAX_PARAMS)
    found = {"buildable": 0.0, "max_params": table.total_params / limit - 1.0}
    if max_macs is not None:
        found["max_macs"] = table.total_macs / max_macs - 1.0
    return found


class RandomSuggester:
    """Draws as Optuna's ``RandomSampler`` does (uniform choices, uniform or log-uniform
    integers), without a study: enough to sample a space for its feasibility."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.rng.choice(list(choices))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        if log:
            value = math.exp(self.rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
            return min(max(round(value), low), high)
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if step is not None:
            return low + step * self.rng.randrange(int(round((high - low) / step)) + 1)
        return self.rng.uniform(low, high)


@dataclass(frozen=True)
class Feasibility:
    """How much of a space can be trained, out of ``draws`` random architectures."""

    draws: int
    unbuildable: int
    over_budget: int
    """Over ``max_params`` or over ``max_macs``."""

    @property
    def feasible(self) -> int:
        return self.draws - self.unbuildable - self.over_budget

    @property
    def fraction(self) -> float:
        return self.feasible / self.draws

    def describe(self) -> str:
        return (f"{self.fraction:.0%} of {self.draws:,} random architectures can be trained "
                f"({self.unbuildable:,} cannot be built, {self.over_budget:,} are over "
                "the budget)")


_FEASIBILITY: dict[tuple[str, int | None, int | None, int, int], Feasibility] = {}
"""``feasibility``'s estimates so far in this process, by a file's space (its ``repr``, which
shows every field), ``max_params``, ``max_macs``, draws and seed."""


def feasibility(space: SearchSpace, max_params: int | None, draws: int = FEASIBILITY_DRAWS,
                seed: int = 0, max_macs: int | None = None) -> Feasibility:
    """Estimate the trainable fraction of ``space`` with cnnlab's shape arithmetic alone.

    The estimate depends on nothing else, so a file's space (a ``SearchSpace``) is drawn once
    per process for the same arguments (``study check`` then ``study run`` in one script, the
    test suite's many studies of one space: 2,000 draws cost about 0.4 CPU-s); a script's
    space, whose suggest calls run the user's code, is drawn every time."""
    key = (repr(space), max_params, max_macs, draws, seed) \
        if type(space) is SearchSpace else None
    if key in _FEASIBILITY:
        return _FEASIBILITY[key]
    found = _feasibility(space, max_params, draws, seed, max_macs)
    if key is not None:
        if len(_FEASIBILITY) >= 64:
            _FEASIBILITY.clear()
        _FEASIBILITY[key] = found
    return found


def _feasibility(space: Any, max_params: int | None, draws: int, seed: int,
                 max_macs: int | None = None) -> Feasibility:
    suggester = RandomSuggester(seed)
    unbuildable = over = 0
    for _ in range(draws):
        values = constraints(space.suggest(suggester).architecture, max_params, max_macs)
        if values["buildable"] > 0:
            unbuildable += 1
        elif max(values["max_params"], values.get("max_macs", 0.0)) > 0:
            over += 1
    return Feasibility(draws, unbuildable, over)
