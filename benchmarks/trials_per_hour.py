"""Trials per hour of a recipe-space study at each fidelity, before and after, in one run.

    python benchmarks/trials_per_hour.py [--quick] [--trials N] [--rungs 1x10000,3x50000,10x50000]
                                         [--net recipe|notebook] [--steps-per-execution N]
                                         [--validation-batch-size N] [--bf16]

Trains in one process, as a study does (MNIST loaded once, ``clear_session(free_memory=True)``
before each trial): ``--trials`` random draws from experiments/recipe_smallest.toml's search
space (its training recipe: adam, cosine schedule with warm-up, batch 128, 4-5 conv layers with
batch normalization; draws over its ``max_params``, 6,529, are drawn again), or
with ``--net notebook`` the notebook's CNN with cnnlab's defaults each time, through
``cnnlab.train.fit.train`` with ``TerminateOnNaN`` as a study trains them. Each rung
(``EPOCHSxIMAGES``: epochs on the first IMAGES training images, validated on all 10,000
validation images every epoch) trains every draw twice, once per variant, the order alternated
draw by draw:

- ``before``: ``cnnlab.train.model.Execution()``, Keras's defaults (one step per call, the
  training batch for validation), as cnnlab trained before issue 32;
- ``after``: ``cnnlab.train.model.EXECUTION`` (8 steps per call) with what is given
  (``--steps-per-execution``, ``--validation-batch-size``, ``--bf16`` for Keras's
  ``mixed_bfloat16`` policy).

Per trial: its wall and CPU time (clear_session to trained), its fixed cost (clear_session,
build and compile, the trace of the training step and of the validation step: each call's time
less what its steps take once warm), the warm training step's pace as images per second and as
achieved FLOP/s (the layer table's MACs per image x 2 x 3 for forward and backward), and the last
validation accuracy. Prints one row per trial, then per rung and variant the medians, trials
per hour (3,600 s / the median trial's wall time) and the ratios after/before, and the share of
this CPU's float32 peak (the best of 5 float32 4096x4096 matmuls in TensorFlow, measured
first). Trials per hour counts training only: the study's bookkeeping is
benchmarks/trial_overhead.py's.

Defaults: 3 draws at each of 1 epoch on 10,000 images, 3 epochs on 50,000 and 10 on 50,000
(hours on 2 cores). ``--quick``: 2 draws, 1 epoch on 512 images validated on 512 (a smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "recipe_smallest.toml"
VARIANTS = ("before", "after")


def peak_flops(size: int = 4096, repeats: int = 5) -> float:
    """The best FLOP/s of ``repeats`` float32 ``size`` x ``size`` matmuls (after one warm-up)."""
    import tensorflow as tf

    a, b = tf.random.uniform((size, size)), tf.random.uniform((size, size))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def draws(net: str, count: int, seed: int) -> list:
    """``count`` trial specs: random draws of the recipe space under its cap, or the notebook's
    CNN with cnnlab's default recipe, each with its own seed."""
    from cnnlab.search.config import load_study
    from cnnlab.search.space import RandomSuggester
    from cnnlab.spec.architecture import NOTEBOOK_CNN
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec

    if net == "notebook":
        return [TrialSpec(NOTEBOOK_CNN, TrainConfig(seed=seed + i)) for i in range(count)]
    config = load_study(STUDY)
    specs, suggester = [], RandomSuggester(seed)
    while len(specs) < count:
        spec = config.space.suggest(suggester, config.training)
        if spec.architecture.layer_table().total_params <= (config.max_params or 10**9):
            specs.append(spec.with_seed(seed + len(specs)))
    return specs


def make_timer(keras):
    class Timer(keras.callbacks.Callback):
        """Wall-clock times of the first epoch's training calls and validation pass."""

        def __init__(self) -> None:
            super().__init__()
            self.train_ends: list[float] = []
            self.test_ends: list[float] = []
            self.test_begin = self.test_end = self.train_begin = 0.0
            self.epoch = 0

        def on_train_begin(self, logs=None) -> None:
            self.train_begin = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None) -> None:
            if self.epoch == 0:
                self.train_ends.append((batch, time.perf_counter()))

        def on_test_begin(self, logs=None) -> None:
            if self.epoch == 0:
                self.test_begin = time.perf_counter()

        def on_test_batch_end(self, batch, logs=None) -> None:
            if self.epoch == 0:
                self.test_ends.append((batch, time.perf_counter()))

    return Timer


def warm_step(ends: list[tuple[int, float]], begin: float) -> tuple[float, float]:
    """(the first call's time less its steps at the warm pace, seconds per warm step) from
    ``(last step's index, time)`` at each call's end; the warm pace is the median over the
    calls after the first, the last (maybe short) one left out."""
    paces = [(t1 - t0) / (b1 - b0) for (b0, t0), (b1, t1) in zip(ends, ends[1:-1], strict=False)]
    if not paces:
        return float("nan"), float("nan")
    step = statistics.median(paces)
    first_batch, first_time = ends[0]
    return first_time - begin - (first_batch + 1) * step, step


