"""Is this the study it claims to be? The checks made when a study is opened, and its identity.

A study's identity is its configuration (``StudyConfig.identity``: the file's settings but the
budget and the words; for a study script, what its search function draws,
``cnnlab.search.script``), its data (the digests of the training and validation splits) and its
storage (a random id kept in the study, which names its MLflow study run): resuming with another
file or other data is refused. A study that was evaluated on the test set takes no more trials,
and ``--from-study`` starts a new study from the trials of one that searched the same space.
"""

from __future__ import annotations

import uuid
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.names import (
    CONFIG_ATTR,
    COPIED_FROM_ATTR,
    DATA_ATTR,
    DESCRIPTION_ATTR,
    EVALUATION_ATTR,
    OUTCOME_ATTR,
    UID_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.search.config import StudyConfig
from cnnlab.tracking import runs as tracking
from cnnlab.tracking.stores import option_with, redact
from cnnlab.train.data import MnistSplits


def data_identity(data: MnistSplits) -> dict[str, Any]:
    """What names the data a study runs on (kept in the study; compared on resume)."""
    return {"train_sha256": data.train.sha256, "val_sha256": data.validation.sha256,
            "train_size": len(data.train), "val_size": len(data.validation)}


def refuse_if_evaluated(study: Any, config: StudyConfig, tracking_uri: str | None) -> None:
    """An evaluated study takes no more trials: its best model was tested, and going on would
    let the test set steer the search. Every record of an evaluation counts (see
    ``cnnlab.tracking.evaluations.evaluation_records``), a claim of one in progress too."""
    record = study.user_attrs.get(EVALUATION_ATTR)
    if record is None and study.get_trials(deepcopy=False):
        from cnnlab.tracking.evaluations import evaluation_records

        tracking.use_tracking_store(tracking_uri)
        records = evaluation_records(study)
        if records:
            record = records[0][1]
    if not record:
        return
    raise ConfigError(
        f"study '{config.name}' was evaluated on the test set at "
        f"{record.get('evaluated_at', record.get('claimed_at'))} (trial {record.get('trial')}"
        + (f", test accuracy {float(record['test_accuracy']):.4f}"
           if "test_accuracy" in record else "") + "), so "
        "it takes no more trials (the test set would steer the search); to go on, give the "
        "study a new name in its file and run it with "
        f"{option_with('--from-study', config.name)} to start from its trials.")


def check_same_study(study: Any, config: StudyConfig, data: MnistSplits,
                      new: bool = False) -> None:
    """A study name stands for one configuration and one data set: resuming with others is
    refused. A new study gets its identity (config, data digests, a random id) here."""
    identity = config.identity()
    attrs = study.user_attrs
    stored = attrs.get(CONFIG_ATTR)
    if new and (stored is not None or study.trials):
        raise ConfigError(f"study '{config.name}' already exists and did not start from that "
                          "study; --from-study starts a new study: give it a new name in its "
                          "file.")
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, identity)
        study.set_user_attr(DESCRIPTION_ATTR, config.description)
    elif stored != identity:
        keys = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise ConfigError(
            f"study '{config.name}' already exists with a different configuration "
            f"(differs in: {', '.join(keys)}); give the study a new name, or restore the file.")
    now = data_identity(data)
    was = attrs.get(DATA_ATTR)
    if was is None:
        study.set_user_attr(DATA_ATTR, now)
    elif (was["train_sha256"], was["val_sha256"]) != (now["train_sha256"], now["val_sha256"]):
        raise ConfigError(
            f"study '{config.name}' ran on other data (training {was['train_sha256'][:12]}, "
            f"validation {was['val_sha256'][:12]}; given now: training "
            f"{now['train_sha256'][:12]}, validation {now['val_sha256'][:12]}); point "
            "--data-dir or CNNLAB_MNIST_DIR at the data it ran on, or give the study a new name.")
    if UID_ATTR not in attrs:
        study.set_user_attr(UID_ATTR, uuid.uuid4().hex)


def source_study(name: str | None, config: StudyConfig, storage: Any, url: str) -> Any:
    """The study that --from-study names, checked: it exists, is another study, and searched
    the same space with the same training (all but its name and budget)."""
    import optuna

    if name is None:
        return None
    if name == config.name:
        raise ConfigError(f"--from-study names the study itself ('{name}'); give the new study "
                          "a new name in its file.")
    if name not in optuna.study.get_all_study_names(storage=storage):
        raise ConfigError(f"--from-study: no study named {name!r} in {redact(url)}.")
    source = optuna.load_study(study_name=name, storage=storage)
    theirs = dict(source.user_attrs.get(CONFIG_ATTR, {}))
    ours = config.identity()
    theirs.pop("name", None)
    ours.pop("name", None)
    if theirs != ours:
        keys = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ConfigError(f"--from-study: study '{name}' was run with a different "
                          f"configuration (differs in: {', '.join(keys)}); a study can start "
                          "from trials of the same search only.")
    return source


def copy_trials(source: Any, study: Any) -> int:
    """Add the source study's finished, trained trials to the new study, marked as copies."""
    import optuna

    copies = []
    for trial in source.get_trials(deepcopy=False):
        if not T.counts(trial) or trial.state.name == "FAIL":
            continue
        attrs = {k: v for k, v in trial.user_attrs.items()
                 if k not in (EVALUATION_ATTR, OUTCOME_ATTR)}
        attrs[OUTCOME_ATTR] = "copied"
        attrs[COPIED_FROM_ATTR] = {"study": source.study_name, "trial": trial.number}
        copies.append(optuna.trial.create_trial(
            state=trial.state,
            values=trial.values if trial.state.name == "COMPLETE" else None,
            params=trial.params, distributions=trial.distributions, user_attrs=attrs,
            system_attrs={k: v for k, v in trial.system_attrs.items()
                          if k.startswith("constraints")},
            intermediate_values=trial.intermediate_values))
    study.add_trials(copies)
    return len(copies)
