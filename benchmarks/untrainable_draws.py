"""How much of a study's budget goes to architectures that cannot be trained, before and after.

For each shipped study file, with its own sampler and options, on Optuna's in-memory storage:

- **before** (cnnlab until this change): the sampler is seeded once per process; an
  architecture that cannot be built or is over ``max_params`` is a FAIL trial that counts
  toward ``n_trials`` and that TPE ignores;
- **after** (cnnlab now): the sampler is seeded per trial (``cnnlab.search.sampling``); such an
  architecture is pruned at once with Optuna constraint values (TPE and NSGA-II learn from them)
  and does not count: the study goes on until ``n_trials`` architectures were trained.

No network is trained here: every trainable draw gets a stand-in score that grows with the
parameter count (``1 - 0.5 * exp(-params / 20000)``), as validation accuracy tends to. That
pushes TPE toward ``max_params``, where untrainable draws are most likely, so it is the hard
case for learning the constraint. The score only steers the sampler; what is measured is how
many draws were untrainable, which the shape arithmetic decides exactly.

    python benchmarks/untrainable_draws.py            # every shipped file, 5 seeds each
    python benchmarks/untrainable_draws.py --seeds 2  # shorter
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings
from pathlib import Path

import optuna

from cnnlab.search.config import load_study_config
from cnnlab.search.factory import SAMPLERS, make_sampler
from cnnlab.search.space import constraints, feasibility
from cnnlab.spec.architecture import check_architecture

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def stand_in_score(params: int) -> float:
    return 1.0 - 0.5 * math.exp(-params / 20_000)


def before(config, seed: int) -> tuple[int, int]:
    """(untrainable draws, draws) when they were FAIL trials counted toward n_trials."""
    cls = getattr(optuna.samplers, SAMPLERS[config.sampler.name])
    sampler = cls(seed=seed, **config.sampler.options)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        arch = config.space.suggest(trial).architecture
        return stand_in_score(check_architecture(arch, config.max_params).total_params)

    study.optimize(objective, n_trials=config.n_trials, catch=(ValueError,))
    failed = sum(t.state.name == "FAIL" for t in study.trials)
    return failed, len(study.trials)


def after(config, seed: int) -> tuple[int, int]:
    """(untrainable draws, draws) now: pruned with constraints, not counted."""
    from dataclasses import replace

    sampler = make_sampler(replace(config, seed=seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    trained = 0

    def objective(trial):
        arch = config.space.suggest(trial).architecture
        values = constraints(arch, config.max_params)
        for name, value in values.items():
            trial.set_constraint(name, value)
        if any(v > 0 for v in values.values()):
            raise optuna.TrialPruned()
        return stand_in_score(arch.layer_table().total_params)

    def budget(study, trial):
        nonlocal trained
        trained += trial.state.name == "COMPLETE"
        if trained >= config.n_trials or len(study.trials) > 50 * config.n_trials:
            study.stop()

    study.optimize(objective, callbacks=[budget])
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    return pruned, len(study.trials)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    print(f"{'study file':<22} {'random draws':>12} {'budget lost before':>19} "
          f"{'draws untrainable before':>25} {'draws untrainable after':>24} "
          f"{'budget lost after':>18}")
    for path in sorted(EXPERIMENTS.glob("*.toml")):
        config = load_study_config(path)
        share = feasibility(config.space, config.max_params, seed=config.seed)
        old = [before(config, s) for s in range(args.seeds)]
        new = [after(config, s) for s in range(args.seeds)]
        lost_before = statistics.median(f / config.n_trials for f, _ in old)
        drawn_before = statistics.median(f / n for f, n in old)
        drawn_after = statistics.median(f / n for f, n in new)
        print(f"{path.name:<22} {1 - share.fraction:>12.0%} {lost_before:>19.0%} "
              f"{drawn_before:>25.0%} {drawn_after:>24.0%} {0:>18.0%}")
    print(f"(medians over {args.seeds} seeds; 'random draws': untrainable share of 2,000 random "
          "architectures; 'budget lost': untrainable trials / n_trials)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
