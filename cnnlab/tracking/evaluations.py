"""The records that a study was evaluated on the test set, wherever they are kept.

``cnnlab.results.evaluate`` writes them; the study runner and ``cnnlab confirm`` read them to
refuse a study whose test set has been looked at. The study's registered model is named here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cnnlab.names import (
    CLAIM_TAG,
    EVALUATED_AT_TAG,
    EVALUATED_MODEL_TAG,
    EVALUATED_TRIAL_TAG,
    EVALUATION_ATTR,
    RESULT_TAG,
    STUDY_TAG,
    STUDY_UID_TAG,
    UID_ATTR,
)


def registered_model_name(study_name: str) -> str:
    """The registry name of a study's evaluated model: the name made safe, and a short hash of
    the exact name, so that names differing only in punctuation get models of their own
    (``"rev a"`` and ``"rev-a"``), e.g. ``cnnlab-quickstart-1c2d3e4f``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name).strip("-")[:80]
    return f"cnnlab-{safe}-{hashlib.sha256(study_name.encode()).hexdigest()[:8]}"


def _legacy_model_name(study_name: str) -> str:
    """The name used before names were unique per study (still checked for records)."""
    return "cnnlab-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name).strip("-")


def evaluation_records(study: Any) -> list[tuple[str, dict]]:
    """Every record that the study was evaluated (or that its evaluation was claimed), as
    (where, record) pairs: the study's attribute, its registered model (result or claim, under
    today's name and the name used before), and the test metrics on any run of the study,
    deleted runs included. Any one of them means the test set was looked at."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name, uid = study.study_name, study.user_attrs.get(UID_ATTR)
    found: list[tuple[str, dict]] = []
    attr = study.user_attrs.get(EVALUATION_ATTR)
    if attr:
        found.append(("the study's attribute in Optuna", attr))
    for model_name in dict.fromkeys((registered_model_name(name), _legacy_model_name(name))):
        try:
            tags = client.get_registered_model(model_name).tags
        except MlflowException:
            continue
        if tags.get(STUDY_TAG) != name or tags.get(STUDY_UID_TAG, uid) != uid:
            continue  # Another study's (a name that sanitizes alike, or another storage).
        if RESULT_TAG in tags:
            found.append((f"registered model '{model_name}'", json.loads(tags[RESULT_TAG])))
        elif CLAIM_TAG in tags:
            found.append((f"registered model '{model_name}' (claim)",
                          {**json.loads(tags[CLAIM_TAG]), "claim": True}))
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        # The study's runs are told by their tags here, not in the filter string: MLflow's
        # filter parser has no escape for a quote or a backslash in a study's name.
        for run in client.search_runs([experiment.experiment_id],
                                      filter_string="metrics.test_accuracy >= 0",
                                      run_view_type=ViewType.ALL, max_results=1000):
            tags, metrics = run.data.tags, run.data.metrics
            if (tags.get(STUDY_UID_TAG) != uid) if uid else (tags.get(STUDY_TAG) != name):
                continue
            found.append((f"MLflow run {run.info.run_id}", {
                "evaluated_at": tags.get(EVALUATED_AT_TAG, "?"),
                "trial": tags.get(EVALUATED_TRIAL_TAG, "?"),
                "model_uri": tags.get(EVALUATED_MODEL_TAG, "?"),
                "test_accuracy": metrics["test_accuracy"],
                "test_loss": metrics.get("test_loss", float("nan"))}))
    return found


def create_claim(name: str, *, study_name: str, uid: str, record: dict[str, Any]) -> dict | None:
    """Create the study's registered model ``name`` with the claim ``record`` on it (the claim of
    ``cnnlab.results.evaluate``): None if it was created, else the tags of the model of that name
    that exists already. Creation is atomic in the tracking store: of two claims made at once,
    exactly one creates the model."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.create_registered_model(
            name, tags={STUDY_TAG: study_name, STUDY_UID_TAG: uid, CLAIM_TAG: json.dumps(record)},
            description=f"The model of study '{study_name}' chosen on validation and "
                        "evaluated once on the MNIST test set by `cnnlab evaluate`.")
        return None
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return dict(client.get_registered_model(name).tags)


def register_version(name: str, *, run_id: str, model_uri: str) -> str:
    """The number of the version of registered model ``name`` made from run ``run_id``'s model
    (a crashed evaluation may have registered it already), else of a new one: what
    ``mlflow.register_model`` records (the version's source and run, and the version on the
    logged model's ``mlflow.modelVersions`` tag), without the line it prints when the registered
    model exists, as the claim's always does ("Registered model ... already exists. Creating a
    new version of this model...")."""
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    client = MlflowClient()
    versions = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
    if versions:
        return str(versions[0].version)
    source, model_id = model_uri, None
    if source.startswith("models:/"):  # MLflow 3: the run's logged model.
        model_id = source.removeprefix("models:/")
    elif RunsArtifactRepository.is_runs_uri(source):  # A model logged as the run's artifacts.
        source = RunsArtifactRepository.get_underlying_uri(source)
    created = client.create_model_version(name, source, run_id=run_id, model_id=model_id)
    if model_id is not None:
        linked = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
        versions = [*json.loads(linked or "[]"), {"name": created.name,
                                                   "version": created.version}]
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})
    return str(created.version)


def record_evaluation(name: str, version: str, run_ids: list[str], *, metrics: dict[str, float],
                      tags: dict[str, str], result: dict[str, Any], figure: Any,
                      version_tags: dict[str, str], alias: str) -> None:
    """The test result on each of ``run_ids`` (``metrics``, ``tags``, ``evaluation/result.json``
    and the confusion matrix ``figure`` as ``evaluation/confusion_matrix.png``), and on version
    ``version`` of registered model ``name`` (``version_tags``, and ``alias`` pointing at it).
    The result on the registered model itself, which marks the evaluation done, is
    ``mark_evaluated``'s, written last."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for run_id in run_ids:
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        client.log_dict(run_id, result, "evaluation/result.json")
        client.log_figure(run_id, figure, "evaluation/confusion_matrix.png")
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, alias, version)


def mark_evaluated(name: str, summary: dict[str, Any]) -> None:
    """The evaluation's ``summary`` on registered model ``name``: what says it is done."""
    from mlflow.tracking import MlflowClient

    MlflowClient().set_registered_model_tag(name, RESULT_TAG, json.dumps(summary))
