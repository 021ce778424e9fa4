"""Study files: a study declared as data (TOML), read and checked before any store is touched.

```toml
name = "quickstart"              # the Optuna study and the MLflow experiment
description = "what this study asks"
seed = 0                         # the sampler's seed; trial k trains with seed + k
n_trials = 8                     # the study's total (resuming continues up to it)
timeout = 600                    # optional: seconds per invocation
metric = "val_accuracy"          # or "val_loss"
direction = "maximize"           # follows from the metric if left out
objectives = ["val_accuracy", "n_params"]  # optional: the metric and a size to minimize
                                 # (n_params or macs): a two-objective study and its front
max_params = 400000              # optional: bigger architectures are refused untrained
max_macs = 5000000               # optional: so are costlier ones (multiply-adds per image)
warm_start = ["an-earlier-study"]  # optional: start from the trials of earlier studies (same
                                 # storage and data) that this space can draw (cnnlab.study.warm)
allow_repeats = false            # optional: train a configuration again when it is redrawn

[sampler]                        # tpe | random | bruteforce | nsgaii, with Optuna's options
name = "tpe"
n_startup_trials = 4

[pruner]                         # none | median | percentile | successive_halving |
name = "median"                  # hyperband | threshold, with Optuna's options, or dominance
                                 # (cnnlab.pruning: margin, n_warmup_epochs, n_min_trials)
n_warmup_steps = 2               # steps are epochs, from 1: none pruned after epoch 1

[fidelity]                       # optional, instead of [pruner]: rungs of growing cost, the
rungs = [{ epochs = 1, train_size = 5000 }, { epochs = 3 }]  # best third of each going on
promote = 0.34                   # (cnnlab.spec.fidelity: ASHA)

[training]
epochs = 3
batch_size = 256
optimizer = "rmsprop"
schedule = "cosine"              # optional: the training recipe (cnnlab.spec.trialspec:
warmup = 0.2                     # schedule, weight_decay, label_smoothing, rotation ...)
train_size = 10000               # optional: the first N training images
val_size = 10000                 # optional: the first N validation images

[search]                         # see cnnlab.space
n_conv = [2, 3]
filters = [16, 32, 64]

[design]                         # instead of [search], [sampler] and [pruner]: a designed
seeds = 2                        # experiment, one knob at a time around the notebook's CNN
filters = [0.5, 1, 2]            # (cnnlab.search.design)

[confirm]                        # optional: once the study has its trials, re-train the
top = 3                          # top 3 (or: front = true) with 3 more seeds each, and the
seeds = 3                        # notebook's CNN too with baseline = true (cnnlab.confirm)

[[enqueue]]                      # optional, repeatable: a configuration to train first, by
n_conv = 2                       # its Optuna parameters (Optuna's study.enqueue_trial); the
conv1_filters = 16               # sampler draws what it leaves out
```

Every unknown key, wrong type, empty list of choices or impossible range is a ``ConfigError``
whose message names the key.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.names import MACS_ATTR, N_PARAMS_ATTR
from cnnlab.search.design import Design, parse_design
from cnnlab.search.factory import PRUNERS, SAMPLERS, make_pruner, make_sampler
from cnnlab.search.script import ScriptSpace, StudyScript
from cnnlab.search.space import SearchSpace, parse_space
from cnnlab.spec import defaults
from cnnlab.spec.architecture import HARD_MAX_PARAMS
from cnnlab.spec.fidelity import Fidelity, Rung
from cnnlab.spec.trialspec import BASELINE_TRAININGS, RECIPE_FIELDS, USED_WITH, TrainConfig
from cnnlab.spec.words import count

METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}
MAX_EPOCHS = 10_000
"""More epochs than any study here would run: a larger number is a typo."""
SCRIPT_DRY_RUN = 20
"""Trials of a study script's dry run (``dry_run``): Optuna's checks of its suggest calls (one
name, one kind of distribution) on more of its branches than a study file's three."""
MAX_NAME = 200
"""The longest study name: it names an Optuna study, an MLflow experiment and folders."""

SIZES = (N_PARAMS_ATTR, MACS_ATTR)
"""What a second objective may minimize: the parameter count or the multiply-adds per image
(both known from the shape arithmetic before a network is built; each trial keeps them in the
user attributes of these names)."""


@dataclass(frozen=True)
class Component:
    """An Optuna sampler or pruner by cnnlab name, with keyword options for its class."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What Optuna warned of when the class was made with these options (a deprecated option,
    say), said once by ``study check`` and at the start of ``study run``; the per-trial samplers
    and the pruner are then made without repeating it."""



