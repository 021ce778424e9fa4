"""Real searches of an open space at equal wall time: full-fidelity TPE against TPE with fidelity
rungs and TPE with Optuna's Hyperband pruner, over several seeds with common random numbers.

Issue 32: "a benchmark that runs real searches of an open space at equal wall time, >= 5 seeds
with common random numbers: full-fidelity TPE vs the rung schedule(s) vs Optuna's pruners; time
to reach a target validation accuracy and best-so-far at checkpoints, medians with intervals."
Nothing is replayed: every search is a real ``cnnlab study run`` of the same open space (the
architecture knobs of ``experiments/full_space.toml``: 1-5 conv layers of 8-128 filters, kernels
1-7, strides 1-3, either padding, 0-2 dense layers; at most ``MAX_PARAMS`` parameters), on the
notebook's data (50,000 training images, the 10,000 validation images), full fidelity
``EPOCHS`` epochs. Each strategy is a study file made from one base (``study_file``); the seed
is the study's, so that the three strategies of a seed draw the same first trials (TPE's random
start-up draws: common random numbers) and differ only in how they spend the time after.

- ``tpe``: every trial at full fidelity;
- ``rungs``: ``[fidelity]`` rungs (1 epoch on 5,000 images -> 2 epochs on 25,000 -> full), the
  best third promoted at each (cnnlab's ASHA, ``cnnlab.spec.fidelity``);
- ``hyperband``: Optuna's ``HyperbandPruner(min_resource=1, max_resource=EPOCHS,
  reduction_factor=3)``, told each epoch's value;
- ``rungs-b``: rungs of 1 epoch on 5,000 images -> 2 epochs on all -> full: a trial promoted to
  the end has trained 1 epoch on 5,000 and 2 on 50,000 images (``rungs``': 1 on 5,000, 1 on
  25,000, 1 on 50,000, about half of the full-fidelity trial's 150,000 image-epochs).

A search is run with the study's ``timeout`` (seconds of wall time per invocation) and measured
from its trials' own start and end times: a search's clock is the sum of its trials' durations in
the order they finished (one worker), so that a search interrupted and resumed later (``run``
again: it continues the searches that have time left, in the same order) is measured as if it
had run in one go (a search whose time is up leaves a ``.done`` file beside the stores). A
trial still training when the budget ends does not count. The stores live
outside the work tree (``--root``). ``table`` prints, per strategy, medians over the seeds with
their range: trials trained and at full fidelity; the best full-fidelity validation accuracy at
the checkpoints (a quarter, half and all of the budget); for each target, the share of seeds that
reach it and the time to reach it (a seed that never does counts as the budget: a lower bound),
and the ratio to ``tpe``'s time on the same seed.

    python benchmarks/real_search.py run --root /work/bench/real-search --seeds 0 1 2 3 4 \\
        --budget 480
    python benchmarks/real_search.py table --root /work/bench/real-search --budget 480

The machine is shared and noisy: the strategies of a seed run one after another, so that a
change of load touches them alike; the load average is printed before each search.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STRATEGIES = ("tpe", "rungs", "hyperband", "rungs-b")
EPOCHS = 3
MAX_PARAMS = 100_000
TARGETS = (0.98, 0.985, 0.99)

BASE = """# Written by benchmarks/real_search.py: strategy {strategy}, seed {seed}.
name = "real-search-{strategy}-s{seed}"
description = "benchmarks/real_search.py: an open space, {strategy}, seed {seed}."
seed = {seed}
timeout = {timeout}
max_params = {max_params}

[sampler]
name = "tpe"
n_startup_trials = 8
multivariate = true
group = true

{fidelity}

[training]
epochs = {epochs}
batch_size = 256

[search]
n_conv = {{ low = 1, high = 5 }}
conv.filters = [8, 16, 32, 64, 128]
conv.kernel_size = [1, 3, 5, 7]
conv.strides = [1, 2, 3]
conv.padding = ["valid", "same"]
n_dense = [0, 1, 2]
dense.units = [32, 64, 128, 256]
"""

FIDELITY = {
    "tpe": '[pruner]\nname = "none"',
    "rungs": ("[fidelity]\nrungs = [{ epochs = 1, train_size = 5000 }, "
              f"{{ epochs = 2, train_size = 25000 }}, {{ epochs = {EPOCHS} }}]\n"
              "promote = 0.34\nmin_trials = 3"),
    "hyperband": ('[pruner]\nname = "hyperband"\nmin_resource = 1\n'
                  f"max_resource = {EPOCHS}\nreduction_factor = 3"),
    "rungs-b": ("[fidelity]\nrungs = [{ epochs = 1, train_size = 5000 }, { epochs = 2 }, "
                f"{{ epochs = {EPOCHS} }}]\npromote = 0.34\nmin_trials = 3"),
}


def study_file(strategy: str, seed: int, timeout: float) -> str:
    """The study file of one search."""
    return BASE.format(strategy=strategy, seed=seed, timeout=max(round(timeout), 1),
                       max_params=MAX_PARAMS, fidelity=FIDELITY[strategy], epochs=EPOCHS)


def stores(root: Path) -> tuple[str, str]:
    return (f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")


def trials_of(root: Path, strategy: str, seed: int) -> list:
    """The search's ended trials (none before it starts), in the order they finished."""
    import optuna

    storage, _ = stores(root)
    if not (root / "optuna.db").exists():
        return []
    name = f"real-search-{strategy}-s{seed}"
    if name not in optuna.study.get_all_study_names(storage=storage):
        return []
    study = optuna.load_study(study_name=name, storage=storage)
    # A trial whose process was killed (failed without a reason of its own, when the search was
    # resumed) spans the gap between sessions: it is no part of the search's time.
    ended = [t for t in study.get_trials(deepcopy=False)
             if t.datetime_complete is not None and t.datetime_start is not None
             and (t.state.name != "FAIL" or "fail_reason" in t.user_attrs)]
    return sorted(ended, key=lambda t: t.datetime_complete)


