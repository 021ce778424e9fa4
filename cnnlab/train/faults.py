"""Named points in a trial's life where a test can interrupt a study process (failpoints).

``CNNLAB_FAULT=POINT:SIGNAL[:TRIAL]`` makes the process send itself SIGNAL (INT, TERM, KILL, STOP)
the first time it reaches POINT (in trial number TRIAL, if given). The points, in the order a
trial passes them: ``sampling`` (the configuration drawn), ``building`` (the model built),
``epoch`` (each epoch's end), ``plots`` (before the curve plots are logged), ``model_logging``
(before the model is logged), ``tell`` (the trial's run closed, Optuna not told yet),
``refresh`` (Optuna told; the study run's summary about to be refreshed). One more, ``claim``
(a configuration found new, about to be claimed for training), is there for the test of two
processes that draw one configuration at once; stopping there (``claim:STOP``) holds a
trial inside the instant where two could both decide to train it.

Databases test crash safety this way (FoundationDB's and etcd's failpoints); the robustness tests
use it to prove that the Optuna and MLflow stores agree whatever the instant of an interrupt.
Unset, it costs one dictionary lookup per point.
"""

from __future__ import annotations

import os
import signal
from typing import Any

ENV = "CNNLAB_FAULT"
POINTS = ("sampling", "building", "epoch", "plots", "model_logging", "tell", "refresh")
_fired = False
current_trial: int | None = None
"""The trial this process is in (set by the objective), for points reached outside it."""


def reach(point: str, trial: int | None = None) -> None:
    """Interrupt this process here if ``CNNLAB_FAULT`` names this point (and trial)."""
    global _fired
    spec = os.environ.get(ENV)
    if not spec or _fired:
        return
    trial = current_trial if trial is None else trial
    name, signame, *number = spec.split(":")
    if name != point or (number and trial is not None and int(number[0]) != trial):
        return
    _fired = True
    os.kill(os.getpid(), getattr(signal, f"SIG{signame}"))


def keras_callbacks(trial: int | None = None) -> list[Any]:
    """A Keras callback that reaches ``epoch`` at each epoch's end, when one is asked for."""
    if not os.environ.get(ENV, "").startswith("epoch:"):
        return []
    from cnnlab.train.callbacks import EpochEnd

    return [EpochEnd(lambda epoch, logs: reach("epoch", trial))]
