"""Does memory grow trial after trial? Resident memory after each trial, cnnlab against a bare
Keras loop, side by side.

    python benchmarks/trial_memory.py [--trials 100] [--short]

Runs, each in a fresh process, a bare Keras loop (build, fit, ``clear_session``) of one fixed
2.37M-parameter CNN, and a cnnlab study whose every trial builds, trains, tracks (MLflow run,
curves, plots, model) and drops the same CNN (``allow_repeats``: every trial trains), in temp
stores; prints the resident memory after each trial (every tenth), then each loop's growth from
the end of the warm-up (the first quarter of trials) to the last trial, per trial, and their
ratio. ``--short``: 20 trials. ``--plain``/``--fixed``/``--varied`` run one loop in this
process (``--varied``: a cnnlab study over varied architectures).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STUDY = """
name = "memory"
seed = 0
n_trials = 1
allow_repeats = true
[sampler]
name = "random"
[pruner]
name = "none"
[search]
n_conv = [1, 2, 3]
filters = [16, 32, 64]
kernel_size = [3, 5]
strides = [1, 2]
padding = ["valid", "same"]
dense_units = [64, 128]
"""


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--short", action="store_true", help="20 trials")
    parser.add_argument("--varied", action="store_true",
                        help="one cnnlab study over varied architectures, in this process")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--plain", action="store_true",
                        help="the baseline: a bare Keras loop (build, fit, clear_session) of "
                             "the same fixed architecture, with no Optuna or MLflow")
    parser.add_argument("--fixed", action="store_true",
                        help="the same architecture every trial (separates leaks from the "
                             "allocator's response to different model sizes)")
    args = parser.parse_args()
    if args.short:
        args.trials = 20
    if not (args.plain or args.fixed or args.varied):
        side_by_side(args)
        return

    import tomllib

    from cnnlab.search.config import parse_study
    from cnnlab.study.runner import run_study
    from cnnlab.tracking.stores import Stores

    text = STUDY
    if args.fixed:
        text = text.split("[search]")[0] + "[search]\nn_conv = [2]\nfilters = [32]\n" \
            "kernel_size = [3]\nstrides = [1]\npadding = [\"valid\"]\ndense_units = [128]\n"
    config = parse_study(tomllib.loads(text), text=text)
    config = replace(config, train_size=args.train_size, val_size=1000,
                            training=replace(config.training, epochs=args.epochs))
    samples: list[float] = []

    def out(line: str) -> None:
        if line.startswith("trial "):
            samples.append(rss_mb())
            if len(samples) % 10 == 1 or len(samples) == args.trials:
                print(f"{line[:60]}  rss {samples[-1]:7.1f} MB", flush=True)

    if args.plain:
        import gc

        import keras

        from cnnlab.spec.architecture import Architecture
        from cnnlab.spec.trialspec import TrainConfig, TrialSpec
        from cnnlab.train.data import load_mnist
        from cnnlab.train.fit import train

        data = load_mnist(train_size=args.train_size, val_size=1000)
        arch = Architecture.from_strings(["32:3", "32:3"], ["128"])
        for i in range(args.trials):
            keras.backend.clear_session(free_memory=True)
            train(TrialSpec(arch, TrainConfig(epochs=args.epochs, seed=i)), data)
            gc.collect()
            out(f"trial {i:>3}  plain Keras")
        args.trials = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        if args.trials:
            run_study(replace(config, n_trials=args.trials),
                      Stores(f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"), out=out)
    warm = max(1, len(samples) // 4)
    growth = (samples[-1] - samples[warm - 1]) / (len(samples) - warm)
    print(f"resident memory after trial {warm - 1}: {samples[warm - 1]:.1f} MB; after trial "
          f"{len(samples) - 1}: {samples[-1]:.1f} MB; growth {growth:+.2f} MB per trial")


def side_by_side(args: argparse.Namespace) -> None:
    import re
    import subprocess
    import sys

    growth = {}
    for flag in ("--plain", "--fixed"):
        command = [sys.executable, __file__, flag, "--trials", str(args.trials), "--epochs",
                   str(args.epochs), "--train-size", str(args.train_size)]
        print(f"$ {' '.join(command[1:])}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True)
        print(result.stdout, end="", flush=True)
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        growth[flag] = float(re.search(r"growth ([-+0-9.]+) MB", result.stdout).group(1))
    print(f"\ngrowth per trial over {args.trials} trials: bare Keras loop "
          f"{growth['--plain']:+.2f} MB, cnnlab {growth['--fixed']:+.2f} MB")


if __name__ == "__main__":
    main()
