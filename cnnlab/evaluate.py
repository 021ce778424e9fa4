"""The one look at the test set: evaluate a study's chosen model on the 10,000 test images, once.

This is the only code in cnnlab that reads the test split. The order of things is what makes
"once" hold across processes and machines:

1. choose the trial (the best one, or the one the user names or whose rule picks it) and check
   that its model is in MLflow -- nothing is written yet;
2. **claim** the evaluation by creating the study's registered model in the MLflow Model
   Registry. Creation is atomic in the tracking store (a unique name), so of two evaluations
   started at once exactly one gets the claim; the other is refused;
3. only then read the test images, evaluate, and record the result on the study's run, the
   trial's run and the registered model (a new version with the alias ``evaluated``).

A claim without a result means an evaluation is running or crashed. ``complete=True`` finishes a
crashed one, on the claimed model only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cnnlab import tracking
from cnnlab.data import NUM_CLASSES, load_test_split
from cnnlab.errors import ConfigError, EvaluationRefusedError
from cnnlab.study_tracking import PARENT_RUN_ATTR, RUN_ID_ATTR

ALIAS = "evaluated"
CLAIM_TAG = "cnnlab.claim"
RESULT_TAG = "cnnlab.result"
EVALUATION_ATTR = "cnnlab_evaluation"


@dataclass(frozen=True)
class Choice:
    """The trial to evaluate and where its model is."""

    study: str
    trial: int
    run_id: str
    parent_run_id: str | None
    model_uri: str
    value: Any
    n_params: int | None


@dataclass(frozen=True)
class Evaluation:
    """What the test set said about the chosen model."""

    study: str
    trial: int
    run_id: str
    model_uri: str
    test_loss: float
    test_accuracy: float
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]
    evaluated_at: str
    registered_model: str
    version: str


def registered_model_name(study_name: str) -> str:
    """The registry name of a study's evaluated model, e.g. ``cnnlab-quickstart``."""
    return "cnnlab-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name).strip("-")


def load_existing_study(study_name: str, storage: str | None = None) -> Any:
    """An existing study, or a one-sentence error naming it and what the storage has."""
    import optuna

    from cnnlab.study import open_existing_storage

    url, storage_obj = open_existing_storage(storage)
    names = optuna.study.get_all_study_names(storage=storage_obj)
    if study_name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"no study named {study_name!r} in {tracking.redact(url)} "
                          f"(studies there: {known}).")
    return optuna.load_study(study_name=study_name, storage=storage_obj)


