"""``cnnlab study run FILE --workers N``: N processes on one study, sharing its budget.

The study and its MLflow study run are made first, here; then the trials still to run are
split between N worker processes (``cnnlab study run FILE --share K``), so that together they
run exactly the study's total. Each worker is a full ``cnnlab study run`` against the same
stores; the same command started N times by hand works too (each stops when the study's
counted and running trials reach the total, so it can overshoot by at most N-1 trials).
Ctrl-C or SIGTERM here is passed on to every worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from cnnlab.config import StudyConfig


def run_workers(args: argparse.Namespace, config: StudyConfig) -> int:
    from cnnlab.study import counted, run_study

    # Create (or resume) the study and its study run once, before any worker starts.
    outcome = run_study(config, n_trials=args.n_trials, timeout=args.timeout,
                        storage=args.storage, tracking_uri=args.tracking_uri,
                        data_dir=args.data_dir, share=0, from_study=args.from_study,
                        out=lambda line: None)
    total = outcome.total
    remaining = None if total is None else max(total - counted(outcome.study), 0)
    if remaining == 0:
        print(f"study '{config.name}' is finished: {total} of {total} trials; nothing to do.")
        return 0
    shares = _split(remaining, args.workers)
    print(f"study '{config.name}': {args.workers} workers"
          + (f" for the {remaining} trial(s) still to run" if remaining is not None else ""),
          flush=True)
    procs = []
    for i, share in enumerate(shares):
        if share == 0:
            continue
        command = [sys.executable, "-m", "cnnlab.cli", "study", "run", str(args.file),
                   "--worker-name", str(i)]
        for flag, value in (("--n-trials", args.n_trials), ("--timeout", args.timeout),
                            ("--storage", args.storage), ("--tracking-uri", args.tracking_uri),
                            ("--data-dir", args.data_dir), ("--share", share)):
            if value is not None:
                command += [flag, str(value)]
        procs.append(subprocess.Popen(command, env=os.environ.copy()))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        _signal_all(procs, signal.SIGINT)
        [p.wait() for p in procs]
        return 130
    return max(codes, default=0)


def _split(remaining: int | None, workers: int) -> list[int | None]:
    if remaining is None:
        return [None] * workers  # A time budget only: every worker runs until it ends.
    return [remaining // workers + (1 if i < remaining % workers else 0)
            for i in range(workers)]


def _signal_all(procs: list[Any], signum: int) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signum)
