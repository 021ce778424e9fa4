"""Study scripts: a study's search written in Python, in Optuna's define-by-run style.

A study script (``experiments/NAME.py``) holds a function from an Optuna trial to the trial's
``TrialSpec`` (or its ``Architecture``, trained with the study's ``training``), with the usual
``trial.suggest_*`` calls, conditionals and loops, and one ``StudyScript`` at module level that
names it and gives the study's settings, the keys of a study file but ``search``:

```python
import sys

import cnnlab
from cnnlab import Architecture, ConvLayer


def search(trial):
    n_conv = trial.suggest_categorical("n_conv", [1, 2, 3])
    conv = [ConvLayer(filters=trial.suggest_categorical(f"conv{i}_filters", [8, 16, 32]))
            for i in range(1, n_conv + 1)]
    return Architecture(conv=tuple(conv), dense=(128,))


study = cnnlab.StudyScript(search, name="mine", seed=0, n_trials=10,
                           training={"epochs": 3, "train_size": 10_000})

if __name__ == "__main__":  # python experiments/mine.py [check] [the options of study run]
    sys.exit(cnnlab.study_main(__file__))
```

``cnnlab study run experiments/NAME.py`` (or ``python experiments/NAME.py``) loads the script
(``cnnlab.search.config.load_study``) into the same ``StudyConfig`` that a study file makes, with
a ``ScriptSpace`` in place of the file's ``SearchSpace``; from there the study runs as any other.

A function is code, not data, so the study's identity (what a resume compares) holds what the
function *does*: the parameters it suggests and the specs it returns over ``FINGERPRINT_DRAWS``
random draws (``ScriptSpace.identity``). Editing its choices, or what a trial builds from them,
changes that identity, as editing a study file's ``[search]`` does; comments, names and the
budget do not.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.search.space import RandomSuggester
from cnnlab.spec.architecture import Architecture
from cnnlab.spec.trialspec import TrainConfig, TrialSpec

FINGERPRINT_DRAWS = 256
"""Random draws of a script's search function that make its identity (``ScriptSpace.identity``)."""
FINGERPRINT_SEED = 0
"""Their seed: the same for every study, so that the identity is the function's alone."""
OFFERED = ("suggest_categorical", "suggest_int", "suggest_float")
"""What the function may call on the trial while a check draws from it without a study."""


class StudyScript:
    """A study written as a Python script: ``search``, a function from an ``optuna.Trial`` to
    a ``TrialSpec`` or an ``Architecture``, and the study's settings as keyword arguments, the
    top-level keys of a study file (``name``, ``description``, ``seed``, ``n_trials``,
    ``timeout``, ``metric``, ``objectives``, ``max_params``, ``allow_repeats``, ``sampler``,
    ``pruner``, ``training``, ``confirm``; see ``cnnlab.search.config``) with the same values
    (``sampler={"name": "tpe", "n_startup_trials": 4}``, ``training={"epochs": 3}``).

    Nothing is checked here, so that a script run as ``python NAME.py`` reports a bad setting
    in one line as ``cnnlab study run NAME.py`` does: ``load_study`` checks the settings as a
    study file's, then draws from ``search`` (``ScriptSpace``), before any store is touched.
    Raises nothing; ``load_study`` raises ``ConfigError``, naming the script and the key."""

    def __init__(self, search: Callable[[Any], TrialSpec | Architecture], /,
                 **settings: Any) -> None:
        self.search = search
        self.settings = settings

    def __repr__(self) -> str:
        name = self.settings.get("name")
        return f"StudyScript({getattr(self.search, '__name__', self.search)!r}, name={name!r})"


