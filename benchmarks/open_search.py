"""Search efficiency on the open space (issue 33): cnnlab's shipped strategy (TPE with fidelity
rungs and a warm start) against full-fidelity TPE, random search and KerasTuner's Hyperband, at
equal wall time, over several seeds with common random numbers.

Issue 33: "on the open space at medium scale, the shipped strategy (the previous issue's rungs +
TPE + warm start) against full-fidelity TPE, random search and KerasTuner Hyperband at equal wall
time, >= 5 seeds with common random numbers: time to the target and best-so-far, medians with
intervals, verdict at a stated margin. If some part does not help, say so and drop it."

The space is ``experiments/open_front.toml``'s (``SPACE``: 2-5 conv layers, plain or separable,
kernels 1/3/5, strides, padding, BN, max/avg pools, conv dropout, GAP or Flatten, a Dense layer
or none; optimizer, learning rate, schedule and its parameters, weight decay, label smoothing,
batch size, augmentation), within 18,066 parameters and the notebook CNN's multiply-adds, one
objective (validation accuracy). Medium scale: the first 10,000 training images, all 10,000
validation images, 3 epochs at full fidelity, BatchNormalization's momentum 0.9 for every
strategy (a short training's moving statistics: docs/studies.md, "Fidelity rungs").

Strategies, each a real ``cnnlab study run`` of a generated study file (KerasTuner a child
process of this script):

- ``shipped``: TPE, rungs of 1 -> 2 -> 3 epochs (the best third going on), started warm from the
  seed's ``source`` study (below);
- ``cold``: the same without the warm start (what the warm start adds);
- ``tpe``: TPE, every trial at full fidelity;
- ``random``: Optuna's RandomSampler, every trial at full fidelity;
- ``kt-hyperband``: ``keras_tuner.Hyperband(max_epochs=3, factor=3, seed=seed)`` over the same
  space (drawn through the same ``SearchSpace.suggest``, on KerasTuner's ``hp``), the same
  networks and training (cnnlab's ``build_model``), a trial's batch size its own.

The warm start's source, per seed: ``source``, full-fidelity TPE over a narrower space that a
user might have searched first (plain convolutions, each with BN, max pooling or none, Adam with
a cosine schedule, no weight decay: 0.0 in every strategy's ``[training]``, a value the open
space offers, where Keras's default would be None, which it does not), for half the budget. Its
time is not charged to ``shipped`` (it is an earlier study a user has); it is run once per seed
and reported.

Common random numbers: the TPE-based strategies of a seed share the study's seed, so their
random start-up draws are the same networks (``shipped``'s copies come first, so its own draws
start at once from TPE's model); ``random`` and ``kt-hyperband`` are seeded with the seed.

Measure (as ``benchmarks/real_search.py``): a search's clock is the sum of its trials'
durations in the order they ended (one worker), so that a search interrupted and resumed later
is measured as if it ran in one go; a trial still running at the budget does not count. Per
strategy: medians over the seeds [range] of the best full-fidelity validation accuracy at a
quarter, half and all of the budget; per target, the seeds that reach it and the time to reach it
(the budget if never, a lower bound), and its ratio to ``tpe``'s on the same seed; the paired
difference ``shipped`` minus each other strategy at the budget with a bootstrap interval of its
median, and a verdict at the margin ``MARGIN``.

    python benchmarks/open_search.py run --root /work/bench/open-search --seeds 0 1 2 3 4
    python benchmarks/open_search.py table --root /work/bench/open-search

The stores live outside the work tree (``--root``). The machine is shared and noisy: the
strategies of a seed run one after another, so that a change of load touches them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_search import _median_range, done_marker, stores, timeline  # noqa: E402

STRATEGIES = ("shipped", "cold", "tpe", "random", "kt-hyperband")
EPOCHS = 3
TRAIN_SIZE = 10_000
BUDGET = 600.0
TARGETS = (0.97, 0.98, 0.985)
MARGIN = 0.002
"""The non-inferiority margin of the verdicts: ``shipped`` is as good as a strategy when the
95% interval of the median paired difference lies above ``-MARGIN``."""

SPACE = """n_conv = [2, 3, 4, 5]
conv.filters = [4, 6, 8, 12, 16, 24, 32, 48]
conv.kernel_size = [1, 3, 5]
conv.strides = [1, 2]
conv.padding = ["same", "valid"]
conv.separable = [false, true]
conv.batchnorm = [false, true]
conv.pool = ["none", "max", "avg"]
conv.pool_size = [2]
conv.dropout = [0.0, 0.05, 0.1]
head = ["gap", "flatten"]
n_dense = [0, 1]
dense.units = [16, 32, 64]
training.optimizer = ["adam", "rmsprop", "sgd"]
training.momentum = [0.0, 0.9]
training.learning_rate = { low = 3e-4, high = 3e-2, log = true }
training.schedule = ["constant", "step", "cosine"]
training.warmup = [0.0, 0.1, 0.3]
training.decay_rate = [0.1, 0.3]
training.decay_epochs = [1.0, 2.0]
training.weight_decay = [0.0, 1e-4, 5e-4]
training.label_smoothing = [0.0, 0.05, 0.1]
training.batch_size = [64, 128, 256]
training.rotation = [0.0, 5.0, 10.0]
training.translation = [0.0, 0.05, 0.1]
"""
"""The open space (``experiments/open_front.toml``'s, 2-5 layers, step decay every 1 or 2 of
the 3 epochs)."""

SOURCE_SPACE = """n_conv = [2, 3, 4]
conv.filters = [4, 8, 16, 32]
conv.kernel_size = [3, 5]
conv.strides = [1]
conv.padding = ["same"]
conv.batchnorm = [true]
conv.pool = ["none", "max"]
head = ["gap", "flatten"]
n_dense = [0, 1]
dense.units = [32, 64]
training.learning_rate = { low = 1e-3, high = 1e-2, log = true }
training.schedule = ["cosine"]
training.warmup = [0.0, 0.1]
"""
"""The source of the warm start: a narrower search (every value of it is one the open space
offers, and what it fixes, Adam at batch 128 and no augmentation, the open space offers too)."""

BASE = """# Written by benchmarks/open_search.py: {strategy}, seed {seed}.
name = "open-search-{strategy}-s{seed}"
description = "benchmarks/open_search.py: {strategy}, seed {seed}."
seed = {seed}
timeout = {timeout}
max_params = 18066
max_macs = 6521600
{warm}
[sampler]
{sampler}