@dataclass(frozen=True)
class ConfirmConfig:
    """A study file's ``[confirm]``: what ``cnnlab confirm`` does when the study is done."""

    top: int | None = 3
    front: bool = False
    seeds: int = 3
    baseline: bool = False
    at_least: float | None = None
    """With ``front``: only the front's trials that scored at least this."""
    smallest: int | None = None
    """With ``front``: only the ``smallest`` smallest of them (the candidates for the smallest
    network as good as a bar)."""
    baseline_training: str = "study"
    """How the baseline (the notebook's CNN) is trained: ``study``, with the study's
    ``[training]`` like the trials; ``notebook``, as the notebook trains it (rmsprop, batch 256,
    10 epochs: ``TrainConfig()``)."""


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: what to search, how to train and score each trial, how long to go on."""

    name: str
    description: str = ""
    seed: int = 0
    n_trials: int | None = None
    timeout: float | None = None
    metric: str = "val_accuracy"
    direction: str = "maximize"
    size_objective: str | None = None
    """``n_params`` or ``macs`` when the study has a second objective, the size to minimize."""
    max_params: int | None = None
    max_macs: int | None = None
    """The cost budget: architectures of more multiply-adds per image are refused untrained
    (an Optuna constraint, as ``max_params``), so that a search spends no hours on slow
    corners."""
    warm_start: tuple[str, ...] = ()
    """Earlier studies (same storage, same data) whose trials this space can draw are copied
    into the study when it is created (``cnnlab.study.warm``)."""
    allow_repeats: bool = False
    """Train a configuration that an earlier trial judged again, instead of reusing its result."""
    sampler: Component = Component("tpe")
    pruner: Component = Component("median")
    training: TrainConfig = TrainConfig()
    train_size: int | None = None
    val_size: int | None = None
    space: SearchSpace | Design | ScriptSpace = SearchSpace()
    """What each trial may choose: a search space, a designed experiment's settings, or a
    study script's search function."""
    confirm: ConfirmConfig | None = None
    """Confirm the leading trials over seeds once the study has its trials."""
    fidelity: Fidelity | None = None
    """The rungs a trial is trained through, promoted from each only while it ranks well
    (``cnnlab.spec.fidelity``); None: every trial at full fidelity."""
    enqueue: tuple[dict[str, Any], ...] = ()
    """Configurations to train first, as Optuna parameters (``study.enqueue_trial``), each
    checked against the space."""
    path: Path | None = None
    text: str = ""
    """The file's text, logged as it was on the study's MLflow run."""
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    """The file's settings as data (the parsed TOML; a script's settings, with what its search
    function does under ``script``): the study's identity is made from it."""

    @property
    def objectives(self) -> list[str]:
        """The objectives' names, as Optuna's metric names: the metric, then the size."""
        return [self.metric] + ([self.size_objective] if self.size_objective else [])

    @property
    def directions(self) -> list[str]:
        return [self.direction] + (["minimize"] if self.size_objective else [])

    @property
    def design(self) -> Design | None:
        """The designed experiment, for a study file with ``[design]``; else None."""
        return self.space if isinstance(self.space, Design) else None

    @property
    def size_attr(self) -> str:
        """The size that fronts are drawn against: the size objective, else parameters."""
        return self.size_objective or N_PARAMS_ATTR

    @property
    def notes(self) -> tuple[str, ...]:
        """What Optuna warned of when the sampler and pruner were made from the file (said once,
        by ``study check`` and at the start of ``study run``, never before every trial)."""
        return self.sampler.notes + self.pruner.notes

    def identity(self) -> dict[str, Any]:
        """What makes two runs of a study the same study: the file's settings (``source``) but
        the budget and the words."""
        skip = ("n_trials", "timeout", "description", "confirm")
        return {k: v for k, v in self.source.items() if k not in skip}

    def __post_init__(self) -> None:
        if self.n_trials is not None and (isinstance(self.n_trials, bool) or self.n_trials < 1):
            raise ConfigError(f"study '{self.name}': n_trials must be at least 1, not "
                              f"{self.n_trials}.")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise ConfigError(f"study '{self.name}': timeout must be a positive number of "
                              f"seconds, not {self.timeout}.")
        design = self.design
        if design is not None and self.n_trials is not None and self.n_trials > design.size:
            raise ConfigError(f"study '{self.name}': n_trials {self.n_trials} is more than the "
                              f"design's {count(design.size, 'trial')} "
                              f"({count(len(design.settings()), 'setting')} x "
                              f"{count(design.seeds, 'seed')}).")


_TOP = {"name", "description", "seed", "n_trials", "timeout", "metric", "direction",
        "objectives", "max_params", "max_macs", "warm_start", "allow_repeats", "sampler",
        "pruner", "training", "search", "confirm", "design", "enqueue", "fidelity"}
_SCRIPT = "script"
"""The key under which a study script's identity keeps what its search function does
(``ScriptSpace.identity``), in place of a study file's ``search``; not a key of study files."""
_NOT_WITH_DESIGN = ("search", "sampler", "pruner", "objectives", "allow_repeats", "confirm",
                    "enqueue", "fidelity", "max_macs", "warm_start")