def choose_trial(study: Any, trial: int | None = None, max_params: int | None = None) -> Any:
    """The trial to evaluate: the one named, the most accurate under ``max_params``, or the
    study's best (single objective only; a multi-objective study needs one of the others)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no complete trial to evaluate.")
    if trial is not None and max_params is not None:
        raise ConfigError("give --trial or --max-params, not both.")
    if trial is not None:
        chosen = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not chosen:
            raise ConfigError(f"study {study.study_name!r} has no trial {trial}.")
        if chosen[0].state != TrialState.COMPLETE:
            raise ConfigError(f"trial {trial} of study {study.study_name!r} is "
                              f"{chosen[0].state.name}, not COMPLETE; only a complete trial "
                              "has a validated model to evaluate.")
        return chosen[0]
    index, maximize = _accuracy_objective(study)
    if max_params is not None:
        under = [t for t in complete if t.user_attrs.get("n_params", max_params + 1) <= max_params]
        if not under:
            raise ConfigError(f"no complete trial of study {study.study_name!r} has at most "
                              f"{max_params:,} parameters.")
        key = (lambda t: t.values[index]) if maximize else (lambda t: -t.values[index])
        return max(under, key=key)
    if len(study.directions) > 1:
        raise ConfigError(f"study {study.study_name!r} has {len(study.directions)} objectives "
                          "and so no single best trial; name one with --trial N or give a rule "
                          "with --max-params N (the most accurate under N parameters).")
    return study.best_trial


def _accuracy_objective(study: Any) -> tuple[int, bool]:
    """Which objective is validation accuracy (or the first), and whether it is maximized."""
    names = study.metric_names or []
    index = names.index("val_accuracy") if "val_accuracy" in names else 0
    return index, study.directions[index].name == "MAXIMIZE"


def plan(study_name: str, *, trial: int | None = None, max_params: int | None = None,
         storage: str | None = None, tracking_uri: str | None = None) -> tuple[Choice, Any]:
    """Choose the trial and check its model is there; writes nothing. Returns the choice and
    the Optuna study."""
    import mlflow

    study = load_existing_study(study_name, storage)
    chosen = choose_trial(study, trial, max_params)
    run_id = chosen.user_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        raise ConfigError(f"trial {chosen.number} of study {study_name!r} has no MLflow run "
                          "(it was not run by cnnlab); there is no model to evaluate.")
    tracking.use_tracking_store(tracking_uri)
    model_uri = f"runs:/{run_id}/{tracking.MODEL_NAME}"
    try:
        # MLflow 3 keeps a run's model as a logged model of its own: name it directly.
        outputs = mlflow.tracking.MlflowClient().get_run(run_id).outputs
        if outputs is not None and outputs.model_outputs:
            model_uri = f"models:/{outputs.model_outputs[-1].model_id}"
        mlflow.models.get_model_info(model_uri)
    except Exception as err:
        store = tracking.redact(tracking.resolve_tracking_uri(tracking_uri))
        raise ConfigError(f"the model of trial {chosen.number} ({model_uri}) is not in the "
                          f"tracking store {store} ({type(err).__name__}); point --tracking-uri "
                          "at the study's store.") from None
    return Choice(study_name, chosen.number, run_id, study.user_attrs.get(PARENT_RUN_ATTR),
                  model_uri, chosen.value if len(study.directions) == 1 else chosen.values,
                  chosen.user_attrs.get("n_params")), study


def claim(choice: Choice, complete: bool = False) -> Any:
    """Create the study's registered model as the claim, or refuse; returns the claim."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = registered_model_name(choice.study)
    record = {"trial": choice.trial, "run_id": choice.run_id, "model_uri": choice.model_uri,
              "claimed_at": _now(), "host": socket.gethostname(), "pid": os.getpid()}
    try:
        client.create_registered_model(
            name, tags={"cnnlab.study": choice.study, CLAIM_TAG: json.dumps(record)},
            description=f"The model of study '{choice.study}' chosen on validation and "
                        "evaluated once on the MNIST test set by `cnnlab evaluate`.")
        return record
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = client.get_registered_model(name)
    tags = existing.tags
    if RESULT_TAG in tags:
        result = json.loads(tags[RESULT_TAG])
        raise EvaluationRefusedError(
            f"study '{choice.study}' was already evaluated on the test set at "
            f"{result['evaluated_at']} (trial {result['trial']}, {result['model_uri']}): test "
            f"accuracy {result['test_accuracy']:.4f}, test loss {result['test_loss']:.4f}; the "
            "test set is looked at once per study.")
    if CLAIM_TAG not in tags:
        raise EvaluationRefusedError(f"a registered model named '{name}' exists but was not "
                                     "made by cnnlab evaluate; rename or delete it first.")
    held = json.loads(tags[CLAIM_TAG])
    if not complete:
        raise EvaluationRefusedError(
            f"the evaluation of study '{choice.study}' was claimed at {held['claimed_at']} by "
            f"process {held['pid']} on {held['host']} (trial {held['trial']}) and has no result "
            f"yet: it is running, or it crashed; if it crashed, finish it with `cnnlab evaluate "
            f"{choice.study} --complete`.")
    if held["run_id"] != choice.run_id:
        raise EvaluationRefusedError(
            f"the claimed evaluation of study '{choice.study}' is of trial {held['trial']}; a "
            f"crashed evaluation can be completed on the same model only (drop --trial and "
            "--max-params).")
    return held


def evaluate_study(
    study_name: str,
    *,
    trial: int | None = None,
    max_params: int | None = None,
    complete: bool = False,
    storage: str | None = None,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    out: Callable[[str], None] = print,
) -> Evaluation:
    """Evaluate the study's chosen model on the test set, once; see the module's docstring."""
    if complete:
        # --complete finishes the claimed evaluation, whose trial is the claim's.
        load_existing_study(study_name, storage)
        tracking.use_tracking_store(tracking_uri)
        held = _claim_record(study_name)
        if held is not None:
            if (trial is not None and trial != held["trial"]) or max_params is not None:
                raise EvaluationRefusedError(
                    f"the claimed evaluation of study '{study_name}' is of trial "
                    f"{held['trial']}; a crashed evaluation can be completed on the same model "
                    "only (drop --trial and --max-params).")
            trial = held["trial"]
    choice, study = plan(study_name, trial=trial, max_params=max_params, storage=storage,
                         tracking_uri=tracking_uri)
    claim(choice, complete=complete)
    out(f"claimed the test evaluation of study '{study_name}': trial {choice.trial}, "
        f"{choice.model_uri}")
    test = load_test_split(data_dir)  # The first and only read of the test split.
    evaluation = _record(choice, _evaluate(choice, test), study)
    out(f"test accuracy {evaluation.test_accuracy:.4f}, test loss {evaluation.test_loss:.4f} "
        f"(validation {_fmt(choice.value)}); registered as "
        f"models:/{evaluation.registered_model}@{ALIAS} (version {evaluation.version})")
    out("per-class accuracy: " + "  ".join(
        f"{d}:{a:.3f}" for d, a in enumerate(evaluation.per_class_accuracy)))
    return evaluation


