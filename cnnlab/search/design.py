"""A designed experiment: one knob at a time around a base network, every setting over seeds.

A search (``cnnlab.search.space``) draws networks in which every knob changes at once, which is
right for finding a good network and wrong for measuring what one knob does. A design answers
the notebook's exercise instead: around a *base* network (the notebook's CNN unless the file
says otherwise) it changes one knob at a time, on every conv layer, and trains each setting
with the same ``seeds`` (so that a setting and the base differ by the knob alone, seed for
seed):

```toml
[design]
seeds = 3                                   # each setting trained with seeds seed .. seed+2
filters = [0.25, 0.5, 1, 2]                 # the base's filters on every layer, scaled
kernel_size = [3, 5, 7]                     # every conv layer's kernel
strides = [[1, 2, 1, 1], [1, 2, 1, 2], [2, 2, 1, 2]]   # per conv layer (or one for all)
padding = ["same", "valid", ["same", "valid", "same", "valid"]]  # one for all, or per layer
factorial = ["filters", "kernel_size"]      # optional: every pair of these two knobs as well
base = "architectures/small_cnn.toml"       # optional: a base other than the notebook's CNN
```

The settings are the base, then for each knob (in the order above) each of its values that
changes the base; with ``factorial``, every combination of the two knobs' values that is not
already a setting. The study is the grid of settings by seeds (``Design.grid``), which
``cnnlab.search.sampling.DesignSampler`` walks seed by seed: the first pass trains every setting
once. This module is pure arithmetic: no framework is imported.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer
from cnnlab.spec.trialspec import TrainConfig, TrialSpec

KNOBS = ("filters", "kernel_size", "strides", "padding")
"""What a design varies, in the order its settings are listed: ``ConvLayer`` fields."""
BASE = "base"
"""The base network's setting label (and its knob)."""
SETTING_PARAM = "design_setting"
SEED_PARAM = "design_seed"
"""The two Optuna parameters of a design's trials: the setting's label and the seed's index."""
CELL_ATTR = "cnnlab_design_cell"
"""The system attribute of a design's trial: its cell of the grid (``Design.grid``, counted
seed by seed), which ``cnnlab.search.sampling.DesignSampler`` gives it before it runs."""
MAX_SEEDS = 100
MAX_SETTINGS = 200


@dataclass(frozen=True)
class Setting:
    """One network of a design: ``label`` ("base", "filters x2", "kernel_size 5" or, from a
    factorial, "filters x2, kernel_size 5"), the knobs it changes and their values' labels
    (``changes``: knob -> value label; empty for the base) and the network itself."""

    label: str
    changes: tuple[tuple[str, str], ...]
    architecture: Architecture

    @property
    def knob(self) -> str:
        """The knob this setting belongs to: ``base``, one knob, or ``knob1 x knob2``."""
        return " x ".join(k for k, _ in self.changes) or BASE

    @property
    def value(self) -> str:
        """The setting's value(s) as labels: ``x2``, ``5``, ``1-2-1-1``; the base's own value
        is ``base``."""
        return ", ".join(v for _, v in self.changes) or BASE


