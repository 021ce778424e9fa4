"""Studies as pandas DataFrames: one row per trial, Optuna's view joined with MLflow's.

``trials_frame()`` is the public entry point; ``cnnlab compare`` prints it as a leaderboard.
The functions below take its frame and answer the usual questions with pandas alone:
``leaderboard`` and ``front``; ``curves`` (one row per trial and epoch); ``at_epoch`` (every
finished trial's score after the same number of epochs, pruned trials included);
``per_layer`` (one row per trial and conv layer); ``network_knobs`` (each trial's knobs as a
whole network: all-same/all-valid/mixed padding, kernels, stride-2 layers, filters scale);
``knob_effects`` (each value of a knob, network by network: the mean equal-epoch score with its
95% interval, kept inside [0, 1]); ``anytime`` (the best score so far against the study's wall
time). Infeasible draws (never built) have the state INFEASIBLE and are compared nowhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cnnlab.errors import ConfigError
from cnnlab.names import (
    ARCHITECTURE_ATTR,
    DUPLICATE_OF_ATTR,
    FAIL_REASON_ATTR,
    FIDELITY_ATTR,
    KIND_TAG,
    KIND_TRIAL,
    MACS_ATTR,
    N_PARAMS_ATTR,
    REASON_ATTR,
    RUN_ID_ATTR,
    SEED_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.spec import knobs as K
from cnnlab.spec.trialspec import RECIPE_FIELDS
from cnnlab.tracking import runs as tracking
from cnnlab.tracking.stores import load_existing_study, redact, resolve_tracking_uri, sqlite_path

CURVES = ("val_accuracy", "val_loss", "accuracy", "loss")
EPOCH_CURVES = CURVES[:2]
"""The curves ``trials_frame`` keeps epoch by epoch (``val_accuracy_epoch1`` ...)."""
_EPOCH_COLUMN = re.compile(r"^(?P<metric>.+)_epoch(?P<epoch>[0-9]+)$")
_LAYER_COLUMN = re.compile(r"^(?P<kind>conv|dense)(?P<layer>[0-9]+)_(?P<field>.+)$")
FINISHED = ("COMPLETE", "PRUNED")
"""The states of the trials compared at equal epochs: those that ended for a verdict on their
score (a failed trial diverged or was lost; a running one has not ended)."""
SPEC_PREFIXES = ("conv", "dense", "n_conv", "n_dense")
"""MLflow parameters of the spec's layers (``conv2_strides``, ``dense1_units`` ...)."""
SPEC_COLUMNS = ("head", "dropout", "optimizer", "learning_rate", "batch_size", *RECIPE_FIELDS,
                "receptive_field", "effective_stride", "final_feature_map")
"""The spec's other parameters (the training recipe's too), and what the shape arithmetic
derives from it."""
LEADERBOARD = ["study", "trial", "state", "fidelity", "value", "n_params", "architecture",
               "best_val_accuracy", "epochs_run", "duration_s"]


def study_names(storage: str | None = None) -> list[str]:
    """Every study in the Optuna storage."""
    import optuna

    from cnnlab.tracking.stores import open_existing_storage

    _, opened = open_existing_storage(storage)
    return sorted(optuna.study.get_all_study_names(storage=opened))