def timeline(trials: list, budget: float) -> list[tuple[float, object]]:
    """Each trial that ended within ``budget`` with the search's clock at its end."""
    clock, out = 0.0, []
    for trial in trials:
        clock += (trial.datetime_complete - trial.datetime_start).total_seconds()
        if clock > budget:
            break
        out.append((clock, trial))
    return out


def run(root: Path, seeds: list[int], budget: float,
        strategies: tuple[str, ...] = STRATEGIES) -> None:
    """Run (or continue) every search with time left, seed by seed, strategy by strategy."""
    root.mkdir(parents=True, exist_ok=True)
    storage, tracking = stores(root)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for seed in seeds:
        for strategy in strategies:
            if done_marker(root, strategy, seed).exists():
                continue
            trials = trials_of(root, strategy, seed)
            used = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
            left = budget - used
            path = root / f"{strategy}-s{seed}.toml"
            path.write_text(study_file(strategy, seed, left))
            print(f"{time.strftime('%H:%M:%S')} {strategy} seed {seed}: {left:.0f} s left "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            ended = subprocess.run([sys.executable, "-m", "cnnlab.cli", "study", "run",
                                    str(path), "--storage", storage, "--tracking-uri", tracking],
                                   cwd=root, env=env, check=False)
            if ended.returncode == 0:  # Its time is up (an interrupted one resumes next run).
                done_marker(root, strategy, seed).touch()


def done_marker(root: Path, strategy: str, seed: int) -> Path:
    """The file that says a search ran to its budget."""
    return root / f"{strategy}-s{seed}.done"


def _median_range(values: list[float], fmt: str = "{:.0f}") -> str:
    """``median [min-max]`` of the values that are numbers; ``-`` if none is (a search with
    no full-fidelity trial by a checkpoint has no best there)."""
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return (fmt.format(statistics.median(values)) + " [" + fmt.format(min(values)) + "-"
            + fmt.format(max(values)) + "]")


def table(root: Path, seeds: list[int], budget: float, targets: tuple[float, ...]) -> None:
    """Print the comparison (see the module's docstring)."""
    rows = {}
    for strategy in STRATEGIES:
        per_seed = {}
        for seed in seeds:
            trials = trials_of(root, strategy, seed)
            if not trials:
                continue
            ended = timeline(trials, budget)
            full = [(c, t.values[0]) for c, t in ended
                    if t.state.name == "COMPLETE" and t.values
                    and t.user_attrs.get("cnnlab_outcome") == "trained"]
            per_seed[seed] = {
                "complete": done_marker(root, strategy, seed).exists(),
                "trained": sum(t.user_attrs.get("cnnlab_outcome") == "trained" for _, t in ended),
                "full": len(full),
                "best": {f: max([v for c, v in full if c <= f * budget], default=float("nan"))
                         for f in (0.25, 0.5, 1.0)},
                "reach": {g: next((c for c, v in full if v >= g), None) for g in targets},
            }
        rows[strategy] = per_seed
    def done(strategy: str) -> list[int]:  # Seeds where it and tpe ran to their budget.
        return [s for s in seeds if all(rows[k].get(s, {}).get("complete")
                                        for k in ("tpe", strategy))]

    print(f"budget {budget:.0f} s per search; per strategy, medians [range] over the seeds "
          "where it and tpe both ran to the budget")
    print(f"{'strategy':<10} {'seeds':>5} {'trained':>12} {'full':>10}  "
          + "  ".join(f"best@{int(f * 100)}%".rjust(22) for f in (0.25, 0.5, 1.0)))
    for strategy in STRATEGIES:
        r = [rows[strategy][s] for s in done(strategy)]
        print(f"{strategy:<10} {len(r):>5} {_median_range([x['trained'] for x in r]):>12} "
              f"{_median_range([x['full'] for x in r]):>10}  "
              + "  ".join(_median_range([x["best"][f] for x in r], "{:.4f}").rjust(22)
                          for f in (0.25, 0.5, 1.0)))
    for target in targets:
        print(f"\ntarget val_accuracy {target}: seeds reaching it; seconds to reach it (budget "
              "if never); ratio to tpe's on the same seed")
        for strategy in STRATEGIES:
            reach = [rows[strategy][s]["reach"][target] for s in done(strategy)]
            times = [budget if t is None else t for t in reach]
            base = [rows["tpe"][s]["reach"][target] for s in done(strategy)]
            ratios = [t / (budget if b is None else b) for t, b in zip(times, base, strict=True)]
            print(f"  {strategy:<10} {sum(t is not None for t in reach)}/{len(reach)}  "
                  f"{_median_range(times):>18} s  ratio {_median_range(ratios, '{:.2f}')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "table"))
    parser.add_argument("--root", type=Path, required=True,
                        help="folder of the searches' stores (outside the work tree)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES),
                        help="the strategies to run (default: all), each seed in this order")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds of trials per search (default 480)")
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    args = parser.parse_args(argv)
    if args.action == "run":
        run(args.root, args.seeds, args.budget, tuple(args.strategies))
    table(args.root, args.seeds, args.budget, tuple(args.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
