"""Start-up: how long cnnlab's commands take to answer, and a study to reach its first epoch.

    python benchmarks/startup.py [--repeats 5] [--before REV] [--short]

Times, in fresh processes, ``cnnlab --help``, ``cnnlab shapes``, ``cnnlab study check`` of the
quickstart file, ``cnnlab compare`` over a small study made first, and the time from
``cnnlab study run`` of a tiny study (one epoch per trial) to the line that reports its first
trial (its one epoch trained and recorded), and, on new stores each time (a first run: MLflow
creates its database), the time to the study's first validated epoch (the timestamp of its
first ``val_accuracy`` in the new MLflow store), and says for each command whether it imported
TensorFlow. With ``--before REV`` the same commands run from a checkout of that revision too
(a git worktree, same interpreter), alternated with this one: before and after in one run.
Medians of ``--repeats`` runs. ``--short``: 2 repeats.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import sys, runpy
sys.argv = ["cnnlab", *sys.argv[1:]]
try:
    from cnnlab.cli import main
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
print("TENSORFLOW", "tensorflow" in sys.modules, file=sys.stderr)
"""
TINY = """
name = "startup"
seed = 0
n_trials = 2
[sampler]
name = "random"
[pruner]
name = "none"
[training]
epochs = 1
train_size = 512
val_size = 512
[search]
n_conv = [1]
filters = [4, 8]
kernel_size = [3]
strides = [2]
padding = ["valid"]
dense_units = [16]
"""


def run(source: Path, argv: list[str], cwd: Path, first_epoch: bool | str = False
        ) -> tuple[float, bool]:
    """Seconds until the command ends (or, with ``first_epoch``, until its first trial's line;
    with ``first_epoch`` the path of a fresh MLflow SQLite store, until its first validated
    epoch: the timestamp of the first ``val_accuracy`` recorded there, which MLflow takes when
    the epoch's metrics are logged, at the epoch's end), and whether it imported TensorFlow."""
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONUNBUFFERED": "1"}
    wall = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PROBE, *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds, tensorflow = None, None
    assert proc.stdout is not None
    buffer = ""
    for line in proc.stdout:
        buffer += line
        if first_epoch is True and seconds is None and re.match(r"trial +0 ", line):
            seconds = time.perf_counter() - start
    proc.wait()
    for line in buffer.splitlines():
        if line.startswith("TENSORFLOW"):
            tensorflow = line.split()[1] == "True"
    if proc.returncode not in (0, None) and not argv[0] == "--help":
        raise SystemExit(f"{' '.join(argv)} failed in {source}:\n{buffer[-2000:]}")
    if isinstance(first_epoch, str):
        with sqlite3.connect(first_epoch) as db:
            (stamp,) = db.execute("select min(timestamp) from metrics "
                                  "where key = 'val_accuracy'").fetchone()
        seconds = stamp / 1000 - wall
    return (seconds if seconds is not None else time.perf_counter() - start), bool(tensorflow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", help="a git revision to compare with (e.g. HEAD~5)")
    parser.add_argument("--short", action="store_true", help="2 repeats")
    args = parser.parse_args()
    if args.short:
        args.repeats = 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = {"now": REPO}
        if args.before:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                            str(root / "before"), args.before], check=True,
                           capture_output=True)
            sources = {"before": root / "before", "now": REPO}
        try:
            (root / "tiny.toml").write_text(TINY)
            uris = ["--storage", f"sqlite:///{root}/optuna.db",
                    "--tracking-uri", f"sqlite:///{root}/mlflow.db"]
            # A small study for compare to read.
            run(REPO, ["study", "run", str(root / "tiny.toml"), *uris], root)
            commands = {
                "cnnlab --help": (["--help"], False),
                "cnnlab shapes": (["shapes"], False),
                "cnnlab study check quickstart.toml": (
                    ["study", "check", str(REPO / "experiments" / "quickstart.toml")], False),
                "cnnlab compare (a 2-trial study)": (
                    ["compare", "startup", "--storage", f"sqlite:///{root}/optuna.db",
                     "--tracking-uri", f"sqlite:///{root}/mlflow.db"], False),
                "cnnlab study run: to its first trial's line": (
                    ["study", "run", str(root / "tiny.toml"), "--n-trials", "99", *uris],
                    True),
                "cnnlab study run, new stores: to its first validated epoch": (
                    ["study", "run", str(root / "tiny.toml"), "--n-trials", "1"], "fresh"),
            }
            times: dict[tuple[str, str], list[float]] = {}
            imports: dict[tuple[str, str], bool] = {}
            for repeat in range(args.repeats):
                for label, (argv, first) in commands.items():
                    order = list(sources.items())
                    if repeat % 2:
                        order.reverse()
                    for name, source in order:
                        if first == "fresh":  # New stores each time, in a folder of its own.
                            folder = root / f"fresh-{name}-{repeat}"
                            folder.mkdir()
                            argv = [*argv[:3], "--n-trials", "1",
                                    "--storage", f"sqlite:///{folder}/optuna.db",
                                    "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
                            seconds, tf = run(source, argv, root, str(folder / "mlflow.db"))
                            times.setdefault((label, name), []).append(seconds)
                            imports[(label, name)] = tf
                            continue
                        if first:  # A new study each time: the same first trial.
                            argv = [*argv[:2], str(root / f"tiny-{name}-{repeat}.toml"),
                                    *argv[3:]]
                            Path(argv[2]).write_text(TINY.replace(
                                'name = "startup"', f'name = "startup-{name}-{repeat}"'))
                        seconds, tf = run(source, argv, root, first)
                        times.setdefault((label, name), []).append(seconds)
                        imports[(label, name)] = tf
                print(f"repeat {repeat + 1} of {args.repeats} done", flush=True)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(root / "before")], capture_output=True)
    names = list(sources)
    head = " | ".join(f"{n}: median s (min-max), TensorFlow imported" for n in names)
    print(f"\n| command | {head} |\n| --- |" + " --- |" * len(names))
    for label in commands:
        cells = []
        for name in names:
            values = times[(label, name)]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
                         f", {'yes' if imports[(label, name)] else 'no'}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