@dataclass(frozen=True, eq=False)
class ScriptSpace:
    """What a study script searches: its function (``search``), drawn by Optuna's trials.

    ``suggest(trial, training)`` calls the function and returns the trial's ``TrialSpec`` (an
    ``Architecture`` returned is trained with ``training``; a ``TrialSpec``'s own training is
    kept, and its epochs must be the study's). ``where`` names the function in errors
    (``experiments/NAME.py: search()``). A space read back from a study's stored identity
    (``cnnlab confirm``, ``cnnlab report``) has no function (``search`` None) and draws nothing:
    its trials' specs are stored with them."""

    search: Callable[[Any], Any] | None
    where: str
    stored: dict[str, Any] | None = None
    """The identity stored with the study, for a space read back without its function."""

    def suggest(self, trial: Any, training: TrainConfig | None = None) -> TrialSpec:
        """The trial's spec: ``search(trial)``. Raises ``ConfigError`` naming the function and
        the trial when it raises, or returns anything but a ``TrialSpec`` or an
        ``Architecture``, or a ``TrialSpec`` whose epochs are not the study's."""
        if self.search is None:
            raise ConfigError(f"{self.where}: the study's search is a function in its script, "
                              "which is not loaded here; run the script to draw trials.")
        number = getattr(trial, "number", None)
        which = f"trial {number}" if number is not None else "a check's draw"
        try:
            made = self.search(trial)
        except CnnlabError as err:
            raise ConfigError(f"{self.where} failed at {which}: {err}") from None
        except AttributeError as err:
            offered = "" if number is not None else (
                f" (a check draws without a study: the trial offers {', '.join(OFFERED)})")
            raise ConfigError(f"{self.where} failed at {which}: AttributeError: {err}"
                              f"{offered}.") from None
        except Exception as err:  # Whatever the user's code raises: one sentence naming it.
            if number is not None and type(err).__module__.startswith("optuna"):
                raise  # In a study: Optuna's own signals (TrialPruned ...), as they are.
            raise ConfigError(f"{self.where} failed at {which}: {type(err).__name__}: "
                              f"{err}") from None
        if isinstance(made, Architecture):
            return TrialSpec(made, training or TrainConfig())
        if not isinstance(made, TrialSpec):
            raise ConfigError(f"{self.where} returned {type(made).__name__} at {which}; it "
                              "must return a cnnlab.TrialSpec or a cnnlab.Architecture.")
        if training is not None and made.training.epochs != training.epochs:
            raise ConfigError(
                f"{self.where} returned a TrialSpec of {made.training.epochs} epochs at {which}; "
                f"the study's are {training.epochs} (training.epochs: the budget of every "
                "trial, which pruners count in): build its TrainConfig with "
                f"epochs={training.epochs}, or return the Architecture alone.")
        return made

    def draws(self, n: int, seed: int,
              training: TrainConfig | None = None) -> list[tuple[list[tuple[str, str]], TrialSpec]]:
        """``n`` random draws of the function without a study (``RandomSuggester``, as the
        feasibility estimate draws): for each, the parameters it suggested, in order, as
        (name, distribution in words), and the spec it returned."""
        suggester = _Recording(RandomSuggester(seed))
        out = []
        for _ in range(n):
            suggester.calls = []
            spec = self.suggest(suggester, training)
            out.append((suggester.calls, spec))
        return out

    def identity(self, training: TrainConfig | None = None) -> dict[str, Any]:
        """What the function does, as data kept in the study: every parameter it suggests with
        its distribution(s) in words, and a digest of ``FINGERPRINT_DRAWS`` random draws
        (their parameters and the configuration of each spec, ``TrialSpec.key``). A space read
        back from a study returns what was stored."""
        if self.search is None:
            return dict(self.stored or {})
        return dict(_identity(self, training))

    def parameters(self) -> dict[str, str]:
        """Each parameter the function suggests and its distribution(s) in words, from
        ``identity``."""
        return dict(self.identity().get("parameters", {}))


@functools.lru_cache(maxsize=8)
def _identity(space: ScriptSpace, training: TrainConfig | None) -> tuple[tuple[str, Any], ...]:
    """``ScriptSpace.identity``, once per space (spaces are equal only to themselves, so a
    script loaded again is a new space, drawn again)."""
    digest = hashlib.sha256()
    seen: dict[str, list[str]] = {}
    latest: dict[str, int] = {}  # The latest place of each parameter in a draw's calls.
    for calls, spec in space.draws(FINGERPRINT_DRAWS, FINGERPRINT_SEED, training):
        digest.update(json.dumps([calls, spec.key()]).encode())
        for place, (name, described) in enumerate(calls):
            kinds = seen.setdefault(name, [])
            if described not in kinds:
                kinds.append(described)
            latest[name] = max(latest.get(name, place), place)
    # In the order the function asks for them (a parameter after a loop comes after it).
    order = sorted(seen, key=lambda name: latest[name])
    parameters = {name: " / ".join(seen[name]) for name in order}
    return (("parameters", parameters), ("draws_sha256", digest.hexdigest()))


class _Recording:
    """A suggester that notes each parameter drawn (name, distribution in words) before
    handing the call on."""

    def __init__(self, inner: RandomSuggester) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.calls.append((name, " | ".join(_word(c) for c in choices)))
        return self.inner.suggest_categorical(name, choices)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        self.calls.append((name, _range(low, high, step if step != 1 else None, log)))
        return self.inner.suggest_int(name, low, high, step=step, log=log)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        self.calls.append((name, _range(float(low), float(high), step, log)))
        return self.inner.suggest_float(name, low, high, step=step, log=log)


def _word(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return str(value)


def _range(low: Any, high: Any, step: Any, log: bool) -> str:
    text = f"{_word(low)}..{_word(high)}"
    if step is not None:
        text += f" by {_word(step)}"
    return text + (" log" if log else "")
