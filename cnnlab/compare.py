"""Studies as pandas DataFrames: one row per trial, Optuna's view joined with MLflow's.

``trials_frame()`` is the public entry point; ``cnnlab compare`` prints it as a leaderboard.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cnnlab import tracking
from cnnlab import trials as T
from cnnlab.errors import ConfigError
from cnnlab.names import (
    ARCHITECTURE_ATTR,
    DUPLICATE_OF_ATTR,
    FAIL_REASON_ATTR,
    KIND_TAG,
    KIND_TRIAL,
    MACS_ATTR,
    N_PARAMS_ATTR,
    REASON_ATTR,
    RUN_ID_ATTR,
    SEED_ATTR,
)

CURVES = ("val_accuracy", "val_loss", "accuracy", "loss")
SPEC_PREFIXES = ("conv", "dense", "n_conv", "n_dense")
"""MLflow parameters of the spec's layers (``conv2_strides``, ``dense1_units`` ...)."""
SPEC_COLUMNS = ("head", "dropout", "optimizer", "learning_rate", "batch_size",
                "receptive_field", "effective_stride", "final_feature_map")
"""The spec's other parameters, and what the shape arithmetic derives from it."""
LEADERBOARD = ["study", "trial", "state", "value", "n_params", "architecture",
               "best_val_accuracy", "epochs_run", "duration_s"]


def study_names(storage: str | None = None) -> list[str]:
    """Every study in the Optuna storage."""
    import optuna

    from cnnlab.study import open_existing_storage

    _, opened = open_existing_storage(storage)
    return sorted(optuna.study.get_all_study_names(storage=opened))


def trials_frame(studies: str | list[str] | None = None, *, storage: str | None = None,
                 tracking_uri: str | None = None, curves: bool = True) -> pd.DataFrame:
    """One row per trial of ``studies`` (default: every study in the storage).

    Columns, Optuna's: ``study``, ``trial``, ``state``, ``metric`` and ``value`` (the
    objective: the last epoch's validation score; for a pruned trial the last one reported),
    ``confirm_mean``, ``confirm_std``, ``confirm_n``, ``confirm_ci_low``/``_high``,
    ``confirm_rank`` and ``confirm_tied`` for trials ranked over seeds by ``cnnlab confirm``,
    ``on_front`` (on the study's front of score against size; ``front_size`` says which
    size: the second objective, else ``n_params``; see ``front``),
    ``duration_s``, ``started``, ``pruned_at_epoch``, ``fail_reason``, the sampled and
    derived architecture (``architecture``, ``n_params``, ``macs``, ``n_conv``,
    ``conv1_filters`` ...); MLflow's: ``run_id``, ``epochs_run``, ``final_*`` and ``best_*``
    of each curve (``val_accuracy``, ``val_loss``, ``accuracy``, ``loss``), ``test_accuracy``
    where the study was evaluated, ``artifact_uri``. ``curves=False`` skips the per-epoch
    histories (faster; no ``best_*``/``epochs_run``).
    """
    from cnnlab.evaluate import load_existing_study

    if isinstance(studies, str):
        studies = [studies]
    names = list(studies) if studies else study_names(storage)
    if not names:
        raise ConfigError("there are no studies in the Optuna storage yet.")
    loaded = [load_existing_study(name, storage) for name in names]
    tracking.use_tracking_store(tracking_uri, create=False)
    frames = [_one_study(study, curves) for study in loaded]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return _tidy(frame)