def trials_frame(studies: str | list[str] | None = None, *, storage: str | None = None,
                 tracking_uri: str | None = None, curves: bool = True,
                 epoch_curves: Sequence[str] = EPOCH_CURVES,
                 notes: list[str] | None = None) -> pd.DataFrame:
    """One row per trial of ``studies`` (default: every study in the storage).

    Columns, Optuna's: ``study``, ``trial``, ``state`` (COMPLETE, PRUNED, FAIL, RUNNING,
    WAITING as Optuna says, but INFEASIBLE for a draw that was never built: Optuna keeps those
    as PRUNED, which ``optuna_state`` says), ``metric`` and ``value`` (the
    objective: the last epoch's validation score; for a pruned trial the last one reported),
    ``direction`` (the study's direction for it: ``maximize`` or ``minimize``),
    ``confirm_mean``, ``confirm_std``, ``confirm_n``, ``confirm_ci_low``/``_high``,
    ``confirm_rank`` and ``confirm_tied`` for trials ranked over seeds by ``cnnlab confirm``,
    ``on_front`` (on the study's front of score against size; ``front_size`` says which
    size: the second objective, else ``n_params``; see ``front``),
    ``duration_s``, ``started``, ``finished``, ``pruned_at_epoch`` (the epochs it ran),
    in a study with rungs ``fidelity`` (``2/3 (3 ep x 50,000)``: the rung it trained in last,
    of how many, its epochs and images) and ``rung`` (that rung, from 1; a trial stopped at
    a lower rung is PRUNED, its ``value`` the last it reached: it ranks after every complete
    trial, and after the pruned trials of higher rungs),
    ``fail_reason``, the sampled and derived architecture (``architecture``, ``n_params``,
    ``macs``, ``n_conv``, ``conv1_filters`` ...); MLflow's: ``run_id``, ``epochs_run``,
    ``final_*`` and ``best_*`` of each curve (``val_accuracy``, ``val_loss``, ``accuracy``,
    ``loss``), every epoch's ``val_accuracy`` and ``val_loss`` (``val_accuracy_epoch1`` after
    the first epoch, ``val_accuracy_epoch2`` ...: MLflow's step, the epoch's number; empty past
    the epochs a trial ran), ``test_accuracy`` where the study was evaluated, ``artifact_uri``,
    ``mlflow_status``; they are empty where a trial's run is gone, and ``run_gone`` says how it
    went (``deleted``, ``experiment deleted``, ``removed``: ``cnnlab.tracking.runs.GONE``;
    ``gone_notes`` says it in words).
    ``curves=False`` skips the per-epoch histories (faster; no ``best_*``/``epochs_run`` and
    no per-epoch columns, so no ``curves``/``at_epoch``/``knob_effects``). ``epoch_curves``
    names the curves kept epoch by epoch (``CURVES`` adds the training ``accuracy`` and
    ``loss``: ``accuracy_epoch1`` ...).

    An MLflow store that cannot be read now (none yet, one that a study is creating or holds
    locked: the first seconds of a study; ``mlflow_unreadable``) gives Optuna's columns alone
    and a sentence saying why in ``notes``, when ``notes`` is given; else it is a
    ``ConfigError`` with that sentence.
    """

    if isinstance(studies, str):
        studies = [studies]
    names = list(studies) if studies else study_names(storage)
    if not names:
        raise ConfigError("there are no studies in the Optuna storage yet.")
    loaded = [load_existing_study(name, storage) for name in names]
    unreadable = mlflow_unreadable(tracking_uri)
    if unreadable is None:
        import requests
        import sqlalchemy.exc
        from mlflow.exceptions import MlflowException

        try:
            tracking.use_tracking_store(tracking_uri, create=False)
            frames = [_one_study(study, curves, epoch_curves) for study in loaded]
        except (MlflowException, sqlalchemy.exc.OperationalError,
                requests.exceptions.RequestException) as err:  # Locked, upgraded, unanswered.
            where = redact(resolve_tracking_uri(tracking_uri))
            unreadable = (f"the MLflow tracking server {where} does not answer "
                          f"({tracking.server_cause(err)})" if tracking.server_gone(err) else
                          f"the MLflow store {where} cannot be read now ({_first_line(err)})")
    if unreadable is not None:
        if notes is None:
            raise ConfigError(f"{unreadable}; run again once the study has created it, or "
                              "name the store with --tracking-uri.")
        notes.append(f"{unreadable}; MLflow's columns are left out.")
        frames = [_one_study(study, curves, epoch_curves, mlflow=False) for study in loaded]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return _tidy(frame)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return redact(text.splitlines()[0]) if text else type(err).__name__


def mlflow_unreadable(uri: str | None = None) -> str | None:
    """Why the MLflow store ``uri`` (default: as resolved) cannot be read now, in a clause, or
    None. A local SQLite store is looked at first (``preflight.inspect``, which only reads):
    one that a study is creating at this instant (its tables, or MLflow's upgrade of them, not
    all there yet) would be initialized by MLflow's reader too, beside the study's own
    creation, and a store that a study holds locked longer than a 5 s wait cannot be read.
    Raises ``StoreError`` for a damaged store or one of another MLflow."""
    from cnnlab.tracking import preflight

    db = sqlite_path(resolve_tracking_uri(uri))
    if db is None:
        return None
    db = db.resolve()  # Said where it is, wherever compare runs.
    try:
        state = preflight.inspect(db, preflight.TRACKING, quick=True, wait=5)
    except preflight.StoreLocked:
        return f"the MLflow store {db} cannot be read now (database is locked)"
    if state == "absent":
        return f"there is no MLflow store at {db} yet"
    if state == "blank":
        return (f"the MLflow store {db} is being created (its tables are not all there yet), "
                "or was made by another MLflow version")
    return None


