"""Throughput parity: `cnnlab train` against the notebook's own Keras code, alternated in one run.

    python benchmarks/throughput.py [--short] [--repeats N] [--epochs N] [--train-size N]
                                    [--val-size N] [--literal]

Both sides train the notebook's CNN (Conv2D 32:3:1:same, 32:3:2:valid, 64:3:1:same,
64:3:2:valid, Dense 128, softmax; rmsprop, categorical cross-entropy, batch 256) for the same
epochs on the same arrays (cnnlab's loader: the first N of the 50,000 training images, validated
on the first M of the 10,000 validation images), each run in a fresh process:

- ``notebook``: the notebook's code in a bare Python: ``keras.Sequential([...])``, ``compile``,
  ``model.fit(x, y, batch_size=256, epochs=N, validation_data=(...))``; nothing tracked;
- ``cnnlab``: the whole ``cnnlab train`` command (loading the data, the MLflow run, per-epoch
  metrics, plots, the logged model) over a SQLite store in a temp folder, made before the first
  repeat so that no repeat pays for creating its tables.

Each repeat runs one of each, alternating which goes first. The CPU time of a run is its
process's user + system time (``os.wait4``: its threads, and any child it waited for), and its
wall time is from start to exit. ``fit`` columns are ``model.fit`` alone (CPU time of the process
over the call, and its wall time): for the ``cnnlab`` side that means running the console entry
point (``cnnlab.cli.main``, what ``.venv/bin/cnnlab`` runs) with ``keras.Model.fit`` timed;
``--literal`` runs ``.venv/bin/cnnlab`` itself instead, without fit times.

Prints one row per run, the medians, and the median of the per-repeat CPU-time ratios
cnnlab/notebook with their min and max (the issue's target: <= 1.05).

Defaults: 2 epochs on all 50,000 training images, validation on all 10,000, 3 repeats (about
10 min on 2 cores). ``--short``: 1 epoch on 5,000 images, validation on 1,000, 2 repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
SIDES = ("notebook", "cnnlab")

# cnnlab's console entry point (as .venv/bin/cnnlab runs it), with keras.Model.fit timed.
CNNLAB_TIMED = """\
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
_fit = keras.Model.fit
def fit(self, *args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        return _fit(self, *args, **kwargs)
    finally:
        with open(os.environ["THROUGHPUT_FIT_FILE"], "w") as f:
            json.dump({"fit_cpu": time.process_time() - cpu,
                       "fit_wall": time.perf_counter() - wall}, f)
keras.Model.fit = fit
from cnnlab.cli import main
sys.argv[0] = "cnnlab"
sys.exit(main())
"""


def notebook_child(epochs: int, train_size: int, val_size: int, out: str) -> None:
    """The notebook's own Keras code, on cnnlab's arrays."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    from cnnlab.train.data import load_mnist

    data = load_mnist(train_size=train_size, val_size=val_size)
    x_train, y_train = data.train.x, data.train.y_onehot
    x_val, y_val = data.validation.x, data.validation.y_onehot

    keras.utils.set_random_seed(0)  # cnnlab train's default seed: the same initial weights.
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, strides=1, padding="same", activation="relu"),
        layers.Conv2D(32, 3, strides=2, padding="valid", activation="relu"),
        layers.Conv2D(64, 3, strides=1, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="valid", activation="relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    cpu, wall = time.process_time(), time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=256, epochs=epochs,
                        validation_data=(x_val, y_val))
    fit = {"fit_cpu": time.process_time() - cpu, "fit_wall": time.perf_counter() - wall}
    Path(out).write_text(json.dumps({**fit, "val_accuracy": history.history["val_accuracy"][-1],
                                     "params": model.count_params()}))


