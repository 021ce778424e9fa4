"""The one look at the test set: evaluate a study's chosen model on the 10,000 test images, once.

This is the only code in cnnlab that reads the test split. The order of things is what makes
"once" hold across processes, machines and the stock tools of Optuna and MLflow:

1. refuse if the study was evaluated, by any one of its redundant records: the study's own
   attribute in Optuna, the result or claim on its registered model, the test metrics on its
   study run or on any of its trial runs (deleted runs included). Deleting one record in the
   MLflow UI leaves the others;
2. choose the trial (the best one, or the one the user names or whose rule picks it) and check
   every input: its run and the study's run exist and are not deleted, its model is in MLflow,
   the test files can be read, the validation split is the study's own (its digest), and no
   test image is also a validation image (the leak guard) -- nothing is written yet;
3. **claim** the evaluation by creating the study's registered model in the MLflow Model
   Registry (a name unique per study: the sanitized name and a hash of the exact name; tagged
   with the study's id). Creation is atomic in the tracking store, so of two evaluations started
   at once exactly one gets the claim; the other is refused;
4. only then show the test images to the model, and record the result (with the test split's
   source and digest) on the study's run, the trial's run, the registered model (a new version
   with the alias ``evaluated``) and the Optuna study.

A claim without a result means an evaluation is running or crashed. ``complete=True`` finishes a
crashed one, on the claimed model only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cnnlab.errors import ConfigError, DataError, EvaluationRefusedError
from cnnlab.names import (
    CLAIM_TAG,
    CONFIRMED_ATTR,
    DATA_ATTR,
    DUPLICATE_OF_ATTR,
    EVALUATED_AT_TAG,
    EVALUATED_MODEL_TAG,
    EVALUATED_TRIAL_TAG,
    EVALUATION_ATTR,
    MODEL_TRIAL_TAG,
    N_PARAMS_ATTR,
    PARENT_RUN_ATTR,
    REGISTERED_MODEL_TAG,
    RESULT_TAG,
    RUN_ID_ATTR,
    STUDY_TAG,
    STUDY_UID_TAG,
    TEST_ACCURACY_TAG,
    TEST_LOSS_TAG,
    TEST_SHA256_TAG,
    TEST_SOURCE_TAG,
    UID_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.tracking import runs as tracking
from cnnlab.tracking.evaluations import (
    create_claim,
    evaluation_records,
    mark_evaluated,
    record_evaluation,
    register_version,
    registered_model_name,
)
from cnnlab.tracking.stores import (
    Stores,
    cnnlab_command,
    load_existing_study,
    mlflow_command,
    password_note,
    redact,
)
from cnnlab.train.data import (
    KERAS_SOURCE,
    NUM_CLASSES,
    image_fingerprints,
    load_mnist,
    load_test_split,
    resolve_data_dir,
)

ALIAS = "evaluated"


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
    test_source: str = ""
    test_sha256: str = ""


def choose_trial(study: Any, trial: int | None = None, max_params: int | None = None,
                 within: float | None = None) -> Any:
    """The trial to evaluate: the one named; or by a rule that picks a trial on the front of
    validation score against size: the most accurate under ``max_params`` parameters, or the
    smallest (by the study's size: its second objective, else parameters) whose score is
    within ``within`` of the best; or the study's best (one objective only: a two-objective
    study needs a rule or a trial)."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if T.outcome(t) in ("trained", "copied")]
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no complete trial to evaluate.")
    if sum(x is not None for x in (trial, max_params, within)) > 1:
        raise ConfigError("give one of --trial, --max-params and --within, not several.")
    if trial is not None:
        chosen = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not chosen:
            raise ConfigError(f"study {study.study_name!r} has no trial {trial}.")
        if T.outcome(chosen[0]) == "duplicate":
            raise ConfigError(f"trial {trial} of study {study.study_name!r} reused the result of "
                              f"trial {chosen[0].user_attrs.get(DUPLICATE_OF_ATTR)} (the same "
                              "configuration) and has no model of its own; evaluate that trial.")
        if chosen[0].state != TrialState.COMPLETE:
            raise ConfigError(f"trial {trial} of study {study.study_name!r} is "
                              f"{chosen[0].state.name}, not COMPLETE; only a complete trial "
                              "has a validated model to evaluate.")
        return chosen[0]
    index, maximize = _accuracy_objective(study)
    confirmed = confirmed_means(study)
    if confirmed:  # cnnlab confirm ranked some trials over seeds: choose among them.
        complete = [t for t in complete if t.number in confirmed] or complete
    sign = 1 if maximize else -1

    def key(t: Any) -> float:
        return sign * confirmed.get(t.number, t.values[index])

    if max_params is not None:
        under = [t for t in complete
                 if t.user_attrs.get(N_PARAMS_ATTR, max_params + 1) <= max_params]
        if not under:
            raise ConfigError(f"no complete{' confirmed' if confirmed else ''} trial of study "
                              f"{study.study_name!r} has at most {max_params:,} parameters.")
        return max(under, key=lambda t: (key(t), -t.number))
    if within is not None:
        if within < 0:
            raise ConfigError(f"--within must be zero or positive, not {within}.")
        best = max(key(t) for t in complete)
        close = [t for t in complete if key(t) >= best - within - 1e-12]
        size = T.size_attr(study)
        return min(close, key=lambda t: (t.user_attrs.get(size, float("inf")), -key(t),
                                         t.number))
    if confirmed:
        return max(complete, key=lambda t: (key(t), -t.number))
    if len(study.directions) > 1:
        raise ConfigError(f"study {study.study_name!r} has {len(study.directions)} objectives "
                          "and so no single best trial; name one with --trial N or give a rule: "
                          "--max-params N (the most accurate under N parameters) or --within X "
                          "(the smallest within X of the best score), or rank trials over seeds "
                          "first with cnnlab confirm.")
    return T.best(study)  # The project's one ranking rule, as compare, the report and the study.


