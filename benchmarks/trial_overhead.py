"""Per-trial overhead of tracking: cnnlab against a bare Optuna + Keras loop and against Optuna's
documented MLflow recipe, on short trials, side by side in one run.

    python benchmarks/trial_overhead.py [--trials 30] [--repeats 3] [--short]

Every loop runs the same trials (the same space, sampler and seeds: 2 epochs on 1,024 images,
networks of a few thousand to ~20k parameters, random sampler, no pruning), each loop in a fresh
process, the loops alternated and their order rotated per repeat:

- ``bare``: Optuna (in memory) + Keras, no tracking, ``clear_session`` per trial;
- ``cnnlab``: ``cnnlab.study.runner.run_study`` with SQLite Optuna and MLflow stores (everything
  recorded: runs, curves, plots, models, the study run and its plots);
- ``recipe``: Optuna (in memory) with ``optuna_integration.MLflowCallback`` and
  ``mlflow.keras.autolog()`` on a SQLite MLflow store, as Optuna's and MLflow's docs show it.

Prints each loop's wall time per trial (data loading and imports excluded; the study's own
setup and teardown included), medians over repeats with their spread, and cnnlab's overhead
per trial over the bare loop. ``--short`` is a quick check (6 trials, 1 repeat).
``--before REV`` adds cnnlab as it was at that git revision (a worktree, same interpreter) as a
fourth loop: before and after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STUDY = """
name = "overhead"
seed = 0
n_trials = {trials}
allow_repeats = true       # Every loop trains every draw: no reuse of duplicates.
[sampler]
name = "random"
[pruner]
name = "none"
[training]
epochs = 2
batch_size = 256
train_size = 1024
val_size = 1024
[search]
n_conv = [2]
filters = [4, 8, 12]
kernel_size = [3, 5]
strides = [2]
padding = ["valid", "same"]
dense_units = [16, 32]
"""
LOOPS = ("bare", "cnnlab", "recipe")


def _config(trials: int):
    import tomllib

    from cnnlab.search.config import parse_study


    text = STUDY.format(trials=trials)
    return parse_study(tomllib.loads(text), text=text)


def _data(config):
    from cnnlab.train.data import load_mnist

    return load_mnist(train_size=config.train_size, val_size=config.val_size)


def _train(config, data, trial) -> float:
    """One trial as the bare loop and the recipe train it: the drawn network, fitted, scored."""
    import keras

    from cnnlab.train.model import build_model

    arch = config.space.suggest(trial).architecture
    keras.backend.clear_session(free_memory=True)
    model = build_model(arch, seed=config.seed + trial.number)
    history = model.fit(data.train.x, data.train.y_onehot,
                        batch_size=config.training.batch_size, epochs=config.training.epochs,
                        validation_data=(data.validation.x, data.validation.y_onehot),
                        verbose=0)
    trial.set_user_attr("n_params", model.count_params())
    return history.history["val_accuracy"][-1]


def _bare(config, data, trials: int, tmp: str) -> list[int]:
    import optuna

    def objective(trial):
        return _train(config, data, trial)

    from cnnlab.search.factory import make_sampler

    study = optuna.create_study(direction="maximize", sampler=make_sampler(config))
    study.optimize(objective, n_trials=trials)
    return study.trials


def _cnnlab(config, data, trials: int, tmp: str) -> list[int]:
    from cnnlab.study.runner import run_study
    from cnnlab.tracking.stores import Stores

    outcome = run_study(config, Stores(f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"),
                        data=data, out=lambda _: None)
    return outcome.study.trials


def _recipe(config, data, trials: int, tmp: str) -> list[int]:
    import warnings

    import mlflow
    import optuna
    from optuna_integration import MLflowCallback


    warnings.simplefilter("ignore")  # The callback is deprecated in Optuna 5; it still runs.
    uri = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("overhead")
    mlflow.keras.autolog()
    callback = MLflowCallback(tracking_uri=uri, metric_name="val_accuracy")

    @callback.track_in_mlflow()
    def objective(trial):
        return _train(config, data, trial)

    from cnnlab.search.factory import make_sampler

    study = optuna.create_study(direction="maximize", sampler=make_sampler(config),
                                study_name="overhead")
    study.optimize(objective, n_trials=trials, callbacks=[callback])
    return study.trials


def child(loop: str, trials: int) -> None:
    """One loop in this process; prints one JSON line."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    config = _config(trials)
    data = _data(config)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        start = time.perf_counter()
        done = {"bare": _bare, "cnnlab": _cnnlab, "recipe": _recipe}[loop](
            config, data, trials, tmp)
        wall = time.perf_counter() - start
    sizes = [t.user_attrs["n_params"] for t in done]
    # Start to start: a trial's whole cost in the loop, what Optuna's callbacks do after it
    # included; the first trial (TensorFlow's first model, the stores' first writes) left out.
    starts = [t.datetime_start.timestamp() for t in done]
    steps = [b - a for a, b in zip(starts[1:], starts[2:], strict=False)]
    print(json.dumps({"loop": loop, "wall": wall, "trials": len(sizes),
                      "marginal": statistics.mean(steps) if steps else wall / len(sizes),
                      "params": [min(sizes), max(sizes)], "sizes": sizes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loops", default=",".join(LOOPS),
                        help="which loops, comma-separated (default: all three)")
    parser.add_argument("--short", action="store_true", help="6 trials, 1 repeat")
    parser.add_argument("--before", help="a git revision of cnnlab to run beside this one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trials)
        return
    if args.short:
        args.trials, args.repeats = 6, 1
    loops = [name for name in args.loops.split(",") if name]
    sources: dict[str, str] = {}
    tmp = tempfile.TemporaryDirectory()
    if args.before:
        import revision  # Beside this script.

        worktree = revision.extract(args.before, os.path.join(tmp.name, "before"))
        label = f"cnnlab@{args.before}"
        loops.insert(loops.index("cnnlab") + 1 if "cnnlab" in loops else len(loops), label)
        sources[label] = worktree
    per_trial: dict[str, list[float]] = {name: [] for name in loops}
    marginal: dict[str, list[float]] = {name: [] for name in loops}
    sizes: dict[str, list[int]] = {}
    print(f"{args.trials} trials per loop, {args.repeats} repeat(s), loops alternated")
    for repeat in range(args.repeats):
        order = loops[repeat % len(loops):] + loops[:repeat % len(loops)]
        for loop in order:
            env = dict(os.environ)
            if loop in sources:
                env["PYTHONPATH"] = sources[loop]
            result = subprocess.run(
                [sys.executable, __file__, "--child", loop.split("@")[0], "--trials",
                 str(args.trials)], capture_output=True, text=True, env=env)
            if result.returncode != 0:
                sys.exit(f"{loop} failed:\n{result.stderr[-3000:]}")
            record = json.loads(result.stdout.strip().splitlines()[-1])
            per_trial[loop].append(record["wall"] / record["trials"])
            marginal[loop].append(record["marginal"])
            sizes[loop] = record["sizes"]
            print(f"  repeat {repeat + 1} {loop:<14} {record['wall']:7.1f} s, "
                  f"{per_trial[loop][-1]:.2f} s per trial, {marginal[loop][-1]:.2f} s from one "
                  "trial's start to the next's "
                  f"(networks of {record['params'][0]:,}-{record['params'][1]:,} parameters)",
                  flush=True)
    tmp.cleanup()
    same = len({json.dumps(s) for s in sizes.values()}) == 1
    print(f"the same networks in every loop: {'yes' if same else 'NO'}")
    print("\n| loop | wall per trial (whole loop / trials), median (min-max) | start to next "
          "start, median (min-max) |\n| --- | --- | --- |")
    for loop in loops:
        a, b = per_trial[loop], marginal[loop]
        print(f"| {loop} | {statistics.median(a):.2f} s ({min(a):.2f}-{max(a):.2f}) | "
              f"{statistics.median(b):.2f} s ({min(b):.2f}-{max(b):.2f}) |")
    if "bare" in loops:
        for loop in (name for name in loops if name != "bare"):
            for label, values in (("whole loop", per_trial), ("start to start", marginal)):
                gaps = [c - b for c, b in zip(values[loop], values["bare"], strict=True)]
                print(f"{loop}'s overhead over the bare loop, {label}: "
                      f"{statistics.median(gaps):+.2f} s per trial (median of {len(gaps)} "
                      f"repeat(s); {min(gaps):+.2f} to {max(gaps):+.2f})")


if __name__ == "__main__":
    main()