def _one_study(study: Any, curves: bool,
               epoch_curves: Sequence[str] = EPOCH_CURVES, *, mlflow: bool = True
               ) -> pd.DataFrame:
    from mlflow.tracking import MlflowClient

    client = MlflowClient() if mlflow else None
    runs = _trial_runs(client, study.study_name) if mlflow else {}
    gone: dict[str, str] = {}
    if mlflow:
        # A copied trial's run lives in another study's experiment; a deleted or removed one is
        # gone.
        runs, gone = tracking.find_runs(
            client, (t.user_attrs.get(RUN_ID_ATTR) for t in study.get_trials(deepcopy=False)),
            runs)
    metric = (study.metric_names or ["value"])[0]
    size_attr = T.size_attr(study)
    on_front = {t.number for t in T.front(study, size_attr)}
    confirmed = _confirmed(study)
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        steps = sorted(trial.intermediate_values)
        row: dict[str, Any] = {
            "study": study.study_name,
            "trial": trial.number,
            "state": T.state(trial),
            "optuna_state": trial.state.name,
            "metric": metric,
            "direction": study.directions[0].name.lower(),
            "value": trial.values[0] if trial.values else None,
            "n_params": attrs.get(N_PARAMS_ATTR),
            "macs": attrs.get(MACS_ATTR),
            "architecture": attrs.get(ARCHITECTURE_ATTR),
            "on_front": trial.number in on_front,
            "front_size": size_attr,
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
            "started": trial.datetime_start,
            "finished": trial.datetime_complete,
            "pruned_at_epoch": len(steps) if trial.state.name == "PRUNED" and steps else None,
            "fail_reason": attrs.get(FAIL_REASON_ATTR),
            "outcome": T.outcome(trial),
            "reason": attrs.get(REASON_ATTR, attrs.get(FAIL_REASON_ATTR)),
            "duplicate_of": attrs.get(DUPLICATE_OF_ATTR),
            "seed": attrs.get(SEED_ATTR),
            **trial.params,
        }
        row.update(_fidelity_columns(trial))
        row.update(confirmed.get(trial.number, {}))
        run_id = attrs.get(RUN_ID_ATTR)
        run = runs.get(run_id)
        row["run_id"] = run_id
        # MLflow's columns are there (empty) for a trial whose run is gone; ``run_gone`` says
        # how it went (``gone_notes``).
        row.update({"run_gone": gone.get(run_id), "artifact_uri": None, "mlflow_status": None,
                    **{f"final_{key}": None for key in CURVES}, "test_accuracy": None})
        if curves:
            row.update({f"best_{key}": None for key in EPOCH_CURVES}, epochs_run=None)
        if run is not None:
            row["artifact_uri"] = run.info.artifact_uri
            row["mlflow_status"] = run.info.status
            for key in CURVES:
                row[f"final_{key}"] = run.data.metrics.get(key)
            row["test_accuracy"] = run.data.metrics.get("test_accuracy")
            if curves:
                for key in dict.fromkeys([*EPOCH_CURVES, *epoch_curves]):
                    metrics = client.get_metric_history(run_id, key)
                    history = [m.value for m in metrics]
                    if history:
                        row[f"best_{key}"] = max(history) if "accuracy" in key else min(history)
                    if key == "val_accuracy":
                        row["epochs_run"] = len(history)
                    for epoch, value in _by_step(metrics).items():
                        row[epoch_column(key, epoch)] = value
            # Fixed (unsampled) choices are not Optuna params; MLflow has the whole spec.
            for key, value in run.data.params.items():
                if (key.startswith(SPEC_PREFIXES) or key in SPEC_COLUMNS) and key not in row \
                        and not key.endswith("_params"):
                    row[key] = _number(value)
        rows.append(row)
    return pd.DataFrame(rows)


def _confirmed(study: Any) -> dict[int, dict[str, Any]]:
    """Per confirmed trial (``cnnlab confirm``): mean, standard deviation and interval of its
    validation score over the new seeds, their number, its rank and whether it is tied with
    the best."""
    from cnnlab.results.confirm import load_record, ranking_of
    from cnnlab.spec.ranking import summarize

    record = load_record(study)
    ranking = ranking_of(record, maximize=T.maximizes(study)) if record else None
    if ranking is None:
        return {}
    columns = {}
    for summary in ranking.entries:
        values = record["entries"][str(summary.key)]["values"]
        s = summarize(summary.key, values)
        columns[int(summary.key)] = {
            "confirm_mean": s.mean, "confirm_std": s.std, "confirm_n": s.n,
            "confirm_ci_low": s.ci_low, "confirm_ci_high": s.ci_high,
            "confirm_rank": ranking.rank(summary.key),
            "confirm_tied": summary.key in ranking.tied_with_best}
    return columns


def _trial_runs(client: Any, study_name: str,
                page_size: int = tracking.PAGE_SIZE) -> dict[str, Any]:
    """The trial runs of the study's experiment by run id: every one, page after page."""
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        return {}
    runs = tracking.search_all_runs(client, [experiment.experiment_id],
                                    f"tags.`{KIND_TAG}` = '{KIND_TRIAL}'", page_size=page_size)
    return {run.info.run_id: run for run in runs}


def _by_step(metrics: Sequence[Any]) -> dict[int, float]:
    """A per-epoch metric's history as one value per epoch, counted from 1 (the last logged, if
    a step was logged twice). The step is the epoch's number; a history with a step 0 was
    recorded before cnnlab counted epochs from 1 (the first epoch at step 0), and is shifted."""
    values: dict[int, float] = {}
    for m in sorted(metrics, key=lambda m: (m.step, m.timestamp)):
        values[int(m.step)] = m.value
    if 0 in values:
        values = {step + 1: value for step, value in values.items()}
    return values


def _number(text: str) -> Any:
    """A parameter as MLflow keeps it (text) back to its value: int, float, bool or text."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fidelity_columns(trial: Any) -> dict[str, Any]:
    """A trial of a study with rungs: ``fidelity`` (``2/3 (3 ep x 50,000)``) and ``rung``, empty
    for one not trained through them; nothing for a study without rungs."""
    found = trial.user_attrs.get(FIDELITY_ATTR)
    if not isinstance(found, dict):
        return {}
    shown = T.fidelity_short(trial) or None
    return {"fidelity": shown, "rung": found["rung"] if shown else None}


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Readable column order and dtypes that suit the values (nullable integers, categories)."""
    if frame.empty:
        return frame
    first = ["study", "trial", "state", "metric", "value", "n_params", "macs", "architecture"]
    arch = sorted(c for c in frame.columns
                  if c.startswith(SPEC_PREFIXES) or c in SPEC_COLUMNS)
    epochs = [c for metric in CURVES for c in _epoch_columns(frame, metric).values()]
    rest = [c for c in frame.columns if c not in first and c not in arch and c not in epochs]
    frame = frame[[c for c in first if c in frame.columns] + arch + rest + epochs]
    for column in epochs:
        frame[column] = frame[column].astype("float64")
    for column in ("trial", "n_params", "macs", "pruned_at_epoch", "epochs_run", "seed", "rung",
                   "duplicate_of", "confirm_n", "confirm_rank"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    for column in arch:
        values = frame[column].dropna()
        if values.map(lambda v: isinstance(v, str)).any():
            frame[column] = frame[column].astype("category")
        elif values.map(lambda v: isinstance(v, bool)).all() and len(values):
            frame[column] = frame[column].astype("boolean")
        elif column in ("dropout", "learning_rate") or values.map(
                lambda v: isinstance(v, float) and not float(v).is_integer()).any():
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype("Int64")
    for column in ("on_front", "confirm_tied"):
        if column in frame:
            frame[column] = frame[column].astype("boolean")
    for column in ("study", "state", "optuna_state", "metric", "outcome", "front_size"):
        frame[column] = frame[column].astype("category")
    for column in ("architecture", "fail_reason", "reason", "run_id", "run_gone",
                   "artifact_uri", "mlflow_status"):
        if column in frame:
            frame[column] = frame[column].astype("string")
    for column in frame.columns:
        if column in SPEC_COLUMNS:
            continue
        if column.startswith(("final_", "best_", "confirm_")) and column not in (
                "confirm_n", "confirm_rank", "confirm_tied") or column in (
                "value", "duration_s", "test_accuracy"):
            frame[column] = frame[column].astype("float64")
    for column in ("started", "finished"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column])
    return frame


