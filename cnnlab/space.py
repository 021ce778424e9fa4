"""The search space as data, and the one function that turns an Optuna trial into an architecture.

A space says, for the number of conv layers, each conv layer's filters, kernel size, strides and
padding, the number of dense layers and their units, either a list of choices or an integer
range. A list of one value is fixed: it is not sampled, and Optuna does not see it. Per-layer
tables (``conv1``, ``conv2`` ...) override the defaults for that layer.

Parameter names are those of ``Architecture.to_params()`` (``n_conv``, ``conv1_filters``,
``conv1_kernel_size`` ... ``dense1_units``), so Optuna's and MLflow's columns line up.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.shapes import PADDINGS, LayerTable
from cnnlab.spec import Architecture, ConvLayer

CONV_KEYS = ("filters", "kernel_size", "strides", "padding")


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that a space uses."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int: ...


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


Param = Choices | IntRange


@dataclass(frozen=True)
class SearchSpace:
    """Everything a trial may choose; ``suggest`` turns a trial into an ``Architecture``."""

    n_conv: Param = Choices((2,))
    conv: dict[str, Param] = field(default_factory=lambda: {
        "filters": Choices((16, 32, 64)), "kernel_size": Choices((3,)),
        "strides": Choices((1,)), "padding": Choices(("valid",))})
    per_layer: dict[int, dict[str, Param]] = field(default_factory=dict)
    n_dense: Param = Choices((1,))
    dense_units: Param = Choices((128,))

    def layer_param(self, index: int, key: str) -> Param:
        """The choices for ``key`` of conv layer ``index`` (0-based), override or default."""
        return self.per_layer.get(index + 1, {}).get(key, self.conv[key])

    def suggest(self, trial: Suggester) -> Architecture:
        """Sample an architecture; names as in ``Architecture.to_params()``."""
        n_conv = self.n_conv.suggest(trial, "n_conv")
        layers = []
        for i in range(n_conv):
            values = {key: self.layer_param(i, key).suggest(trial, f"conv{i + 1}_{key}")
                      for key in CONV_KEYS}
            layers.append(ConvLayer(**values))
        n_dense = self.n_dense.suggest(trial, "n_dense")
        dense = tuple(self.dense_units.suggest(trial, f"dense{i + 1}_units")
                      for i in range(n_dense))
        return Architecture(conv=tuple(layers), dense=dense)


def parse_param(value: Any, where: str, *, kind: type, minimum: int | None = None,
                maximum: int | None = None, allowed: tuple[Any, ...] | None = None) -> Param:
    """Read a list of choices or an ``{low, high, step, log}`` table; errors name ``where``."""
    if isinstance(value, dict):
        if kind is not int:
            raise ConfigError(f"{where} must be a list of choices, not a range.")
        unknown = set(value) - {"low", "high", "step", "log"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {sorted(unknown)}; a range has "
                              "low, high and optionally step and log.")
        if "low" not in value or "high" not in value:
            raise ConfigError(f"{where} needs both 'low' and 'high'.")
        low, high = value["low"], value["high"]
        step, log = value.get("step", 1), value.get("log", False)
        for name, v in (("low", low), ("high", high), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{where}.{name} must be an integer, not {v!r}.")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log must be true or false, not {log!r}.")
        if minimum is not None and low < minimum:
            raise ConfigError(f"{where}.low must be at least {minimum}, not {low}.")
        if maximum is not None and high > maximum:
            raise ConfigError(f"{where}.high must be at most {maximum}, not {high}.")
        if low > high:
            raise ConfigError(f"{where} is an impossible range: low {low} > high {high}.")
        if step < 1:
            raise ConfigError(f"{where}.step must be at least 1, not {step}.")
        if log and step != 1:
            raise ConfigError(f"{where} cannot have both log = true and a step other than 1.")
        return IntRange(low, high, step, log)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where} is an empty list of choices.")
    for v in values:
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError(f"{where} must hold integers, not {v!r}.")
        if kind is str and not isinstance(v, str):
            raise ConfigError(f"{where} must hold strings, not {v!r}.")
        if minimum is not None and v < minimum:
            raise ConfigError(f"{where} must hold values of at least {minimum}, not {v!r}.")
        if maximum is not None and v > maximum:
            raise ConfigError(f"{where} must hold values of at most {maximum}, not {v!r}.")
        if allowed is not None and v not in allowed:
            raise ConfigError(f"{where} may only hold {', '.join(map(repr, allowed))}, "
                              f"not {v!r}.")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where} lists a choice twice: {values}.")
    return Choices(tuple(values))


# Bounds past anything trainable here, so that a typo cannot ask for a model that exhausts
# memory while it is built (the parameter ceiling below catches the rest).
MAX_LAYERS = {"n_conv": 20, "n_dense": 10}
_CONV_RULES: dict[str, dict[str, Any]] = {
    "filters": {"kind": int, "minimum": 1, "maximum": 4096},
    "kernel_size": {"kind": int, "minimum": 1, "maximum": 28},
    "strides": {"kind": int, "minimum": 1, "maximum": 28},
    "padding": {"kind": str, "allowed": PADDINGS},
}
MAX_UNITS = 65536


def parse_space(data: dict[str, Any], where: str = "search") -> SearchSpace:
    """Read the ``[search]`` table of a study file; unknown keys and bad values are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table.")
    defaults = SearchSpace()
    known = {"n_conv", "n_dense", "dense_units", *CONV_KEYS}
    conv = dict(defaults.conv)
    per_layer: dict[int, dict[str, Param]] = {}
    values: dict[str, Param] = {}
    for key, value in data.items():
        path = f"{where}.{key}"
        if key in CONV_KEYS:
            conv[key] = parse_param(value, path, **_CONV_RULES[key])
        elif key in ("n_conv", "n_dense"):
            values[key] = parse_param(value, path, kind=int, minimum=0 if key == "n_dense" else 1,
                                      maximum=MAX_LAYERS[key])
        elif key == "dense_units":
            values[key] = parse_param(value, path, kind=int, minimum=1, maximum=MAX_UNITS)
        elif key.startswith("conv") and key[4:].isdigit() and int(key[4:]) >= 1:
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a table of per-layer choices.")
            layer: dict[str, Param] = {}
            for sub, sub_value in value.items():
                if sub not in CONV_KEYS:
                    raise ConfigError(f"{path} has unknown key {sub!r}; expected some of "
                                      f"{', '.join(CONV_KEYS)}.")
                layer[sub] = parse_param(sub_value, f"{path}.{sub}", **_CONV_RULES[sub])
            per_layer[int(key[4:])] = layer
        else:
            raise ConfigError(f"{path} is not a search-space key; expected one of "
                              f"{', '.join(sorted(known))} or a per-layer table conv1, conv2 ...")
    space = SearchSpace(
        n_conv=values.get("n_conv", defaults.n_conv), conv=conv, per_layer=per_layer,
        n_dense=values.get("n_dense", defaults.n_dense),
        dense_units=values.get("dense_units", defaults.dense_units))
    max_conv = space.n_conv.bounds[1]
    beyond = [i for i in per_layer if i > max_conv]
    if beyond:
        raise ConfigError(f"{where}.conv{beyond[0]} is beyond the largest number of conv "
                          f"layers ({max_conv}) that {where}.n_conv allows.")
    return space


