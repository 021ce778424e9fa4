"""Which of Optuna's pruners reaches a good network in the least wall time, replayed on learning
curves that were recorded in full.

Issue 24: "measure which pruner (median with warm-up, successive halving, Hyperband) reaches a
given validation accuracy in the least wall time". Training every candidate again under each
pruner costs hours per pruner on this 2-core machine; a replay costs seconds and gives every
pruner the same trials, so the comparison is paired. Its source is the curves that cnnlab
already recorded: every MLflow run of the named experiments (study trials and ``cnnlab
confirm``'s seeds alike) whose ``val_accuracy`` history has all the epochs, each epoch's wall
time the gap between its MLflow timestamp and the one before (the first: the run's start).

Each replay is one random search under a wall-time budget: a stream of curves drawn at random
with replacement (``--streams`` of them, seeded; every pruner gets the same streams), as one
worker would have trained them, driving Optuna's real pruner objects through the ask-and-tell
interface (``study.ask()``, ``trial.report(value, epoch)``, ``trial.should_prune()``,
``study.tell``). A trial stopped after epoch ``e`` costs its first ``e`` epochs' time, and the
next draw starts; a trial let through returns its last epoch's value, as cnnlab's objective
does. The budget (``--budget``) is by default ten times the median full training. Per pruner
it prints, as medians over the streams:

- the trials started within the budget;
- the time until a completed trial first reaches the target (``--target``: by default the
  upper quartile of the curves' final values; a stream that never does counts as the budget),
  and the share of streams that reach it;
- the best final value found within the budget;
- false stops: the share of stopped trials whose curve would have reached the target.

    python benchmarks/pruners.py --tracking-uri sqlite:///mlruns/mlflow.db --experiment knobs-full
    python benchmarks/pruners.py --experiment recipe-five-percent recipe-smallest --epochs 10

The pruners, as a study file names them (``[pruner]``), with the settings the shipped study
files use: ``none``; ``median`` (``MedianPruner(n_startup_trials=4, n_warmup_steps=5)``, as
``experiments/recipe_five_percent.toml``: no verdict before the sixth epoch); ``median-eager``
(Optuna's defaults: ``n_startup_trials=5, n_warmup_steps=0``); ``successive_halving``
(``SuccessiveHalvingPruner()``: min resource from the first trial, reduction factor 4);
``hyperband`` (``HyperbandPruner(min_resource=1, max_resource=EPOCHS, reduction_factor=3)``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from typing import Any

PRUNERS = ("none", "median", "median-eager", "successive_halving", "hyperband")


@dataclass(frozen=True)
class Curve:
    """One recorded training: its ``val_accuracy`` after each epoch and each epoch's seconds."""

    run: str
    values: tuple[float, ...]
    seconds: tuple[float, ...]