"""What a study file with ``[design]`` cannot also give: its trials are the design's grid,
trained in full (no pruning), one objective, each setting over its own seeds."""
_TRAINING = {"epochs", "batch_size", "optimizer", "learning_rate", "train_size", "val_size",
             *RECIPE_FIELDS}


def load_study(path: str | Path) -> StudyConfig:
    """Read and check a study: a study script (``.py``, ``load_study_script``), else a study
    file (TOML, ``load_study_config``). Raises ``ConfigError`` naming the file and the key."""
    return load_study_script(path) if Path(path).suffix == ".py" else load_study_config(path)


def _read(path: Path, kind: str, form: str) -> str:
    """A study file's or script's text; a ``ConfigError`` naming it if it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{kind} {path} does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"{kind} {path} is a directory, not a file.") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{kind} {path} is not UTF-8 text (byte {err.start}); {form} files "
                          "are UTF-8.") from None
    except OSError as err:
        raise ConfigError(f"{kind} {path} cannot be read: {err.strerror}.") from None


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and check a study file."""
    path = Path(path)
    text = _read(path, "study file", "TOML")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"study file {path} is not valid TOML: {err}.") from None
    if _SCRIPT in data:
        raise ConfigError(f"{path}: unknown key {_SCRIPT!r}; expected some of "
                          f"{', '.join(sorted(_TOP))} (a search written in Python is a study "
                          "script, experiments/NAME.py).")
    return parse_study(data, where=str(path), text=text, path=path)


def load_study_script(path: str | Path) -> StudyConfig:
    """Read and check a study script (``cnnlab.search.script``): run it as a module (not as
    ``__main__``), take its one ``StudyScript``, check its settings as a study file's, and
    draw from its search function (``ScriptSpace.identity``), all before any store is
    touched. Raises ``ConfigError`` naming the script and what is wrong: it cannot be run, it
    has no ``StudyScript`` or several, a setting is bad, or its function fails or returns
    anything but a ``TrialSpec`` or an ``Architecture``."""
    path = Path(path)
    text = _read(path, "study script", "Python")
    script = _the_study_script(path, _run_script(path, text))
    settings = _plain_data(script.settings)
    given = [k for k in ("search", "design", _SCRIPT) if k in settings]
    if given:
        raise ConfigError(f"{path}: {given[0]!r} is not a setting of a study script; its search "
                          "is the function given to StudyScript (a designed experiment is a "
                          "study file's [design]).")
    if not callable(script.search):
        raise ConfigError(f"{path}: the first argument of StudyScript must be the search "
                          f"function, not {script.search!r}.")
    name = getattr(script.search, "__name__", "search")
    space = ScriptSpace(script.search, where=f"{path}: {name}()")
    config = parse_study(settings, where=str(path), text=text, path=path, space=space)
    identity = space.identity(config.training)
    return dataclasses.replace(config, source={**config.source, _SCRIPT: identity})


def _run_script(path: Path, text: str) -> dict[str, Any]:
    """The module namespace of the study script at ``path``, run under a name of its own (so
    that ``if __name__ == "__main__":`` does not run), with its folder on ``sys.path`` as
    ``python path`` would have it."""
    import importlib.util
    import sys
    import traceback

    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = "cnnlab_study_script_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # Dataclasses and pickling look their module up.
    try:
        exec(compile(text, str(path), "exec"), module.__dict__)
    except Exception as err:  # Whatever the user's code raises: one sentence naming it.
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)]
        line = f" (line {frames[-1].lineno})" if frames else ""
        raise ConfigError(f"study script {path} fails when it is run{line}: "
                          f"{type(err).__name__}: {err}") from None
    return module.__dict__


def _the_study_script(path: Path, namespace: dict[str, Any]) -> StudyScript:
    """The one ``StudyScript`` a script defines at module level."""
    found = {name: value for name, value in namespace.items()
             if isinstance(value, StudyScript)}
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise ConfigError(f"study script {path} defines {what} cnnlab.StudyScript at module "
                          "level; it must define one, e.g. study = cnnlab.StudyScript(search, "
                          "name=..., n_trials=...).")
    return next(iter(found.values()))


def _plain_data(value: Any) -> Any:
    """A script's settings as a study file's data: tuples as lists (TOML has arrays only)."""
    if isinstance(value, dict):
        return {k: _plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v) for v in value]
    return value