def confirmed_means(study: Any) -> dict[int, float]:
    """Trial number -> mean validation score over the seeds of ``cnnlab confirm`` (trials
    confirmed with at least two seeds); empty if the study was not confirmed."""
    from cnnlab.results.confirm import BASELINE, load_record

    record = load_record(study) or {}
    return {int(k): sum(e["values"]) / len(e["values"])
            for k, e in record.get("entries", {}).items()
            if k != BASELINE and len(e.get("values", [])) >= 2}


def _accuracy_objective(study: Any) -> tuple[int, bool]:
    """Which objective is validation accuracy (or the first), and whether it is maximized."""
    names = study.metric_names or []
    index = names.index("val_accuracy") if "val_accuracy" in names else 0
    return index, study.directions[index].name == "MAXIMIZE"


def plan(study: Any, uri: str, *, trial: int | None = None, max_params: int | None = None,
         within: float | None = None) -> Choice:
    """Choose the trial and check its runs and model in the tracking store ``uri`` (as
    resolved: ``Stores``); writes nothing."""
    import mlflow

    study_name = study.study_name
    chosen = choose_trial(study, trial, max_params, within)
    run_id = chosen.user_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        raise ConfigError(f"trial {chosen.number} of study {study_name!r} has no MLflow run "
                          "(it was not run by cnnlab); there is no model to evaluate.")
    client = mlflow.tracking.MlflowClient()
    tracking.check_experiment_active(client.get_experiment_by_name(study_name), uri)
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    store = redact(uri)
    for what, rid in (("the MLflow run of trial " + str(chosen.number), run_id),
                      (f"the MLflow run of study {study_name!r}", parent_run_id)):
        if rid is None:
            continue
        try:
            run = client.get_run(rid)
        except mlflow.exceptions.MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise ConfigError(f"{what} ({rid}) is not in the tracking store {store}; "
                                  "point --tracking-uri at the study's store.") from None
            if rid == parent_run_id:
                raise ConfigError(
                    f"{what} ({rid}) is not in the tracking store {store} (removed for good by "
                    "mlflow gc, alone or with its experiment; or the study was tracked in "
                    "another store: then point --tracking-uri at it); run the study again "
                    "(cnnlab study run with its file: nothing is trained again) for a new study "
                    "run to record the result on.") from None
            raise ConfigError(f"{what} ({rid}) is not in the tracking store {store} (removed "
                              "for good by mlflow gc, alone or with its experiment; or the "
                              "study was tracked in another store: then point --tracking-uri "
                              "at it), and its model is gone with it.") from None
        if run.info.lifecycle_stage != "active":
            restore = mlflow_command(f"runs restore --run-id {rid}", uri)
            raise ConfigError(f"{what} ({rid}) was deleted in MLflow; restore it (MLflow UI, "
                              f"or `{restore}`) before evaluating, so that the result can be "
                              "recorded on it"
                              f"{password_note((uri, 'MLFLOW_TRACKING_URI'))}.")
    model_uri = f"runs:/{run_id}/{tracking.MODEL_NAME}"
    location = None
    try:
        # MLflow 3 keeps a run's model as a logged model of its own: name it directly.
        outputs = client.get_run(run_id).outputs
        if outputs is not None and outputs.model_outputs:
            model_id = outputs.model_outputs[-1].model_id
            model_uri = f"models:/{model_id}"
            # Where MLflow says the model's files are: named below if they are missing.
            location = client.get_logged_model(model_id).artifact_location
        mlflow.models.get_model_info(model_uri)
    except Exception as err:
        missing = tracking.missing_local_path(location, "MLmodel")
        if missing is not None:
            raise DataError(f"the model of trial {chosen.number} ({model_uri}) is recorded in the "
                            f"tracking store {store} but its files are missing: {missing} does "
                            "not exist (deleted, or left behind when the store's folder was "
                            "moved without it).") from None
        raise ConfigError(f"the model of trial {chosen.number} ({model_uri}) is not in the "
                          f"tracking store {store} ({type(err).__name__}); point --tracking-uri "
                          "at the study's store.") from None
    return Choice(study_name, chosen.number, run_id, parent_run_id, model_uri,
                  chosen.value if len(study.directions) == 1 else chosen.values,
                  chosen.user_attrs.get(N_PARAMS_ATTR))


