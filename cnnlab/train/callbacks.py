"""Every Keras callback cnnlab trains with, in one module.

Each adapts Keras's hooks to plain Python: what happens at an epoch's end is a function that the
caller gives (tracking logs the epoch's metrics, a pruner judges the trial, a failpoint fires), so
that training (``cnnlab.train.fit``) knows nothing of MLflow or Optuna. Keras is imported with
this module, and this module only where a network is trained.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from cnnlab.train.progress import (
    ERASE,
    REDRAW_INTERVAL,
    enabled,
    estimate_remaining,
    status_line,
    width,
)
from cnnlab.train.quiet import import_keras

keras = import_keras()


class EpochEnd(keras.callbacks.Callback):
    """Calls ``on_epoch_end(epoch, logs)`` after every epoch, and ``on_train_begin(model)`` as
    training begins. ``epoch`` is the number of the epoch that ended, counted from 1 as cnnlab
    counts epochs everywhere (the MLflow step, Optuna's step, printed lines): Keras's own
    count, from 0, stops here. ``logs`` are Keras's metrics of the epoch."""

    def __init__(self, on_epoch_end: Callable[[int, dict[str, Any]], None],
                 on_train_begin: Callable[[Any], None] | None = None) -> None:
        super().__init__()
        self._epoch_end = on_epoch_end
        self._train_begin = on_train_begin

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._train_begin is not None:
            self._train_begin(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_end(epoch + 1, dict(logs or {}))


class TerminateOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's ``TerminateOnNaN`` (training stopped after the first batch whose loss is NaN or
    infinite), without the line it prints on standard output ("Batch 0: Invalid loss,
    terminating training"): the trial's failure, with its reason, is said by cnnlab."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        with contextlib.redirect_stdout(io.StringIO()):
            super().on_batch_end(batch, logs)


class HistoryRecorder(keras.callbacks.Callback):
    """Keeps each epoch's logs (``history``: metric name to per-epoch values) and the model,
    for the end of a trial: a pruned trial's ``fit`` ends in an exception, so Keras's own
    History is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def monitored(logs: dict[str, Any], monitor: str, epoch: int) -> float:
    """The value of ``monitor`` in the logs of epoch ``epoch`` (counted from 1; it only names
    the epoch in the error); ``KeyError`` naming what there is if the logs lack it (no
    validation data given to fit)."""
    if monitor not in logs:
        raise KeyError(f"the pruner monitors {monitor!r}, but epoch {epoch}'s logs have only "
                       f"{', '.join(logs) or 'nothing'}: pass validation data to fit.")
    return float(logs[monitor])


def progress_callback(label: str, epochs: int, stream: IO[str] | None = None, *,
                      epoch_lines: IO[str] | None = None) -> Any | None:
    """A Keras callback drawing ``label``'s live status line on ``stream`` (default
    ``sys.stderr``) and, with ``epoch_lines``, writing each finished epoch's line there (as
    Keras's own output keeps a line per epoch); None when it has nothing to do: no line is
    drawn on ``stream`` (see ``enabled``) and no ``epoch_lines``.

    On a terminal each epoch's line replaces the live line and stays; elsewhere (a pipe, a
    file) only the epoch lines are written. ``epochs`` is the planned number (Keras's own
    ``params["epochs"]`` wins once training begins). The callback has ``clear()``: erase the
    live line, idempotent; ``on_train_end`` calls it, callers call it in a ``finally`` too since
    Keras skips ``on_train_end`` when ``fit`` raises.
    """
    stream = sys.stderr if stream is None else stream
    live = enabled(stream)
    if not live and epoch_lines is None:
        return None
    return ProgressLine(label, epochs, stream, live=live, epoch_lines=epoch_lines)


class ProgressLine(keras.callbacks.Callback):
    """The live status line of a training on a TTY (``cnnlab.train.progress``), and with
    ``epoch_lines`` a line per finished epoch; ``clear()`` erases the live line (idempotent;
    Keras skips ``on_train_end`` when ``fit`` raises)."""

    def __init__(self, label: str, epochs: int, stream: IO[str], *, live: bool = True,
                 epoch_lines: IO[str] | None = None) -> None:
        super().__init__()
        self.label, self.epochs, self.stream = label, epochs, stream
        self.live, self.epoch_lines = live, epoch_lines
        self.width = width(stream) if live else None
        self._start: float | None = None
        self._paced_from: tuple[float, int] | None = None  # (time, units) after batch 1.
        self._last_draw = -math.inf
        self._drawn = False
        self._epoch = 0
        self._batch: int | None = None
        self._logs: dict[str, Any] = {}
        self._val_logs: dict[str, Any] = {}

    # Keras's parameters, read when training begins.
    def _planned(self) -> tuple[int, int | None]:
        params = self.params or {}
        epochs = params.get("epochs") or self.epochs
        steps = params.get("steps")
        return int(epochs), (int(steps) if steps else None)

    def on_train_begin(self, logs=None) -> None:
        self._start = time.monotonic()
        self._paced_from = None

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch, self._batch = epoch, None

    def on_train_batch_end(self, batch, logs=None) -> None:
        # With steps_per_execution > 1 Keras reports each call's last step as if every call
        # were whole: an epoch's short last call would say "batch 8/2".
        _, steps = self._planned()
        self._batch = batch + 1 if not steps else min(batch + 1, steps)
        self._logs = dict(logs or {})
        if self.live:
            self._draw(force=False)

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = dict(logs or {})
        self._epoch = epoch
        self._logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        if val_logs:
            self._val_logs = val_logs
        _, steps = self._planned()
        self._batch = steps if steps else self._batch
        if self.epoch_lines is not None:
            # The epoch's numbers stay, on a line of their own; the live line goes on below.
            self.clear()
            epochs, _ = self._planned()
            elapsed = math.nan if self._start is None else time.monotonic() - self._start
            line = status_line(self.label, epoch + 1, epochs, None, None, self._logs,
                               self._val_logs, elapsed, None)
            self._write(line + "\n", self.epoch_lines)
            self._last_draw = -math.inf  # The next epoch's first batch draws a new live line.
        elif self.live:
            self._draw(force=True, epoch_done=True)

    def on_train_end(self, logs=None) -> None:
        self.clear()

    def _units(self, epoch_done: bool) -> tuple[float, float]:
        """(done, total) in batches, or in epochs when Keras does not know the steps."""
        epochs, steps = self._planned()
        if steps:
            return self._epoch * steps + (self._batch or 0), epochs * steps
        return self._epoch + (1 if epoch_done else 0), epochs

    def _draw(self, *, force: bool, epoch_done: bool = False) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        done, total = self._units(epoch_done)
        # The first batch carries the graph's tracing: the pace is measured after it.
        if self._paced_from is None:
            self._paced_from = (now, done)
        if not force and now - self._last_draw < REDRAW_INTERVAL:
            return
        since, units = self._paced_from
        remaining = estimate_remaining(now - since, done - units, total - units)
        epochs, steps = self._planned()
        line = status_line(self.label, self._epoch + 1, epochs, self._batch, steps,
                           self._logs, self._val_logs, now - self._start, remaining)
        if self.width is not None and len(line) >= self.width:
            line = line[:self.width - 1]  # A wrapped line could not be redrawn in place.
        self._write("\r" + line + "\x1b[K")
        self._last_draw = now
        self._drawn = True

    def clear(self) -> None:
        """Erase the status line, if one is shown (idempotent; safe at any time)."""
        if self._drawn:
            self._drawn = False
            self._write(ERASE)

    def _write(self, text: str, stream: IO[str] | None = None) -> None:
        stream = self.stream if stream is None else stream
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # A closed or broken terminal: progress is optional.
            pass