def parse_study(data: dict[str, Any], *, where: str = "study", text: str = "",
                path: Path | None = None,
                space: ScriptSpace | None = None) -> StudyConfig:
    """Check a study given as a dict (the parsed TOML); errors name ``where`` and the key.
    ``space`` is a study script's search (``load_study_script``) in place of ``search``; a
    study's stored identity with a ``script`` entry (what a script's function did) is read
    back with a ``ScriptSpace`` that draws nothing."""
    unknown = sorted(set(data) - _TOP - {_SCRIPT})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected some of "
                          f"{', '.join(sorted(_TOP))}.")
    if _SCRIPT in data and space is None:
        if not isinstance(data[_SCRIPT], dict) or "search" in data or "design" in data:
            raise ConfigError(f"{where}: {_SCRIPT!r} must be a table (what a study script's "
                              "search function does), without 'search' or 'design'.")
        space = ScriptSpace(None, where=f"{where}: search function", stored=data[_SCRIPT])
    name = _name(data, where)
    description = _typed(data, "description", str, where, "")
    seed = _integer(data, "seed", where, 0, minimum=0, maximum=2**32 - 1)  # NumPy's range.
    n_trials = _integer(data, "n_trials", where, None, minimum=1)
    timeout = data.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
                not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"{where}: 'timeout' must be a positive number of seconds, "
                              f"not {timeout!r}.")
        timeout = float(timeout)
    design = None
    if "design" in data:
        given = [k for k in _NOT_WITH_DESIGN if k in data]
        if given:
            raise ConfigError(f"{where}: '{given[0]}' cannot be given with [design] (a design "
                              "trains every setting of its grid in full, over its seeds); "
                              "remove it, or remove [design] for a search.")
        design = parse_design(data["design"], f"{where}: design",
                              path.parent if path is not None else None)
    if n_trials is None and timeout is None and design is None:
        raise ConfigError(f"{where}: give 'n_trials' or 'timeout' (or both), so that the study "
                          "ends.")
    named = data.get("objectives")
    first = named[0] if isinstance(named, list) and named and isinstance(named[0], str) else None
    metric = _typed(data, "metric", str, where, first if first in METRICS else "val_accuracy")
    if metric not in METRICS:
        raise ConfigError(f"{where}: 'metric' must be one of {', '.join(METRICS)}, "
                          f"not {metric!r}.")
    direction = _typed(data, "direction", str, where, METRICS[metric])
    if direction != METRICS[metric]:
        raise ConfigError(f"{where}: 'direction' {direction!r} does not suit metric "
                          f"{metric!r}; it should be {METRICS[metric]!r}.")
    size_objective = _objectives(data, metric, where)
    max_params = _integer(data, "max_params", where, None, minimum=1, maximum=HARD_MAX_PARAMS)
    max_macs = _integer(data, "max_macs", where, None, minimum=1)
    allow_repeats = _typed(data, "allow_repeats", bool, where, False)
    sampler = Component("design") if design else _component(
        data.get("sampler", {"name": "tpe"}), f"{where}: sampler", SAMPLERS, "samplers")
    pruner = _pruner(data, where, design is not None, size_objective)
    training, train_size, val_size = _training(data.get("training", {}), where, seed)
    fidelity = _fidelity(data.get("fidelity"), f"{where}: fidelity",
                         data.get("training", {}).get("epochs"), train_size)
    if fidelity is not None:
        training = dataclasses.replace(training, epochs=fidelity.epochs)
    space = design or space or parse_space(data.get("search", {}), where=f"{where}: search")
    if design is not None:
        n_trials = n_trials or design.size
        _within_budget(design, max_params, where)
    confirm = _confirm(data.get("confirm"), f"{where}: confirm")
    config = StudyConfig(
        name=name, description=description, seed=seed, n_trials=n_trials, timeout=timeout,
        metric=metric, direction=direction, size_objective=size_objective,
        max_params=max_params, max_macs=max_macs, warm_start=_warm_start(data, where),
        allow_repeats=allow_repeats, sampler=sampler,
        pruner=pruner, training=training, train_size=train_size, val_size=val_size,
        space=space, confirm=confirm, fidelity=fidelity, path=path, text=text, source=data,
        enqueue=_enqueue(data.get("enqueue"), space, training, where))
    if isinstance(space, SearchSpace):
        _refuse_unused_training(training, data.get("training", {}), space, where)
        _check_builds(config, where)
    return config


def outside_the_space(trial: Any) -> str | None:
    """The first parameter of an Optuna ``FixedTrial`` drawn from a space whose given value its
    distribution does not hold (a float out of range, an integer off its step), or None: a
    ``FixedTrial`` hands back what it is given without judging it."""
    for name, distribution in trial.distributions.items():
        try:
            inside = distribution._contains(distribution.to_internal_repr(trial.params[name]))
        except (ValueError, TypeError):
            inside = False
        if not inside:
            return name
    return None


def _warm_start(data: dict[str, Any], where: str) -> tuple[str, ...]:
    """``warm_start``: the names of the studies to start from (``cnnlab.study.warm``)."""
    warm = data.get("warm_start", [])
    if not isinstance(warm, list) or not all(isinstance(n, str) and n.strip() for n in warm):
        raise ConfigError(f"{where}: 'warm_start' must be a list of study names, not {warm!r}.")
    if len(set(warm)) != len(warm):
        raise ConfigError(f"{where}: 'warm_start' names a study twice: {warm}.")
    return tuple(warm)


