"""Live progress of a training on a terminal: one status line, redrawn in place.

``cnnlab.train.callbacks.progress_callback(label, epochs)`` gives a Keras callback that draws,
on a TTY, e.g.::

    trial 3  epoch 2/10  batch 120/196  loss 0.2312 acc 0.9310 | val_loss 0.1201 val_acc 0.9650
    00:41 elapsed, ~02:44 left    (all on one line)

redrawn with ``"\\r"`` and clear-to-end-of-line at most ``REDRAW_INTERVAL`` apart, and erased when
training ends, so that the caller's one summary line prints clean. No line is drawn when the
stream is not a TTY (logs get no per-batch noise) or ``CNNLAB_PROGRESS=0``; ``=1`` forces it on.
With ``epoch_lines`` (``cnnlab train``) each finished epoch's line is written there and stays,
as Keras keeps one line per epoch: on a terminal it replaces the live line, elsewhere it is all
that is written.

Keras calls ``on_train_end`` only when ``fit`` returns: when a callback raises (Optuna's pruning)
or training is interrupted it does not, so callers call ``clear()`` in a ``finally``::

    progress = progress_callback(f"trial {n}", epochs)
    ...
    finally:
        if progress is not None:
            progress.clear()

The formatting (``status_line``, ``format_duration``, ``estimate_remaining``) is pure; the Keras
callback is ``cnnlab.train.callbacks.ProgressLine``, imported only when one is made.
"""

from __future__ import annotations

import math
import os
import sys
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


def width(stream: IO[str]) -> int | None:
    """The terminal's columns, if ``stream`` is one; None when unknown."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None
    return columns if columns > 1 else None
