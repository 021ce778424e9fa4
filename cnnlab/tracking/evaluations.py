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
