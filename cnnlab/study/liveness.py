"""Is the process that runs a trial alive? Decided by more than its pid.

A trial records its process's identity: host, boot id (``/proc/sys/kernel/random/boot_id``),
pid and the process's start time (``/proc/PID/stat``, in clock ticks since boot). On the same
host and boot, a process with that pid *and* that start time is the one (a reused pid has
another start time); no such process means it is gone. Anything that cannot be checked here --
another host, another boot, an identity recorded without a start time -- counts as alive, and
is left to Optuna's heartbeats, which fail a trial whose process has been silent too long.
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
    (or no /proc to ask)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # Field 22 of stat; the list starts at field 3.


def identity() -> dict[str, Any]:
    """This process, as a trial records it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "boot_id": boot_id(),
            "start_time": start_time(pid)}


def is_gone(recorded: dict[str, Any]) -> bool:
    """True only when the recorded process is known to be gone: same host and boot, and no
    process with its pid and start time. Everything else is treated as alive."""
    if recorded.get("host") != socket.gethostname():
        return False
    if recorded.get("boot_id") is None or recorded.get("boot_id") != boot_id():
        return False
    if recorded.get("start_time") is None or "pid" not in recorded:
        return False
    return start_time(recorded["pid"]) != recorded["start_time"]