{fidelity}

[training]
epochs = {epochs}
batch_size = 128
optimizer = "adam"
weight_decay = 0.0
bn_momentum = 0.9
train_size = {train_size}

[search]
{space}"""

TPE = 'name = "tpe"\nn_startup_trials = 8\nmultivariate = true\ngroup = true'
RUNGS = ('[fidelity]\nrungs = [{ epochs = 1 }, { epochs = 2 }, { epochs = 3 }]\n'
         'promote = 0.34\nmin_trials = 3')
NO_PRUNER = '[pruner]\nname = "none"'


def study_file(strategy: str, seed: int, timeout: float, train_size: int = TRAIN_SIZE) -> str:
    """The study file of one cnnlab search (``source``, ``shipped``, ``cold``, ``tpe``,
    ``random``) on the first ``train_size`` training images."""
    sampler = 'name = "random"' if strategy == "random" else TPE
    fidelity = RUNGS if strategy in ("shipped", "cold") else NO_PRUNER
    warm = f'warm_start = ["open-search-source-s{seed}"]\n' if strategy == "shipped" else ""
    return BASE.format(strategy=strategy, seed=seed, timeout=max(round(timeout), 1),
                       warm=warm, sampler=sampler, fidelity=fidelity, epochs=EPOCHS,
                       train_size=train_size,
                       space=SOURCE_SPACE if strategy == "source" else SPACE)


# -- what a search did, as (clock, value, full fidelity) points ------------------------------

def cnnlab_points(root: Path, strategy: str, seed: int, budget: float) -> list[tuple]:
    """A cnnlab search's trials that ended within ``budget`` on its clock: (clock, trial's
    value or None, whether it trained at full fidelity); copies are no part of it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage, _ = stores(root)
    name = f"open-search-{strategy}-s{seed}"
    if not (root / "optuna.db").exists() or \
            name not in optuna.study.get_all_study_names(storage=storage):
        return []
    study = optuna.load_study(study_name=name, storage=storage)
    ended = [t for t in study.get_trials(deepcopy=False)
             if t.datetime_complete is not None and t.datetime_start is not None
             and t.user_attrs.get("cnnlab_outcome") != "copied"
             and (t.state.name != "FAIL" or "fail_reason" in t.user_attrs)]
    ended.sort(key=lambda t: t.datetime_complete)
    return [(clock, t.values[0] if t.values else None,
             t.state.name == "COMPLETE" and t.user_attrs.get("cnnlab_outcome") == "trained")
            for clock, t in timeline(ended, budget)]