def _plan_with_a_model(study: Any, trial: int | None, max_params: int | None,
                       uri: str, out: Callable[[str], None],
                       within: float | None = None) -> Choice:
    """``plan``; when the trial was chosen by rule and its model is missing from MLflow (a run
    interrupted while its model was logged, recorded by a cnnlab older than the rule that a
    trial's run is closed before Optuna is told), the next trial by the same rule that has its
    model, with a note."""
    try:
        return plan(study, uri, trial=trial, max_params=max_params, within=within)
    except ConfigError as err:
        if trial is not None or "is not in the tracking store" not in str(err) or \
                len(study.directions) > 1 or within is not None:
            raise
        missing = str(err)
    from optuna.trial import TrialState

    ranked = T.ranked((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if T.outcome(t) in ("trained", "copied") and (
                           max_params is None or t.user_attrs.get(N_PARAMS_ATTR, 0) <= max_params)),
                      maximize=T.maximizes(study))
    for candidate in ranked[1:]:
        try:
            choice = plan(study, uri, trial=candidate.number)
        except ConfigError:
            continue
        out(f"note: {missing[:-1] if missing.endswith('.') else missing}; evaluating trial "
            f"{candidate.number}, the next by the same rule that has its model.")
        return choice
    raise ConfigError(missing)


def _refuse_if_evaluated(study: Any, complete: bool, again: str = "") -> dict | None:
    """Refuse if any record says the study was evaluated; returns the claim of a crashed
    evaluation when ``complete`` (None if there is none). ``again`` is the command that
    completes a crashed evaluation (see ``_claimed``)."""
    records = evaluation_records(study)
    results = [(where, r) for where, r in records if not r.get("claim")]
    if results:
        where, result = results[0]
        raise _already_evaluated(study.study_name, result, where)
    claims = [r for _, r in records if r.get("claim")]
    if claims and not complete:
        raise _claimed(study.study_name, claims[0], again)
    return claims[0] if claims else None


def _already_evaluated(study_name: str, result: dict, where: str) -> EvaluationRefusedError:
    return EvaluationRefusedError(
        f"study '{study_name}' was already evaluated on the test set at "
        f"{result['evaluated_at']} (trial {result['trial']}, {result['model_uri']}): test "
        f"accuracy {float(result['test_accuracy']):.4f}, test loss "
        f"{float(result['test_loss']):.4f} (recorded in {where}); the test set is looked at "
        "once per study.")