def _enqueue(data: Any, space: Any, training: TrainConfig,
             where: str) -> tuple[dict[str, Any], ...]:
    """The ``[[enqueue]]`` tables: each a configuration by its Optuna parameters (the names
    ``cnnlab study check`` and MLflow show: ``n_conv``, ``conv2_strides``, ``learning_rate``),
    checked by drawing it from the space with Optuna's ``FixedTrial``: every parameter the
    space draws for it must be given and be one of its choices or in its range, and nothing
    else may be given."""
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ConfigError(f"{where}: 'enqueue' must be a list of tables ([[enqueue]]), each a "
                          "configuration by its parameters.")
    if data and not isinstance(space, SearchSpace):
        raise ConfigError(f"{where}: 'enqueue' needs a [search] space.")
    import optuna

    checked = []
    for i, params in enumerate(data, start=1):
        at = f"{where}: enqueue {i}"
        trial = optuna.trial.FixedTrial(params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # A value out of the space: checked below.
                space.suggest(trial, training)
        except ValueError as err:
            missing = re.search(r"parameter '([^']+)' is not found", str(err))
            if missing:
                raise ConfigError(f"{at}: give '{missing.group(1)}' too (the space draws it "
                                  "for this configuration).") from None
            named = [k for k, v in params.items() if f"'{v}' not in" in str(err)]
            culprit = f"'{named[0]}' = {params[named[0]]!r}" if named else "a value"
            reason = str(err).rstrip(".")
            raise ConfigError(f"{at}: {culprit} is not in the space ({reason}).") from None
        name = outside_the_space(trial)
        if name is not None:
            raise ConfigError(f"{at}: '{name}' = {params[name]!r} is not in the space "
                              f"({_choices(trial.distributions[name])}).")
        extra = sorted(set(params) - set(trial.params))
        if extra:
            raise ConfigError(f"{at}: '{extra[0]}' is not a parameter the space draws for this "
                              f"configuration (it draws {', '.join(trial.params)}).")
        checked.append(dict(params))
    return tuple(checked)


def _choices(distribution: Any) -> str:
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return "one of " + ", ".join(repr(c) for c in choices)
    return f"from {distribution.low} to {distribution.high}"


def _refuse_unused_training(training: TrainConfig, stated: dict, space: SearchSpace,
                            where: str) -> None:
    """A recipe setting in ``[training]`` that no trial can use (a ``warmup`` while the schedule,
    not searched, is constant) is a ``ConfigError``; one that a searched schedule or optimizer
    may use is kept."""
    for name in training.ignored():
        field, values = USED_WITH[name]
        if name in stated and f"training.{field}" not in space.params:
            raise ConfigError(f"{where}: training: '{name}' has no effect with {field} "
                              f"{getattr(training, field)!r}; it is used with {field} "
                              f"{values}.")


def _within_budget(design: Design, max_params: int | None, where: str) -> None:
    """Every setting of a design within ``max_params``: a design trains all of them."""
    if max_params is None:
        return
    for setting in design.settings():
        total = setting.architecture.layer_table().total_params
        if total > max_params:
            raise ConfigError(f"{where}: design setting '{setting.label}' has {total:,} "
                              f"parameters, over max_params ({max_params:,}).")


def _name(data: dict[str, Any], where: str) -> str:
    """The study's name: required, printable, not empty, at most ``MAX_NAME`` characters."""
    if "name" not in data:
        raise ConfigError(f"{where}: 'name' is required (the study's name).")
    name = _typed(data, "name", str, where)
    if not name.strip():
        raise ConfigError(f"{where}: 'name' must not be empty.")
    if len(name) > MAX_NAME:
        raise ConfigError(f"{where}: 'name' is {len(name)} characters long; at most {MAX_NAME} "
                          "(it names the Optuna study, the MLflow experiment and folders).")
    if any(not c.isprintable() for c in name):
        raise ConfigError(f"{where}: 'name' must be printable text, without control "
                          f"characters such as newlines, not {name!r}.")
    return name


def _training(training_data: Any, where: str, seed: int) -> tuple[TrainConfig, int | None,
                                                                   int | None]:
    """The ``[training]`` table: how every trial is trained, and the data sizes."""
    if not isinstance(training_data, dict):
        raise ConfigError(f"{where}: 'training' must be a table.")
    bad = sorted(set(training_data) - _TRAINING)
    if bad:
        raise ConfigError(f"{where}: training has unknown key {bad[0]!r}; expected some of "
                          f"{', '.join(sorted(_TRAINING))}.")
    tw = f"{where}: training"
    settings = dict(
        epochs=_integer(training_data, "epochs", tw, defaults.EPOCHS, minimum=1,
                        maximum=MAX_EPOCHS),
        batch_size=_integer(training_data, "batch_size", tw, defaults.BATCH_SIZE, minimum=1),
        seed=seed,
        optimizer=_typed(training_data, "optimizer", str, tw, defaults.OPTIMIZER),
        learning_rate=_learning_rate(training_data, tw),
        **{name: training_data[name] for name in RECIPE_FIELDS if name in training_data})
    try:
        training = TrainConfig(**settings)
    except ConfigError as err:
        raise ConfigError(f"{tw}: {err}") from None
    train_size = _integer(training_data, "train_size", tw, None, minimum=1, maximum=50_000)
    val_size = _integer(training_data, "val_size", tw, None, minimum=1, maximum=10_000)
    return training, train_size, val_size


def _pruner(data: dict[str, Any], where: str, design: bool,
            size_objective: str | None) -> Component:
    """The ``[pruner]`` table: by default none for a design or a study with rungs, the
    dominance pruner for two objectives, else the median pruner; refused beside ``[fidelity]``,
    and Optuna's pruners refused for two objectives."""
    default = ("none" if design or "fidelity" in data else
               "dominance" if size_objective else "median")
    pruner = _component(data.get("pruner", {"name": default}), f"{where}: pruner", PRUNERS,
                        "pruners")
    if "fidelity" in data and pruner.name != "none":
        raise ConfigError(f"{where}: [fidelity] and pruner {pruner.name!r} both stop trials "
                          "early; a study with rungs promotes its trials at the rungs: remove "
                          "[pruner] (or set name = \"none\").")
    if size_objective and pruner.name not in ("none", "dominance"):
        raise ConfigError(f"{where}: pruner {pruner.name!r} is one of Optuna's, which do not work "
                          "with two objectives (Optuna reports one value per epoch); use "
                          "'dominance' (cnnlab's) or 'none'.")
    return pruner


def _fidelity(data: Any, where: str, epochs: int | None,
              train_size: int | None) -> Fidelity | None:
    """The ``[fidelity]`` table (``cnnlab.spec.fidelity``): ``rungs``, a list of tables of
    ``epochs`` and ``train_size``, the last one the study's full fidelity (its epochs are the
    study's, given in ``[training]`` or not; all of the training split), ``promote`` and
    ``min_trials``."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table with 'rungs'.")
    unknown = sorted(set(data) - {"rungs", "promote", "min_trials"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected some of min_trials, "
                          "promote, rungs.")
    rungs_data = data.get("rungs")
    if not isinstance(rungs_data, list) or len(rungs_data) < 2 or \
            not all(isinstance(r, dict) for r in rungs_data):
        raise ConfigError(f"{where}: 'rungs' must be a list of at least two tables, e.g. "
                          "[{ epochs = 1, train_size = 10000 }, { epochs = 10 }].")
    whole = train_size or 50_000
    rungs = []
    for i, rung in enumerate(rungs_data, start=1):
        at = f"{where}: rung {i}"
        bad = sorted(set(rung) - {"epochs", "train_size"})
        if bad:
            raise ConfigError(f"{at}: unknown key {bad[0]!r}; expected epochs, train_size.")
        if "epochs" not in rung:
            raise ConfigError(f"{at}: 'epochs' is required (the epochs trained so far, "
                              "counted from 1).")
        rung_epochs = _integer(rung, "epochs", at, None, minimum=1, maximum=MAX_EPOCHS)
        size = _integer(rung, "train_size", at, None, minimum=1, maximum=50_000)
        if size is not None and size >= whole:
            size = None if i == len(rungs_data) else size
            if size is not None:
                raise ConfigError(f"{at}: 'train_size' {size:,} is not below the study's "
                                  f"{whole:,} training images; give fewer, or leave it out to "
                                  "train that rung on all of them.")
        rungs.append(Rung(rung_epochs, size))
    promote = data.get("promote", 1 / 3)
    if isinstance(promote, bool) or not isinstance(promote, (int, float)) or \
            not 0 < promote <= 1:
        raise ConfigError(f"{where}: 'promote' must be a fraction in (0, 1], not {promote!r}.")
    min_trials = _integer(data, "min_trials", where, 3, minimum=1)
    try:
        fidelity = Fidelity(tuple(rungs), float(promote), min_trials)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    if epochs is not None and epochs != fidelity.epochs:
        raise ConfigError(f"{where}: the last rung's epochs ({fidelity.epochs}) are the study's; "
                          f"training's 'epochs' says {epochs}: make them the same, or leave "
                          "training's out.")
    return fidelity


def dry_run(config: StudyConfig) -> list[str]:
    """Run the study's sampler and pruner for a few trials in memory, on its real search space,
    with a stand-in score: an option that Optuna takes when the sampler is built but fails on
    when it samples or prunes is a ``ConfigError`` here, before any store is touched, not an
    error in the middle of a study. Returns what the sampler warned of while it sampled (each
    once), for ``study check`` to say."""
    import optuna

    def objective(trial: Any) -> Any:
        config.space.suggest(trial, config.training)
        if config.size_objective is not None:
            return 0.5, 1000.0  # Optuna's pruners are refused for two objectives.
        for epoch in (1, 2):  # Optuna's step is the epoch's number, from 1.
            trial.report(0.5, epoch)
            trial.should_prune()
        return 0.5

    script = isinstance(config.space, ScriptSpace)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    said: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(directions=config.directions,
                                        sampler=make_sampler(config, say=said.append),
                                        pruner=make_pruner(config))
            # A script's function may branch: more trials reach more of its suggest calls.
            study.optimize(objective, n_trials=SCRIPT_DRY_RUN if script else 3)
    except ConfigError:
        raise  # A script's function failed: ScriptSpace.suggest said so.
    except Exception as err:  # Whatever Optuna raises: say which component and why.
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(
            f"{config.path or config.name}: "
            + ("the search function's suggest calls, " if script else "")
            + f"the sampler ({config.sampler.name}) or pruner ({config.pruner.name}) fails in "
            f"Optuna{'' if script else ' with these options'}: "
            f"{type(err).__name__}: {reason}") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    return said


def check_runnable(config: StudyConfig, notes: list[str] | None = None) -> Any:
    """What `study run` and `study check` both check before any store is touched: the sampler
    and pruner work in Optuna (``dry_run``), and enough of the space can be trained. Returns
    the space's ``Feasibility``; what the sampler warned of in the dry run is added to
    ``notes`` when a list is given."""
    from cnnlab.search.space import MIN_FEASIBLE, feasibility

    said = dry_run(config)
    if notes is not None:
        notes.extend(f"{config.path or config.name}: sampler: {text}" for text in said)
    feasible = feasibility(config.space, config.max_params, seed=config.seed,
                           max_macs=config.max_macs)
    if feasible.fraction < MIN_FEASIBLE:
        raise ConfigError(
            f"study '{config.name}': only {feasible.describe()}; allow larger networks "
            f"(max_params, max_macs) or narrow the search so that at least {MIN_FEASIBLE:.0%} "
            "can be trained.")
    return feasible


def _typed(data: dict, key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise ConfigError(f"{where}: '{key}' is required.")
        return default
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}, not {value!r}.")
    return value


def _integer(data: dict, key: str, where: str, default: Any, *, minimum: int,
             maximum: int | None = None) -> Any:
    if key not in data:
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: '{key}' must be an integer, not {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{where}: '{key}' must be {bound}, not {value}.")
    return value


def _learning_rate(data: dict, where: str) -> float | None:
    value = data.get("learning_rate")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: 'learning_rate' must be a positive number, not {value!r}.")
    return float(value)


def _confirm(data: Any, where: str) -> ConfirmConfig | None:
    """The ``[confirm]`` table: top (an integer) and/or front (true), seeds, baseline. With
    both, the ``top`` most accurate trials of the front."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table.")
    unknown = sorted(set(data) - {"top", "front", "seeds", "baseline", "baseline_training",
                                  "at_least", "smallest"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected some of top, front, "
                          "at_least, smallest, seeds, baseline, baseline_training.")
    baseline_training = _typed(data, "baseline_training", str, where, "study")
    if baseline_training not in BASELINE_TRAININGS:
        raise ConfigError(f"{where}: 'baseline_training' must be one of "
                          f"{', '.join(BASELINE_TRAININGS)}, not {baseline_training!r}.")
    front = _typed(data, "front", bool, where, False)
    at_least = data.get("at_least")
    if at_least is not None and (isinstance(at_least, bool) or
                                 not isinstance(at_least, (int, float))):
        raise ConfigError(f"{where}: 'at_least' must be a number (a score), not {at_least!r}.")
    smallest = _integer(data, "smallest", where, None, minimum=1, maximum=1000)
    if (at_least is not None or smallest is not None) and not front:
        raise ConfigError(f"{where}: 'at_least' and 'smallest' choose among the front's "
                          "trials; give front = true too.")
    top = (None if front and "top" not in data
           else _integer(data, "top", where, 3, minimum=1, maximum=1000))
    return ConfirmConfig(top=top, at_least=None if at_least is None else float(at_least),
                         smallest=smallest, front=front,
                         seeds=_integer(data, "seeds", where, 3, minimum=2, maximum=100),
                         baseline=_typed(data, "baseline", bool, where, False),
                         baseline_training=baseline_training)


def _objectives(data: dict, metric: str, where: str) -> str | None:
    """The size objective that ``objectives`` names, if any; the first must be the metric."""
    if "objectives" not in data:
        return None
    value = data["objectives"]
    if not isinstance(value, list) or not 1 <= len(value) <= 2 or \
            not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: 'objectives' must be a list of one or two names, e.g. "
                          f"[\"val_accuracy\", \"n_params\"], not {value!r}.")
    if value[0] not in METRICS:
        raise ConfigError(f"{where}: the first of 'objectives' must be one of "
                          f"{', '.join(METRICS)}, not {value[0]!r}.")
    if "metric" in data and data["metric"] != value[0]:
        raise ConfigError(f"{where}: 'metric' {data['metric']!r} and the first of 'objectives' "
                          f"{value[0]!r} differ; give one of them.")
    if len(value) == 1:
        return None
    if value[1] not in SIZES:
        raise ConfigError(f"{where}: the second of 'objectives' must be a size to minimize, "
                          f"one of {', '.join(SIZES)}, not {value[1]!r}.")
    return value[1]


