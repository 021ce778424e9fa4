"""Best validation accuracy against wall time: cnnlab's recipe-aware study and its peers.

Side by side, on the same networks, data and epoch limits (issues 13 and 24): anytime
performance, each tool run as its own documentation shows it, the same measure for all, with
common random numbers, 10 seeds, intervals and a verdict at a stated margin.

    python benchmarks/anytime.py --scale quickstart        # 4 tools x 10 seeds x 60 s: ~45 min
    python benchmarks/anytime.py --scale medium --seeds 0 1  # 4 tools x 2 seeds x 7 min
    python benchmarks/anytime.py --scale quickstart --tuners cnnlab cnnlab-plain optuna
    python benchmarks/anytime.py --scale quickstart --report-only   # tables and figure again

The tools, each as its own documentation shows it:

- ``cnnlab``: cnnlab's study with the training recipe (``RECIPE_SEARCH``, ``RECIPE_TRAINING``:
  batch normalization after each conv, Adam at batch 128 with a warm-up and a cosine decay) on
  the common space's networks, and otherwise cnnlab's defaults: no ``[sampler]``, ``[pruner]``
  or ``max_params``, so TPE with Optuna's defaults (seeded per trial from the study's seed), the
  median pruner with Optuna's defaults, every trial tracked in MLflow (curves, plots, model).
  ``cnnlab-plain`` (on request) is the same study without the recipe: the peers' training.
  The file is generated into the run's folder and run through cnnlab's real entry point,
  ``cnnlab study run FILE --timeout BUDGET --storage sqlite:///... --tracking-uri sqlite:///...``,
  in a fresh process. Nothing is injected into cnnlab: its points are read back from its MLflow
  store (each trial run's ``val_accuracy`` history, whose timestamps MLflow takes as the epoch
  is logged).
- ``optuna``: the objective a user writes from Optuna's Keras example: ``clear_session``, the
  drawn network, ``fit`` with ``optuna_integration.KerasPruningCallback(trial, "val_accuracy")``;
  ``TPESampler(seed=seed)``, ``MedianPruner()`` (the same defaults as cnnlab's), an in-memory
  study (the docs' default), ``optuna_integration.MLflowCallback`` into its own SQLite MLflow
  store, ``study.optimize(timeout=...)``. ``MLflowCallback`` is deprecated in Optuna 5 (removal
  planned for 6) but is still the documented recipe; its FutureWarning is silenced here. The
  objective returns the last epoch's ``val_accuracy`` from the history instead of the example's
  extra ``model.evaluate`` on the validation data (the same number; one validation pass saved).
- ``kt-hyperband``: ``keras_tuner.Hyperband(objective="val_accuracy", max_epochs=EPOCHS,
  factor=3, seed=seed)``; ``hyperband_iterations`` is raised from its default of 1 to "until the
  budget" (one iteration is 11 epochs at quickstart scale, under a minute, and would leave the
  rest of the budget unused).
- ``kt-random``: ``keras_tuner.RandomSearch(objective="val_accuracy", max_trials=10**6,
  seed=seed)``. Both KerasTuners write under ``OUT/<scale>/<tool>-seed<k>/kt`` (``overwrite``),
  their trial files and best-epoch checkpoints included, and search with ``tuner.search(x, y,
  epochs=EPOCHS, batch_size=256, validation_data=(x_val, y_val))``. The hypermodel follows
  KerasTuner's docs for a variable depth (``for i in range(hp.Choice("n_conv", ...))`` with one
  ``hp.Choice`` per layer and field, no conditional scopes): a layer's choices first met in a
  trial take their default in that trial, as they do for any KerasTuner user.

The same for every tool:

- **Common random numbers**: for each seed the Optuna-based tools (cnnlab, Optuna's recipe)
  train the same ``N_STARTUP`` (10, TPE's start-up count) random configurations first,
  enqueued (``[[enqueue]]`` in cnnlab's study file, ``study.enqueue_trial`` in Optuna's), so a
  seed's lucky or unlucky start-up draws are the same for both and differences between them
  are compared seed by seed. KerasTuner has no enqueue: its tuners are seeded with the seed.
- **The search space**, written once as data (``SPACE``: depth 1-3; per conv layer filters 8/16/32,
  kernel 3/5, strides 1/2, padding valid/same; one Dense layer of 32/64/128 units, as
  ``experiments/quickstart.toml``'s ``[search]``) and turned into each tool's vocabulary: a
  ``[search]`` table for cnnlab, ``suggest_categorical`` for Optuna, ``hp.Choice`` for KerasTuner,
  all under cnnlab's parameter names (``conv2_strides``). No size cap for anyone. The peers' model
  is the same network cnnlab builds (Conv2D with ReLU, Flatten, Dense with ReLU, Dense softmax;
  rmsprop, categorical cross-entropy, batch size 256, as the notebook), in plain Keras;
  ``keras.backend.clear_session()`` before each trial (Optuna's example does it, KerasTuner does
  it itself, as cnnlab does). Weights: cnnlab seeds each trial (the study's seed + the trial's
  number); the peers' processes call ``keras.utils.set_random_seed(seed)`` once.
- **Architectures that cannot be built** (a feature map shrinking below the kernel: about 0.1% of
  random draws in this space, e.g. three 5x5 stride-2 'valid' layers): cnnlab prunes them before
  building (shape arithmetic), and they do not count as trials. For Optuna's recipe Keras's
  ``ValueError`` from the build is re-raised as ``Unbuildable`` and passed to
  ``optimize(catch=(Unbuildable,))``, Optuna's documented way to go on after a failing trial (a
  FAIL trial that TPE ignores). For KerasTuner the build raises
  ``keras_tuner.errors.FailedTrialError``, as its docs show (a FAILED trial, not retried;
  KerasTuner's default ``max_consecutive_failed_trials=3`` is kept).
- **The data**: ``cnnlab.train.data.load_mnist`` in every process, the notebook's split (validation
  = the first 10,000 training images, training = the rest). ``quickstart``: the first 10,000
  training images (as ``experiments/quickstart.toml``), validation on all 10,000, 3 epochs at most,
  60 s per run (docs/benchmarks.md; 90 s and 240 s before). ``medium``: all 50,000
  training images, 10,000 validation images, 5 epochs at most, 420 s per run. Five epochs, not the
  notebook's 10: the whole medium benchmark (4 tools x 2 seeds) must fit in about an hour, so a run
  gets 7 minutes. A network of this space should take roughly 10 s an epoch on 50,000 images on
  this 2-core machine (an estimate, not a measurement: the mean random network does 1.7M
  multiply-adds per image, and the notebook's CNN, 6.5M, takes 35 s an epoch), so at 10 epochs a
  run would train about 4 networks, too few for any search, and not even Hyperband's first bracket
  (max_epochs 10: 3 brackets, the first alone 44 epochs). At 5 epochs a run trains about 8 networks
  to the end, or one whole Hyperband iteration (31 epochs).
- **The budget**: each (tool, seed) runs in its own fresh process, one after another (never in
  parallel: 2 cores), the tools' order rotated per seed. Each tool is told the budget in its own
  terms so that it stops starting trials: cnnlab ``--timeout``, Optuna ``timeout=``, and for
  KerasTuner, which has no timeout (1.4.8: ``search`` loops until the oracle says STOPPED, and
  only a ``keras_tuner.errors.FatalError`` escapes a trial), a check in the tuner's
  ``on_trial_begin`` hook that raises a ``FatalError`` subclass past the deadline. And the
  harness ends every process at the budget, counted from the process's start (SIGTERM, on which
  cnnlab closes its trial and study runs; SIGKILL 60 s later if still alive), so that no tool
  trains past it.
- **The one measure**: every epoch's validation accuracy with its wall time since the run's
  process was started (``time.time()`` just before the process is spawned), so each tool's own
  imports, data loading, bookkeeping and tracking count. For Optuna's recipe and KerasTuner one
  shared Keras callback (``EpochLog``) appends (seconds, trial, epoch, val_accuracy) to a
  JSON-lines file as each epoch ends; for cnnlab the same is read from its MLflow store. A run's
  anytime curve is the running maximum of val_accuracy over time: the **best validation
  accuracy seen at any epoch** of any trial so far (the same rule for all, whatever each tool
  scores its trials by: cnnlab and Optuna take a trial's last epoch, KerasTuner its best).
  "Trials finished" counts the trials whose training ended by the tool's own decision (completed
  or pruned; each Hyperband round is a trial, as KerasTuner counts them) before the budget.

Outputs, in ``--out`` (default ``mlruns/bench-anytime``): per run ``<scale>/<tool>-seed<k>/``
(the tool's stores, its log, ``run.json``, ``epochs.jsonl``), then ``anytime-<scale>-records.csv``
(every epoch of every run, with the running maximum), ``anytime-<scale>-runs.json``,
``anytime-<scale>.png`` (the median over seeds per tool as a step line, each seed faint) and
``anytime-<scale>.md`` (the tables, also printed): per tool the median over seeds of the best
validation accuracy at 25%, 50%, 75% and 100% of the budget with the 95% percentile-bootstrap
interval of that median (SciPy's ``stats.bootstrap``, seeded), trials finished, the time to
the first validated epoch; then cnnlab minus each other tool seed by seed, the median
difference and its bootstrap interval; then one verdict line per checkpoint against the best
other tool there, at the non-inferiority margin ``MARGIN`` (0.002): *better* when the interval
lies above 0, *as good* when above -0.002, *worse* when below it, else *inconclusive*.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "mlruns" / "bench-anytime"
TOOLS = ("cnnlab", "optuna", "kt-hyperband", "kt-random")
"""The tools compared by default."""
ALL_TOOLS = (*TOOLS, "cnnlab-plain")
"""``cnnlab-plain``, on request: cnnlab's default study on the notebook's space without the
recipe (the peers' network), to tell the recipe's share from the search's."""
CNNLAB_TOOLS = ("cnnlab", "cnnlab-plain")
LABELS = {
    "cnnlab": "cnnlab, recipe-aware study",
    "optuna": "Optuna recipe (TPE, median, MLflowCallback)",
    "kt-hyperband": "KerasTuner Hyperband",
    "kt-random": "KerasTuner RandomSearch",
    "cnnlab-plain": "cnnlab, default study without the recipe",
}
COLORS = {"cnnlab": "C3", "optuna": "C0", "kt-hyperband": "C2", "kt-random": "C1",
          "cnnlab-plain": "C4"}

SPACE: dict[str, list[Any]] = {
    "n_conv": [1, 2, 3],
    "conv.filters": [8, 16, 32],
    "conv.kernel_size": [3, 5],
    "conv.strides": [1, 2],
    "conv.padding": ["valid", "same"],
    "dense.units": [32, 64, 128],
}
"""The common search space, once: cnnlab's ``[search]`` paths (``conv.FIELD`` holds for every
conv layer, each layer drawing its own value); one Dense layer."""
CONV_FIELDS = ("filters", "kernel_size", "strides", "padding")
BATCH_SIZE = 256
OPTIMIZER = "rmsprop"
RECIPE_SEARCH: dict[str, list[Any]] = {"conv.batchnorm": [True]}
RECIPE_TRAINING: dict[str, Any] = {"batch_size": 128, "optimizer": "adam",
                                   "learning_rate": 3e-3, "schedule": "cosine", "warmup": 0.1,
                                   "bn_momentum": 0.9}
"""cnnlab's recipe-aware study: the common space's networks (the same parameters, so the same
start-up draws), each conv followed by batch normalization (fixed: not a parameter) with a
momentum for short trainings, trained with Adam at batch 128, a linear warm-up over the first
10% of the steps to 3e-3, then a cosine decay to 0 (the recipe of
``experiments/recipe_five_percent.toml``, its warm-up shortened for 3 epochs)."""
N_STARTUP = 10
"""Start-up configurations per seed, shared by the Optuna-based tools (common random
numbers): Optuna's ``TPESampler`` default ``n_startup_trials``, which cnnlab keeps."""
MARGIN = 0.002
"""The non-inferiority margin: cnnlab is as good as a peer at a checkpoint when the 95%
interval of the median paired difference (cnnlab minus the peer, seed by seed) lies above
``-MARGIN``."""
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)
KILL_GRACE = 60.0
"""Seconds between the SIGTERM at the budget and a SIGKILL."""
FINISHED = {"COMPLETE", "PRUNED", "COMPLETED"}
"""Trial states that end a trained trial by the tool's own decision (Optuna's and cnnlab's,
then KerasTuner's)."""
MARKER = ".anytime-run"
"""A run folder made by this script (and so safe to replace on the next run)."""


