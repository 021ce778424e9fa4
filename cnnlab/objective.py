"""The Optuna objective: sample an architecture, judge it, train it, return its validation score.

It computes and returns a number and nothing else: tracking reaches a trial through the hooks it
is given (``TrialHooks``) and through Optuna callbacks, never from in here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from typing import Any, Protocol

from cnnlab.config import StudyConfig
from cnnlab.data import MnistSplits
from cnnlab.errors import ArchitectureError
from cnnlab.shapes import LayerTable
from cnnlab.spec import Architecture

FAIL_REASON = "fail_reason"
"""The trial user attribute that says why a trial failed (an invalid architecture, say)."""
WORKER_ATTR = "cnnlab_worker"
"""The trial user attribute naming the worker process (host, pid) that runs it."""


class TrialHooks(Protocol):
    """What an objective tells the world about a trial while it runs."""

    def trial_started(self, trial: Any, arch: Architecture) -> None:
        """The architecture is known (it may still prove invalid)."""

    def keras_callbacks(self, trial: Any) -> list[Any]:
        """Keras callbacks to train this trial with (per-epoch logging, say)."""


class NoHooks:
    def trial_started(self, trial: Any, arch: Architecture) -> None:
        return None

    def keras_callbacks(self, trial: Any) -> list[Any]:
        return []


class DivergedError(ArithmeticError):
    """A trial whose loss became NaN or infinite."""


def check_architecture(arch: Architecture, max_params: int | None) -> LayerTable:
    """The layer table, or ``ArchitectureError`` if it cannot be built or is over budget."""
    table = arch.layer_table()
    if max_params is not None and table.total_params > max_params:
        raise ArchitectureError(
            f"{arch.describe()} has {table.total_params:,} parameters, over the study's "
            f"max_params of {max_params:,}.")
    return table


class Objective:
    """Trains one sampled architecture per call on the study's data and returns its score
    (the last epoch's ``metric`` on the validation split; the test split is never seen)."""

    def __init__(self, config: StudyConfig, data: MnistSplits, hooks: TrialHooks | None = None):
        self.config = config
        self.data = data
        self.hooks = hooks or NoHooks()

    def __call__(self, trial: Any) -> float:
        import keras
        from optuna_integration import KerasPruningCallback

        from cnnlab.training import train

        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        arch = self.config.space.suggest(trial)
        trial.set_user_attr("architecture", arch.describe())
        self.hooks.trial_started(trial, arch)
        try:
            table = arch.layer_table()
            trial.set_user_attr("n_params", table.total_params)
            trial.set_user_attr("macs", table.total_macs)
            check_architecture(arch, self.config.max_params)
        except ArchitectureError as err:
            trial.set_user_attr(FAIL_REASON, str(err))
            raise
        # Each trial starts from a clean Keras state, so that memory does not grow trial
        # after trial, with its own explicit seed.
        keras.backend.clear_session(free_memory=True)
        seed = self.config.seed + trial.number
        trial.set_user_attr("seed", seed)
        training = dataclasses.replace(self.config.training, seed=seed)
        # TerminateOnNaN stops a diverging trial at once; it is then failed, with the reason.
        callbacks = [*self.hooks.keras_callbacks(trial), keras.callbacks.TerminateOnNaN(),
                     KerasPruningCallback(trial, monitor=self.config.metric)]
        result = train(arch, self.data, training, callbacks=callbacks)
        losses = result.history.get("loss", [])
        if result.epochs_run < training.epochs or not all(map(math.isfinite, losses)):
            reason = (f"training diverged: the loss became "
                      f"{losses[-1] if losses else float('nan')} in epoch "
                      f"{max(len(losses) - 1, 0)} and training was stopped.")
            trial.set_user_attr(FAIL_REASON, reason)
            raise DivergedError(reason)
        return result.history[self.config.metric][-1]