def _component(data: Any, where: str, names: dict[str, str], kind: str) -> Component:
    import optuna

    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError(f"{where} must be a table with a 'name'.")
    options = dict(data)
    name = options.pop("name")
    if not isinstance(name, str) or name not in names:
        raise ConfigError(f"{where}: name {name!r} is not one of {', '.join(names)}.")
    if name == "dominance":
        return Component(name, _dominance_options(options, where))
    cls = getattr(getattr(optuna, kind), names[name])
    parameters = inspect.signature(cls).parameters
    accepted = set(parameters) - {"self", "seed"}
    for key, value in options.items():
        if key == "seed":
            raise ConfigError(f"{where}: give 'seed' at the top of the study file, not here.")
        if key not in accepted:
            raise ConfigError(f"{where}: {key!r} is not an option of optuna.{kind}."
                              f"{names[name]} (it takes {', '.join(sorted(accepted)) or 'none'}).")
        annotation = str(parameters[key].annotation)
        if not _fits(value, annotation):
            raise ConfigError(f"{where}: {key!r} of optuna.{kind}.{names[name]} takes "
                              f"{_plain(annotation)}, not {value!r}.")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Chosen.
            cls(**options) if kind == "pruners" else cls(seed=0, **options)
    except (TypeError, ValueError, OverflowError) as err:
        raise ConfigError(f"{where}: optuna.{kind}.{names[name]} refuses these options: "
                          f"{err}") from None
    said = dict.fromkeys(f"{where}: optuna.{kind}.{names[name]} warns: "
                         f"{' '.join(str(w.message).split())}" for w in caught)
    return Component(name, options, tuple(said))