def kt_points(root: Path, seed: int, budget: float) -> list[tuple]:
    """KerasTuner's trials as its child logged them, the same way."""
    path = root / f"kt-hyperband-s{seed}.jsonl"
    if not path.exists():
        return []
    clock, out = 0.0, []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        clock += record["seconds"]
        if clock > budget:
            break
        out.append((clock, record["val_accuracy"], record["epochs_total"] == EPOCHS))
    return out


# -- KerasTuner's Hyperband, in a child process ----------------------------------------------

def kt_child(root: Path, seed: int, budget: float, train_size: int = TRAIN_SIZE) -> int:
    """KerasTuner's Hyperband over ``SPACE`` until its clock (the sum of its trials' durations,
    those of earlier runs of this child included) reaches ``budget``."""
    import tomllib

    import keras_tuner as kt

    from cnnlab.search.space import parse_space
    from cnnlab.spec import schedules
    from cnnlab.spec.trialspec import TrainConfig
    from cnnlab.train.data import load_mnist
    from cnnlab.train.model import build_model

    space = parse_space(tomllib.loads(SPACE))
    base = TrainConfig(epochs=EPOCHS, batch_size=128, optimizer="adam", weight_decay=0.0,
                       bn_momentum=0.9, seed=seed)
    data = load_mnist(os.environ.get("CNNLAB_MNIST_DIR"), train_size=train_size)
    x, y = data.train.x, data.train.y_onehot
    x_val, y_val = data.validation.x, data.validation.y_onehot
    log = root / f"kt-hyperband-s{seed}.jsonl"
    spent = sum(json.loads(line)["seconds"] for line in log.read_text().splitlines()) \
        if log.exists() else 0.0

    class OnHp:
        """``SearchSpace.suggest``'s trial, on KerasTuner's ``hp``."""

        def __init__(self, hp):
            self.hp = hp

        def suggest_categorical(self, name, choices):
            if set(choices) == {False, True}:  # hp.Choice gives bools back as 0 and 1.
                return self.hp.Boolean(name)
            return self.hp.Choice(name, list(choices))

        def suggest_int(self, name, low, high, *, step=1, log=False):
            return self.hp.Int(name, low, high, step=step, sampling="log" if log else "linear")

        def suggest_float(self, name, low, high, *, step=None, log=False):
            return self.hp.Float(name, low, high, step=step,
                                 sampling="log" if log else "linear")

    class Spent(kt.errors.FatalError):
        """The budget is spent: ends ``search`` (KerasTuner has no timeout)."""

    class HyperModel(kt.HyperModel):
        def build(self, hp):
            spec = space.suggest(OnHp(hp), base)
            try:
                table = spec.architecture.layer_table()
            except Exception as err:  # Cannot be built: KerasTuner's documented way on.
                raise kt.errors.FailedTrialError(str(err)) from None
            if table.total_params > 18066 or table.total_macs > 6521600:
                raise kt.errors.FailedTrialError("over the budget")
            self.batch = spec.training.batch_size
            steps = schedules.steps_per_epoch(len(x), self.batch)
            return build_model(spec.architecture, seed=seed, training=spec.training,
                               steps_per_epoch=steps)

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(*args, batch_size=self.batch, **kwargs)

    class Tuner(kt.Hyperband):
        def on_trial_begin(self, trial):
            if spent >= budget:
                raise Spent("the budget is spent")
            self._t0 = time.perf_counter()
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            nonlocal spent
            super().on_trial_end(trial)
            seconds = time.perf_counter() - self._t0
            spent += seconds
            history = trial.metrics.get_history("val_accuracy") if \
                trial.metrics.exists("val_accuracy") else []
            value = history[-1].value[0] if history else None
            with log.open("a") as file:
                file.write(json.dumps({
                    "trial": trial.trial_id, "seconds": seconds, "val_accuracy": value,
                    "status": str(trial.status),
                    "epochs_total": trial.hyperparameters.values.get("tuner/epochs")}) + "\n")

    tuner = Tuner(HyperModel(), objective="val_accuracy", max_epochs=EPOCHS, factor=3,
                  hyperband_iterations=10**6, seed=seed, directory=str(root / "kt"),
                  project_name=f"s{seed}", overwrite=not log.exists(),
                  max_consecutive_failed_trials=10**6)
    try:
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=EPOCHS, verbose=0)
    except Spent:
        return 0
    return 0


