"""Live progress of a training on a terminal: one status line, redrawn in place.

``progress_callback(label, epochs)`` gives a Keras callback that draws, on a TTY, e.g.::

    trial 3  epoch 2/10  batch 120/196  loss 0.2312 acc 0.9310 | val_loss 0.1201 val_acc 0.9650
    00:41 elapsed, ~02:44 left    (all on one line)

redrawn with ``"\\r"`` and clear-to-end-of-line at most ``REDRAW_INTERVAL`` apart, and erased when
training ends, so that the caller's one summary line prints clean. It is None when the stream is
not a TTY (logs get no per-batch noise) or ``CNNLAB_PROGRESS=0``; ``=1`` forces it on.

Keras calls ``on_train_end`` only when ``fit`` returns: when a callback raises (Optuna's pruning)
or training is interrupted it does not, so callers call ``clear()`` in a ``finally``::

    progress = progress_callback(f"trial {n}", epochs)
    ...
    finally:
        if progress is not None:
            progress.clear()

The formatting (``status_line``, ``format_duration``, ``estimate_remaining``) is pure; Keras is
imported only when the factory makes a callback, never at this module's import.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

ENV = "CNNLAB_PROGRESS"
REDRAW_INTERVAL = 0.25
"""Seconds between two redraws during batches (about 4 a second); epoch ends always redraw."""
ERASE = "\r\x1b[K"
"""Back to the line's start and clear to its end."""

_SHORT_NAMES = {"accuracy": "acc"}


def format_duration(seconds: float | None) -> str:
    """``00:41``, ``12:05``, ``1:02:03``; ``--:--`` for None, negative or non-finite values."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def estimate_remaining(seconds: float, done: float, total: float) -> float | None:
    """Seconds left if the other ``total - done`` units go at the pace of the ``done`` in
    ``seconds``; None while nothing is done (no pace yet)."""
    if done <= 0 or total <= 0 or not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds / done * max(total - done, 0)


def _metrics(logs: Mapping[str, Any] | None, val: bool) -> str:
    parts = []
    # The loss first, then the metrics in Keras's order (alphabetical in Keras 3).
    items = sorted((logs or {}).items(), key=lambda item: item[0] not in ("loss", "val_loss"))
    for key, value in items:
        if key.startswith("val_") != val or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        name = key[4:] if val else key
        name = _SHORT_NAMES.get(name, name)
        parts.append(f"{'val_' if val else ''}{name} {number:.4f}")
    return " ".join(parts)


def status_line(label: str, epoch: int, epochs: int, batch: int | None, batches: int | None,
                logs: Mapping[str, Any] | None, val_logs: Mapping[str, Any] | None,
                elapsed: float, remaining: float | None) -> str:
    """The status line of ``label`` in ``epoch`` (1-based) of ``epochs`` after ``batch`` of
    ``batches`` (either may be None: not shown / unknown), with the training metrics ``logs``,
    the validation metrics ``val_logs`` (keys ``val_*``: the last finished epoch's), the time
    ``elapsed`` and the estimate ``remaining`` (None: not known yet)."""
    fields = [label, f"epoch {epoch}/{epochs}"] if label else [f"epoch {epoch}/{epochs}"]
    if batch is not None:
        fields.append(f"batch {batch}/{batches}" if batches else f"batch {batch}")
    train_part, val_part = _metrics(logs, val=False), _metrics(val_logs, val=True)
    metrics = " | ".join(part for part in (train_part, val_part) if part)
    if metrics:
        fields.append(metrics)
    times = f"{format_duration(elapsed)} elapsed"
    if remaining is not None:
        times += f", ~{format_duration(remaining)} left"
    fields.append(times)
    return "  ".join(fields)


def enabled(stream: IO[str] | None = None) -> bool:
    """Whether a status line is drawn on ``stream`` (default ``sys.stderr``):
    ``CNNLAB_PROGRESS=1`` yes, ``=0`` no, else when it is a TTY (and TERM is not ``dumb``)."""
    setting = os.environ.get(ENV, "").strip()
    if setting == "1":
        return True
    if setting == "0":
        return False
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # No isatty, or a closed stream.
        return False
    return tty and os.environ.get("TERM") != "dumb"


def _width(stream: IO[str]) -> int | None:
    """The terminal's columns, if ``stream`` is one; None when unknown."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None
    return columns if columns > 1 else None


def progress_callback(label: str, epochs: int, stream: IO[str] | None = None) -> Any | None:
    """A Keras callback drawing ``label``'s live status line on ``stream`` (default
    ``sys.stderr``), or None when no line is drawn there (see ``enabled``).

    ``epochs`` is the planned number (Keras's own ``params["epochs"]`` wins once training
    begins). The callback has ``clear()``: erase the line, idempotent; ``on_train_end`` calls it,
    callers call it in a ``finally`` too since Keras skips ``on_train_end`` when ``fit`` raises.
    """
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        return None
    return _callback_class()(label, epochs, stream)


_CLASS: type | None = None


def _callback_class() -> type:
    """The Keras callback class, made on first use so that importing this module stays light."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cnnlab.train.quiet import import_keras

    keras = import_keras()

    class ProgressCallback(keras.callbacks.Callback):
        """One status line on a TTY; see ``cnnlab.train.progress``."""

        def __init__(self, label: str, epochs: int, stream: IO[str]) -> None:
            super().__init__()
            self.label, self.epochs, self.stream = label, epochs, stream
            self.width = _width(stream)
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
            self._batch = batch + 1
            self._logs = dict(logs or {})
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

        def _write(self, text: str) -> None:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # A closed or broken terminal: progress is optional.
                pass

    _CLASS = ProgressCallback
    return _CLASS
