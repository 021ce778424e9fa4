"""What the dominance pruner (cnnlab.spec.front.should_stop) would have saved, and what it would
have lost, replayed on learning curves that were recorded without it.

The trials are replayed one after another in number order, as one worker would have run them:
each trial, after each epoch but its last (no decision is taken after a trial's last epoch:
nothing is left to save), is judged against the curves of the *earlier* trials only, as far as
those got in the replay (a trial stopped after epoch 2 shows the later ones only epochs 1-2;
epochs are counted from 1). Running trials of other workers are not simulated. For each margin
asked, it prints:

- the epochs trained without the pruner and with it, and the saving;
- how many trials were stopped, and at which epoch (median);
- how far below the final front of the full histories the stopped trials would have ended
  (their final metric against the best final metric of any trial at most as large);
- "false stops": stopped trials that are on that final front, so that the front found with the
  pruner is worse, and by how much at their size (the best trial at most as large that the
  pruner let finish, against them).

Final values are the last epoch's, as the objective returns. Two sources of curves:

    python benchmarks/dominance_pruner.py --study NAME [--storage sqlite:///mlruns/optuna.db]
    python benchmarks/dominance_pruner.py --synthetic 200 --seed 0 [--margin 0.002 0.01]
    python benchmarks/dominance_pruner.py --synthetic 200 --k-range 1 3 --warmup 3

A study's COMPLETE trials are read: the curve is the user attribute ``cnnlab_curve`` if
present, else the trial's intermediate values; the size is the user attribute ``n_params`` (or
``--size-attr macs``). Synthetic curves (no study needed) follow
``acc_e = a - (a - 0.1) * exp(-k e) + noise`` after epoch ``e`` (from 1), with the final
accuracy ``a`` growing with the size, a random shortfall for the other hyperparameters and a
few poor configurations; the parameters are printed. Only counts, medians and ratios are
printed, no timings.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnlab.search.pruning import CURVE_ATTR  # noqa: E402
from cnnlab.spec.front import Point, pareto_front, should_stop  # noqa: E402

# The synthetic generator's parameters, printed with every synthetic run.
SYNTH = {
    "epochs": 10,
    "size_range": (2_000, 1_000_000),  # Log-uniform parameter counts.
    "cap": "0.995 - 0.10 * (size / 2000) ** -0.4",  # Best final accuracy at a size.
    "shortfall_mean": 0.01,  # Exponential shortfall below the cap (other hyperparameters).
    "poor_fraction": 0.10,  # Configurations that learn badly: final accuracy U(0.3, 0.9).
    "k_range": (0.3, 3.0),  # Log-uniform learning speed per epoch (--k-range).
    "noise_sd": 0.003,  # Gaussian noise on every epoch's accuracy.
}


def synthetic(n: int, seed: int, epochs: int, k_range: tuple[float, float]
              ) -> tuple[dict[int, list[float]], dict[int, float]]:
    """``n`` plausible validation-accuracy curves and their sizes, reproducible from ``seed``."""
    rng = random.Random(seed)
    low, high = SYNTH["size_range"]
    k_low, k_high = k_range
    curves: dict[int, list[float]] = {}
    sizes: dict[int, float] = {}
    for number in range(n):
        size = round(math.exp(rng.uniform(math.log(low), math.log(high))))
        if rng.random() < SYNTH["poor_fraction"]:
            final = rng.uniform(0.3, 0.9)
        else:
            cap = 0.995 - 0.10 * (size / 2000) ** -0.4
            final = cap - rng.expovariate(1 / SYNTH["shortfall_mean"])
        k = math.exp(rng.uniform(math.log(k_low), math.log(k_high)))
        curve = []
        for e in range(1, epochs + 1):  # After epoch e, counted from 1.
            value = final - (final - 0.1) * math.exp(-k * e)
            curve.append(min(1.0, max(0.0, value + rng.gauss(0, SYNTH["noise_sd"]))))
        curves[number] = curve
        sizes[number] = size
    return curves, sizes


def from_study(name: str, storage: str, size_attr: str
               ) -> tuple[dict[int, list[float]], dict[int, float], int]:
    """The curves and sizes of a study's COMPLETE trials, and how many had neither."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna would create a missing SQLite file, and an empty store, to find no study in it.
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():
        raise SystemExit(f"no SQLite file at {storage[len('sqlite:///'):]}.")
    study = optuna.load_study(study_name=name, storage=storage)
    curves: dict[int, list[float]] = {}
    sizes: dict[int, float] = {}
    skipped = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        curve = trial.user_attrs.get(CURVE_ATTR)
        if not curve:
            curve = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        size = trial.user_attrs.get(size_attr)
        if not curve or not isinstance(size, int | float):
            skipped += 1
            continue
        curves[trial.number] = [float(v) for v in curve]
        sizes[trial.number] = float(size)
    return curves, sizes, skipped


def replay(curves: dict[int, list[float]], sizes: dict[int, float], *, margin: float,
           warmup: int, min_trials: int, maximize: bool) -> dict[int, list[float]]:
    """Each trial's curve as far as the pruner would have let it go, trials in number order;
    no decision after a trial's last epoch, as in a study (``DominancePruner.epoch_end``)."""
    seen: dict[int, list[float]] = {}
    for number in sorted(curves):
        curve = curves[number]
        kept = curve
        for epoch in range(1, len(curve)):  # After epochs 1 .. len - 1 (counted from 1).
            stop, _ = should_stop(curve[:epoch], sizes[number], seen, sizes, margin=margin,
                                  n_warmup_epochs=warmup, n_min_trials=min_trials,
                                  maximize=maximize)
            if stop:
                kept = curve[:epoch]
                break
        seen[number] = kept
    return seen