# -- the harness -----------------------------------------------------------------------------

def run(root: Path, seeds: list[int], budget: float, strategies: tuple[str, ...],
        train_size: int = TRAIN_SIZE) -> None:
    """Run (or continue) every search with time left, seed by seed: the seed's source first,
    then the strategies in order."""
    root.mkdir(parents=True, exist_ok=True)
    storage, tracking = stores(root)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for seed in seeds:
        for strategy in ("source", *strategies):
            if done_marker(root, strategy, seed).exists():
                continue
            limit = budget / 2 if strategy == "source" else budget
            if strategy == "kt-hyperband":
                points = kt_points(root, seed, 1e12)
                left = limit - (points[-1][0] if points else 0.0)
                command = [sys.executable, __file__, "kt-child", "--root", str(root),
                           "--seeds", str(seed), "--budget", str(limit),
                           "--train-size", str(train_size)]
            else:
                points = cnnlab_points(root, strategy, seed, 1e12)
                left = limit - (points[-1][0] if points else 0.0)
                path = root / f"{strategy}-s{seed}.toml"
                path.write_text(study_file(strategy, seed, left, train_size))
                command = [sys.executable, "-m", "cnnlab.cli", "study", "run", str(path),
                           "--storage", storage, "--tracking-uri", tracking]
            print(f"{time.strftime('%H:%M:%S')} {strategy} seed {seed}: {left:.0f} s left "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            ended = subprocess.run(command, cwd=root, env=env, check=False)
            if ended.returncode == 0:
                done_marker(root, strategy, seed).touch()


def points_of(root: Path, strategy: str, seed: int, budget: float) -> list[tuple]:
    if strategy == "kt-hyperband":
        return kt_points(root, seed, budget)
    return cnnlab_points(root, strategy, seed, budget)


def table(root: Path, seeds: list[int], budget: float, targets: tuple[float, ...]) -> None:
    """Print the comparison (see the module's docstring)."""
    import numpy as np
    from scipy import stats

    rows: dict[str, dict[int, dict]] = {}
    for strategy in ("source", *STRATEGIES):
        limit = budget / 2 if strategy == "source" else budget
        rows[strategy] = {}
        for seed in seeds:
            points = points_of(root, strategy, seed, limit)
            if not points or not done_marker(root, strategy, seed).exists():
                continue
            full = [(c, v) for c, v, f in points if f and v is not None]
            rows[strategy][seed] = {
                "trials": len(points), "full": len(full),
                "best": {f: max([v for c, v in full if c <= f * limit], default=float("nan"))
                         for f in (0.25, 0.5, 1.0)},
                "reach": {g: next((c for c, v in full if v >= g), None) for g in targets}}
    print(f"budget {budget:.0f} s per search (source: {budget / 2:.0f} s, not charged); "
          "medians [range] over the seeds each strategy ran to its budget")
    print(f"{'strategy':<13} {'seeds':>5} {'trials':>12} {'full':>10}  "
          + "  ".join(f"best@{int(f * 100)}%".rjust(22) for f in (0.25, 0.5, 1.0)))
    for strategy, per_seed in rows.items():
        r = list(per_seed.values())
        print(f"{strategy:<13} {len(r):>5} {_median_range([x['trials'] for x in r]):>12} "
              f"{_median_range([x['full'] for x in r]):>10}  "
              + "  ".join(_median_range([x["best"][f] for x in r], "{:.4f}").rjust(22)
                          for f in (0.25, 0.5, 1.0)))
    for target in targets:
        print(f"\ntarget {target}: seeds reaching it; seconds to it (budget if never); ratio "
              "to tpe's on the same seed")
        for strategy in STRATEGIES:
            both = [s for s in rows[strategy] if s in rows["tpe"]]
            reach = [rows[strategy][s]["reach"][target] for s in both]
            times = [budget if t is None else t for t in reach]
            base = [rows["tpe"][s]["reach"][target] for s in both]
            ratios = [t / (budget if b is None else b) for t, b in zip(times, base, strict=True)]
            print(f"  {strategy:<13} {sum(t is not None for t in reach)}/{len(reach)}  "
                  f"{_median_range(times):>18} s  ratio {_median_range(ratios, '{:.2f}')}")
    print(f"\nshipped minus each other strategy at the budget, seed by seed: median [95% "
          f"bootstrap interval]; verdict at a margin of {MARGIN}")
    for other in STRATEGIES[1:]:
        both = [s for s in rows["shipped"] if s in rows[other]]
        diffs = [rows["shipped"][s]["best"][1.0] - rows[other][s]["best"][1.0] for s in both]
        diffs = [d for d in diffs if d == d]
        if len(diffs) < 2:
            print(f"  {other:<13} {len(diffs)} seed(s): too few")
            continue
        ci = stats.bootstrap((np.array(diffs),), np.median, confidence_level=0.95,
                             random_state=0, method="percentile").confidence_interval
        low, high = float(ci.low), float(ci.high)
        verdict = ("better" if low > 0 else "as good" if low > -MARGIN else
                   "worse" if high < -MARGIN else "inconclusive")
        print(f"  {other:<13} {len(diffs)} seeds: {statistics.median(diffs):+.4f} "
              f"[{low:+.4f}, {high:+.4f}]: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "table", "kt-child"))
    parser.add_argument("--root", type=Path, required=True,
                        help="folder of the searches' stores (outside the work tree)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help=f"seconds of trials per search (default {BUDGET:g})")
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE,
                        help=f"training images, the first of the 50,000 (default {TRAIN_SIZE:,};"
                             " the tests' tiny runs take fewer)")
    args = parser.parse_args(argv)
    if args.action == "kt-child":
        return kt_child(args.root, args.seeds[0], args.budget, args.train_size)
    if args.action == "run":
        run(args.root, args.seeds, args.budget, tuple(args.strategies), args.train_size)
    table(args.root, args.seeds, args.budget, tuple(args.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