def _dominance_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    """The dominance pruner's options from a study file: margin, n_warmup_epochs and
    n_min_trials (the monitored metric and the size come from the study)."""
    kinds = {"margin": (int, float), "n_warmup_epochs": (int,), "n_min_trials": (int,)}
    for key, value in options.items():
        if key not in kinds:
            raise ConfigError(f"{where}: {key!r} is not an option of the dominance pruner (it "
                              f"takes {', '.join(kinds)}).")
        if isinstance(value, bool) or not isinstance(value, kinds[key]) or \
                not math.isfinite(value) or value < 0:
            noun = "a number" if key == "margin" else "an integer"
            raise ConfigError(f"{where}: {key!r} of the dominance pruner must be {noun} of at "
                              f"least 0, not {value!r}.")
    if options.get("margin", 0) >= 1:
        raise ConfigError(f"{where}: 'margin' of the dominance pruner must be below 1 (a "
                          f"difference of validation accuracy), not {options['margin']!r}.")
    return dict(options)


_TOML_TYPES = {bool: ("bool",), int: ("int", "float"), float: ("float",), str: ("str",)}


def _fits(value: Any, annotation: str) -> bool:
    """Whether a TOML value suits an Optuna option's annotation (``int``, ``float | None``,
    ``str | int`` ...). Options that take objects or callables cannot come from a file."""
    if annotation in ("<class 'inspect._empty'>", "inspect._empty"):
        return True
    names = _TOML_TYPES.get(type(value))
    if names is None:
        return False  # Lists, tables, dates: no option cnnlab offers takes them.
    annotation = re.sub(r"Callable\[.*\]", "", annotation)  # A function's own types.
    return any(re.search(rf"\b{n}\b", annotation) for n in names)