def read_curves(tracking_uri: str, experiments: list[str], epochs: int | None) -> list[Curve]:
    """Every run of ``experiments`` whose val_accuracy history has all ``epochs`` epochs (the
    most any run has, when not given), from the MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    curves = []
    for name in experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise SystemExit(f"no experiment '{name}' in {tracking_uri}.")
        for run in client.search_runs([experiment.experiment_id], max_results=10_000):
            history = sorted(client.get_metric_history(run.info.run_id, "val_accuracy"),
                             key=lambda m: m.step)
            if not history:
                continue
            stamps = [run.info.start_time] + [m.timestamp for m in history]
            curves.append(Curve(run.info.run_id, tuple(m.value for m in history),
                                tuple((b - a) / 1000 for a, b in zip(stamps, stamps[1:],
                                                                    strict=False))))
    full = epochs or max((len(c.values) for c in curves), default=0)
    return [c for c in curves if len(c.values) == full]


def make_pruner(name: str, epochs: int) -> Any:
    import optuna

    return {
        "none": lambda: optuna.pruners.NopPruner(),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=5),
        "median-eager": lambda: optuna.pruners.MedianPruner(),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                            reduction_factor=3),
    }[name]()


@dataclass(frozen=True)
class Replay:
    started: int
    reached: float | None
    best: float | None
    stopped: int
    false_stops: int


def replay(stream: list[Curve], pruner: str, target: float, budget: float,
           seed: int) -> Replay:
    """One search: ``stream``'s curves in order under ``pruner`` until ``budget`` seconds."""
    import optuna

    epochs = len(stream[0].values)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(pruner, epochs),
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    clock, reached, best = 0.0, None, None
    started = stopped = false_stops = 0
    for curve in stream:
        if clock >= budget:
            break
        trial = study.ask()
        started += 1
        outcome = "complete"
        for epoch, (value, seconds) in enumerate(zip(curve.values, curve.seconds,
                                                     strict=True), start=1):
            clock += seconds
            if clock > budget:
                outcome = "cut"  # The budget ends it: not the pruner's doing.
                break
            trial.report(value, epoch)
            if epoch < epochs and trial.should_prune():
                outcome = "pruned"
                break
        if outcome == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            stopped += 1
            false_stops += curve.values[-1] >= target
        elif outcome == "cut":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, curve.values[-1])
            best = curve.values[-1] if best is None else max(best, curve.values[-1])
            if reached is None and curve.values[-1] >= target:
                reached = clock
    return Replay(started, reached, best, stopped, false_stops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--experiment", nargs="+", required=True, metavar="NAME")
    parser.add_argument("--epochs", type=int, help="the curves' length (default: the longest)")
    parser.add_argument("--target", type=float,
                        help="the validation accuracy to reach (default: the upper quartile of "
                             "the curves' final values)")
    parser.add_argument("--budget", type=float, metavar="SECONDS",
                        help="wall time per search (default: ten median full trainings)")
    parser.add_argument("--streams", type=int, default=200,
                        help="random searches per pruner (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruners", nargs="+", choices=PRUNERS, default=list(PRUNERS))
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    curves = read_curves(args.tracking_uri, args.experiment, args.epochs)
    if len(curves) < 4:
        raise SystemExit(f"only {len(curves)} full curve(s) in {', '.join(args.experiment)}; "
                         "a replay needs at least 4.")
    finals = sorted(c.values[-1] for c in curves)
    target = args.target if args.target is not None else statistics.quantiles(finals, n=4)[2]
    epochs = len(curves[0].values)
    full = statistics.median(sum(c.seconds) for c in curves)
    budget = args.budget if args.budget is not None else 10 * full
    print(f"{len(curves)} full curves of {epochs} epochs from {', '.join(args.experiment)} "
          f"(a full training: median {full:.0f} s); final val_accuracy "
          f"{finals[0]:.4f}..{finals[-1]:.4f}; target {target:.4f} "
          f"({sum(f >= target for f in finals)} curves reach it); budget {budget:.0f} s; "
          f"{args.streams} random searches per pruner (seed {args.seed}), the same for each; "
          "medians over them")
    rng = random.Random(args.seed)
    longest = int(budget / min(c.seconds[0] for c in curves)) + 1
    streams = [rng.choices(curves, k=longest) for _ in range(args.streams)]
    print(f"{'pruner':20s} {'trials':>7s} {'time to target':>15s} {'reached':>8s} "
          f"{'best found':>11s} {'false stops':>12s}")
    for name in args.pruners:
        runs = [replay(stream, name, target, budget, args.seed + i)
                for i, stream in enumerate(streams)]
        times = [r.reached if r.reached is not None else budget for r in runs]
        bests = [r.best for r in runs if r.best is not None]
        stops = sum(r.stopped for r in runs)
        false = sum(r.false_stops for r in runs)
        share = sum(r.reached is not None for r in runs) / len(runs)
        print(f"{name:20s} {statistics.median(r.started for r in runs):7.0f} "
              f"{statistics.median(times):13.0f} s {share:8.0%} "
              f"{statistics.median(bests) if bests else float('nan'):11.4f} "
              f"{(false / stops if stops else 0):12.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