def gone_notes(frame: pd.DataFrame) -> list[str]:
    """Why the MLflow columns of some rows are empty: per study, the trials whose runs are
    gone (``run_gone``: deleted, in a deleted experiment, or removed for good), in words."""
    if "run_gone" not in frame or frame.empty:
        return []
    notes = []
    gone = frame[frame["run_gone"].notna()]
    for study, rows in gone.groupby("study", observed=True, sort=False):
        by_trial = dict(zip(rows["trial"], rows["run_gone"], strict=True))
        notes.append(f"study '{study}': {tracking.gone_in_words(by_trial)}; their MLflow "
                     "columns (mlflow_status, the curves, test_accuracy ...) are empty.")
    return notes


def front(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials on their study's front of validation score against size (``on_front``),
    smallest first within each study: none is beaten on both score and size by another
    complete trial of its study. The size is the study's second objective (``front_size``:
    ``n_params`` or ``macs``), or the parameter count for a one-objective study."""
    rows = frame[frame["on_front"].fillna(False).astype(bool)]
    if rows.empty:
        return rows
    size = rows.apply(lambda r: r[str(r["front_size"])], axis=1).astype("float64")
    order = rows.assign(_size=size).sort_values(["study", "_size"], kind="stable")
    return order.drop(columns="_size")


def leaderboard(frame: pd.DataFrame, *, sort: str | None = None, ascending: bool | None = None,
                top: int | None = None, states: list[str] | None = None) -> pd.DataFrame:
    """Filter by state (``state``: INFEASIBLE for draws never built), sort, keep the top N.
    Duplicates are left out: the trial that judged their configuration is the configuration's
    row.

    By default (``sort`` None or ``value`` without ``ascending``) the rows are in the order of
    the project's one ranking rule (``cnnlab.spec.ranking.trial_rank_key``): complete trials by
    value in their study's direction (``direction``), then pruned ones, then the rest; the first
    row is the trial ``cnnlab evaluate`` chooses and the study's "best:" line names. Studies
    that share a metric and direction are ranked together; otherwise each study is ranked by its
    own direction, one study after another in the frame's order, and ``top`` keeps the first N
    of each. Another ``sort`` column sorts plainly (``ascending``: True smallest first, False
    biggest first; by default smallest first for sizes, times, trial numbers and losses).
    ``sort`` is a column, or a name the trial lines print (``sort_column``).

    Raises ``ConfigError`` for a ``sort`` that names no column, with the closest names."""
    if "outcome" in frame:
        frame = frame[frame["outcome"].astype(str) != "duplicate"]
    if states:
        wanted = {s.upper() for s in states}
        unknown = wanted - {"COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", T.INFEASIBLE}
        if unknown:
            raise ConfigError(f"--state {sorted(unknown)[0]!r} is not a trial state (complete, "
                              "pruned, fail, running, waiting, infeasible).")
        frame = frame[frame["state"].astype(str).isin(wanted)]
    sort = sort or "value"
    if _is_pattern(sort):
        raise ConfigError(f"--sort {sort!r} is a pattern; --sort takes one column, e.g. "
                          "n_params.")
    sort = sort_column(frame, sort)
    if sort == "value" and ascending is None:
        return _ranked(frame, top)
    if ascending is None:
        ascending = sort in ("n_params", "macs", "duration_s", "trial") or "loss" in sort
    frame = frame.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    return frame.head(top) if top else frame


def select_columns(frame: pd.DataFrame, names: str | Sequence[str] | None) -> list[str]:
    """The columns of ``frame`` that ``names`` asks for (``cnnlab compare --columns``): names
    comma-separated or as a list, each a column or a glob pattern (``conv*_filters``,
    ``val_accuracy_epoch?``; ``*``, ``?`` and ``[...]`` as in ``fnmatch``, case-sensitive) that
    stands for the columns it matches in the frame's order; in the order asked, each once.
    ``None``: the leaderboard's columns (``LEADERBOARD``) that the frame has.

    Raises ``ConfigError`` naming the first name that is not a column, or the first pattern that
    matches none, as ``leaderboard`` does for ``--sort``.
    """
    import fnmatch

    if names is None:
        return [c for c in LEADERBOARD if c in frame.columns]
    asked = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    asked = [n for n in asked if n]
    if not asked:
        raise ConfigError("--columns names no column; give some, e.g. trial,value,n_params.")
    chosen: list[str] = []
    for name in asked:
        if _is_pattern(name):
            matched = [c for c in frame.columns if fnmatch.fnmatchcase(str(c), name)]
            if not matched:
                raise ConfigError(f"--columns {name!r} matches no column; "
                                  f"{_closest(frame, name)}.")
            chosen += matched
        else:
            _check_column(frame, name, "--columns")
            chosen.append(name)
    return list(dict.fromkeys(chosen))


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


SORT_NAMES = {"params": "n_params", "parameters": "n_params", "seconds": "duration_s",
              "duration": "duration_s", "number": "trial"}
"""Names the trial lines and docs print for a column (``361,322 params``), as ``--sort``
takes them."""


def sort_column(frame: pd.DataFrame, name: str) -> str:
    """The column that ``--sort name`` sorts by: ``name`` itself, or for a name the trial lines
    print, its column: a curve (``val_accuracy``, ``val_loss``) is ``value`` where it is every
    row's objective (``metric``), else its last epoch's (``final_val_accuracy``); ``params``
    is ``n_params`` (``SORT_NAMES``). Raises ``ConfigError`` naming the closest columns."""
    if name in frame.columns:
        return name
    if name in CURVES:
        if "metric" in frame and (frame["metric"].astype(str) == name).all():
            return "value"
        if f"final_{name}" in frame.columns:
            return f"final_{name}"
    if SORT_NAMES.get(name) in frame.columns:
        return SORT_NAMES[name]
    raise ConfigError(f"--sort {name!r} is not a column; "
                      f"{_closest(frame, name, [*CURVES, *SORT_NAMES])}.")


def _check_column(frame: pd.DataFrame, name: str, option: str) -> None:
    if name not in frame.columns:
        raise ConfigError(f"{option} {name!r} is not a column; {_closest(frame, name)}.")


def _closest(frame: pd.DataFrame, name: str, more: Sequence[str] = ()) -> str:
    """What to say instead of every column (there are about a hundred): the closest names
    (``difflib``), else the leaderboard's columns; and where to see them all."""
    import difflib

    names = list(dict.fromkeys([*map(str, frame.columns), *more]))
    close = difflib.get_close_matches(name.lower(), names, n=5, cutoff=0.6)
    said = (f"did you mean {', '.join(close)}?" if close else
            f"the leaderboard's are {', '.join(c for c in LEADERBOARD if c in frame.columns)}")
    return f"{said} (--csv FILE writes all {len(frame.columns)} columns)"


