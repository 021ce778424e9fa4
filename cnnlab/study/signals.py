"""SIGTERM taken as Ctrl-C: one path for both, from the handler on.

A study process (and its workers' parent, and ``cnnlab ui``) closes what it has open the same
way whichever of the two signals ends it: the handler raises ``Terminated``, a
``KeyboardInterrupt``, where the program is, and everything after that is the path of Ctrl-C.
Where the program is inside a store's code, the handler waits until it is out (``STORE_CODE``).
Where Python cannot raise it (the handler ran inside a ``__del__`` or a weakref callback, run by
the garbage collector: Python prints "Exception ignored in ..." and goes on), the signal is sent
again, so that it is raised where the program is next (``_unraisable``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

STORE_CODE = ("/sqlalchemy/", "/optuna/storages/_rdb/", "/mlflow/store/db/",
              "/mlflow/store/tracking/sqlalchemy_store.py",
              "/mlflow/store/model_registry/sqlalchemy_store.py")
"""Code an interrupt is not raised in: SQLAlchemy's, and the session scopes of Optuna's RDB
storage and MLflow's SQL stores (not MLflow's REST client: Ctrl-C while it waits for a tracking
server that is gone ends the command at once). An exception raised there between a write and
its commit can leave the transaction open, and with it SQLite's write lock, held by a session
that the exception's traceback keeps alive while the command closes its runs: every write of
that process and of the other workers then waits MLflow's 20 s and fails ("database is
locked"; seen in ``test_sigterm_to_the_workers_parent_ends_every_worker``, where neither
worker's closing writes went through). The signal is sent again ``AGAIN_S`` later, until the
program is out of that code."""
AGAIN_S = 0.05


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that trials and runs are closed as for Ctrl-C."""


def in_store_code(frame: Any) -> bool:
    """Whether ``frame`` or a frame that called it runs code of ``STORE_CODE``."""
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in STORE_CODE):
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int) -> None:
    """The signal to this process again in ``AGAIN_S``, from another thread."""
    again = threading.Timer(AGAIN_S, os.kill, (os.getpid(), signum))
    again.daemon = True
    again.start()


def _interrupt(signum: int, frame: Any) -> None:
    if in_store_code(frame):  # Again in a moment, once the store's code has returned.
        _send_again(signum)
        return
    interrupt = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    interrupt.signum = signum  # type: ignore[attr-defined]  # For _unraisable.
    raise interrupt


def _unraisable(previous: Any) -> Any:
    """A ``sys.unraisablehook`` that sends the signal again when the interrupt that
    ``_interrupt`` raised for it could not be raised (it was raised inside a ``__del__`` or a
    weakref callback: seen as a SIGTERM to a study that went on training, its ``Terminated``
    printed as "Exception ignored in: <function WeakKeyDictionary.__init__.<locals>.remove>"),
    and hands anything else to ``previous``."""

    def hook(unraisable: Any) -> None:
        signum = getattr(unraisable.exc_value, "signum", None)
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and signum is not None:
            _send_again(signum)  # Not from here: the handler would run in this hook too.
            return
        previous(unraisable)

    return hook


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises ``Terminated`` and SIGINT ``KeyboardInterrupt`` (where
    Python's own handler had it: a process that ignores SIGINT, as a shell's background job
    does, goes on ignoring it), never inside a store's code (``STORE_CODE``), and again where
    the program goes on when it landed where Python cannot raise it (``_unraisable``, as
    ``sys.unraisablehook``); the previous handlers and hook are put back after."""
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit code for a command ended by SIGTERM or Ctrl-C: 128 + the signal."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