@dataclass(frozen=True)
class Design:
    """The base network, each knob's values (as the file gives them), the seeds per setting and
    the optional two-knob factorial."""

    base: Architecture = NOTEBOOK_CNN
    knobs: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    seeds: int = 2
    factorial: tuple[str, str] | None = None
    base_name: str = "notebook CNN"

    def apply(self, knob: str, value: Any, arch: Architecture | None = None) -> Architecture:
        """``arch`` (the base by default) with ``knob`` set to ``value`` on every conv layer:
        filters scaled (rounded, at least 1), or one kernel size / stride / padding for all
        layers, or a list with one per layer. Raises ``ArchitectureError`` for a value the
        layers refuse."""
        arch = arch or self.base
        n = len(arch.conv)
        if knob == "filters":
            layers = [dataclasses.replace(layer, filters=max(1, round(layer.filters * value)))
                      for layer in arch.conv]
        else:
            values = list(value) if isinstance(value, list | tuple) else [value] * n
            layers = [dataclasses.replace(layer, **{knob: v})
                      for layer, v in zip(arch.conv, values, strict=True)]
        return dataclasses.replace(arch, conv=tuple(layers))

    def base_value(self, knob: str) -> Any:
        """The base network's own value of ``knob`` in the form the file gives values: scale 1
        for filters, else the per-layer values (one value when every layer has it)."""
        if knob == "filters":
            return 1
        values = [getattr(layer, knob) for layer in self.base.conv]
        return values[0] if len(set(values)) == 1 else values

    def settings(self) -> list[Setting]:
        """The base, then each knob's settings that change the base, then the factorial's new
        combinations; a network is listed once (under its first label)."""
        found = [Setting(BASE, (), self.base)]
        seen = {self.base}
        for knob, values in self.knobs:
            for value in values:
                arch = self.apply(knob, value)
                if arch not in seen:
                    seen.add(arch)
                    found.append(Setting(f"{knob} {value_label(knob, value)}",
                                         ((knob, value_label(knob, value)),), arch))
        if self.factorial is not None:
            first, second = self.factorial
            values = dict(self.knobs)
            for a, b in itertools.product(values[first], values[second]):
                arch = self.apply(second, b, self.apply(first, a))
                if arch not in seen:
                    seen.add(arch)
                    changes = ((first, value_label(first, a)), (second, value_label(second, b)))
                    found.append(Setting(", ".join(f"{k} {v}" for k, v in changes), changes,
                                         arch))
        return found

    def grid(self) -> dict[str, list[Any]]:
        """The study's grid, slowest first: every setting with seed 0, then with seed 1 ..."""
        return {SEED_PARAM: list(range(self.seeds)),
                SETTING_PARAM: [s.label for s in self.settings()]}

    @property
    def size(self) -> int:
        """The number of trials the design trains: settings x seeds."""
        return len(self.settings()) * self.seeds

    def setting(self, label: str) -> Setting:
        for setting in self.settings():
            if setting.label == label:
                return setting
        raise ConfigError(f"the design has no setting {label!r}.")

    def suggest(self, trial: Any, training: TrainConfig | None = None) -> TrialSpec:
        """The trial's setting and seed (Optuna parameters ``design_setting`` and
        ``design_seed``) as a ``TrialSpec`` whose seed is ``training.seed`` plus the seed's
        index: every setting is trained with the same seeds.

        The seed's index is the trial's cell's (``CELL_ATTR``), recorded as an integer
        parameter of one value (``low == high``): a seed is no knob, and Optuna's importances
        (its own, optuna-dashboard's) give a parameter of one value none. A trial without a
        cell (another sampler), or of a study whose trials drew the index as a categorical
        parameter (a design made by cnnlab before; Optuna refuses two kinds of distribution
        for one parameter of a study), draws it from every index as a categorical."""
        settings = self.settings()
        label = trial.suggest_categorical(SETTING_PARAM, [s.label for s in settings])
        cell = _cell(trial)
        if cell is not None and not _seed_drawn_categorical(trial):
            index = trial.suggest_int(SEED_PARAM, cell // len(settings), cell // len(settings))
        else:
            index = trial.suggest_categorical(SEED_PARAM, list(range(self.seeds)))
        training = training or TrainConfig()
        spec = TrialSpec(self.setting(label).architecture, training)
        return spec.with_seed(training.seed + index)

    def paths(self) -> list[str]:
        return [SETTING_PARAM, SEED_PARAM]


def _cell(trial: Any) -> int | None:
    """The trial's cell (``CELL_ATTR``) as its storage holds it (an Optuna ``Trial`` shows no
    system attributes of its own), or None."""
    storage, trial_id = getattr(trial, "storage", None), getattr(trial, "_trial_id", None)
    if storage is None or trial_id is None:
        return None
    cell = storage.get_trial_system_attrs(trial_id).get(CELL_ATTR)
    return cell if isinstance(cell, int) else None


def _seed_drawn_categorical(trial: Any) -> bool:
    """Whether a trial of ``trial``'s study drew the seed's index as a categorical."""
    for other in trial.study.get_trials(deepcopy=False):
        distribution = other.distributions.get(SEED_PARAM)
        if distribution is not None:
            return type(distribution).__name__ == "CategoricalDistribution"
    return False


def value_label(knob: str, value: Any) -> str:
    """A knob's value as a short label: ``x0.5`` (a filters scale), ``5``, ``1-2-1-1``,
    ``same-valid-same-valid``."""
    if knob == "filters":
        return f"x{value:g}"
    if isinstance(value, list | tuple):
        return "-".join(str(v) for v in value)
    return str(value)


def parse_design(data: Any, where: str, study_dir: Path | None = None) -> Design:
    """Read a study file's ``[design]`` table; every unknown key, bad value or setting that
    cannot be built is a ``ConfigError`` naming it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table.")
    unknown = sorted(set(data) - {*KNOBS, "seeds", "factorial", "base"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected some of "
                          f"{', '.join(KNOBS)}, seeds, factorial, base.")
    base, base_name = _base(data.get("base", "notebook"), f"{where}.base", study_dir)
    seeds = data.get("seeds", 2)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"{where}.seeds must be an integer from 1 to {MAX_SEEDS}, not "
                          f"{seeds!r}.")
    knobs = []
    for knob in KNOBS:
        if knob in data:
            knobs.append((knob, _values(knob, data[knob], f"{where}.{knob}", base)))
    if not knobs:
        raise ConfigError(f"{where} varies no knob; give at least one of {', '.join(KNOBS)} "
                          "as a list of values.")
    factorial = _factorial(data.get("factorial"), f"{where}.factorial", dict(knobs))
    design = Design(base, tuple(knobs), seeds, factorial, base_name)
    for knob, values in knobs:
        for value in values:
            _buildable(design, f"{where}.{knob} = {value!r}", design.apply(knob, value))
    if factorial is not None:
        values = dict(knobs)
        for a, b in itertools.product(values[factorial[0]], values[factorial[1]]):
            _buildable(design, f"{where}.factorial: {factorial[0]} = {a!r} with "
                               f"{factorial[1]} = {b!r}",
                       design.apply(factorial[1], b, design.apply(factorial[0], a)))
    if len(design.settings()) > MAX_SETTINGS:
        raise ConfigError(f"{where} has {len(design.settings())} settings; at most "
                          f"{MAX_SETTINGS}.")
    return design


def _base(value: Any, where: str, study_dir: Path | None) -> tuple[Architecture, str]:
    if value == "notebook":
        return NOTEBOOK_CNN, "notebook CNN"
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be \"notebook\" or the path of an architecture file, "
                          f"not {value!r}.")
    path = Path(value)
    if not path.is_absolute() and study_dir is not None:
        path = study_dir / path
    try:
        return Architecture.from_file(path), path.stem
    except (ArchitectureError, ConfigError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _values(knob: str, value: Any, where: str, base: Architecture) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of values.")
    n = len(base.conv)
    checked = []
    for v in value:
        if knob == "filters":
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 64:
                raise ConfigError(f"{where} must hold scales of the base's filters (numbers "
                                  f"above 0, at most 64), not {v!r}.")
            checked.append(float(v) if v != int(v) else int(v))
            continue
        per_layer = v if isinstance(v, list) else [v]
        if isinstance(v, list) and len(v) != n:
            raise ConfigError(f"{where}: {v!r} gives {len(v)} values, but the base network has "
                              f"{n} conv layers; give one per layer, or one for all.")
        for item in per_layer:
            try:
                ConvLayer(filters=1, **{knob: item})
            except ArchitectureError as err:
                raise ConfigError(f"{where}: {err}") from None
            if knob == "padding":
                continue
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 28:
                raise ConfigError(f"{where} must hold integers from 1 to 28, not {item!r}.")
        checked.append(tuple(v) if isinstance(v, list) else v)
    labels = [value_label(knob, v) for v in checked]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where} lists a value twice: {value!r}.")
    return tuple(checked)


def _factorial(value: Any, where: str, knobs: dict[str, Any]) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or \
            not all(isinstance(v, str) for v in value) or value[0] == value[1]:
        raise ConfigError(f"{where} must name two different knobs, e.g. [\"filters\", "
                          f"\"kernel_size\"], not {value!r}.")
    for knob in value:
        if knob not in knobs:
            raise ConfigError(f"{where}: {knob!r} is not a knob this design varies (it varies "
                              f"{', '.join(knobs)}).")
    return value[0], value[1]


def _buildable(design: Design, where: str, arch: Architecture) -> None:
    try:
        arch.layer_table()
    except ArchitectureError as err:
        raise ConfigError(f"{where}: this network cannot be built: {err}") from None