def _ranked(frame: pd.DataFrame, top: int | None) -> pd.DataFrame:
    """``frame`` in the order of ``trial_rank_key``, each study by its own direction (see
    ``leaderboard``)."""
    from cnnlab.spec.ranking import trial_rank_key

    if frame.empty:
        return frame
    directions = (frame["direction"].astype(str) if "direction" in frame else
                  frame["metric"].astype(str).map(
                      lambda m: "minimize" if "loss" in m else "maximize"))
    rungs = frame["rung"] if "rung" in frame else pd.Series([None] * len(frame))
    keys = [trial_rank_key(str(state), None if pd.isna(value) else float(value), int(number),
                           maximize=direction == "maximize",
                           rung=0 if pd.isna(rung) else int(rung))
            for state, value, number, direction, rung in zip(
                frame["state"], frame["value"], frame["trial"], directions, rungs, strict=True)]
    together = frame["metric"].astype(str).nunique() == 1 and directions.nunique() == 1
    study_order = {name: i for i, name in enumerate(dict.fromkeys(frame["study"]))}
    if together:
        order = sorted(range(len(frame)), key=lambda i: keys[i])
    else:
        order = sorted(range(len(frame)),
                       key=lambda i: (study_order[frame["study"].iat[i]], keys[i]))
    frame = frame.iloc[order]
    if not top:
        return frame
    return frame.head(top) if together else frame.groupby("study", sort=False).head(top)


def epoch_column(metric: str, epoch: int) -> str:
    """The ``trials_frame`` column of ``metric`` after ``epoch`` epochs (1 after the first):
    ``epoch_column("val_accuracy", 3) == "val_accuracy_epoch3"``."""
    return f"{metric}_epoch{epoch}"


def _epoch_columns(frame: pd.DataFrame, metric: str) -> dict[int, str]:
    """The frame's per-epoch columns of ``metric``, by epoch."""
    found = {}
    for column in frame.columns:
        match = _EPOCH_COLUMN.match(str(column))
        if match and match["metric"] == metric:
            found[int(match["epoch"])] = column
    return dict(sorted(found.items()))


def _need_epochs(frame: pd.DataFrame, metric: str) -> dict[int, str]:
    columns = _epoch_columns(frame, metric)
    if not columns:
        known = ", ".join(EPOCH_CURVES)
        raise ConfigError(f"the frame has no per-epoch {metric} (columns like "
                          f"{epoch_column(metric, 1)}): make it with trials_frame(...) and "
                          f"curves=True; the per-epoch curves are {known}.")
    return columns