def _claim_record(study_name: str) -> dict | None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        tags = MlflowClient().get_registered_model(registered_model_name(study_name)).tags
    except MlflowException:
        return None
    return json.loads(tags[CLAIM_TAG]) if CLAIM_TAG in tags else None


def _evaluate(choice: Choice, test: Any) -> Evaluation:
    import mlflow

    model = mlflow.keras.load_model(choice.model_uri)
    probs = model.predict(test.x, batch_size=1024, verbose=0)
    predicted = probs.argmax(axis=1)
    eps = np.finfo(np.float32).eps
    picked = np.clip(probs[np.arange(len(test.y)), test.y], eps, 1.0)
    loss = float(-np.log(picked).mean())  # Categorical cross-entropy, as the model was trained.
    matrix = np.bincount(NUM_CLASSES * test.y + predicted,
                         minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)
    per_class = (np.diag(matrix) / matrix.sum(axis=1)).tolist()
    name = registered_model_name(choice.study)
    return Evaluation(choice.study, choice.trial, choice.run_id, choice.model_uri, loss,
                      float((predicted == test.y).mean()), per_class, matrix.tolist(), _now(),
                      name, "")


def _record(choice: Choice, evaluation: Evaluation, study: Any) -> Evaluation:
    """The result on the trial's run, the study's run, the registry and the Optuna study."""
    import dataclasses

    import mlflow
    from mlflow.tracking import MlflowClient

    from cnnlab.plots import confusion_matrix_figure

    client = MlflowClient()
    name = evaluation.registered_model
    versions = [v for v in client.search_model_versions(f"name = '{name}'")
                if v.run_id == choice.run_id]
    if versions:  # A crashed evaluation may have registered it already.
        version = str(versions[0].version)
    else:
        version = str(mlflow.register_model(choice.model_uri, name).version)
    evaluation = dataclasses.replace(evaluation, version=version)
    result = asdict(evaluation)
    metrics = {"test_loss": evaluation.test_loss, "test_accuracy": evaluation.test_accuracy}
    metrics.update({f"test_accuracy_class_{d}": a
                    for d, a in enumerate(evaluation.per_class_accuracy)})
    tags = {"cnnlab.evaluated_at": evaluation.evaluated_at,
            "cnnlab.evaluated_model": choice.model_uri,
            "cnnlab.evaluated_trial": str(choice.trial),
            "cnnlab.registered_model": f"models:/{name}/{version}"}
    fig = confusion_matrix_figure(np.array(evaluation.confusion_matrix),
                                  f"{choice.study}, trial {choice.trial}: test set")
    for run_id in filter(None, (choice.run_id, choice.parent_run_id)):
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        client.log_dict(run_id, result, "evaluation/result.json")
        client.log_figure(run_id, fig, "evaluation/confusion_matrix.png")
    client.set_model_version_tag(name, version, "test_loss", f"{evaluation.test_loss:.6f}")
    client.set_model_version_tag(name, version, "test_accuracy",
                                 f"{evaluation.test_accuracy:.6f}")
    client.set_model_version_tag(name, version, "cnnlab.trial", str(choice.trial))
    client.set_registered_model_alias(name, ALIAS, version)
    summary = {k: result[k] for k in ("trial", "run_id", "model_uri", "test_loss",
                                      "test_accuracy", "evaluated_at", "version")}
    study.set_user_attr(EVALUATION_ATTR, summary)
    # Last: the result on the registered model is what marks the evaluation as done.
    client.set_registered_model_tag(name, RESULT_TAG, json.dumps(summary))
    return evaluation


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(f"{v:.4f}" for v in value)
    return f"{value:.4f}"
