"""SIGTERM taken as Ctrl-C: one path for both, from the handler on.

A study process (and its workers' parent, and ``cnnlab ui``) closes what it has open the same
way whichever of the two signals ends it: the handler raises ``Terminated``, a
``KeyboardInterrupt``, where the program is, and everything after that is the path of Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that trials and runs are closed as for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises ``Terminated``; the previous handler is put back after."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit code for a command ended by SIGTERM or Ctrl-C: 128 + the signal."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
