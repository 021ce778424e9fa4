"""What training-only augmentation costs per epoch: the notebook's CNN with and without it.

    python benchmarks/augmentation_cost.py [--train-size N] [--repeats N] [--rotation DEG]
                                           [--translation F] [--zoom F]

Both models are cnnlab's (``cnnlab.train.model.build_model``) of the notebook's CNN (rmsprop,
batch 256), built in one process on the same first N training images (default 10,000); the
augmented one puts Keras's RandomRotation, RandomTranslation and RandomZoom (default 10 degrees,
0.1, 0.1: the small rotations and shifts of issue 24) before its first convolution. Each model
trains one epoch first, untimed (tracing and the first allocations), then the two alternate, one
timed epoch each per repeat (``model.fit(epochs=1)``, no validation: augmentation does not touch
it), so that load on the machine falls on both alike. Prints each epoch's wall and CPU time
(the process's, all threads), the medians, and the median of the per-repeat ratios
augmented/plain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rotation", type=float, default=10.0)
    parser.add_argument("--translation", type=float, default=0.1)
    parser.add_argument("--zoom", type=float, default=0.1)
    args = parser.parse_args()

    from cnnlab.spec.architecture import NOTEBOOK_CNN
    from cnnlab.spec.trialspec import TrainConfig
    from cnnlab.train.data import load_mnist
    from cnnlab.train.model import build_model

    data = load_mnist(train_size=args.train_size, val_size=1)
    x, y = data.train.x, data.train.y_onehot
    configs = {"plain": TrainConfig(),
               "augmented": TrainConfig(rotation=args.rotation, translation=args.translation,
                                        zoom=args.zoom)}
    models = {name: build_model(NOTEBOOK_CNN, seed=0, training=config)
              for name, config in configs.items()}
    for model in models.values():
        model.fit(x, y, batch_size=256, epochs=1, verbose=0)  # Untimed: tracing, allocation.
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    print(f"notebook CNN, {len(x):,} training images, batch 256; augmented: rotation "
          f"{args.rotation:g} degrees, translation {args.translation:g}, zoom {args.zoom:g}")
    for repeat in range(args.repeats):
        order = list(models) if repeat % 2 == 0 else list(reversed(models))
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            models[name].fit(x, y, batch_size=256, epochs=1, verbose=0)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            print(f"  repeat {repeat + 1} {name:9s} wall {times[name][-1][0]:6.2f} s  "
                  f"cpu {times[name][-1][1]:6.2f} s")
    for name, runs in times.items():
        print(f"{name:9s} median epoch: wall {statistics.median(w for w, _ in runs):.2f} s, "
              f"cpu {statistics.median(c for _, c in runs):.2f} s")
    for index, what in ((0, "wall"), (1, "cpu")):
        ratios = [a[index] / p[index] for a, p in zip(times["augmented"], times["plain"],
                                                      strict=True)]
        print(f"augmented/plain per epoch ({what}): median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