def run(side: str, args: argparse.Namespace, tmp: Path, store: str, index: int) -> dict:
    fit_file = tmp / f"fit-{side}-{index}.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "THROUGHPUT_FIT_FILE": str(fit_file)}
    sizes = ["--epochs", str(args.epochs), "--train-size", str(args.train_size),
             "--val-size", str(args.val_size)]
    if side == "notebook":
        command = [sys.executable, __file__, "--child", str(fit_file), *sizes]
    else:
        train = ["train", *sizes, "--tracking-uri", store, "--run-name", f"throughput-{index}"]
        command = ([str(VENV_BIN / "cnnlab"), *train] if args.literal
                   else [sys.executable, "-c", CNNLAB_TIMED, *train])
    log = tmp / f"{side}-{index}.log"
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{side} run {index} failed (exit {proc.returncode}):\n{text[-3000:]}")
    row = {"side": side, "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime,
           "sys": usage.ru_stime, "wall": wall, "maxrss_mb": usage.ru_maxrss / 1024,
           "fit_cpu": None, "fit_wall": None, "val_accuracy": None}
    if fit_file.exists():
        row.update(json.loads(fit_file.read_text()))
    if side == "cnnlab":
        found = re.search(r"^val_accuracy (\d\.\d+)", text, re.MULTILINE)
        row["val_accuracy"] = float(found.group(1)) if found else None
    return row


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true",
                        help="1 epoch on 5,000 images, validation on 1,000, 2 repeats")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--val-size", type=int)
    parser.add_argument("--literal", action="store_true",
                        help="run .venv/bin/cnnlab itself (no fit-only times for cnnlab)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = (2, 5_000, 1_000, 1) if args.short else (3, 50_000, 10_000, 2)
    for name, value in zip(("repeats", "train_size", "val_size", "epochs"), defaults,
                           strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.child:
        notebook_child(args.epochs, args.train_size, args.val_size, args.child)
        return

    print(f"notebook CNN, {args.epochs} epoch(s) on {args.train_size:,} training images, "
          f"validation on {args.val_size:,}, batch 256; {args.repeats} repeats, fresh processes "
          f"alternated ({os.cpu_count()} CPUs)", flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp_name:
        tmp = Path(tmp_name)
        store = f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
        (tmp / "mlruns").mkdir()
        subprocess.run([sys.executable, "-c", "import sys, mlflow; "
                        "mlflow.MlflowClient(sys.argv[1]).search_experiments()", store],
                       check=True, cwd=tmp, capture_output=True)  # The tables, made once.
        print(f"\n{'repeat':>6} {'side':>9} {'CPU s':>7} {'user':>7} {'sys':>6} {'wall s':>7} "
              f"{'fit CPU':>8} {'fit wall':>8} {'max RSS MB':>10} {'val_acc':>8}")
        for repeat in range(args.repeats):
            order = SIDES if repeat % 2 == 0 else SIDES[::-1]
            for side in order:
                row = run(side, args, tmp, store, repeat)
                row["repeat"] = repeat
                rows.append(row)
                print(f"{repeat:>6} {side:>9} {row['cpu']:>7.1f} {row['user']:>7.1f} "
                      f"{row['sys']:>6.1f} {row['wall']:>7.1f} {fmt(row['fit_cpu']):>8} "
                      f"{fmt(row['fit_wall']):>8} {row['maxrss_mb']:>10.0f} "
                      f"{fmt(row['val_accuracy'], '.4f'):>8}", flush=True)

    def median(side: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["side"] == side]
        return None if None in values else statistics.median(values)

    print("\nmedians")
    for side in SIDES:
        print(f"{side:>9}: CPU {median(side, 'cpu'):.1f} s, wall {median(side, 'wall'):.1f} s, "
              f"fit CPU {fmt(median(side, 'fit_cpu'))} s, fit wall "
              f"{fmt(median(side, 'fit_wall'))} s")

    def ratios(key: str) -> list[float] | None:
        by_repeat = {}
        for r in rows:
            by_repeat.setdefault(r["repeat"], {})[r["side"]] = r[key]
        pairs = list(by_repeat.values())
        if any(p["cnnlab"] is None or p["notebook"] is None for p in pairs):
            return None
        return [p["cnnlab"] / p["notebook"] for p in pairs]

    for key, label in (("cpu", "CPU time"), ("wall", "wall time"), ("fit_cpu", "fit CPU time"),
                       ("fit_wall", "fit wall time")):
        values = ratios(key)
        if values is None:
            continue
        print(f"cnnlab/notebook {label:>13}: median {statistics.median(values):.3f} "
              f"(min {min(values):.3f}, max {max(values):.3f}; per repeat "
              f"{', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