# -- feasibility: what can be trained, known before anything is built -----------------------

HARD_MAX_PARAMS = 100_000_000
"""No architecture over this many parameters is built (400 MB of float32 weights, before the
optimizer's copies): more than a 2-core CPU can train, and a typo away from exhausting memory."""
FEASIBILITY_DRAWS = 2000
"""Random architectures drawn to estimate how much of a space can be trained."""
MIN_FEASIBLE = 0.01
"""A study whose space is less feasible than this is refused before any store is touched."""


def check_architecture(arch: Architecture, max_params: int | None) -> LayerTable:
    """The layer table, or ``ArchitectureError`` if it cannot be built or is over budget."""
    table = arch.layer_table()
    if max_params is not None and table.total_params > max_params:
        raise ArchitectureError(
            f"{arch.describe()} has {table.total_params:,} parameters, over the study's "
            f"max_params of {max_params:,}.")
    if table.total_params > HARD_MAX_PARAMS:
        raise ArchitectureError(
            f"{arch.describe()} has {table.total_params:,} parameters, over cnnlab's ceiling of "
            f"{HARD_MAX_PARAMS:,} (more than this kind of machine can train).")
    return table


def constraints(arch: Architecture, max_params: int | None) -> dict[str, float]:
    """Optuna constraint values for ``arch`` (feasible when every value is <= 0).

    ``buildable`` is 1 for an architecture whose feature maps would shrink below 1x1, and
    ``max_params`` the relative excess over the budget (``params / max_params - 1``), so that a
    constrained sampler (TPE, NSGA-II) ranks a near miss above a far one."""
    try:
        total = arch.layer_table().total_params
    except ArchitectureError:
        return {"buildable": 1.0, "max_params": 0.0}
    limit = HARD_MAX_PARAMS if max_params is None else min(max_params, HARD_MAX_PARAMS)
    excess = total / limit - 1.0
    return {"buildable": 0.0, "max_params": excess}


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


@dataclass(frozen=True)
class Feasibility:
    """How much of a space can be trained, out of ``draws`` random architectures."""

    draws: int
    unbuildable: int
    over_budget: int

    @property
    def feasible(self) -> int:
        return self.draws - self.unbuildable - self.over_budget

    @property
    def fraction(self) -> float:
        return self.feasible / self.draws

    def describe(self) -> str:
        return (f"{self.fraction:.0%} of {self.draws:,} random architectures can be trained "
                f"({self.unbuildable:,} cannot be built, {self.over_budget:,} are over "
                "max_params)")


def feasibility(space: SearchSpace, max_params: int | None, draws: int = FEASIBILITY_DRAWS,
                seed: int = 0) -> Feasibility:
    """Estimate the trainable fraction of ``space`` with cnnlab's shape arithmetic alone."""
    suggester = RandomSuggester(seed)
    unbuildable = over = 0
    for _ in range(draws):
        values = constraints(space.suggest(suggester), max_params)
        if values["buildable"] > 0:
            unbuildable += 1
        elif values["max_params"] > 0:
            over += 1
    return Feasibility(draws, unbuildable, over)