def best_at_most(points: list[Point], size: float, exclude: object, maximize: bool
                 ) -> float | None:
    """The best metric among ``points`` at most ``size`` large, ``exclude`` left out."""
    values = [p.accuracy for p in points if p.size <= size and p.key != exclude]
    if not values:
        return None
    return max(values) if maximize else min(values)


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.4f}, max {max(values):.4f}"


def report(curves: dict[int, list[float]], sizes: dict[int, float], *, margin: float,
           warmup: int, min_trials: int, maximize: bool) -> None:
    kept = replay(curves, sizes, margin=margin, warmup=warmup, min_trials=min_trials,
                  maximize=maximize)
    sign = 1.0 if maximize else -1.0
    full = sum(map(len, curves.values()))
    pruned = sum(map(len, kept.values()))
    stopped = [n for n in curves if len(kept[n]) < len(curves[n])]
    finals = [Point(n, curves[n][-1], sizes[n]) for n in curves]
    front = {p.key for p in pareto_front(finals, maximize=maximize)}
    false_stops = [n for n in stopped if n in front]
    # How far below the full front each stopped trial ended (0: on it).
    gaps = []
    for n in stopped:
        best = best_at_most(finals, sizes[n], n, maximize)
        gaps.append(0.0 if best is None else max(0.0, sign * (best - curves[n][-1])))
    # What the front found with the pruner lacks at each false stop's size.
    finished = [p for p in finals if p.key not in stopped]
    drops, uncovered = [], 0
    for n in false_stops:
        best = best_at_most(finished, sizes[n], n, maximize)
        if best is None:
            uncovered += 1
        else:
            drops.append(sign * (curves[n][-1] - best))
    print(f"margin {margin:g}")
    print(f"  epochs trained   {full} without the pruner, {pruned} with it: "
          f"{100 * (full - pruned) / full:.1f}% saved (ratio {pruned / full:.3f})")
    stop_epochs = [len(kept[n]) for n in stopped]  # The epochs they ran: from 1.
    median_stop = f"{statistics.median(stop_epochs):g}" if stop_epochs else "-"
    print(f"  trials stopped   {len(stopped)} of {len(curves)} "
          f"({100 * len(stopped) / len(curves):.1f}%), median stop epoch {median_stop}")
    print(f"  stopped trials' final gap below the full front: {summary(gaps)}")
    print(f"  false stops      {len(false_stops)} of the {len(front)} trials on the full front"
          + (f" (trials {_some(sorted(false_stops))})" if false_stops else ""))
    if false_stops:
        print(f"  front drop at the false stops' sizes: {summary(drops)}"
              + (f"; {uncovered} with no finished trial as small" if uncovered else ""))


def _some(numbers: list[int], shown: int = 10) -> str:
    """The first ``shown`` numbers, and how many more."""
    head = ", ".join(map(str, numbers[:shown]))
    return head + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--study", help="an Optuna study's name")
    source.add_argument("--synthetic", type=int, metavar="N", help="N synthetic trials")
    parser.add_argument("--storage", default="sqlite:///mlruns/optuna.db")
    parser.add_argument("--size-attr", default="n_params", help="n_params or macs")
    parser.add_argument("--seed", type=int, default=0, help="synthetic curves' seed")
    parser.add_argument("--epochs", type=int, default=SYNTH["epochs"],
                        help="synthetic curves' length")
    parser.add_argument("--k-range", type=float, nargs=2, default=SYNTH["k_range"],
                        metavar=("LOW", "HIGH"), help="synthetic curves' learning speeds")
    parser.add_argument("--margin", type=float, nargs="+", default=[0.002])
    parser.add_argument("--warmup", type=int, default=1, help="epochs never decided on")
    parser.add_argument("--min-trials", type=int, default=4)
    parser.add_argument("--minimize", action="store_true",
                        help="the curves are of a metric to minimize (val_loss)")
    args = parser.parse_args(argv)

    if args.synthetic is not None:
        SYNTH["k_range"] = tuple(args.k_range)
        curves, sizes = synthetic(args.synthetic, args.seed, args.epochs, SYNTH["k_range"])
        print(f"synthetic curves: {args.synthetic} trials, {args.epochs} epochs, "
              f"seed {args.seed}")
        print("  acc_e = a - (a - 0.1) * exp(-k e) + noise after epoch e (from 1), with")
        for key, value in SYNTH.items():
            if key != "epochs":
                print(f"    {key} = {value}")
    else:
        curves, sizes, skipped = from_study(args.study, args.storage, args.size_attr)
        print(f"study {args.study} ({args.storage}): {len(curves)} complete trials with a "
              f"curve and {args.size_attr}" + (f", {skipped} without" if skipped else ""))
        if not curves:
            print("nothing to replay.", file=sys.stderr)
            return 1
        lengths = sorted({len(c) for c in curves.values()})
        print(f"  epochs per trial: {', '.join(map(str, lengths))}")
    print(f"rule: no decision in the first {args.warmup} epoch(s) nor after a trial's last, at "
          f"least {args.min_trials} earlier trials at the epoch, trials replayed in number order")
    for margin in args.margin:
        report(curves, sizes, margin=margin, warmup=args.warmup, min_trials=args.min_trials,
               maximize=not args.minimize)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
