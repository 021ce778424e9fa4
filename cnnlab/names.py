"""The names cnnlab writes and reads in its stores, in one place: the user attributes it keeps on
Optuna studies and trials, the tags it puts on MLflow runs and registered models, and the kinds
of run it makes (the value of ``KIND_TAG``).

Plain strings, no imports: every module (and the framework-free ones) can share them. The values
are what the stores hold: stores written by earlier versions of cnnlab are read with them, so a
value never changes. What a trial's outcome means, and whether it counts, is in
``cnnlab.search.trials``.
"""

# -- Optuna study attributes ----------------------------------------------------------------

CONFIG_ATTR = "cnnlab_config"
"""The study file's identity (all but the budget and the words): resuming with another file is
refused."""
DATA_ATTR = "cnnlab_data"
"""The digests of the splits the study runs on: resuming with other data is refused."""
UID_ATTR = "cnnlab_study_uid"
"""A random id made when the study is created: it names the study's MLflow run and its
registered model, so that a study of the same name in another Optuna storage never adopts
this one's records."""
DESCRIPTION_ATTR = "description"
"""The study file's description, kept when the study is created."""
EVALUATION_ATTR = "cnnlab_evaluation"
"""Set by ``cnnlab evaluate``: the study's one look at the test set."""
PARENT_RUN_ATTR = "mlflow_parent_run_id"
"""The MLflow run id of the study's run."""
FRONT_ATTR = "cnnlab_front"
"""The numbers of the trials on the study's front of validation metric against size, as last
tagged in MLflow (``cnnlab.front`` on their runs)."""
WARM_START_ATTR = "cnnlab_warm_start"
"""A study started warm (``warm_start`` in its file): the studies it took trials from, how many
it copied from each and how many it left out, by reason (``cnnlab.study.warm``)."""
CONFIRMED_ATTR = "cnnlab_confirmed"
"""Set by ``cnnlab confirm``: the seeds, each confirmed trial's scores over them, the ranking
and the trials tied with the best (``cnnlab.results.confirm``)."""

# -- Optuna trial attributes ----------------------------------------------------------------

RUN_ID_ATTR = "mlflow_run_id"
"""The MLflow run id of the trial's run."""
FAIL_REASON_ATTR = "fail_reason"
"""Why a trial failed (a diverging loss, say)."""
REASON_ATTR = "cnnlab_reason"
"""Why a trial was not trained (infeasible, or a duplicate), in a sentence."""
WORKER_ATTR = "cnnlab_worker"
"""The worker process (host, pid) that runs the trial."""
OUTCOME_ATTR = "cnnlab_outcome"
"""What became of the trial: one of ``cnnlab.search.trials.OUTCOMES``."""
CONFIG_KEY_ATTR = "cnnlab_config_key"
"""A digest of the trial's whole configuration: equal keys, equal trials."""
DUPLICATE_OF_ATTR = "cnnlab_duplicate_of"
"""The number of the earlier trial whose result a duplicate reuses."""
SAMPLER_SEED_ATTR = "cnnlab_sampler_seed"
"""The seed the study's sampler drew this trial with (``sampling.trial_seed``)."""
COPIED_FROM_ATTR = "cnnlab_copied_from"
"""{study, trial} of a trial copied from another study."""
CURVE_ATTR = "cnnlab_curve"
"""The monitored metric after each epoch so far, kept by the dominance pruner."""
PRUNED_BY_ATTR = "cnnlab_pruned_by"
"""Why a trial was stopped early, by which trial or rule (the dominance pruner, the rungs)."""
FIDELITY_ATTR = "cnnlab_fidelity"
"""A study with rungs: the rung a trial trained in last, as ``{"rung": k, "rungs": n, "epochs":
e, "train_size": images}`` (rungs counted from 1; ``cnnlab.spec.fidelity``)."""
SPEC_ATTR = "cnnlab_spec"
"""The trial's whole ``TrialSpec`` (``TrialSpec.to_dict``), its seed included: what ``cnnlab
confirm`` re-trains, without drawing the trial again from the search space."""
ARCHITECTURE_ATTR = "architecture"
"""The trial's architecture, described in one line."""
N_PARAMS_ATTR = "n_params"
"""The trial's network's parameter count (a size objective too)."""
MACS_ATTR = "macs"
"""The trial's network's multiply-adds per image (a size objective too)."""
SEED_ATTR = "seed"
DESIGN_KNOB_ATTR = "design_knob"
"""A designed experiment's trial: the knob its setting changes (``base``, ``filters``, or
``filters x kernel_size`` from a factorial; also an MLflow parameter of its run)."""
DESIGN_VALUE_ATTR = "design_value"
"""A designed experiment's trial: the knob's value as a label (``x2``, ``5``, ``base``)."""
"""The seed the trial's network was trained with."""

# -- MLflow tags: cnnlab's ------------------------------------------------------------------