def curves(frame: pd.DataFrame, metrics: str | Sequence[str] = EPOCH_CURVES) -> pd.DataFrame:
    """The per-epoch curves of a ``trials_frame``, long: one row per (trial, epoch it reached)
    with ``study``, ``trial``, ``state``, ``outcome``, ``epoch`` (1 after the first epoch:
    MLflow's step) and each of ``metrics`` then (``val_accuracy``, ``val_loss``), as
    plotting and groupby want them. A pruned trial has rows up to the epoch where it was
    stopped; trials that trained nothing (infeasible, duplicates) have none."""
    if isinstance(metrics, str):
        metrics = [metrics]
    keys = [c for c in ("study", "trial", "state", "outcome") if c in frame.columns]
    merged = None
    for metric in metrics:
        columns = _need_epochs(frame, metric)
        long = frame[[*keys, *columns.values()]].melt(id_vars=keys, var_name="epoch",
                                                      value_name=metric)
        long["epoch"] = long["epoch"].map({c: e for e, c in columns.items()}).astype("Int64")
        long = long.dropna(subset=[metric])
        merged = long if merged is None else merged.merge(long, on=[*keys, "epoch"], how="outer")
    if merged is None:
        raise ConfigError("name at least one metric, e.g. curves(frame, 'val_accuracy').")
    order = [c for c in ("study", "trial") if c in merged.columns] + ["epoch"]
    return merged.sort_values(order, kind="stable").reset_index(drop=True)


def _counted(frame: pd.DataFrame) -> pd.Series:
    """Trials compared at equal epochs: they ended COMPLETE or PRUNED with a model of their own
    (trained here or copied; a duplicate repeats a trial that is already counted)."""
    ended = frame["state"].astype(str).isin(FINISHED)
    if "outcome" in frame.columns:
        ended &= frame["outcome"].astype(str).isin(("trained", "copied"))
    return ended


def at_epoch(frame: pd.DataFrame, epoch: int | None = None, *,
             metric: str = "val_accuracy") -> pd.DataFrame:
    """Every finished trial's validation score after the same number of epochs, so that trials
    stopped early by the pruner are compared with the others on equal terms instead of being
    dropped (or compared at fewer epochs than the rest).

    Counted: trials that ended COMPLETE or PRUNED with a model of their own (trained here or
    copied: not infeasible ones, not duplicates, whose configuration's own trial is counted),
    each at ``epoch`` if it reached it. A pruned trial counts at the epochs it reached: its
    score after epoch 2 is what it had after epoch 2, whatever came later. Failed trials (a
    diverged loss, a lost worker) and running ones are left out.

    ``epoch`` (1 after the first epoch): by default the largest epoch that every counted trial
    reached -- the last epoch of the shortest one, usually the epoch where the pruner stopped
    its first trial -- so every counted trial is in and all are compared after as many epochs.
    One epoch for the whole frame (several studies included). A larger ``epoch`` leaves out the
    trials stopped before it, and those are the ones the pruner judged worse: the comparison
    then favours what survived.

    Returns the counted trials' rows (the per-epoch columns left out) with ``epoch``,
    ``score`` (``metric`` after ``epoch`` epochs), ``score_metric`` and ``epochs_reached``.
    """
    columns = _need_epochs(frame, metric)
    counted = frame[_counted(frame)]
    # The epochs a trial reached: 1, 2 ... k all recorded.
    there = pd.DataFrame({e: counted[columns[e]].notna() if e in columns else False
                          for e in range(1, max(columns) + 1)}, index=counted.index)
    reached = there.to_numpy().cumprod(axis=1).sum(axis=1)
    counted = counted[reached > 0]
    reached = reached[reached > 0]
    if counted.empty:
        raise ConfigError(f"no complete or pruned trial has a per-epoch {metric} curve yet.")
    if epoch is None:
        epoch = int(reached.min())
    elif epoch < 1:
        raise ConfigError(f"epoch counts epochs trained, from 1; not {epoch}.")
    elif epoch > int(reached.max()):
        raise ConfigError(f"no trial reached epoch {epoch}: the longest ran "
                          f"{int(reached.max())} epoch(s).")
    keep = reached >= epoch
    rows = counted[keep].drop(columns=[c for m in EPOCH_CURVES
                                       for c in _epoch_columns(frame, m).values()])
    rows = rows.assign(epoch=pd.array([epoch] * len(rows), dtype="Int64"),
                       score=counted.loc[keep, columns[epoch]].astype("float64"),
                       score_metric=metric,
                       epochs_reached=pd.array(reached[keep], dtype="Int64"))
    return rows.reset_index(drop=True)


