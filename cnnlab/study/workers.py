"""``cnnlab study run FILE --workers N``: N processes on one study, sharing its budget.

The study and its MLflow study run are made first, here; then the trials still to run are
split between N worker processes (``cnnlab study run FILE --share K``), so that together they
run exactly the study's total. Each worker is a full ``cnnlab study run`` against the same
stores; the same command started N times by hand works too (each stops when the study's
counted and running trials reach the total, so it can overshoot by at most N-1 trials).
Ctrl-C or SIGTERM here is passed on to every worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig
from cnnlab.study.runner import run_study
from cnnlab.study.signals import Terminated, exit_code, signals_as_interrupts
from cnnlab.tracking.stores import STORAGE_ENV, Stores


def run_workers(config: StudyConfig, stores: Stores, *, workers: int, file: Path,
                data_dir: str | None = None, from_study: str | None = None) -> int:
    """Run the study's remaining trials in ``workers`` processes of ``cnnlab study run FILE
    --share K``; returns the exit code (0 once every worker finished its share)."""
    # Create (or resume) the study and its study run once, before any worker starts.
    outcome = run_study(config, stores, data_dir=data_dir, share=0, from_study=from_study,
                        out=lambda line: None)
    total = config.n_trials
    remaining = None if total is None else max(total - T.counted(outcome.study), 0)
    if remaining == 0:
        print(f"study '{config.name}' is finished: {total} of {total} trials; nothing to do.")
        return 0
    print(f"study '{config.name}': {workers} workers"
          + (f" for the {remaining} trial(s) still to run" if remaining is not None else ""),
          flush=True)
    procs = _start(config, stores, file, data_dir, _split(remaining, workers))
    # SIGTERM here, as Ctrl-C, is passed on to every worker, which closes its trial and runs.
    with signals_as_interrupts():
        try:
            for p in procs:
                p.wait()
        except KeyboardInterrupt as stop:
            _signal_all(procs, signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
            for p in procs:
                p.wait()
            return exit_code(stop)
    return _exit_code(procs)


def _start(config: StudyConfig, stores: Stores, file: Path, data_dir: str | None,
           shares: list[int | None]) -> list[subprocess.Popen]:
    """One ``cnnlab study run`` process per non-empty share."""
    # The stores' URLs reach the workers through their environment, never their command
    # lines, which every user of the machine can read (ps).
    env = {**os.environ, STORAGE_ENV: stores.storage, "MLFLOW_TRACKING_URI": stores.tracking_uri}
    procs = []
    for i, share in enumerate(shares):
        if share == 0:
            continue
        command = [sys.executable, "-m", "cnnlab.cli", "study", "run", str(file),
                   "--worker-name", str(i)]
        for flag, value in (("--n-trials", config.n_trials), ("--timeout", config.timeout),
                            ("--data-dir", data_dir), ("--share", share)):
            if value is not None:
                command += [flag, str(value)]
        # In a process group of its own: a Ctrl-C at the terminal reaches the parent alone,
        # which passes it on once (a second SIGINT would interrupt a worker's cleanup).
        procs.append(subprocess.Popen(command, env=env, process_group=0))
    return procs


def _exit_code(procs: list[subprocess.Popen]) -> int:
    """0 if every worker finished; else the first failed worker's code, each failure said."""
    failed = [(i, p) for i, p in enumerate(procs) if p.returncode != 0]
    for i, p in failed:
        how = (f"was killed by {signal.Signals(-p.returncode).name}" if p.returncode < 0
               else f"exited with code {p.returncode}")
        print(f"cnnlab study run: worker {i} (pid {p.pid}) {how}; run the same command again "
              "to finish the study.", file=sys.stderr)
    if not failed:
        return 0
    code = failed[0][1].returncode
    return 128 - code if code < 0 else code


def _split(remaining: int | None, workers: int) -> list[int | None]:
    if remaining is None:
        return [None] * workers  # A time budget only: every worker runs until it ends.
    return [remaining // workers + (1 if i < remaining % workers else 0)
            for i in range(workers)]


def _signal_all(procs: list[Any], signum: int) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signum)
