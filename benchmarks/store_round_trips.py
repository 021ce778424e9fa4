"""Store round trips per trial of a tiny study: the SQL statements that a trial costs in Optuna's
storage and in MLflow's tracking store (both SQLite), reads (SELECT) and writes (INSERT, UPDATE,
DELETE) apart, counted, not timed, so that the figure does not depend on the machine's load (a
transaction that writes ends in a commit that waits for the disk; one that reads does not).

    python benchmarks/store_round_trips.py [--trials 6] [--before REV]

Runs ``cnnlab.study.runner.run_study`` of the study of ``trial_overhead.py`` (2 epochs on 1,024
images, random sampler, every draw trained) in a fresh process, counting through SQLAlchemy's
events every statement on each store's engine; prints the counts per trial
(the first trial, which creates the stores and the study run, left out). ``--before REV`` counts
cnnlab at that git revision too (its files by ``git archive``), in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def child(trials: int) -> None:
    import logging

    import sqlalchemy
    import trial_overhead

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    counts: dict[str, dict[str, int]] = {}

    def store(conn) -> str:
        return "optuna" if "optuna.db" in str(conn.engine.url) else "mlflow"

    def on_statement(conn, cursor, statement, *args) -> None:
        kind = "reads" if statement.lstrip().upper().startswith(("SELECT", "PRAGMA")) \
            else "writes"
        counts.setdefault(store(conn), {"reads": 0, "writes": 0})[kind] += 1

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", on_statement)
    config = trial_overhead._config(trials)
    data = trial_overhead._data(config)
    from cnnlab.study.runner import run_study
    from cnnlab.tracking.stores import Stores

    marks = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)

        def out(line: str) -> None:  # One line per trial: the counts so far.
            if line.startswith("trial "):
                marks.append(json.loads(json.dumps(counts)))

        run_study(config, Stores(f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"),
                  data=data, out=out)
    first, last = marks[0], marks[-1]
    n = len(marks) - 1
    print(json.dumps({name: {kind: (last[name][kind] - first.get(name, {}).get(kind, 0)) / n
                             for kind in last[name]} for name in last}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--before", help="a git revision of cnnlab to count beside this one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trials)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    sources = {"cnnlab": os.path.dirname(here)}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            import revision

            sources[f"cnnlab@{args.before}"] = revision.extract(args.before, tmp)
        print(f"per trial of {args.trials} (the first left out): reads / writes")
        for label, source in sources.items():
            env = {**os.environ, "PYTHONPATH": source}
            result = subprocess.run([sys.executable, __file__, "--child", "--trials",
                                     str(args.trials)], capture_output=True, text=True, env=env)
            if result.returncode != 0:
                sys.exit(f"{label} failed:\n{result.stderr[-3000:]}")
            counts = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"  {label:<16} " + ", ".join(
                f"{name} {c['reads']:.1f} / {c['writes']:.1f}"
                for name, c in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    main()