def _one_study(study: Any, curves: bool) -> pd.DataFrame:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = _trial_runs(client, study.study_name)
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
            "state": trial.state.name,
            "metric": metric,
            "value": trial.values[0] if trial.values else None,
            "n_params": attrs.get(N_PARAMS_ATTR),
            "macs": attrs.get(MACS_ATTR),
            "architecture": attrs.get(ARCHITECTURE_ATTR),
            "on_front": trial.number in on_front,
            "front_size": size_attr,
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
            "started": trial.datetime_start,
            "pruned_at_epoch": steps[-1] if trial.state.name == "PRUNED" and steps else None,
            "fail_reason": attrs.get(FAIL_REASON_ATTR),
            "outcome": T.outcome(trial),
            "reason": attrs.get(REASON_ATTR, attrs.get(FAIL_REASON_ATTR)),
            "duplicate_of": attrs.get(DUPLICATE_OF_ATTR),
            "seed": attrs.get(SEED_ATTR),
            **trial.params,
        }
        row.update(confirmed.get(trial.number, {}))
        run_id = attrs.get(RUN_ID_ATTR)
        run = runs.get(run_id)
        row["run_id"] = run_id
        if run is not None:
            row["artifact_uri"] = run.info.artifact_uri
            row["mlflow_status"] = run.info.status
            for key in CURVES:
                row[f"final_{key}"] = run.data.metrics.get(key)
            row["test_accuracy"] = run.data.metrics.get("test_accuracy")
            if curves:
                for key in CURVES[:2]:
                    history = [m.value for m in client.get_metric_history(run_id, key)]
                    if history:
                        row[f"best_{key}"] = max(history) if "accuracy" in key else min(history)
                    if key == "val_accuracy":
                        row["epochs_run"] = len(history)
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
    from cnnlab.confirm import load_record, ranking_of
    from cnnlab.ranking import summarize

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


def _trial_runs(client: Any, study_name: str) -> dict[str, Any]:
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{KIND_TAG}` = '{KIND_TRIAL}'",
                              max_results=50_000)
    return {run.info.run_id: run for run in runs}


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


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Readable column order and dtypes that suit the values (nullable integers, categories)."""
    if frame.empty:
        return frame
    first = ["study", "trial", "state", "metric", "value", "n_params", "macs", "architecture"]
    arch = sorted(c for c in frame.columns
                  if c.startswith(SPEC_PREFIXES) or c in SPEC_COLUMNS)
    rest = [c for c in frame.columns if c not in first and c not in arch]
    frame = frame[[c for c in first if c in frame.columns] + arch + rest]
    for column in ("trial", "n_params", "macs", "pruned_at_epoch", "epochs_run", "seed",
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
    for column in ("study", "state", "metric", "outcome", "front_size"):
        frame[column] = frame[column].astype("category")
    for column in ("architecture", "fail_reason", "reason", "run_id", "artifact_uri",
                   "mlflow_status"):
        if column in frame:
            frame[column] = frame[column].astype("string")
    for column in frame.columns:
        if column in SPEC_COLUMNS:
            continue
        if column.startswith(("final_", "best_", "confirm_")) and column not in (
                "confirm_n", "confirm_rank", "confirm_tied") or column in (
                "value", "duration_s", "test_accuracy"):
            frame[column] = frame[column].astype("float64")
    if "started" in frame:
        frame["started"] = pd.to_datetime(frame["started"])
    return frame


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
    """Filter by state, sort (default: by value, best first), keep the top N. Duplicates are
    left out: the trial that judged their configuration is the configuration's row."""
    if "outcome" in frame:
        frame = frame[frame["outcome"].astype(str) != "duplicate"]
    if states:
        wanted = {s.upper() for s in states}
        unknown = wanted - {"COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"}
        if unknown:
            raise ConfigError(f"--state {sorted(unknown)[0]!r} is not a trial state (complete, "
                              "pruned, fail, running, waiting).")
        frame = frame[frame["state"].astype(str).isin(wanted)]
    sort = sort or "value"
    if sort not in frame.columns:
        raise ConfigError(f"--sort {sort!r} is not a column; columns: "
                          f"{', '.join(frame.columns)}.")
    if ascending is None and sort == "value":
        ascending = bool((frame["metric"].astype(str) == "val_loss").all()) and len(frame) > 0
    if ascending is None:
        ascending = sort in ("n_params", "macs", "duration_s", "trial") or "loss" in sort
    frame = frame.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    return frame.head(top) if top else frame