def _plain(annotation: str) -> str:
    return re.sub(r"<class '(\w+)'>", r"\1", annotation).replace(" | None", "")


def _check_builds(config: StudyConfig, where: str) -> None:
    """Refuse a space in which no architecture could be built at all: the gentlest one (the
    fewest layers; for each conv layer its smallest numbers, 'same' padding and no pooling
    where offered) is built with the shape arithmetic."""
    from cnnlab.spec.architecture import Architecture, ConvLayer
    from cnnlab.spec.trialspec import CONV_FIELDS

    space = config.space
    gentlest = {"padding": "same", "pool": "none"}

    def gentle(param: Any, name: str) -> Any:
        values = param.all_values() if hasattr(param, "values") else param.bounds
        if gentlest.get(name) in values:
            return gentlest[name]
        return min(values) if all(isinstance(v, (int, float)) for v in values) else values[0]

    layers = [ConvLayer(**{f: gentle(space.layer_param(i, f), f) for f in CONV_FIELDS})
              for i in range(space.n_conv.bounds[0])]
    units = tuple(gentle(space.param(f"dense{i}.units"), "units")
                  for i in range(1, space.n_dense.bounds[0] + 1))
    try:
        Architecture(conv=tuple(layers), dense=units).layer_table()
    except Exception as err:
        raise ConfigError(f"{where}: search: no architecture in this space can be built; even "
                          f"the gentlest one fails: {err}") from None