KIND_TAG = "cnnlab.kind"
"""What a run is: one of the run kinds below."""
STUDY_TAG = "cnnlab.study"
"""The name of the study a run or registered model belongs to."""
STUDY_UID_TAG = "cnnlab.study_uid"
"""The random id of that study (``UID_ATTR``)."""
TRIAL_NUMBER_TAG = "cnnlab.trial_number"
"""The Optuna number of a trial run's trial."""
COMMAND_TAG = "cnnlab.command"
"""The command line that made the run (passwords hidden)."""
STATE_TAG = "cnnlab.state"
"""How a trial ended, as Optuna says it (COMPLETE, PRUNED, FAIL)."""
OUTCOME_TAG = "cnnlab.outcome"
"""What became of a trial (``OUTCOME_ATTR``)."""
REASON_TAG = "cnnlab.reason"
"""Why a trial was not trained, was pruned or failed, in a sentence."""
DUPLICATE_OF_TAG = "cnnlab.duplicate_of"
"""The number of the earlier trial whose result a duplicate reuses."""
FIDELITY_TAG = "cnnlab.fidelity"
"""A study with rungs: the fidelity a trial reached, ``rung 2 of 3: 3 epochs on 50,000 images``."""
PRUNED_AT_EPOCH_TAG = "cnnlab.pruned_at_epoch"
"""The last epoch a pruned trial trained, counted from 1: the number of epochs it ran."""
FRONT_TAG = "cnnlab.front"
"""On a trial run, whether it is on the study's front (true/false); on the study run, the
front's trials (#n #m ...)."""
BEST_TRIAL_TAG = "cnnlab.best_trial"
"""On the study run: the number of the best trial so far."""
BEST_RUN_ID_TAG = "cnnlab.best_run_id"
"""On the study run: the run id of the best trial so far."""
CONFIRMS_TAG = "cnnlab.confirms"
"""On a confirmation run: the trial number it re-trains (or ``notebook``)."""
SEED_TAG = "cnnlab.seed"
"""On a confirmation run: its seed."""
CONFIRMED_BEST_TAG = "cnnlab.confirmed_best"
"""On the study run: the best trial of the confirmed ranking."""
CONFIRMED_TIED_TAG = "cnnlab.confirmed_tied"
"""On the study run: the trials tied with the best in the confirmed ranking (#n #m ...)."""
CONFIRM_RANK_TAG = "cnnlab.confirm_rank"
"""On a confirmed trial's run: its rank in the confirmed ranking."""
CONFIRM_TIED_TAG = "cnnlab.confirm_tied"
"""On a confirmed trial's run: whether it is tied with the best (true/false)."""
CLAIM_TAG = "cnnlab.claim"
"""On the registered model: the claim of an evaluation in progress (JSON)."""
RESULT_TAG = "cnnlab.result"
"""On the registered model: the evaluation's result (JSON); marks the evaluation as done."""
EVALUATED_AT_TAG = "cnnlab.evaluated_at"
"""On the evaluated trial's run and the study run: when the test set was looked at."""
EVALUATED_MODEL_TAG = "cnnlab.evaluated_model"
"""On those runs: the URI of the evaluated model."""
EVALUATED_TRIAL_TAG = "cnnlab.evaluated_trial"
"""On those runs: the number of the evaluated trial."""
REGISTERED_MODEL_TAG = "cnnlab.registered_model"
"""On those runs: the registered model version (models:/NAME/VERSION)."""
TEST_SOURCE_TAG = "cnnlab.test_source"
"""On those runs: where the test split was read from."""
TEST_SHA256_TAG = "cnnlab.test_sha256"
"""On those runs and the model version: the test split's digest."""
MODEL_TRIAL_TAG = "cnnlab.trial"
"""On the registered model version: the number of its trial."""
TEST_LOSS_TAG = "test_loss"
"""On the registered model version: its test loss."""
TEST_ACCURACY_TAG = "test_accuracy"
"""On the registered model version: its test accuracy."""

# -- MLflow tags: MLflow's and Optuna's conventions that cnnlab writes -------------------------

PARENT_RUN_TAG = "mlflow.parentRunId"
"""MLflow's link from a nested run to its parent."""
NOTE_TAG = "mlflow.note.content"
"""MLflow's description of a run (the study file's description on the study run)."""
OPTUNA_STUDY_TAG = "optuna.study_name"
"""The Optuna study's name, as Optuna's MLflow integration tags it."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""MLflow's kind of an experiment, as its UI's kind selector sets it (read by MLflow UIs that
have no workflow toggle; MLflow 3.17's reads the ``workflowType`` of its URL instead)."""
EXPERIMENT_KIND_MODEL_TRAINING = "custom_model_development"
"""The value of ``EXPERIMENT_KIND_TAG`` for model training, as opposed to GenAI development."""
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
"""MLflow's experiment tags holding a runs page view that a URL opens with
``viewStateShareKey=KEY`` (tag ``mlflow.sharedViewState.KEY``): columns, grouping, sort."""
VIEW_KEY = "cnnlab"
"""The key of cnnlab's view of an experiment's runs (``SHARED_VIEW_TAG_PREFIX + VIEW_KEY``)."""

# -- Run kinds (values of KIND_TAG) ---------------------------------------------------------

KIND_STUDY = "study"
"""A study's run: one per study, the parent of its trial and confirmation runs."""
KIND_TRIAL = "trial"
"""A trial's run, nested under its study's run."""
KIND_CONFIRM = "confirm"
"""One seed of a confirmation (``cnnlab confirm``), nested under the study's run."""
KIND_TRAIN = "train"
"""A run of ``cnnlab train``."""
REPORT_ARTIFACT = "report.html"
"""The report's name among the study run's artifacts (``cnnlab report``; ``cnnlab ui`` links it)."""