@dataclass(frozen=True)
class Scale:
    name: str
    train_size: int | None
    val_size: int | None
    epochs: int
    budget: float

    def describe(self) -> str:
        train = f"{self.train_size:,}" if self.train_size else "50,000"
        val = f"{self.val_size:,}" if self.val_size else "10,000"
        return (f"{train} training images, {val} validation images, at most {self.epochs} "
                f"epoch(s) per trial")


SCALES = {
    "quickstart": Scale("quickstart", 10_000, None, 3, 60.0),
    "medium": Scale("medium", None, None, 5, 420.0),
    "tiny": Scale("tiny", 512, 512, 1, 300.0),  # For tests: seconds, with --max-trials.
}


# --- the common space in each tool's vocabulary -----------------------------------------------

def draw(pick) -> dict[str, Any]:
    """One architecture drawn from ``SPACE`` through ``pick(name, choices)`` (Optuna's
    ``trial.suggest_categorical``, KerasTuner's ``hp.Choice``), under cnnlab's parameter names."""
    values: dict[str, Any] = {"n_conv": pick("n_conv", SPACE["n_conv"])}
    for i in range(1, values["n_conv"] + 1):
        for name in CONV_FIELDS:
            values[f"conv{i}_{name}"] = pick(f"conv{i}_{name}", SPACE[f"conv.{name}"])
    values["dense1_units"] = pick("dense1_units", SPACE["dense.units"])
    return values


