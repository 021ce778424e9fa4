"""The ``cnnlab`` command: shapes, train, study run, evaluate, compare, ui and dashboard."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.errors import ArchitectureError, CnnlabError, ConfigError, DataError
from cnnlab.spec import defaults
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ShrinkError
from cnnlab.spec.schedules import SCHEDULES
from cnnlab.spec.shapes import format_failed_rows
from cnnlab.spec.trialspec import BASELINE_TRAININGS, OPTIMIZERS, RECIPE_FIELDS, USED_WITH
from cnnlab.spec.words import count
from cnnlab.study.signals import Terminated, exit_code, signals_as_interrupts
from cnnlab.train.data import DATA_DIR_ENV


def _add_architecture_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "architecture", "default: the notebook's CNN (32:3:1:same 32:3:2:valid 64:3:1:same "
        "64:3:2:valid, dense 128); --conv and --dense give the whole network: --conv alone "
        "keeps dense 128, --dense alone has no conv layer")
    group.add_argument("--conv", action="append", metavar="F:K[:S[:P[:OPT...]]]",
                       help="a Conv2D layer: filters, kernel size, strides (default 1), padding "
                            "(valid|same, default valid), then options: bn (batch "
                            "normalization), maxN or avgN (pooling, window N), doR or sdoR "
                            "(dropout or spatial dropout of rate R; kernel 1 is a 1x1 "
                            "convolution); repeat for each "
                            "layer, e.g. --conv 32:3:1:same:bn:max2 --conv 32:3:2:valid; "
                            "kernel and strides may be rectangular, e.g. 3x5")
    group.add_argument("--dense", action="append", metavar="UNITS",
                       help="hidden Dense units, repeated or comma-separated (default 128; "
                            "give 0 layers with --dense '')")
    group.add_argument("--head", choices=("flatten", "gap"), default=None,
                       help="what joins the conv layers to the dense ones: flatten (the "
                            "notebook's) or gap (global average pooling)")
    group.add_argument("--dropout", type=_rate, default=None, metavar="RATE",
                       help="dropout before every Dense layer (0 <= RATE < 1; default 0)")
    group.add_argument("--arch-file", type=Path, metavar="FILE",
                       help="a TOML file with [[conv]] tables and dense = [...]")


def _architecture(args: argparse.Namespace) -> Architecture:
    if args.arch_file is not None:
        if args.conv or args.dense:
            raise ArchitectureError("give the architecture either with --arch-file or with "
                                    "--conv/--dense, not both.")
        arch = Architecture.from_file(args.arch_file)
    elif args.conv is None and args.dense is None:
        arch = NOTEBOOK_CNN
    else:
        arch = Architecture.from_strings(args.conv or [], args.dense)
    changes = {k: getattr(args, k) for k in ("head", "dropout") if getattr(args, k) is not None}
    return dataclasses.replace(arch, **changes) if changes else arch


def _int_at_least(minimum: int, maximum: int | None = None):
    """An argparse type: an integer of at least ``minimum`` (and at most ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at most {maximum}")
        return value

    return parse


def _float_where(ok: Callable[[float], bool], requirement: str):
    """An argparse type: a number for which ``ok`` holds, else "'TEXT' ``requirement``" (NaN
    never holds)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} {requirement}")
        return value

    return parse


_positive_float = _float_where(lambda v: 0 < v < math.inf, "must be a positive number")
_non_negative_float = _float_where(lambda v: 0 <= v < math.inf,
                                   "must be a number of at least 0")
_rate = _float_where(lambda v: 0 <= v < 1, "must be from 0 up to (not including) 1")
_positive = _int_at_least(1)
_non_negative = _int_at_least(0)
_port = _int_at_least(1, 65535)


def _input_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be HEIGHT,WIDTH,CHANNELS, e.g. 28,28,1")
    return shape  # type: ignore[return-value]


def cmd_shapes(args: argparse.Namespace) -> int:
    if args.name is not None:
        if args.conv or args.dense is not None or args.arch_file is not None:
            raise ArchitectureError("give the architecture either as NAME or with "
                                    "--conv/--dense/--arch-file, not both.")
        arch = Architecture.from_name(args.name)
        changes = {k: getattr(args, k) for k in ("head", "dropout")
                   if getattr(args, k) is not None}
        arch = dataclasses.replace(arch, **changes) if changes else arch
    else:
        arch = _architecture(args)
    if args.input is not None:
        arch = dataclasses.replace(arch, input_shape=args.input)
    print(f"architecture {arch.describe()}")
    try:
        table = arch.layer_table()
    except ShrinkError as err:  # The table up to the layer that fails, then the one sentence.
        if err.rows:
            print(format_failed_rows(err.input_shape, err.rows), flush=True)
        raise
    print(table.format())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec
    from cnnlab.tracking.stores import (
        cnnlab_command,
        password_note,
        shown_uri,
    )
    from cnnlab.tracking.training_run import run_training

    arch = _architecture(args)
    recipe = {name: getattr(args, name) for name in RECIPE_FIELDS
              if getattr(args, name) is not None}
    spec = TrialSpec(arch, TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                                       seed=args.seed, optimizer=args.optimizer,
                                       learning_rate=args.learning_rate, **recipe))
    _refuse_ignored(spec.training)
    table = arch.layer_table()
    _check_stores(args, write=True, which=("tracking",))
    print(f"architecture {arch.describe()}: {table.total_params:,} parameters")
    if spec.training.describe_recipe():
        print(f"recipe {spec.training.describe_recipe()}")
    outcome = run_training(
        spec, data_dir=args.data_dir, train_size=args.train_size,
        val_size=args.val_size, experiment=args.experiment, run_name=args.run_name,
        tracking_uri=args.stores.tracking_uri, epoch_lines=True)
    history = outcome.result.history
    uri = args.stores.tracking_uri
    print(f"val_accuracy {history['val_accuracy'][-1]:.4f}  val_loss {history['val_loss'][-1]:.4f}"
          f" after {count(outcome.result.epochs_run, 'epoch')}")
    print(f"MLflow run {outcome.run_id} in experiment '{args.experiment}' "
          f"({shown_uri(uri)}); browse it with: "
          f"{cnnlab_command('ui', tracking_uri=uri, stores=('tracking',))}"
          f"{password_note((uri, 'MLFLOW_TRACKING_URI'))}")
    return 0


def cmd_study_check(args: argparse.Namespace) -> int:
    from cnnlab.search.config import check_runnable, load_study
    from cnnlab.search.script import ScriptSpace

    config = load_study(args.file)
    notes = list(config.notes)
    feasible = check_runnable(config, notes)
    budget = (count(config.n_trials, "trained trial") if config.n_trials is not None else
              f"{config.timeout:g} s")
    stopper = ("fidelity rungs (ASHA)" if config.fidelity is not None else
               f"pruner {config.pruner.name}")
    print(f"study '{config.name}': {budget} x {count(config.training.epochs, 'epoch')}"
          f"{' at most' if config.fidelity is not None else ''}, sampler "
          f"{config.sampler.name}, {stopper}, seed {config.seed}")
    for note in notes:  # Optuna's warnings about the options, said once.
        print(f"note: {note}")
    if config.fidelity is not None:
        print(f"fidelity rungs: {config.fidelity.describe(config.train_size or 50_000)}: of the "
              f"n trials at a rung, the best floor(n x {config.fidelity.promote:g}) (at least the "
              f"best one) go on, once {config.fidelity.min_trials} have reached it")
    if config.size_objective is not None:
        print(f"objectives: {config.metric} ({config.direction}) and {config.size_objective} "
              "(minimize): the front of the two is the answer")
    if config.confirm is not None:
        c = config.confirm
        which = (f"the {c.top} most accurate of the front" if c.front and c.top
                 else "the front" if c.front else f"the top {c.top}")
        if c.front and c.at_least is not None:
            which += f" that scored at least {c.at_least:g}"
        if c.front and c.smallest is not None:
            which += f", the {c.smallest} smallest"
        beside = (" beside the notebook CNN" if c.baseline else "") + (
            " as the notebook trains it" if c.baseline and c.baseline_training == "notebook"
            else "")
        print(f"then confirm: {which} over {c.seeds} seeds{beside}")
    if config.max_params is not None or config.max_macs is not None:
        limits = [f"{config.max_params:,} parameters" if config.max_params else "",
                  f"{config.max_macs:,} multiply-adds per image" if config.max_macs else ""]
        print(f"budget: at most {' and '.join(x for x in limits if x)}; a larger draw is "
              "infeasible (an Optuna constraint), never trained")
    if config.warm_start:
        print(f"warm start: from the trials of {', '.join(repr(n) for n in config.warm_start)} "
              "that this space can draw, copied when the study is created")
    if config.enqueue:
        print(f"trained first (enqueued): {count(len(config.enqueue), 'configuration')}")
    design = config.design
    if isinstance(config.space, ScriptSpace):
        _print_script_space(config.space)
        print(f"search space: {feasible.describe()}")
    elif design is None:
        _print_resolved(config)
        print(f"search space: {feasible.describe()}")
    else:
        print(f"design around the {design.base_name} ({design.base.describe()}): "
              f"{count(len(design.settings()), 'setting')} x {count(design.seeds, 'seed')}")
        for setting in design.settings():
            table = setting.architecture.layer_table()
            final = setting.architecture.derived_params()["final_feature_map"]
            print(f"  {setting.label:<24} {table.total_params:>10,} params "
                  f"{table.total_macs:>12,} MACs  final map {final:<9} "
                  f"{setting.architecture.short()}")
    print(f"the {'script' if isinstance(config.space, ScriptSpace) else 'file'} is valid; "
          "nothing was written.")
    return 0


def _print_script_space(space: Any) -> None:
    """A study script's parameters, as its search function suggests them over random draws
    (``ScriptSpace.identity``): a line per parameter, its choices or range (a | b: choices;
    low..high: a range; by: a step)."""
    from cnnlab.search.script import FINGERPRINT_DRAWS

    parameters = space.parameters()
    print(f"search function {space.where.split(': ')[-1]}: the parameters it suggests over "
          f"{FINGERPRINT_DRAWS} random draws (a | b: choices; low..high: a range):")
    width = max((len(name) for name in parameters), default=0)
    for name, described in parameters.items():
        print(f"  {name:<{width}}  {described}")


def _print_resolved(config: Any) -> None:
    """The resolved space as a table: a line per field (a conv or Dense field over the layers
    that share its source: ``conv1-4 filters  32, 32, 64, 64  base``), its value or choices
    and where it comes from."""
    import itertools
    import re
    import textwrap

    from cnnlab.search.resolved import resolved_space
    from cnnlab.search.space import SOURCES, fixed

    def layer(path: str) -> tuple[str, int]:
        found = re.fullmatch(r"(conv|dense)(\d+)\.(\w+)", path)
        return (f"{found[1]} {found[3]}", int(found[2])) if found else (path, 0)

    def span(kind: str, rows: list[Any]) -> str:
        first, last = layer(rows[0].path)[1], layer(rows[-1].path)[1]
        name, field = kind.split(" ")
        return f"{name}{first}{f'-{last}' if last > first else ''} {field}"

    rows, lines = resolved_space(config), []
    for kind, group in itertools.groupby(rows, key=lambda r: layer(r.path)[0]):
        field = list(group)
        if layer(field[0].path)[1] == 0:
            lines += [(field[0].path, _show(field[0].path, field[0].param), field[0].source)]
            continue
        for source, run in itertools.groupby(field, key=lambda r: r.source):
            run = list(run)
            if all(fixed(r.param) for r in run):
                values = [_show(r.path, r.param) for r in run]
                shown = values[0] if len(set(values)) == 1 else ", ".join(values)
                lines.append((span(kind, run), shown, source))
                continue
            for _, same in itertools.groupby(run, key=lambda r: r.param):
                same = list(same)
                lines.append((span(kind, same), _show(same[0].path, same[0].param), source))
    print(textwrap.fill(
        "resolved space: every field's value (a | b: choices searched; low..high: a range "
        "searched; one value: fixed) and its source (" + "; ".join(
            f"{k}: {v}" for k, v in SOURCES.items()) + "):", width=96))
    width = [max(len(line[i]) for line in lines) for i in (0, 1)]
    for label, value, source in lines:
        print(f"  {label:<{width[0]}}  {value:<{width[1]}}  {source}")
    searched = {r.path.split(".", 1)[-1] for r in rows if not fixed(r.param)}
    when = [f"{name} only {rule}" for name, rule in CONDITIONS.items() if name in searched]
    if when:
        print(textwrap.fill("conditional (drawn only where used, else the default): "
                            + "; ".join(when), width=96, initial_indent="  ",
                            subsequent_indent="    "))
    depth = len(config.space.base.conv)
    past = sorted({layer(r.path)[1] for r in rows if r.path.startswith("conv")
                   and layer(r.path)[1] > depth and r.source == "base"})
    if past:
        print(f"  conv{past[0]}{f'-{past[-1]}' if len(past) > 1 else ''} (past the base's "
              f"{depth} layers): as its last layer, with stride 1, 'same' padding, no pool")


CONDITIONS = {"pool_size": "with a pool", "spatial_dropout": "with dropout",
              "warmup": "with the cosine schedule",
              "decay_rate": "with the step or exponential schedule",
              "decay_epochs": "with the step or exponential schedule",
              "momentum": "with sgd or rmsprop", "nesterov": "with sgd"}
"""What ``study check`` says of the conditional fields a study searches
(``cnnlab.search.space.CONV_USED_WITH``, ``TrainConfig.uses``)."""


def _show(path: str, param: Any) -> str:
    """A resolved value as a study file would say it: ``32``, ``8 | 16 | 32``, ``1..5``,
    ``0.0003..0.003 log``; no data size is the whole split, no learning rate Keras's own."""
    from cnnlab.search.space import Choices

    def one(value: Any) -> str:
        if value is None:
            return "Keras's default" if path.endswith("learning_rate") else "all"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return "x".join(str(v) for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    if isinstance(param, Choices):
        return " | ".join(one(v) for v in param.values)
    text = f"{one(param.low)}..{one(param.high)}"
    if param.step not in (None, 1):
        text += f" by {one(param.step)}"
    return text + (" log" if param.log else "")


def study_config(args: argparse.Namespace) -> Any:
    """The study's configuration, built once: the file (or script), then the command line's
    overrides."""
    from cnnlab.search.config import load_study

    config = load_study(args.file)
    overrides = {k: getattr(args, k) for k in ("n_trials", "timeout")
                 if getattr(args, k) is not None}
    return dataclasses.replace(config, **overrides) if overrides else config


def _study_run_again(args: argparse.Namespace) -> str:
    """The ``study run`` command as given, to paste in any folder: the file by its absolute
    path, the stores as resolved, and the options given (``--n-trials``, ``--timeout``,
    ``--data-dir``, ``--workers``, ``--from-study``)."""
    from cnnlab.tracking.stores import option_with

    options = [option_with(flag, str(value)) for flag, value in (
        ("--n-trials", args.n_trials), ("--timeout", args.timeout),
        ("--data-dir", args.data_dir and os.path.abspath(args.data_dir)),
        ("--workers", args.workers if args.workers > 1 else None),
        ("--from-study", args.from_study)) if value is not None]
    return args.stores.command("study run", os.path.abspath(args.file), *options)


def cmd_study_run(args: argparse.Namespace) -> int:
    from cnnlab.results.confirm import confirm_if_asked
    from cnnlab.results.report import default_path, report_study
    from cnnlab.study.runner import run_study
    from cnnlab.tracking.stores import load_existing_study

    config = study_config(args)
    stores = args.stores
    if args.share is None:  # Said once, by the command (not by each of its workers).
        _say_stores_beside(args, config.name, stores)
    if args.workers > 1:
        from cnnlab.study.workers import run_workers

        code = run_workers(config, stores, workers=args.workers, file=args.file,
                           data_dir=args.data_dir, from_study=args.from_study)
        if code == 0:
            confirm_if_asked(config, load_existing_study(config.name, stores.storage), stores,
                             data_dir=args.data_dir, out=lambda line: print(line, flush=True))
            report_study(config.name, stores, out=lambda line: print(line, flush=True))
        return code
    prefix = f"[worker {args.worker_name}] " if args.worker_name else ""

    def out(line: str) -> None:
        print(prefix + line, flush=True)

    with signals_as_interrupts():
        try:
            outcome = run_study(config, stores, data_dir=args.data_dir, share=args.share,
                                from_study=args.from_study, out=out)
            if args.share is None:  # A worker's parent confirms once its workers are done.
                confirm_if_asked(config, outcome.study, stores, data=outcome.data, out=out)
                if outcome.parent_run_id is not None and (
                        outcome.changed or not default_path(config.name,
                                                            stores.tracking_uri).exists()):
                    report_study(config.name, stores, out=out)
        except KeyboardInterrupt as stop:
            _forget_mlflow_runs()
            how = "terminated" if isinstance(stop, Terminated) else "interrupted"
            again = "" if args.share is not None else (  # A worker's parent says it once.
                f"; go on with `{_study_run_again(args)}`{stores.password_note()} (nothing "
                "finished is trained again)")
            print(f"{prefix}{how}: the current trial and the study's run were closed{again}.",
                  file=sys.stderr)
            return exit_code(stop)
        except Exception as err:  # A tracking server gone outside a trial: one sentence too.
            from cnnlab.tracking.runs import server_gone_error

            gone = server_gone_error(err, stores.tracking_uri)
            if gone is None:
                raise
            _forget_mlflow_runs()
            raise gone from None
    return 1 if outcome.stopped is not None else 0


def _forget_mlflow_runs() -> None:
    """No MLflow run left active for MLflow's exit to end (``tracking.runs.forget_active_runs``):
    one still active here was left open by an interrupt or a server gone, and the next run of
    the command closes it as Optuna recorded it."""
    if "mlflow" in sys.modules:
        from cnnlab.tracking.runs import forget_active_runs

        forget_active_runs()


def study_main(file: str | Path, argv: list[str] | None = None) -> int:
    """A study script's ``if __name__ == "__main__":`` (``sys.exit(cnnlab.study_main(__file__))``):
    ``python NAME.py [OPTIONS]`` is ``cnnlab study run NAME.py [OPTIONS]``, and ``python NAME.py
    check`` is ``cnnlab study check NAME.py``. ``argv`` defaults to ``sys.argv[1:]``; returns
    the command's exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        return main(["study", "check", str(file), *argv[1:]])
    return main(["study", "run", str(file), *argv])


def _say_stores_beside(args: argparse.Namespace, name: str, stores: Any) -> None:
    """One line when this run is to start the study afresh in new stores while the stores
    beside its file hold it (``cnnlab.study.nearby``, a run from another folder): where those
    are, and the command that goes on with them, as pasted from any folder."""
    import shlex

    from cnnlab.study.nearby import stores_beside
    from cnnlab.tracking.stores import cnnlab_command, option_with, shown_uri

    theirs = stores_beside(args.file, name, stores.storage)
    if theirs is None:
        return
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    options = [shlex.quote(str(args.file.resolve()))]
    for flag, value in (("--n-trials", args.n_trials), ("--timeout", args.timeout),
                        ("--workers", args.workers if args.workers > 1 else None),
                        ("--data-dir", Path(data_dir).absolute() if data_dir else None),
                        ("--from-study", args.from_study)):
        if value is not None:
            options.append(option_with(flag, f"{value:g}" if isinstance(value, float)
                                       else str(value)))
    again = cnnlab_command("study run", None, *options, storage=theirs.storage,
                           tracking_uri=theirs.tracking_uri)
    print(f"note: study '{name}' starts afresh in {shown_uri(stores.storage)} (new there), but "
          f"the stores beside its file hold it ({theirs.storage} and {theirs.tracking_uri}); to "
          f"go on with those instead, Ctrl-C this and run: {again}", flush=True)


def _report_again(args: argparse.Namespace) -> None:
    """Write the study's report again (and log it on its run), so that its page shows what
    ``confirm`` or ``evaluate`` just added."""
    from cnnlab.results.report import report_study

    report_study(args.study, args.stores, out=lambda line: print(line, flush=True))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.results.evaluate import evaluate_study

    _check_stores(args, write=True)
    evaluate_study(args.study, trial=args.trial, max_params=args.max_params, within=args.within,
                   complete=args.complete, stores=args.stores, data_dir=args.data_dir,
                   out=lambda line: print(line, flush=True))
    _report_again(args)
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    from cnnlab.results.confirm import confirm_study

    _check_stores(args, write=True)
    if (args.at_least is not None or args.smallest is not None) and not args.front:
        raise ConfigError("--at-least and --smallest choose among the front's trials; give "
                          "--front too.")
    if args.baseline_training != "study" and not args.baseline:
        raise ConfigError("--baseline-training says how the notebook's CNN is trained; give "
                          "--baseline too.")
    confirm_study(args.study, top=None if args.front else args.top, front=args.front,
                  at_least=args.at_least, smallest=args.smallest, seeds=args.seeds,
                  baseline=args.baseline, baseline_training=args.baseline_training,
                  stores=args.stores,
                  data_dir=args.data_dir,
                  out=lambda line: print(line, flush=True))
    _report_again(args)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.results.report import report_study

    _check_stores(args, write=True)
    report_study(args.study, args.stores, path=args.out,
                 out=lambda line: print(line, flush=True))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from cnnlab.results.compare import (
        front,
        gone_notes,
        leaderboard,
        select_columns,
        trials_frame,
    )

    _check_stores(args, write=False)
    notes: list[str] = []
    frame = trials_frame(args.studies or None, storage=args.stores.storage,
                         tracking_uri=args.stores.tracking_uri, notes=notes)
    for note in notes:  # The first seconds of a study: what Optuna has, and why no more.
        print(f"note: {note}", file=sys.stderr)
    if frame.empty:
        print(f"no trials yet in {_studies_named(args.studies)}.")
        return 0
    states = [s for text in args.state or [] for s in text.split(",") if s]
    if args.front:
        if args.sort is not None:
            raise ConfigError("--front lists each study's front smallest first; give --sort "
                              "without --front to sort the whole table.")
        board = leaderboard(front(frame), sort="trial", top=None, states=states)
        board = front(board).head(args.top) if args.top else front(board)
    else:
        ascending = True if args.ascending else False if args.descending else None
        board = leaderboard(frame, sort=args.sort, ascending=ascending, top=args.top,
                            states=states)
    columns = select_columns(board, args.columns)  # Checked before anything is written.
    for note in gone_notes(board):  # Why some rows' MLflow columns are empty.
        print(f"note: {note}", file=sys.stderr)
    if args.csv is not None:
        board.to_csv(args.csv, index=False)
        print(f"wrote {len(board)} row(s) and {len(board.columns)} columns to {args.csv}")
    with pd.option_context("display.width", 200, "display.max_columns", 50,
                           "display.max_colwidth", 48):
        print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _studies_named(studies: list[str] | None) -> str:
    if not studies:
        return "the storage's studies"
    return ", ".join(f"study '{name}'" for name in studies)


def _check_stores(args: argparse.Namespace, *, write: bool,
                  which: tuple[str, ...] = ("storage", "tracking")) -> None:
    """The command's local stores (``which`` of them) whole, of this MLflow's and Optuna's
    schema, and (``write``) writable, before the command does anything
    (``cnnlab.tracking.preflight.check_stores``)."""
    from cnnlab.tracking.preflight import check_stores

    check_stores(args.stores, write=write, which=which)


def _check_port_free(host: str, port: int) -> None:
    """Refuse, in one sentence, a port that another program holds (MLflow's server would exit
    with a log line and leave `cnnlab ui` to report nothing useful)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({err.strerror})."
                          ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise ConfigError(f"cannot serve on {host}:{port}: {err.strerror} (another program "
                              "holds the port? give another with --port).") from None


def cmd_ui(args: argparse.Namespace) -> int:
    from cnnlab.tracking import stores  # URIs only: serving the UI needs no Keras.

    uri = args.stores.tracking_uri
    _check_stores(args, write=False, which=("tracking",))
    command = [sys.executable, "-c", _MLFLOW_SERVER, "server", "--host", args.host,
               "--port", str(args.port), "--workers", "1"]
    if args.allowed_hosts:
        command += ["--allowed-hosts", args.allowed_hosts]
    # The store's URL goes to the server through its environment: a command line is readable
    # by every user of the machine (ps), and the URL may carry a password.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri}
    # MLflow's job runner (a runner and seven Huey consumers, each a Python of about 240 MB)
    # only runs its GenAI jobs (scorers, prompt optimization, evaluation), which a tracking UI
    # of CNN runs never asks for: off, unless the environment turns it on explicitly.
    env.setdefault(_JOB_EXECUTION, "false")
    env.update(_quiet_server_env(env, uri))
    db = stores.sqlite_path(uri)
    if db is not None:
        if not db.exists():
            raise DataError(f"there is no MLflow store at {db} yet (nothing was tracked "
                            "there); name the store to browse with --tracking-uri (or "
                            "$MLFLOW_TRACKING_URI).")
        stores.reroot_moved_store(uri)  # Moved with its folder: its artifacts beside it.
        # New experiments made from the UI keep their artifacts beside the database too.
        command += ["--default-artifact-root", db.parent.resolve().as_uri(),
                    "--no-serve-artifacts"]
    _check_port_free(args.host, args.port)
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI at {base} over {stores.shown_uri(uri)} (Ctrl-C stops it)", flush=True)
    # Each study's pages are printed by the server's process before it becomes uvicorn: it
    # imports MLflow anyway, and this process, which waits for as long as the UI serves, would
    # hold MLflow's client (about 190 MB resident) for nothing.
    env[_PAGES_BASE] = base
    # The server runs in a process group of its own; whatever ends this command ends the whole
    # group, so nothing is left running.
    server = subprocess.Popen(command, start_new_session=True, env=env)
    with signals_as_interrupts():
        try:
            code = server.wait()
            print(f"cnnlab ui: the MLflow server stopped by itself (exit code {code}).",
                  file=sys.stderr)
            return code or 1
        except KeyboardInterrupt as interrupt:
            return exit_code(interrupt)
        finally:
            _stop_group(server)


def cmd_dashboard(args: argparse.Namespace) -> int:
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from optuna_dashboard import wsgi

    from cnnlab.tracking import stores

    _check_stores(args, write=False, which=("storage",))
    url, storage = stores.open_existing_storage(args.stores.storage)
    _check_port_free(args.host, args.port)

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # A line per request: none.
            pass

    class Threaded(socketserver.ThreadingMixIn, WSGIServer):  # As `optuna-dashboard` serves.
        daemon_threads = True

    # In this process (the storage's URL, which may carry a password, stays off the command
    # lines that `ps` shows), with optuna-dashboard's app and the standard library's server, as
    # its own command line runs them.
    server = make_server(args.host, args.port, wsgi(storage), server_class=Threaded,
                         handler_class=Quiet)
    base = f"http://{args.host}:{args.port}"
    print(f"Optuna dashboard at {base} over {stores.shown_uri(url)} (Ctrl-C stops it)", flush=True)
    for study in storage.get_all_studies():
        number = storage.get_study_id_from_name(study.study_name)
        print(f"study '{study.study_name}': {base}/dashboard/studies/{number}", flush=True)
    with signals_as_interrupts():
        try:
            server.serve_forever()
        except KeyboardInterrupt as interrupt:
            return exit_code(interrupt)
        finally:
            server.server_close()
    return 0


def _print_study_pages(uri: str, base: str) -> None:
    """Each study's pages, on the UI's model-training side: its trial runs (in cnnlab's view:
    outcome and key metrics as columns) and its study run."""
    from cnnlab.tracking import ui

    for pages in ui.study_pages(uri, base):
        print(f"study '{pages.study}': its trial runs {pages.runs}\n"
              f"  its study run (report, plots) {pages.study_run}", flush=True)


_JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
_PAGES_BASE = "CNNLAB_UI_PAGES_BASE"
"""The environment variable by which `cnnlab ui` tells its server's process the base URL of the
study pages to print (``_MLFLOW_SERVER``); the process removes it."""

_SERVER_WARNING = "ignore:starlette.middleware.wsgi is deprecated:UserWarning"
"""A warnings filter (``PYTHONWARNINGS``'s form) for the StarletteDeprecationWarning that MLflow's
server raises as it imports Starlette's WSGI middleware: about MLflow's code, nothing a user of
``cnnlab ui`` can act on."""
_SERVER_LOGS = "--no-access-log --log-level warning"
"""uvicorn's options for the server (MLflow's ``--uvicorn-opts``): no line per request, and
uvicorn's start-up and shut-down lines off (``cnnlab ui`` says where it serves); its warnings
and errors still come through."""


def _quiet_server_env(env: dict[str, str], uri: str) -> dict[str, str]:
    """What the MLflow server's environment gets so that it says only what matters: uvicorn's
    options (unless ``MLFLOW_UVICORN_OPTS`` names others), the Starlette warning filtered (after
    any ``PYTHONWARNINGS`` of the user's), and the registry named as the tracking store, where
    cnnlab keeps its registered models (else MLflow prints "Registry store URI not provided.
    Using backend store URI.")."""
    warnings = ",".join(filter(None, (env.get("PYTHONWARNINGS"), _SERVER_WARNING)))
    return {"MLFLOW_UVICORN_OPTS": env.get("MLFLOW_UVICORN_OPTS") or _SERVER_LOGS,
            "PYTHONWARNINGS": warnings, "MLFLOW_REGISTRY_STORE_URI": uri}

# `mlflow server`, except that the process first prints each study's pages (`_print_study_pages`,
# which tags the studies' experiments), checks the options and prepares the store as MLflow
# does, then becomes the uvicorn server itself (exec) instead of starting it as a child and
# waiting for it: one Python fewer (about 250 MB). Only with job execution off (with it on, the
# parent starts the job runner after uvicorn), and only while MLflow starts uvicorn through
# mlflow.server._exec_cmd; otherwise this is plain `mlflow server`.
_MLFLOW_SERVER = f"""\
import os, sys
import mlflow.server
from mlflow.environment_variables import {_JOB_EXECUTION}
from cnnlab.cli import _print_study_pages

_print_study_pages(os.environ["MLFLOW_BACKEND_STORE_URI"], os.environ.pop("{_PAGES_BASE}"))

def _become(cmd, *, extra_env=None, capture_output=True, synchronous=True, **kwargs):
    if not (synchronous or capture_output or kwargs) and isinstance(cmd, list):
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvpe(cmd[0], [str(part) for part in cmd], {{**os.environ, **(extra_env or {{}})}})
        except OSError:
            pass
    return _spawn(cmd, extra_env=extra_env, capture_output=capture_output,
                  synchronous=synchronous, **kwargs)

if not {_JOB_EXECUTION}.get() and hasattr(mlflow.server, "_exec_cmd"):
    _spawn, mlflow.server._exec_cmd = mlflow.server._exec_cmd, _become

from mlflow.cli import cli
cli(prog_name="mlflow")
"""


def _stop_group(proc: subprocess.Popen) -> None:
    for signum, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # The server is gone; its children may not be yet.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (as every other error of cnnlab's), and words a
    command does not take refused by the command itself, with the option meant where one is
    close (``--trials``: did you mean --n-trials?). Python 3.11's argparse has no
    ``suggest_on_error``, and 3.14's suggests subcommands and choices, not options."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and not any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._meant(extras)}")
        return namespace, extras

    def _meant(self, words: list[str]) -> str:
        """``; did you mean --n-trials?`` for the first option-like word close to one of this
        command's options (``difflib``), else ""."""
        import difflib

        options = [option for action in self._actions if action.help != argparse.SUPPRESS
                   for option in action.option_strings if option.startswith("--")]
        for word in words:
            if word.startswith("-") and not self._negative_number_matcher.match(word):
                close = difflib.get_close_matches(word.split("=", 1)[0], options, n=1,
                                                  cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = message.replace("\n", "\\n")  # An argument may hold a newline.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnlab",
        description="Hyperparameter experiments on convolutional networks for MNIST, tracked "
                    "in MLflow.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _shapes_parser(sub)
    _train_parser(sub)
    _study_parsers(sub)
    _evaluate_parser(sub)
    _confirm_parser(sub)
    _compare_parser(sub)
    _report_parser(sub)
    _ui_parser(sub)
    _dashboard_parser(sub)
    return parser


def _version() -> str:
    """cnnlab's installed version, as its package metadata says (``unknown`` when it runs from
    a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cnnlab")
    except PackageNotFoundError:
        return "unknown"


def _shapes_parser(sub: argparse._SubParsersAction) -> None:
    shapes = sub.add_parser("shapes", help="per-layer output shapes, parameters and MACs",
                            description="Print the per-layer table (output shape, parameters, "
                                        "multiply-adds) of an architecture, as model.summary() "
                                        "would, without building it.")
    shapes.add_argument("name", nargs="?", metavar="NAME",
                        help="the architecture by the name runs and cnnlab compare give it, "
                             "e.g. 32k3s1same-32k3s2valid-64k3s1same-64k3s2valid-d128 "
                             "(instead of --conv and --dense)")
    _add_architecture_args(shapes)
    shapes.add_argument("--input", type=_input_shape, metavar="H,W,C",
                        help="input shape (default 28,28,1)")
    shapes.set_defaults(func=cmd_shapes)


def _refuse_ignored(training: Any) -> None:
    """A recipe option that the rest of the command line makes useless is an error."""
    ignored = training.ignored()
    if ignored:
        field, values = USED_WITH[ignored[0]]
        raise ConfigError(f"--{ignored[0].replace('_', '-')} has no effect without --{field} "
                          f"{values}.")


def _recipe_args(train: argparse.ArgumentParser) -> None:
    """``cnnlab train``'s training-recipe options (``TrainConfig``'s fields; issue 24)."""
    recipe = train.add_argument_group("training recipe (default: none of it, as the notebook)")
    recipe.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule "
                        "(default constant; cosine with --warmup is the one-cycle form)")
    recipe.add_argument("--decay-rate", type=_positive_float, metavar="FACTOR",
                        help="step/exponential: multiply the rate by FACTOR (default 0.1) ...")
    recipe.add_argument("--decay-epochs", type=_positive_float, metavar="EPOCHS",
                        help="... every EPOCHS epochs (default 5)")
    recipe.add_argument("--warmup", type=_rate, metavar="FRACTION",
                        help="cosine: linear warm-up from 0 over this fraction of the steps")
    recipe.add_argument("--weight-decay", type=_non_negative_float, metavar="WD",
                        help="decoupled weight decay (default: the optimizer's; adamw 0.004)")
    recipe.add_argument("--momentum", type=_rate, help="sgd or rmsprop: momentum (default 0)")
    recipe.add_argument("--nesterov", action="store_true", default=None,
                        help="sgd: Nesterov momentum")
    recipe.add_argument("--label-smoothing", type=_rate, metavar="EPSILON",
                        help="label smoothing of the targets (default 0)")
    recipe.add_argument("--rotation", type=_non_negative_float, metavar="DEGREES",
                        help="augment: rotate training images by up to DEGREES either way")
    recipe.add_argument("--translation", type=_rate, metavar="FRACTION",
                        help="augment: shift training images by up to FRACTION of a side")
    recipe.add_argument("--zoom", type=_rate, metavar="FRACTION",
                        help="augment: zoom training images in or out by up to FRACTION")
    recipe.add_argument("--bn-momentum", type=_rate, metavar="MOMENTUM",
                        help="batch normalization's moving-statistics momentum (default 0.99, "
                        "Keras's; 0.9 for trainings of a few hundred steps)")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train one architecture and record it in MLflow",
                           description="Train one CNN on MNIST's training split (50,000 images), "
                                       "validating on the first 10,000 training images every "
                                       "epoch, and record the run in MLflow.")
    _add_architecture_args(train)
    train.add_argument("--epochs", type=_positive, default=defaults.EPOCHS,
                       help=f"default {defaults.EPOCHS}")
    train.add_argument("--batch-size", type=_positive, default=defaults.BATCH_SIZE,
                       help=f"default {defaults.BATCH_SIZE}")
    train.add_argument("--seed", type=_non_negative, default=0, help="default 0")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.OPTIMIZER,
                       metavar="NAME", help=f"a Keras optimizer (default {defaults.OPTIMIZER}; "
                                            f"{', '.join(OPTIMIZERS)})")
    train.add_argument("--learning-rate", type=_positive_float, metavar="RATE",
                       help="the optimizer's learning rate (default: Keras's for it)")
    _recipe_args(train)
    train.add_argument("--train-size", type=_positive, metavar="N",
                       help="train on the first N training images only (quick runs)")
    train.add_argument("--val-size", type=_positive, metavar="N",
                       help="validate on the first N validation images only (quick runs)")
    train.add_argument("--data-dir", metavar="DIR",
                       help=f"MNIST folder (IDX files or mnist.npz); default ${DATA_DIR_ENV}, "
                            "else Keras's download")
    train.add_argument("--experiment", default="cnnlab-train",
                       help="MLflow experiment name (default cnnlab-train)")
    train.add_argument("--run-name", help="MLflow run name (default: the architecture)")
    _add_tracking_arg(train)
    train.set_defaults(func=cmd_train)


def _study_parsers(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="Optuna studies over the CNN's architecture",
                           description="Optuna studies declared in study files "
                                       "(experiments/*.toml) or study scripts "
                                       "(experiments/*.py).")
    study_sub = study.add_subparsers(dest="study_command", required=True, metavar="COMMAND")
    _study_run_parser(study_sub)
    _study_check_parser(study_sub)


def _study_run_parser(study_sub: argparse._SubParsersAction) -> None:
    run = study_sub.add_parser(
        "run", help="create or resume a study and run it to its total number of trials",
        description="Create the study in the Optuna storage, or resume it, and run trials until "
                    "the study's total is reached; every trial is an MLflow run nested under "
                    "the study's run.")
    run.add_argument("file", type=Path,
                     help="the study file, e.g. experiments/quickstart.toml, or a study script, "
                          "e.g. experiments/quickstart.py")
    run.add_argument("--n-trials", type=_positive, metavar="N",
                     help="a new total number of trials for the study (default: the file's)")
    run.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                     help="stop starting trials after this long (default: the file's)")
    _add_storage_arg(run)
    _add_tracking_arg(run)
    _add_data_dir_arg(run)
    run.add_argument("--workers", type=_positive, default=1, metavar="N",
                     help="run N worker processes on this study at once, sharing its budget "
                          "(default 1)")
    run.add_argument("--from-study", metavar="NAME",
                     help="start this new study from the finished trials of study NAME (same "
                          "storage, same search): the honest way on from an evaluated study")
    run.add_argument("--share", type=_non_negative, help=argparse.SUPPRESS)
    run.add_argument("--worker-name", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_study_run)


def _study_check_parser(study_sub: argparse._SubParsersAction) -> None:
    check = study_sub.add_parser(
        "check", help="check a study file and estimate its space; writes nothing",
        description="Read and check a study file as `study run` does (every key, the sampler "
                    "and pruner run in memory, the trainable fraction of the space), and say "
                    "what it would run. Touches no store and reads no data.")
    check.add_argument("file", type=Path, help="the study file (.toml) or study script (.py)")
    check.set_defaults(func=cmd_study_check)


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="evaluate a study's best model on the test set, once",
        description="Evaluate the study's chosen model (the best of its confirmed ranking when "
                    "cnnlab confirm has ranked it, else its best trial by validation score) "
                    "on the 10,000 MNIST test images, record the result in MLflow and register "
                    "the model. Once per study: a second evaluation is refused.")
    evaluate.add_argument("study", help="the study's name")
    evaluate.add_argument("--trial", type=_non_negative, metavar="N",
                          help="evaluate trial N instead of the best (needed for a "
                               "multi-objective study, or --max-params)")
    evaluate.add_argument("--max-params", type=_positive, metavar="N",
                          help="evaluate the most accurate trial with at most N parameters")
    evaluate.add_argument("--within", type=_non_negative_float, metavar="X",
                          help="evaluate the smallest trial whose validation score is within X "
                               "of the best (e.g. 0.002), by the study's size objective or "
                               "parameters")
    evaluate.add_argument("--complete", action="store_true",
                          help="finish an evaluation that crashed after its claim, on the "
                               "claimed model")
    _add_storage_arg(evaluate)
    _add_tracking_arg(evaluate)
    _add_data_dir_arg(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)


def _confirm_parser(sub: argparse._SubParsersAction) -> None:
    confirm = sub.add_parser(
        "confirm", help="re-train a study's leading trials with more seeds and rank them",
        description="Re-train the study's top K trials (or the trials on its front of score "
                    "against size) with S further seeds, the same seeds for each, as runs "
                    "nested under the study's MLflow run; rank them by their mean validation "
                    "score with its 95% interval, report ties, and keep the ranking for "
                    "cnnlab evaluate.")
    confirm.add_argument("study", help="the study's name")
    which = confirm.add_mutually_exclusive_group()
    which.add_argument("--top", type=_positive, default=3, metavar="K",
                       help="confirm the K best trials (default 3)")
    which.add_argument("--front", action="store_true",
                       help="confirm the trials on the front of score against size")
    confirm.add_argument("--at-least", type=float, metavar="SCORE",
                         help="with --front: only its trials that scored at least SCORE")
    confirm.add_argument("--smallest", type=_positive, metavar="K",
                         help="with --front: only the K smallest of them (the candidates for "
                              "the smallest network as good as SCORE)")
    confirm.add_argument("--seeds", type=_int_at_least(2, 100), default=3, metavar="S",
                         help="seeds per trial (default 3)")
    confirm.add_argument("--baseline", action="store_true",
                         help="also train the notebook's CNN over the same seeds")
    confirm.add_argument("--baseline-training", choices=BASELINE_TRAININGS, default="study",
                         help="with --baseline: train it with the study's training settings "
                              "(study, the default) or as the notebook trains it (notebook: "
                              "rmsprop, batch 256, 10 epochs), like [confirm] baseline_training")
    _add_storage_arg(confirm)
    _add_tracking_arg(confirm)
    _add_data_dir_arg(confirm)
    confirm.set_defaults(func=cmd_confirm)


def _compare_parser(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser(
        "compare", help="a leaderboard of trials across studies",
        description="One row per trial, joining Optuna's record with MLflow's; printed as a "
                    "leaderboard, optionally written to CSV (all columns).")
    compare.add_argument("studies", nargs="*", metavar="STUDY",
                         help="study names (default: every study in the storage)")
    compare.add_argument("--sort", metavar="COLUMN",
                         help="sort by this column, or a name the trial lines print "
                              "(val_accuracy, params) (default: the ranking, complete trials "
                              "best first in their study's direction, then pruned ones)")
    order = compare.add_mutually_exclusive_group()
    order.add_argument("--ascending", action="store_true", help="sort smallest first")
    order.add_argument("--descending", action="store_true",
                       help="sort biggest first, e.g. --sort n_params --descending")
    compare.add_argument("--top", type=_positive, metavar="N",
                         help="keep the first N rows (of each study, when studies of "
                              "different metrics are ranked one after another)")
    compare.add_argument("--state", action="append", metavar="STATES",
                         help="keep these states, e.g. complete or complete,pruned "
                              "(infeasible: draws never built)")
    compare.add_argument("--front", action="store_true",
                         help="only the trials on each study's front of validation score "
                              "against size (n_params, or the study's size objective), "
                              "smallest first")
    compare.add_argument("--columns", metavar="A,B,...",
                         help="columns to print, e.g. trial,value,conv*_filters (a glob stands "
                              "for every column it matches; --csv FILE lists them all)")
    compare.add_argument("--csv", type=Path, metavar="FILE",
                         help="also write the rows, all columns, to FILE")
    _add_storage_arg(compare)
    _add_tracking_arg(compare)
    compare.set_defaults(func=cmd_compare)


def _report_parser(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="a study's answer as one HTML page, logged on its MLflow run",
        description="Write the study's report: for a designed experiment, per knob, parameters "
                    "against validation accuracy with 95% intervals over seeds, the curves of "
                    "each setting and a table with the difference to the base; for a search, "
                    "the leaderboard, the front, the leaders' curves and knob effects. One "
                    "self-contained HTML file, also logged on the study's MLflow run as "
                    "report.html.")
    report.add_argument("study", help="the study's name")
    report.add_argument("--out", type=Path, metavar="FILE",
                        help="where to write it (default mlruns/reports/STUDY.html)")
    _add_storage_arg(report)
    _add_tracking_arg(report)
    report.set_defaults(func=cmd_report)


def _ui_parser(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="serve the MLflow UI over the local store",
                        description="Serve the MLflow UI over cnnlab's tracking store.")
    ui.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    ui.add_argument("--port", type=_port, default=5000, help="default 5000")
    ui.add_argument("--allowed-hosts", metavar="HOSTS",
                    help="Host headers the server answers besides localhost and private IP "
                         "addresses, comma-separated, '*' patterns allowed (MLflow's "
                         "--allowed-hosts); e.g. 'trackinghost,trackinghost:*' for workers "
                         "that reach it by that name")
    _add_tracking_arg(ui)
    ui.set_defaults(func=cmd_ui)


def _dashboard_parser(sub: argparse._SubParsersAction) -> None:
    dashboard = sub.add_parser(
        "dashboard", help="serve optuna-dashboard over the Optuna storage",
        description="Serve optuna-dashboard (Optuna's own UI: history, importances, "
                    "parallel coordinates, each trial) over cnnlab's Optuna storage.")
    dashboard.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    dashboard.add_argument("--port", type=_port, default=8080, help="default 8080")
    _add_storage_arg(dashboard)
    dashboard.set_defaults(func=cmd_dashboard)


def _add_storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage (default $CNNLAB_STORAGE, else "
                             "sqlite:///mlruns/optuna.db)")


def _add_tracking_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking store (default $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlruns/mlflow.db)")


def _add_data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR",
                        help=f"MNIST folder; default ${DATA_DIR_ENV}, else Keras's download")


def main(argv: list[str] | None = None) -> int:
    _replace_what_the_console_cannot_encode()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow draws a progress bar for every artifact it reads; one line per command is enough.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from cnnlab.errors import EvaluationRefusedError
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument already said in one line.
        return done.code if isinstance(done.code, int) else 2
    command = " ".join(filter(None, [args.command, getattr(args, "study_command", None)]))
    if hasattr(args, "storage") or hasattr(args, "tracking_uri"):
        from cnnlab.tracking.stores import Stores

        # The command's stores, resolved once (options, else variables, else mlruns/ here).
        args.stores = Stores.resolve(getattr(args, "storage", None),
                                     getattr(args, "tracking_uri", None))
    try:
        return args.func(args)
    except EvaluationRefusedError as err:
        print(f"cnnlab {args.command}: refused: {_one_line(str(err))}", file=sys.stderr)
        return 1
    except CnnlabError as err:
        print(f"cnnlab {command}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # The reader left (`cnnlab compare | head`): nothing to say.
        _quiet_stdout()
        return 1
    except OSError as err:  # A path given on the command line, or a store, that cannot be used.
        fault = _store_fault(err, args)
        if fault is not None:
            print(f"cnnlab {command}: error: {_one_line(fault)}", file=sys.stderr)
            return 2
        where = f" {err.filename}" if err.filename else ""
        print(f"cnnlab {command}: error: {_one_line(f'{err.strerror or err}:{where}')}",
              file=sys.stderr)
        return 2
    except Exception as err:  # A store that failed under the command (a disk that filled up).
        fault = _store_fault(err, args)
        if fault is None:
            raise
        print(f"cnnlab {command}: error: {_one_line(fault)}", file=sys.stderr)
        return 2


def _store_fault(err: BaseException, args: argparse.Namespace) -> str | None:
    """The sentence for an error that a local store's file system or SQLite raised while the
    command ran (``cnnlab.tracking.preflight.store_fault``), else None."""
    if not hasattr(args, "stores"):
        return None
    from cnnlab.tracking.preflight import store_fault

    return store_fault(err, args.stores)


def _replace_what_the_console_cannot_encode() -> None:
    """Standard output and error write what their encoding cannot (a study named "größe-Ω" on
    an ASCII or cp1252 console: ``PYTHONIOENCODING``, a Windows terminal) as backslash escapes
    instead of raising ``UnicodeEncodeError`` in the middle of a command; stderr does so by
    default, stdout ("strict") does not."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # Not a text file: left as it is.
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (OSError, ValueError):  # Closed, or a stream that cannot be changed now.
                pass


def _quiet_stdout() -> None:
    """Standard output onto /dev/null, so that Python's flush at exit does not fail on the
    closed pipe again (the recipe of Python's documentation, "Note on SIGPIPE")."""
    try:
        fileno = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # Not a file: nothing left to flush there.
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


if __name__ == "__main__":
    sys.exit(main())