def _claimed(study_name: str, held: dict, again: str = "") -> EvaluationRefusedError:
    """``again``: the command that completes the evaluation, in backticks, naming the stores
    (default: the one for the default stores)."""
    again = again or f"`{cnnlab_command('evaluate', study_name, '--complete')}`"
    return EvaluationRefusedError(
        f"the evaluation of study '{study_name}' was claimed at {held['claimed_at']} by "
        f"process {held['pid']} on {held['host']} (trial {held['trial']}) and has no result "
        f"yet: it is running, or it crashed; if it crashed, finish it with {again}.")


def claim(choice: Choice, study: Any, complete: bool = False, again: str = "") -> Any:
    """Create the study's registered model as the claim, or refuse; returns the claim.
    ``again``: how to complete a crashed evaluation, said when refusing (see ``_claimed``)."""
    name = registered_model_name(choice.study)
    uid = study.user_attrs.get(UID_ATTR, "")
    record = {"trial": choice.trial, "run_id": choice.run_id, "model_uri": choice.model_uri,
              "claimed_at": _now(), "host": socket.gethostname(), "pid": os.getpid()}
    tags = create_claim(name, study_name=choice.study, uid=uid, record=record)
    if tags is None:
        return record
    if tags.get(STUDY_TAG) != choice.study or tags.get(STUDY_UID_TAG, uid) != uid:
        raise EvaluationRefusedError(
            f"the registered model '{name}' belongs to another study (named "
            f"{tags.get(STUDY_TAG)!r}, id {tags.get(STUDY_UID_TAG, '?')}), perhaps of "
            "the same name in another Optuna storage; rename or delete that model first.")
    if RESULT_TAG in tags:
        raise _already_evaluated(choice.study, json.loads(tags[RESULT_TAG]),
                                 f"registered model '{name}'")
    if CLAIM_TAG not in tags:
        raise EvaluationRefusedError(f"a registered model named '{name}' exists but was not "
                                     "made by cnnlab evaluate; rename or delete it first.")
    held = json.loads(tags[CLAIM_TAG])
    if not complete:
        raise _claimed(choice.study, held, again)
    if held["run_id"] != choice.run_id:
        raise EvaluationRefusedError(
            f"the claimed evaluation of study '{choice.study}' is of trial {held['trial']}; a "
            f"crashed evaluation can be completed on the same model only (drop --trial and "
            "--max-params).")
    return held


def check_test_data(study: Any, data_dir: str | None) -> tuple[Any, str]:
    """The test split and where it came from, read and checked before anything is claimed:
    the validation split read from the same source must be the study's own (its digest), and
    no test image may also be a validation image (the leak guard: tuning on the test split
    is the mistake this refuses)."""
    folder = resolve_data_dir(data_dir)
    source = KERAS_SOURCE if folder is None else str(folder)
    test = load_test_split(data_dir)
    recorded = study.user_attrs.get(DATA_ATTR) or {}
    validation = load_mnist(data_dir, train_size=1, val_size=recorded.get("val_size")).validation
    if recorded and validation.sha256 != recorded["val_sha256"]:
        raise ConfigError(
            f"the data at {source} are not the study's: its validation split has digest "
            f"{validation.sha256[:12]}, the study's {recorded['val_sha256'][:12]}; point "
            "--data-dir or CNNLAB_MNIST_DIR at the data the study ran on.")
    shared = image_fingerprints(test) & image_fingerprints(validation)
    if shared:
        raise ConfigError(
            f"{len(shared):,} of the {len(test):,} test images at {source} are also validation "
            "images: that test split is not held out, so it cannot judge the study.")
    return test, source


