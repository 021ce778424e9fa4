"""Is the process that runs a trial alive? Decided by more than its pid.

A trial records its process's identity: host, boot id (``/proc/sys/kernel/random/boot_id``),
pid and the process's start time (``/proc/PID/stat``, in clock ticks since boot). On the same
host and boot, a process with that pid *and* that start time is the one (a reused pid has
another start time); no such process means it is gone. Anything that cannot be checked here --
another host, another boot, an identity recorded without a start time -- is left to Optuna's
heartbeats, which fail a trial whose process has been silent too long; a process known to be
alive here is never failed by them, however long it was silent (stopped with Ctrl-Z or SIGSTOP,
a suspended laptop): see ``cnnlab.tracking.stores.open_storage``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process
    (or no /proc to ask). A zombie (exited, not yet reaped by its parent) is no process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # Field 3, the state: a zombie or dead process.
        return None
    return int(fields[19])  # Field 22 of stat; the list starts at field 3.


def identity() -> dict[str, Any]:
    """This process, as a trial records it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "boot_id": boot_id(),
            "start_time": start_time(pid)}


def _checkable(recorded: dict[str, Any]) -> bool:
    """Whether the recorded process can be checked here: this host and boot, a pid and a start
    time."""
    return (recorded.get("host") == socket.gethostname()
            and recorded.get("boot_id") is not None and recorded.get("boot_id") == boot_id()
            and recorded.get("start_time") is not None and "pid" in recorded)


def is_gone(recorded: dict[str, Any]) -> bool:
    """True only when the recorded process is known to be gone: same host and boot, and no
    process with its pid and start time. Everything else is treated as alive."""
    return _checkable(recorded) and start_time(recorded["pid"]) != recorded["start_time"]


def is_alive(recorded: dict[str, Any]) -> bool:
    """True only when the recorded process is known to be alive: same host and boot, and a
    process with its pid and start time (running, or stopped: SIGSTOP, Ctrl-Z). A process
    that cannot be checked here (another host) is neither known alive nor known gone."""
    return _checkable(recorded) and start_time(recorded["pid"]) == recorded["start_time"]
