"""Names that cnnlab keeps on Optuna studies (user attributes). Trial attributes and outcomes
are in ``cnnlab.trials``. Plain strings, no imports: every module can share them."""

CONFIG_ATTR = "cnnlab_config"
"""The study file's identity (all but the budget and the words): resuming with another file is
refused."""
DATA_ATTR = "cnnlab_data"
"""The digests of the splits the study runs on: resuming with other data is refused."""
UID_ATTR = "cnnlab_study_uid"
"""A random id made when the study is created: it names the study's MLflow run and its
registered model, so that a study of the same name in another Optuna storage never adopts
this one's records."""
EVALUATION_ATTR = "cnnlab_evaluation"
"""Set by ``cnnlab evaluate``: the study's one look at the test set."""
PARENT_RUN_ATTR = "mlflow_parent_run_id"
"""The MLflow run id of the study's run."""
FRONT_ATTR = "cnnlab_front"
"""The numbers of the trials on the study's front of validation metric against size, as last
tagged in MLflow (``cnnlab.front`` on their runs)."""
CONFIRMED_ATTR = "cnnlab_confirmed"
"""Set by ``cnnlab confirm``: the seeds, each confirmed trial's scores over them, the ranking
and the trials tied with the best (``cnnlab.confirm``)."""