def evaluate_study(
    study_name: str,
    *,
    trial: int | None = None,
    max_params: int | None = None,
    within: float | None = None,
    complete: bool = False,
    stores: Stores | None = None,
    data_dir: str | None = None,
    out: Callable[[str], None] = print,
) -> Evaluation:
    """Evaluate the study's chosen model on the test set, once, recorded in ``stores``
    (default: ``Stores.resolve()``); see the module's docstring."""
    stores = stores or Stores.resolve()
    study = load_existing_study(study_name, stores.storage)
    uri = tracking.use_tracking_store(stores.tracking_uri, create=False)
    again = f"`{stores.command('evaluate', study_name, '--complete')}`{stores.password_note()}"
    held = _refuse_if_evaluated(study, complete, again)
    if complete and held is not None:
        # --complete finishes the claimed evaluation, whose trial is the claim's.
        if (trial is not None and trial != held["trial"]) or max_params is not None or \
                within is not None:
            raise EvaluationRefusedError(
                f"the claimed evaluation of study '{study_name}' is of trial "
                f"{held['trial']}; a crashed evaluation can be completed on the same model "
                "only (drop --trial, --max-params and --within).")
        trial = held["trial"]
    choice = _plan_with_a_model(study, trial, max_params, uri, out, within)
    confirmed = confirmed_means(study)
    if trial is None and choice.trial in confirmed:
        record = study.user_attrs.get(CONFIRMED_ATTR, {})
        out(f"chosen from the confirmed ranking (cnnlab confirm, {record.get('n_seeds')} seeds "
            f"per trial): trial {choice.trial}, mean {_fmt(confirmed[choice.trial])}")
    test, source = check_test_data(study, data_dir)
    claim(choice, study, complete=complete, again=again)
    out(f"claimed the test evaluation of study '{study_name}': trial {choice.trial}, "
        f"{choice.model_uri}")
    evaluation = _evaluate(choice, test)  # The model's first and only look at the test split.
    evaluation = dataclasses.replace(evaluation, test_source=source, test_sha256=test.sha256)
    evaluation = _record(choice, evaluation, study)
    out(f"test accuracy {evaluation.test_accuracy:.4f}, test loss {evaluation.test_loss:.4f} "
        f"(validation {_fmt(choice.value)}); registered as "
        f"models:/{evaluation.registered_model}@{ALIAS} (version {evaluation.version})")
    out("per-class accuracy: " + "  ".join(
        f"{d}:{a:.3f}" for d, a in enumerate(evaluation.per_class_accuracy)))
    return evaluation


def _evaluate(choice: Choice, test: Any) -> Evaluation:
    import mlflow

    from cnnlab.train.quiet import import_keras

    import_keras()
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
    from cnnlab.tracking.plots import confusion_matrix_figure

    name = evaluation.registered_model
    version = register_version(name, run_id=choice.run_id, model_uri=choice.model_uri)
    evaluation = dataclasses.replace(evaluation, version=version)
    result = asdict(evaluation)
    metrics = {"test_loss": evaluation.test_loss, "test_accuracy": evaluation.test_accuracy}
    metrics.update({f"test_accuracy_class_{d}": a
                    for d, a in enumerate(evaluation.per_class_accuracy)})
    tags = {EVALUATED_AT_TAG: evaluation.evaluated_at,
            EVALUATED_MODEL_TAG: choice.model_uri,
            EVALUATED_TRIAL_TAG: str(choice.trial),
            REGISTERED_MODEL_TAG: f"models:/{name}/{version}",
            TEST_SOURCE_TAG: evaluation.test_source,
            TEST_SHA256_TAG: evaluation.test_sha256}
    fig = confusion_matrix_figure(np.array(evaluation.confusion_matrix),
                                  f"{choice.study}, trial {choice.trial}: test set")
    record_evaluation(name, version, list(filter(None, (choice.run_id, choice.parent_run_id))),
                      metrics=metrics, tags=tags, result=result, figure=fig,
                      version_tags={TEST_LOSS_TAG: f"{evaluation.test_loss:.6f}",
                                    TEST_ACCURACY_TAG: f"{evaluation.test_accuracy:.6f}",
                                    MODEL_TRIAL_TAG: str(choice.trial),
                                    TEST_SHA256_TAG: evaluation.test_sha256},
                      alias=ALIAS)
    summary = {k: result[k] for k in ("trial", "run_id", "model_uri", "test_loss",
                                      "test_accuracy", "evaluated_at", "version",
                                      "test_source", "test_sha256")}
    study.set_user_attr(EVALUATION_ATTR, summary)
    # Last: the result on the registered model is what marks the evaluation as done.
    mark_evaluated(name, summary)
    return evaluation


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _fmt(value: Any) -> str:
    """A trial's objectives for people: the score to 4 places, a size as a whole number."""
    if isinstance(value, list):
        return ", ".join(_fmt(v) if i == 0 else f"{v:,.0f}" for i, v in enumerate(value))
    return f"{value:.4f}"