def run_trial(spec, data, variant: str, settings: dict, keras) -> dict:
    """Train ``spec`` on ``data`` with ``variant``'s settings; its times and scores."""
    from cnnlab.train import model as model_module
    from cnnlab.train.callbacks import TerminateOnNaN
    from cnnlab.train.fit import train

    model_module.EXECUTION = settings[variant]
    policy = "mixed_bfloat16" if variant == "after" and settings["bf16"] else "float32"
    timer = make_timer(keras)()
    start, cpu = time.perf_counter(), time.process_time()
    keras.backend.clear_session(free_memory=True)
    keras.mixed_precision.set_global_policy(policy)
    try:
        result = train(spec, data, callbacks=[TerminateOnNaN(), timer])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    train_trace, step = warm_step(timer.train_ends, timer.train_begin)
    test_trace, _ = warm_step(timer.test_ends, timer.test_begin)
    images_per_s = spec.training.batch_size / step
    return {
        "wall": wall, "cpu": cpu,
        # clear_session, build, compile and fit's set-up; then each step function's trace.
        "fixed": (timer.train_begin - start) + train_trace + test_trace,
        "images_per_s": images_per_s,
        "flops": spec.architecture.layer_table().total_macs * 2 * 3 * images_per_s,
        "val_accuracy": result.history["val_accuracy"][-1],
        "params": result.table.total_params,
    }


def parse_rung(text: str) -> tuple[int, int]:
    epochs, images = text.lower().split("x")
    return int(epochs), int(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 draws, 1 epoch on 512 images")
    parser.add_argument("--trials", type=int, default=3, help="draws per rung (default 3)")
    parser.add_argument("--rungs", default="1x10000,3x50000,10x50000",
                        help="EPOCHSxIMAGES, comma-separated (default 1x10000,3x50000,10x50000)")
    parser.add_argument("--net", choices=("recipe", "notebook"), default="recipe")
    parser.add_argument("--seed", type=int, default=24, help="of the draws (recipe_smallest's)")
    parser.add_argument("--steps-per-execution", type=int, default=None,
                        help="after's (default: cnnlab.train.model.EXECUTION's)")
    parser.add_argument("--validation-batch-size", type=int, default=None,
                        help="after's (default: cnnlab.train.model.EXECUTION's)")
    parser.add_argument("--bf16", action="store_true", help="after trains in mixed_bfloat16")
    parser.add_argument("--no-peak", action="store_true", help="skip the matmul peak")
    args = parser.parse_args()
    rungs = [parse_rung(r) for r in args.rungs.split(",")]
    trials, val_size = args.trials, None
    if args.quick:
        rungs, trials, val_size = [(1, 512)], 2, 512

    from cnnlab.train import model as model_module
    from cnnlab.train.data import load_mnist
    from cnnlab.train.quiet import import_keras

    keras = import_keras()
    before = model_module.Execution()
    after = dataclasses.replace(
        model_module.EXECUTION,
        **{k: v for k, v in (("steps_per_execution", args.steps_per_execution),
                             ("validation_batch_size", args.validation_batch_size))
           if v is not None})
    settings = {"before": before, "after": after, "bf16": args.bf16}
    print(f"before: {before}\nafter:  {after}{', mixed_bfloat16' if args.bf16 else ''}")
    peak = float("nan") if args.no_peak else peak_flops()
    print(f"float32 peak (4096x4096 matmul, best of 5): {peak / 1e9:.1f} GFLOP/s")
    specs = draws(args.net, trials, args.seed)

    header = (f"{'rung':>9} {'trial':>5} {'variant':>7} {'params':>6} {'wall s':>7} {'cpu s':>7} "
              f"{'fixed s':>7} {'img/s':>6} {'GFLOP/s':>7} {'val acc':>7}")
    rows: dict[tuple[tuple[int, int], str], list[dict]] = {}
    print(header)
    for epochs, images in rungs:
        data = load_mnist(train_size=images, val_size=val_size)
        for i, spec in enumerate(specs):
            spec = dataclasses.replace(
                spec, training=dataclasses.replace(spec.training, epochs=epochs))
            for variant in (VARIANTS if i % 2 == 0 else VARIANTS[::-1]):
                row = run_trial(spec, data, variant, settings, keras)
                rows.setdefault(((epochs, images), variant), []).append(row)
                print(f"{epochs:>3}x{images:<5} {i:>5} {variant:>7} {row['params']:>6} "
                      f"{row['wall']:>7.1f} {row['cpu']:>7.1f} {row['fixed']:>7.2f} "
                      f"{row['images_per_s']:>6.0f} {row['flops'] / 1e9:>7.2f} "
                      f"{row['val_accuracy']:>7.4f}", flush=True)

    print("\nmedians per rung and variant (trials/h = 3,600 s / the median trial's wall time)")
    print(f"{'rung':>9} {'variant':>7} {'wall s':>7} {'cpu s':>7} {'fixed s':>7} "
          f"{'trials/h':>8} {'% peak':>6} {'val acc':>7}")
    for (epochs, images) in rungs:
        for variant in VARIANTS:
            got = rows[((epochs, images), variant)]
            med = {k: statistics.median(r[k] for r in got)
                   for k in ("wall", "cpu", "fixed", "flops", "val_accuracy")}
            print(f"{epochs:>3}x{images:<5} {variant:>7} {med['wall']:>7.1f} {med['cpu']:>7.1f} "
                  f"{med['fixed']:>7.2f} {3600 / med['wall']:>8.1f} "
                  f"{100 * med['flops'] / peak:>6.1f} {med['val_accuracy']:>7.4f}")
        pairs = list(zip(rows[((epochs, images), "before")], rows[((epochs, images), "after")],
                         strict=True))
        for key in ("wall", "cpu", "fixed"):
            ratios = sorted(a[key] / b[key] for b, a in pairs)
            print(f"{'':>9} after/before {key}: median {statistics.median(ratios):.3f} "
                  f"(min {ratios[0]:.3f}, max {ratios[-1]:.3f})")
        gaps = [a["val_accuracy"] - b["val_accuracy"] for b, a in pairs]
        print(f"{'':>9} after-before val accuracy: {', '.join(f'{g:+.4f}' for g in gaps)}")


if __name__ == "__main__":
    main()