def per_layer(frame: pd.DataFrame, kind: str = "conv") -> pd.DataFrame:
    """One row per (trial, ``kind`` layer it has): the layer's own fields under their bare
    names (``filters``, ``kernel_size``, ``strides``, ``padding``, ``pool`` ... for ``conv``;
    ``units`` for ``dense``) and ``layer`` (1 for conv1), beside the trial's other columns
    (the other layers' columns left out). Works on ``trials_frame`` and ``at_epoch`` rows."""
    found: dict[int, dict[str, str]] = {}
    layer_columns = []
    for column in frame.columns:
        match = _LAYER_COLUMN.match(str(column))
        if match:
            layer_columns.append(column)
            if match["kind"] == kind:
                found.setdefault(int(match["layer"]), {})[column] = match["field"]
    if not found:
        raise ConfigError(f"the frame has no {kind} layer columns ({kind}1_...).")
    base = frame.drop(columns=layer_columns)
    parts = []
    for layer in sorted(found):
        fields = frame[list(found[layer])].rename(columns=found[layer])
        present = fields.notna().any(axis=1).to_numpy()
        part = pd.concat([base[present], fields[present]], axis=1).assign(layer=layer)
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    categorical = {found[layer][c] for layer in found for c in found[layer]
                   if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    for field in categorical:  # Each layer's own categories: one set again.
        long[field] = long[field].astype("category")
    return long


def network_knobs(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (``trials_frame`` or ``at_epoch`` rows) with one column per network knob
    (``cnnlab.spec.knobs``), read from each trial's conv layer columns (``conv1_padding`` ...)
    and ``n_conv``: ``paddings`` ("all same", "all valid", "mixed"), ``kernels`` ("all 3x3",
    "all 5x5" ..., "mixed"), ``stride2_layers`` (conv layers with a stride above 1),
    ``filters_scale`` (the mean filters per conv layer against the notebook CNN's 48, rounded
    to a power of two: 0.25, 0.5, 1, 2 ...). One value per trial and knob; empty where a trial
    has no conv layer or a layer's field is unknown (its run missing from MLflow)."""
    fields = ("filters", "kernel_size", "strides", "padding")
    values: dict[str, list[Any]] = {k: [] for k in K.KNOBS if k != "n_conv"}
    for _, row in frame.iterrows():
        n = row.get("n_conv")
        layers = None
        if n is not None and not pd.isna(n):
            layers = [[_layer_value(row.get(f"conv{i}_{f}")) for i in range(1, int(n) + 1)]
                      for f in fields]
        if layers is None or int(n) == 0 or any(v is None for f in layers for v in f):
            found: dict[str, Any] = dict.fromkeys(values)
        else:
            found = K.network_knobs(*layers)
        for key in values:
            values[key].append(found[key])
    out = frame.copy()
    out["paddings"] = pd.Categorical(values["paddings"],
                                     categories=["all same", "all valid", "mixed"])
    kernels = [v for v in values["kernels"] if v is not None]
    out["kernels"] = pd.Categorical(values["kernels"], categories=sorted(
        set(kernels) - {"mixed"}, key=_kernel_order) + (["mixed"] if "mixed" in kernels else []))
    out["stride2_layers"] = pd.array(values["stride2_layers"], dtype="Int64")
    out["filters_scale"] = pd.array(values["filters_scale"], dtype="float64")
    return out


def _layer_value(value: Any) -> Any:
    """A conv layer's field from the frame: None if missing; ``"(3, 5)"`` (a pair as MLflow
    keeps it) as a pair; a whole float (a column that pandas made float) as an int."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := re.fullmatch(r"\(\s*(\d+),\s*(\d+)\s*\)", value)):
        return (int(match[1]), int(match[2]))
    return value


def _kernel_order(label: str) -> tuple[int, ...]:
    """ "all 3x3" < "all 3x5" < "all 5x5": by the kernel's height, then width."""
    return tuple(int(v) for v in label.removeprefix("all ").split("x"))


def knob_effects(frame: pd.DataFrame, knob: str, *, by: str | Sequence[str] | None = None,
                 epoch: int | None = None, level: float = 0.95) -> pd.DataFrame:
    """What each value of a knob does to the score at equal epochs, network by network: per
    value, the mean of the trials' ``at_epoch`` score with its 95% interval (``level``), the
    standard deviation, the best score, the number of trials and their median parameter count.

    ``frame``: ``at_epoch`` rows, or a ``trials_frame`` (then ``at_epoch(frame, epoch)`` is
    taken first); one row per trial. ``knob``: a per-network knob (``network_knobs``):
    ``paddings`` (all same / all valid / mixed), ``kernels`` (all 3x3 / all 5x5 / ... /
    mixed), ``stride2_layers`` (how many conv layers have stride 2 or more),
    ``filters_scale`` (the filters against the notebook CNN's: 0.25, 0.5, 1, 2 ...),
    ``n_conv`` (depth); a conv layer's field names its knob (``padding``, ``kernel_size``,
    ``strides``, ``filters``). Or any other column with one value per trial (``head``,
    ``dropout``, ``conv2_strides``, one you added). ``by``: more columns or knobs to group
    by first, e.g. ``"n_conv"`` (per depth) or ``"kernels"``.

    Each trial is in exactly one group per knob (``by`` included): a group is never compared
    with itself. Layers are not pooled (a trial of a 3x3 and a 5x5 layer is "mixed", not in
    both the 3x3 and 5x5 rows), and a frame of ``per_layer`` rows, or with a trial twice, is
    refused (``ConfigError``). Infeasible draws (never trained) are left out, as are trials
    whose value of the knob is unknown.

    The interval is Student's t over the trials of the group (the mean's, each trial once),
    clipped to the score's bounds: [0, 1] for an accuracy, [0, inf) for a loss (``clipped``
    says where the t interval ran past them); t rather than a bootstrap because groups are
    small (``cnnlab.spec.knobs.mean_interval`` says why). ``ci_low``/``ci_high`` are empty for
    a single trial. Two rows are told apart when their intervals do not overlap.

    The mean is marginal: it averages over whatever else the trials drew. Under random
    sampling that is a fair average over the rest of the space; under TPE the other knobs
    follow the sampler's preferences and a difference can come from them.

    Returns one row per group, indexed by ``[*by, knob]`` (a conv field given as its knob's
    column name), with columns ``epoch``, ``trials``, ``mean``, ``ci_low``, ``ci_high``,
    ``clipped``, ``std``, ``best`` and ``median_params``.
    """
    if "score" not in frame.columns:
        frame = at_epoch(frame, epoch)
    elif epoch is not None:
        raise ConfigError("the frame is at_epoch's already: give the epoch to at_epoch, or "
                          "pass the trials frame.")
    frame = _trained_networks(frame)
    knob = K.ALIASES.get(knob, knob)
    by = [K.ALIASES.get(b, b) for b in ([by] if isinstance(by, str) else list(by or []))]
    keys = [*by, knob]
    rows = frame
    if any(k in K.KNOBS and k not in frame.columns for k in keys):
        rows = network_knobs(frame)
    missing = [k for k in keys if k not in rows.columns]
    if missing:
        raise ConfigError(f"{missing[0]!r} is neither a knob ({', '.join(K.KNOBS)}; or "
                          f"{', '.join(K.ALIASES)}) nor a column of the frame.")
    metric = str(frame["score_metric"].iloc[0]) if len(frame) else "val_accuracy"
    maximize = "loss" not in metric
    within = K.bounds(metric)
    table = []
    for group, part in rows.dropna(subset=keys).groupby(keys, observed=True, sort=True):
        scores = part["score"].astype("float64").tolist()
        interval = K.mean_interval(scores, level, within)
        entry = dict(zip(keys, group, strict=True))
        entry.update(
            epoch=_one_epoch(part["epoch"]), trials=interval.n, mean=interval.mean,
            ci_low=interval.low, ci_high=interval.high, clipped=interval.clipped,
            std=interval.std, best=max(scores) if maximize else min(scores),
            median_params=part["n_params"].astype("float64").median())
        table.append(entry)
    out = pd.DataFrame(table, columns=[*keys, "epoch", "trials", "mean", "ci_low", "ci_high",
                                       "clipped", "std", "best", "median_params"])
    for column in ("epoch", "trials"):
        out[column] = out[column].astype("Int64")
    out["clipped"] = out["clipped"].astype("boolean")
    return out.set_index(keys)


def _trained_networks(frame: pd.DataFrame) -> pd.DataFrame:
    """``knob_effects``' rows: one per trained trial (infeasible draws left out); a frame of
    ``per_layer`` rows, or with a trial twice, is a ``ConfigError``."""
    if "layer" in frame.columns:
        raise ConfigError("knob_effects compares whole networks, one row per trial: pass "
                          "at_epoch or trials_frame rows, not per_layer's.")
    trained = pd.Series(True, index=frame.index)
    if "outcome" in frame.columns:
        trained &= frame["outcome"].astype(str) != "infeasible"
    if "state" in frame.columns:
        trained &= frame["state"].astype(str) != T.INFEASIBLE
    frame = frame[trained]
    ids = [c for c in ("study", "trial") if c in frame.columns]
    if ids and frame.duplicated(ids).any():
        raise ConfigError("the frame has a trial twice: knob_effects counts each trial once.")
    return frame


def _one_epoch(epochs: pd.Series) -> Any:
    values = epochs.dropna().unique()
    return int(values[0]) if len(values) == 1 else pd.NA


def anytime(frame: pd.DataFrame) -> pd.DataFrame:
    """How the search got where it is: one row per finished trial (any state but RUNNING and
    WAITING), in the order they finished, with ``elapsed_s`` (wall seconds from the start of
    its study's first trial to this trial's end: Optuna's ``datetime_start`` and
    ``datetime_complete``), its ``value`` and ``best_value``/``best_trial``: the best COMPLETE
    trial's value so far (earliest first among equals; empty until one completes). Pruned and
    failed trials take time and never become the best, as in Optuna's ``best_trial``. The
    direction is the study's metric's (``val_loss`` lower, else higher); a two-objective
    study's value is its first objective. Several studies: each its own clock and best."""
    columns = ["study", "trial", "state", "outcome", "elapsed_s", "value", "best_value",
               "best_trial", "n_params", "architecture"]
    finished = frame["finished"] if "finished" in frame.columns else (
        frame["started"] + pd.to_timedelta(frame["duration_s"], unit="s"))
    parts = []
    for _, study in frame.assign(_finished=finished).groupby("study", observed=True,
                                                                 sort=True):
        first = study["started"].min()
        done = study[~study["state"].astype(str).isin(("RUNNING", "WAITING"))
                     & study["_finished"].notna()]
        done = done.assign(elapsed_s=(done["_finished"] - first).dt.total_seconds())
        done = done.sort_values(["elapsed_s", "trial"], kind="stable")
        minimize = (done["metric"].astype(str) == "val_loss").all() and len(done) > 0
        best, best_trial, bests, numbers = math.nan, pd.NA, [], []
        for state, value, number in zip(done["state"].astype(str), done["value"],
                                        done["trial"], strict=True):
            if state == "COMPLETE" and pd.notna(value) and (
                    math.isnan(best) or (value < best if minimize else value > best)):
                best, best_trial = float(value), number
            bests.append(best)
            numbers.append(best_trial)
        parts.append(done.assign(best_value=pd.array(bests, dtype="float64"),
                                 best_trial=pd.array(numbers, dtype="Int64")))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    return out[[c for c in columns if c in out.columns]]