def build_keras(keras: Any, values: dict[str, Any]) -> Any:
    """The network cnnlab builds for ``values``, in plain Keras, compiled as the notebook does.
    Keras raises ``ValueError`` for a feature map that shrinks below the kernel."""
    model = keras.Sequential([keras.Input((28, 28, 1))])
    for i in range(1, values["n_conv"] + 1):
        model.add(keras.layers.Conv2D(
            values[f"conv{i}_filters"], values[f"conv{i}_kernel_size"],
            strides=values[f"conv{i}_strides"], padding=values[f"conv{i}_padding"],
            activation="relu"))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(values["dense1_units"], activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer=OPTIMIZER, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def startup_configs(seed: int) -> list[dict[str, Any]]:
    """The ``N_STARTUP`` configurations every Optuna-based tool trains first for ``seed`` (by
    ``enqueue``): uniform random draws from ``SPACE``, one random generator per seed."""
    import numpy as np

    rng = np.random.default_rng([seed, 0xC0DE])
    return [draw(lambda name, choices: choices[int(rng.integers(len(choices)))])
            for _ in range(N_STARTUP)]


def study_toml(scale: Scale, seed: int, budget: float, max_trials: int | None,
               recipe: bool = True) -> str:
    """cnnlab's study over ``SPACE``: no [sampler], [pruner] or max_params (the defaults), the
    seed's start-up configurations enqueued, and with ``recipe`` the recipe
    (``RECIPE_SEARCH``, ``RECIPE_TRAINING``)."""
    def value(v: Any) -> str:
        return json.dumps(v)

    training = {"epochs": scale.epochs, "batch_size": BATCH_SIZE, "optimizer": OPTIMIZER,
                **(RECIPE_TRAINING if recipe else {})}
    search = {**SPACE, **(RECIPE_SEARCH if recipe else {})}
    lines = [
        f'name = "{study_name(scale, seed)}"',
        'description = "benchmarks/anytime.py: cnnlab\'s default study on the common space"',
        f"seed = {seed}",
        f"timeout = {budget:g}",
        *([f"n_trials = {max_trials}"] if max_trials else []),
        "",
        "[training]",
        *(f"{key} = {value(v)}" for key, v in training.items()),
        *([f"train_size = {scale.train_size}"] if scale.train_size else []),
        *([f"val_size = {scale.val_size}"] if scale.val_size else []),
        "",
        "[search]",
        *(f"{path} = {value(choices)}" for path, choices in search.items()),
    ]
    for params in startup_configs(seed):
        lines += ["", "[[enqueue]]", *(f"{k} = {value(v)}" for k, v in params.items())]
    return "\n".join(lines) + "\n"


def study_name(scale: Scale, seed: int) -> str:
    return f"anytime-{scale.name}-seed{seed}"


# --- the children: Optuna's recipe and KerasTuner, one process per run -------------------------

class Unbuildable(ValueError):
    """Keras could not build the drawn network (Optuna's recipe lets ``optimize`` catch it)."""


CURRENT: dict[str, Any] = {"trial": None}
"""The KerasTuner trial being trained (set by the tuner's ``on_trial_begin``): KerasTuner
deep-copies the callbacks of every trial, so they cannot be told it otherwise."""


def append(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n")


def epoch_log(keras: Any, path: Path, t0: float, trial: Any = None) -> Any:
    """The shared measure for Optuna's recipe and KerasTuner: a Keras callback appending
    (seconds since the run's start, trial, epoch, val_accuracy) as each epoch ends; the epoch
    counted from 1, as cnnlab's MLflow steps that its points come from."""

    class EpochLog(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.path, self.t0, self.trial = str(path), t0, trial

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = (logs or {}).get("val_accuracy")
            if value is not None:
                trial = self.trial if self.trial is not None else CURRENT["trial"]
                append(self.path, {"event": "epoch", "t": time.time() - self.t0,
                                   "trial": str(trial), "epoch": int(epoch) + 1,
                                   "val_accuracy": float(value)})

    return EpochLog()


def child(args: argparse.Namespace) -> int:
    """One run of Optuna's recipe or of a KerasTuner tuner, in this (fresh) process."""
    scale, t0 = SCALES[args.scale], args.t0
    deadline = t0 + args.budget
    rundir = Path(args.rundir)
    events = rundir / "events.jsonl"
    from cnnlab.train.data import load_mnist

    data = load_mnist(args.data_dir, train_size=scale.train_size, val_size=scale.val_size)
    arrays = (data.train.x, data.train.y_onehot, data.validation.x, data.validation.y_onehot)
    import keras

    keras.utils.set_random_seed(args.seed)
    if args.child == "optuna":
        stop = _optuna(args, scale, t0, deadline, rundir, events, arrays, keras)
    else:
        stop = _kerastuner(args, scale, t0, deadline, rundir, events, arrays, keras)
    append(events, {"event": "end", "t": time.time() - t0, "why": stop})
    return 0


def _optuna(args, scale, t0, deadline, rundir, events, arrays, keras) -> str:
    import warnings

    import optuna
    from optuna_integration import KerasPruningCallback, MLflowCallback

    x, y, x_val, y_val = arrays
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # Deprecated in Optuna 5 (removal in 6): still the recipe.
        warnings.simplefilter("ignore", FutureWarning)
        tracking = MLflowCallback(tracking_uri=f"sqlite:///{rundir / 'mlflow.db'}",
                                  metric_name="val_accuracy")

    def objective(trial):
        keras.backend.clear_session()
        try:
            model = build_keras(keras, draw(trial.suggest_categorical))
        except ValueError as err:
            raise Unbuildable(str(err)) from None
        history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=scale.epochs,
                            validation_data=(x_val, y_val), verbose=0,
                            callbacks=[epoch_log(keras, events, t0, trial.number),
                                       KerasPruningCallback(trial, "val_accuracy")])
        return history.history["val_accuracy"][-1]

    def ended(study, trial):
        append(events, {"event": "trial_end", "t": time.time() - t0, "trial": str(trial.number),
                        "state": trial.state.name})

    study = optuna.create_study(study_name=study_name(scale, args.seed), direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.MedianPruner())
    for params in startup_configs(args.seed):  # The start-up draws cnnlab gets too.
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=args.max_trials,
                   timeout=max(deadline - time.time(), 1.0),
                   callbacks=[tracking, ended], catch=(Unbuildable,))
    return "budget" if time.time() >= deadline else "max_trials"


def _kerastuner(args, scale, t0, deadline, rundir, events, arrays, keras) -> str:
    import keras_tuner as kt

    x, y, x_val, y_val = arrays

    class BudgetSpent(kt.errors.FatalError):
        """Past the deadline: ends ``search`` (KerasTuner has no timeout of its own)."""

    def build(hp):
        try:
            return build_keras(keras, draw(lambda name, choices: hp.Choice(name, choices)))
        except ValueError as err:
            raise kt.errors.FailedTrialError(str(err)) from None

    base = kt.Hyperband if args.child == "kt-hyperband" else kt.RandomSearch

    class Tuner(base):
        def on_trial_begin(self, trial):
            if time.time() >= deadline:
                raise BudgetSpent(f"the budget of {args.budget:g} s is spent")
            CURRENT["trial"] = trial.trial_id
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            append(events, {"event": "trial_end", "t": time.time() - t0,
                            "trial": str(trial.trial_id), "state": str(trial.status)})

    common = dict(objective="val_accuracy", seed=args.seed, directory=str(rundir / "kt"),
                  project_name=args.child, overwrite=True)
    if base is kt.Hyperband:
        tuner = Tuner(build, max_epochs=scale.epochs, factor=3, hyperband_iterations=10**6,
                      **common)
        if args.max_trials:
            tuner.oracle.max_trials = args.max_trials  # Hyperband's oracle takes no max_trials.
    else:
        tuner = Tuner(build, max_trials=args.max_trials or 10**6, **common)
    try:
        tuner.search(x, y, epochs=scale.epochs, batch_size=BATCH_SIZE,
                     validation_data=(x_val, y_val), verbose=0,
                     callbacks=[epoch_log(keras, events, t0)])
    except BudgetSpent:
        return "budget"
    return "finished"


# --- the harness --------------------------------------------------------------------------------

@dataclass
class Run:
    """One (tool, seed) run as recorded: its points (seconds, trial, epoch, val_accuracy)."""

    tool: str
    seed: int
    budget: float
    points: list[tuple[float, str, int, float]]
    finished: int
    meta: dict[str, Any]

    def curve(self) -> list[tuple[float, float]]:
        """(seconds, best val_accuracy so far) at each epoch within the budget, in time order."""
        best, out = float("-inf"), []
        for t, _, _, value in sorted(self.points):
            if t > self.budget:
                break
            best = max(best, value)
            out.append((t, best))
        return out

    def best_at(self, seconds: float) -> float | None:
        best = None
        for t, value in self.curve():
            if t > seconds:
                break
            best = value
        return best


def cnnlab_command() -> list[str]:
    """cnnlab's real entry point: the console script beside this interpreter."""
    script = Path(sys.executable).with_name("cnnlab")
    if script.exists():
        return [str(script)]
    found = shutil.which("cnnlab")
    return [found] if found else [sys.executable, "-m", "cnnlab.cli"]


def prepare(rundir: Path) -> None:
    """A fresh run folder: one this script made before is replaced, anything else refused."""
    if rundir.exists():
        if not (rundir / MARKER).exists():
            raise SystemExit(f"{rundir} exists and was not made by benchmarks/anytime.py; "
                             "choose another --out.")
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    (rundir / MARKER).write_text("made by benchmarks/anytime.py; replaced on the next run\n")


def run_one(tool: str, seed: int, scale: Scale, budget: float, max_trials: int | None,
            out: Path, data_dir: str | None, benchmark: str = "") -> Run:
    """Run one (tool, seed) in a fresh process, stop it at the budget, read its points back."""
    rundir = (out / scale.name / f"{tool}-seed{seed}").resolve()
    prepare(rundir)
    env = {**os.environ, "CNNLAB_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data_args = ["--data-dir", data_dir] if data_dir else []
    if tool in CNNLAB_TOOLS:
        study = rundir / "study.toml"
        study.write_text(study_toml(scale, seed, budget, max_trials, recipe=tool == "cnnlab"))
        command = [*cnnlab_command(), "study", "run", str(study), "--timeout", f"{budget:g}",
                   "--storage", f"sqlite:///{rundir / 'optuna.db'}",
                   "--tracking-uri", f"sqlite:///{rundir / 'mlflow.db'}", *data_args,
                   *(["--n-trials", str(max_trials)] if max_trials else [])]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", tool,
                   "--scale", scale.name, "--seeds", str(seed), "--budget", f"{budget:g}",
                   "--rundir", str(rundir), *data_args,
                   *(["--max-trials", str(max_trials)] if max_trials else [])]
    with open(rundir / "log.txt", "wb") as log:
        t0 = time.time()
        if tool not in CNNLAB_TOOLS:
            command += ["--t0", repr(t0)]
        proc = subprocess.Popen(command, cwd=rundir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        stopped = False
        try:
            proc.wait(timeout=max(t0 + budget - time.time(), 0.0))
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        wall = time.time() - t0
    if tool in CNNLAB_TOOLS:
        points, states = read_cnnlab(rundir, study_name(scale, seed), t0, budget)
    else:
        points, states = read_events(rundir / "events.jsonl", budget)
    with open(rundir / "epochs.jsonl", "w") as file:
        for t, trial, epoch, value in points:
            file.write(json.dumps({"t": t, "trial": trial, "epoch": epoch,
                                   "val_accuracy": value}) + "\n")
    meta = {"tool": tool, "seed": seed, "scale": scale.name, "budget": budget,
            "max_trials": max_trials, "t0": t0, "wall": wall, "returncode": proc.returncode,
            "stopped_at_budget": stopped, "trials_by_state": dict(states),
            "finished": sum(n for state, n in states.items() if state in FINISHED),
            "command": shlex.join(command), "benchmark": benchmark}
    (rundir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not stopped and proc.returncode != 0:
        print(f"warning: {tool} seed {seed} exited with code {proc.returncode}; see "
              f"{rundir / 'log.txt'}", file=sys.stderr)
    return Run(tool, seed, budget, points, meta["finished"], meta)


def read_cnnlab(rundir: Path, name: str, t0: float, budget: float):
    """cnnlab's points from its MLflow store: every trial run's val_accuracy history, each
    value at its MLflow timestamp; and its trained trials' end states within the budget."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{rundir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return [], Counter()
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`cnnlab.kind` = 'trial'", max_results=50_000)
    points, states = [], Counter()
    for run in runs:
        tags = run.data.tags
        trial = tags["cnnlab.trial_number"]
        for metric in client.get_metric_history(run.info.run_id, "val_accuracy"):
            points.append((metric.timestamp / 1000 - t0, trial, int(metric.step),
                           float(metric.value)))
        end = run.info.end_time
        if (tags.get("cnnlab.outcome") == "trained" and end is not None
                and end / 1000 - t0 <= budget):
            states[tags.get("cnnlab.state", "?")] += 1
    return sorted(points), states


def read_events(path: Path, budget: float):
    """The shared callback's points, and the trials' end states within the budget."""
    points, states = [], Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "epoch":
                points.append((event["t"], event["trial"], event["epoch"],
                               event["val_accuracy"]))
            elif event["event"] == "trial_end" and event["t"] <= budget:
                states[event["state"]] += 1
    return sorted(points), states


def load_run(rundir: Path) -> Run:
    """A run recorded earlier (for --report-only)."""
    meta = json.loads((rundir / "run.json").read_text())
    points = []
    for line in (rundir / "epochs.jsonl").read_text().splitlines():
        p = json.loads(line)
        points.append((p["t"], p["trial"], p["epoch"], p["val_accuracy"]))
    return Run(meta["tool"], meta["seed"], meta["budget"], points, meta["finished"], meta)


# --- the report ---------------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 4000


def median_or_none(values: list[float | None]) -> float | None:
    """The median over seeds; None when a seed has no point yet (no best to speak of)."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(values)


def median_interval(values: list[float]) -> tuple[float, float] | None:
    """The 95% percentile-bootstrap interval of the median of ``values`` (SciPy's
    ``stats.bootstrap``, seeded, so a report is the same every time); None below 2 values."""
    if len(values) < 2:
        return None
    import numpy as np
    from scipy import stats

    data = np.asarray(values, dtype=float)
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.median, confidence_level=0.95, method="percentile",
                             n_resamples=BOOTSTRAP_RESAMPLES, random_state=0)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def by_tool(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.tool, []).append(run)
    return {tool: groups[tool] for tool in ALL_TOOLS if tool in groups}


def summary(runs: list[Run], budget: float) -> dict[str, dict[str, Any]]:
    """Per tool: at each checkpoint the median over seeds and its bootstrap interval, each
    seed's value (by seed), trials finished, the first validated epoch."""
    rows = {}
    for tool, group in by_tool(runs).items():
        firsts = [r.curve()[0][0] if r.curve() else None for r in group]
        at, intervals, values = [], [], []
        for c in CHECKPOINTS:
            seen = {r.seed: r.best_at(c * budget) for r in group}
            values.append(seen)
            middle = median_or_none(list(seen.values()))
            at.append(middle)
            intervals.append(None if middle is None else median_interval(list(seen.values())))
        rows[tool] = {
            "seeds": [r.seed for r in group],
            "at": at, "interval": intervals, "values": values,
            "finished": statistics.median(r.finished for r in group),
            "finished_each": [r.finished for r in group],
            "first": median_or_none(firsts),
        }
    return rows


def paired(rows: dict[str, dict[str, Any]], peer: str, k: int, tool: str = "cnnlab"):
    """(median, interval, seeds) of ``tool`` minus ``peer`` at checkpoint ``k``, seed by seed
    over the seeds both have a point at (the pairing that common random numbers make
    meaningful); None without such a seed."""
    ours, theirs = rows[tool]["values"][k], rows[peer]["values"][k]
    seeds = [s for s in ours if s in theirs and ours[s] is not None and theirs[s] is not None]
    if not seeds:
        return None
    diffs = [ours[s] - theirs[s] for s in seeds]
    return statistics.median(diffs), median_interval(diffs), len(seeds)


def verdict(interval: tuple[float, float] | None) -> str:
    """Non-inferiority at ``MARGIN`` from the interval of the median paired difference."""
    if interval is None:
        return "too few seeds for an interval"
    low, high = interval
    if low > 0:
        return "better (the whole interval above 0)"
    if low > -MARGIN:
        return f"as good (non-inferior: the interval above -{MARGIN:g})"
    if high < -MARGIN:
        return f"worse (the whole interval below -{MARGIN:g})"
    return f"inconclusive (the interval reaches below -{MARGIN:g} and above it)"


def best_other(rows: dict[str, dict[str, Any]], tool: str, k: int) -> tuple[str, float] | None:
    """The best other tool at checkpoint ``k`` (median over its seeds), if any has a point."""
    others = [(row["at"][k], name) for name, row in rows.items()
              if name != tool and row["at"][k] is not None]
    if not others:
        return None
    value, name = max(others)
    return name, value


def _cell(value: float | None, interval: tuple[float, float] | None, sign: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:{sign}.4f}"
    if interval is not None:
        text += f" [{interval[0]:{sign}.4f}, {interval[1]:{sign}.4f}]"
    return text


def report(runs: list[Run], scale: Scale, budget: float, command: str) -> tuple[str, list[str]]:
    """The Markdown tables (per tool; cnnlab minus each peer, paired by seed) and the verdict
    lines (cnnlab against the best peer at each checkpoint, at the margin ``MARGIN``)."""
    rows = summary(runs, budget)
    heads = [f"{int(c * 100)}% ({c * budget:g} s)" for c in CHECKPOINTS]
    lines = [
        f"Best validation accuracy seen at any epoch so far, {scale.name} scale "
        f"({scale.describe()}), {budget:g} s per run: median over seeds [95% bootstrap "
        "interval of the median].",
        "",
        "| tool | seeds | trials finished | first epoch validated | " + " | ".join(heads) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in heads) + " |",
    ]
    for tool, row in rows.items():
        cells = [_cell(v, i) for v, i in zip(row["at"], row["interval"], strict=True)]
        each = ", ".join(str(n) for n in row["finished_each"])
        first = "—" if row["first"] is None else f"{row['first']:.1f} s"
        lines.append(f"| {LABELS[tool]} | {len(row['seeds'])} | {row['finished']:g} ({each}) | "
                     f"{first} | " + " | ".join(cells) + " |")
    verdicts = []
    if "cnnlab" in rows and len(rows) > 1:
        lines += ["", "cnnlab minus each other tool, seed by seed (common random numbers: the "
                  "Optuna-based tools train the same start-up configurations for a seed): "
                  "median [95% bootstrap interval].", "",
                  "| cnnlab minus | " + " | ".join(heads) + " |",
                  "| --- | " + " | ".join("---" for _ in heads) + " |"]
        for peer in rows:
            if peer == "cnnlab":
                continue
            cells = []
            for k in range(len(CHECKPOINTS)):
                diff = paired(rows, peer, k)
                cells.append("—" if diff is None else _cell(diff[0], diff[1], "+"))
            lines.append(f"| {LABELS[peer]} | " + " | ".join(cells) + " |")
        for k, c in enumerate(CHECKPOINTS):
            where = f"at {int(c * 100)}% of the budget ({c * budget:g} s)"
            other = best_other(rows, "cnnlab", k)
            diff = paired(rows, other[0], k) if other else None
            if other is None or diff is None:
                verdicts.append(f"{where}: no paired seed with a validated epoch yet")
                continue
            middle, interval, n = diff
            verdicts.append(
                f"{where}: cnnlab {verdict(interval)} against the best other tool, "
                f"{LABELS[other[0]]}: {_cell(middle, interval, '+')} over {n} seed(s)")
    lines += ["", f"`{command}`"]
    return "\n".join(lines) + "\n", verdicts


def figure(runs: list[Run], scale: Scale, budget: float, path: Path) -> None:
    """Per tool the median over seeds as a step line with its 95% bootstrap band, each seed
    faint (Figure API, no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    lows = []
    grid = [budget * i / 60 for i in range(1, 61)]
    for tool, group in by_tool(runs).items():
        for run in group:
            curve = run.curve()
            if curve:
                xs, ys = zip(*curve, strict=True)
                ax.step([*xs, budget], [*ys, ys[-1]], where="post", color=COLORS[tool],
                        alpha=0.15, linewidth=0.8)
        points = sorted({t for r in group for t, _ in r.curve()} | {budget})
        medians = [(t, median_or_none([r.best_at(t) for r in group])) for t in points]
        medians = [(t, m) for t, m in medians if m is not None]
        if medians:
            xs, ys = zip(*medians, strict=True)
            ax.step(xs, ys, where="post", color=COLORS[tool],
                    linewidth=2.4 if tool == "cnnlab" else 1.6,
                    label=f"{LABELS[tool]} ({len(group)} seed{'s' * (len(group) > 1)})")
            early = [m for t, m in medians if t >= CHECKPOINTS[0] * budget]
            lows.append(min(early) if early else ys[-1])
        band = []
        for t in grid:
            values = [r.best_at(t) for r in group]
            if all(v is not None for v in values) and len(values) > 1:
                band.append((t, *median_interval(values)))
        if band:
            ts, low, high = zip(*band, strict=True)
            ax.fill_between(ts, low, high, step="post", color=COLORS[tool], alpha=0.15,
                            linewidth=0)
    for c in CHECKPOINTS:
        ax.axvline(c * budget, color="0.85", linewidth=0.8, zorder=0)
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 0.01), 1.0 if max(lows) > 0.995 else None)
    ax.set_xlim(0, budget)
    ax.set_xlabel("seconds since the run's process started (imports and data loading included)")
    ax.set_ylabel("best validation accuracy seen at any epoch so far")
    ax.set_title(f"{scale.name}: {scale.describe()}; {budget:g} s per run\n"
                 "median over seeds, its 95% bootstrap band (faint lines: each seed)",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.savefig(path, dpi=120)


def write_outputs(runs: list[Run], scale: Scale, budget: float, out: Path,
                  command: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"anytime-{scale.name}-records.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["tool", "seed", "seconds", "trial", "epoch", "val_accuracy",
                         "best_so_far"])
        for run in runs:
            best = float("-inf")
            for t, trial, epoch, value in sorted(run.points):
                best = max(best, value)
                writer.writerow([run.tool, run.seed, f"{t:.3f}", trial, epoch, value, best])
    (out / f"anytime-{scale.name}-runs.json").write_text(
        json.dumps([run.meta for run in runs], indent=2) + "\n")
    table, verdicts = report(runs, scale, budget, command)
    text = table + ("\n" + "\n".join(f"- {v}" for v in verdicts) + "\n" if verdicts else "")
    (out / f"anytime-{scale.name}.md").write_text(text)
    figure(runs, scale, budget, out / f"anytime-{scale.name}.png")
    print()
    print(table)
    for verdict in verdicts:
        print(verdict)
    print(f"\nwritten: {out / f'anytime-{scale.name}.md'}, {out / f'anytime-{scale.name}.png'}, "
          f"{out / f'anytime-{scale.name}-records.csv'}")
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["quickstart", "medium", "tiny"],
                        default="quickstart",
                        help="quickstart: 10,000 images, 3 epochs, 60 s a run; medium: 50,000 "
                             "images, 5 epochs, 420 s a run; tiny: 512 images, 1 epoch, for the "
                             "tests (with --max-trials)")
    parser.add_argument("--tuners", nargs="+", choices=ALL_TOOLS, default=list(TOOLS),
                        metavar="TOOL", help=f"some of {', '.join(ALL_TOOLS)} (default: "
                        f"{', '.join(TOOLS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--budget", type=float, metavar="SECONDS",
                        help="wall time per (tool, seed) run (default: the scale's)")
    parser.add_argument("--max-trials", type=int, metavar="N",
                        help="also stop each run after N trials (its tool's own count)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data-dir", help="the MNIST folder (default: $CNNLAB_MNIST_DIR)")
    parser.add_argument("--report-only", action="store_true",
                        help="no runs: the table and figure again from the runs in --out")
    parser.add_argument("--child", choices=TOOLS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--rundir", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    budget = args.budget if args.budget is not None else scale.budget
    if budget <= 0 or (args.max_trials is not None and args.max_trials < 1):
        parser.error("--budget and --max-trials must be positive.")
    if args.child:
        args.seed, args.budget = args.seeds[0], budget
        return child(args)
    data_dir = args.data_dir or os.environ.get("CNNLAB_MNIST_DIR") or None
    command = shlex.join(["python", "benchmarks/anytime.py",
                          *(sys.argv[1:] if argv is None else argv)])
    tools = [t for t in ALL_TOOLS if t in args.tuners]
    runs = []
    if args.report_only:
        for seed in args.seeds:
            for tool in tools:
                rundir = args.out / scale.name / f"{tool}-seed{seed}"
                if (rundir / "run.json").exists():
                    runs.append(load_run(rundir))
        if not runs:
            parser.error(f"no recorded runs under {args.out / scale.name}.")
        budgets = {run.budget for run in runs}
        if len(budgets) > 1:
            parser.error(f"the runs under {args.out / scale.name} have different budgets "
                         f"({', '.join(f'{b:g}' for b in sorted(budgets))} s); choose them "
                         "with --tuners and --seeds.")
        budget = budgets.pop()
        command = "; ".join(dict.fromkeys(run.meta.get("benchmark", "?") for run in runs))
    else:
        print(f"anytime benchmark, {scale.name}: {scale.describe()}; {budget:g} s per run, "
              f"{len(tools)} tool(s) x {len(args.seeds)} seed(s), one after another: "
              f"about {len(tools) * len(args.seeds) * budget / 60:.0f} min", flush=True)
        for i, seed in enumerate(args.seeds):
            for tool in tools[i % len(tools):] + tools[:i % len(tools)]:  # Rotated per seed.
                run = run_one(tool, seed, scale, budget, args.max_trials, args.out, data_dir,
                              command)
                best = run.best_at(budget)
                print(f"{tool:13s} seed {seed}: {len(run.points)} epochs validated, "
                      f"{run.finished} trials finished, best "
                      + ("—" if best is None else f"{best:.4f}")
                      + f", {run.meta['wall']:.0f} s"
                      + (" (stopped at the budget)" if run.meta["stopped_at_budget"] else ""),
                      flush=True)
                runs.append(run)
    write_outputs(runs, scale, budget, args.out, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
