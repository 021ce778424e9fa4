"""MLflow tracking: the stores, and what one training run records.

The objective and ``cnnlab.train.fit`` know nothing of MLflow. This module hands training a Keras
callback for the per-epoch curves and logs everything else before and after it: parameters, the
per-layer parameter table, the data used, the two curve plots and the model.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from cnnlab.errors import CnnlabError
from cnnlab.spec.architecture import Architecture
from cnnlab.spec.defaults import LOSS
from cnnlab.spec.shapes import LayerTable
from cnnlab.spec.trialspec import TrialSpec
from cnnlab.tracking import ui
from cnnlab.tracking.plots import CURVE_SAVE_KWARGS, curve_figures
from cnnlab.tracking.stores import (
    experiment_folder,
    local_artifact_path,
    mlflow_command,
    password_note,
    program,
    redact,
    reroot_moved_store,
    resolve_tracking_uri,
    shell_uri,
    sqlite_path,
)
from cnnlab.train.data import KERAS_MNIST_URL, KERAS_SOURCE, MnistSplits

DEFAULT_EXPERIMENT = "cnnlab-train"
MODEL_NAME = "model"


def use_tracking_store(uri: str | None = None, *, create: bool = True) -> str:
    """Point MLflow at the store (creating a new local SQLite store whole:
    ``cnnlab.tracking.preflight.create_store``), its model registry included, and return its
    URI.
    With ``create=False`` (commands that only read) a local store that does not exist is a
    ``ConfigError``, and nothing is created."""
    uri = resolve_tracking_uri(uri)
    bound_server_waits()
    db = sqlite_path(uri)
    if db is not None and not create and not db.exists():
        from cnnlab.errors import ConfigError

        raise ConfigError(f"there is no MLflow store at {db} (nothing was tracked there); run a "
                          "study first, or name the store with --tracking-uri.")
    if db is not None:
        from cnnlab.tracking.preflight import TRACKING, create_store

        create_store(db, TRACKING)  # Whole or not at all, whatever interrupts it.
        reroot_moved_store(uri)  # A store whose folder was moved: its artifacts beside it.
    # MLflow prints "View run ... at: URL" after every run on a tracking server, with the URL
    # as given, password and all; cnnlab says where runs are itself, with passwords hidden.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)
    # Registered models (the record of a study's evaluation) live in the tracking store too,
    # never in a registry that $MLFLOW_REGISTRY_URI names.
    mlflow.set_registry_uri(uri)
    return uri


SERVER_WAITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1.0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""cnnlab's bound on MLflow's waits for a tracking server, where the environment sets none.
MLflow retries a request that finds no server 7 times, sleeping 0, 4, 8, ... 64, 120 s (about 4
minutes), and waits up to 120 s for each answer: a stopped server held a study silent for
minutes. Here a request is tried 5 times, sleeping 0, 4, 8 and 16 s (and up to 1 s of jitter
each): a server that refuses connections is given about 30 s, which a restarted ``cnnlab ui``
or ``mlflow server`` can use to come back, and one that accepts them but does not answer about
2 minutes (5 x 20 s, and the sleeps)."""

IMPATIENT_WAITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
"""MLflow's waits for the writes that close a study after an interrupt: one try, 5 s."""


def bound_server_waits() -> None:
    """Set ``SERVER_WAITS`` in the environment where it does not say otherwise (MLflow reads
    them at each request; workers inherit them)."""
    for name, value in SERVER_WAITS.items():
        os.environ.setdefault(name, value)


@contextmanager
def impatient() -> Iterator[None]:
    """Within the block, MLflow's HTTP requests get one try and 5 s to be answered
    (``IMPATIENT_WAITS``): the writes that close a study after Ctrl-C or SIGTERM must not keep
    the command from ending when the tracking server is gone."""
    saved = {name: os.environ.get(name) for name in IMPATIENT_WAITS}
    os.environ.update(IMPATIENT_WAITS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class TrackingServerGone(CnnlabError):
    """The MLflow tracking server did not answer, retries and all; the message says which, why,
    and to run the command again when it is back."""


def server_gone(err: BaseException) -> bool:
    """Whether ``err`` (an ``Exception``: an interrupt is never this) is MLflow giving up on
    a tracking server that did not answer: no connection, no answer in time, or the retries of
    a server error spent (``requests``'s errors, somewhere in the chain of causes)."""
    import requests

    if not isinstance(err, Exception):
        return False
    kinds = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
             requests.exceptions.RetryError)
    return any(isinstance(e, kinds) for e in _causes(err))


def server_gone_error(err: BaseException, uri: str, trial: int | None = None
                      ) -> TrackingServerGone | None:
    """The one sentence for ``err`` if the tracking server ``uri`` did not answer
    (``server_gone``; ``err`` itself if it is that sentence already), naming the trial it
    failed, if one; else None."""
    if isinstance(err, TrackingServerGone):
        return err
    if isinstance(err, CnnlabError) or not server_gone(err):  # One sentence already.
        return None
    failed = f"; trial {trial} is failed" if trial is not None else ""
    return TrackingServerGone(
        f"the MLflow tracking server {redact(uri)} does not answer ({server_cause(err)}, "
        f"tried {1 + int(os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '7'))} times)"
        f"{failed}; run the same command when it is back.")


def server_cause(err: BaseException) -> str:
    """Why a request found no server, as the OS said it (``Connection refused``), or that
    no answer came in time."""
    import requests

    causes = list(_causes(err))
    for e in reversed(causes):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    if any(isinstance(e, (requests.exceptions.Timeout, TimeoutError)) for e in causes):
        return f"no answer in {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '120')} s"
    text = str(causes[-1]).strip()
    return redact(text.splitlines()[0]) if text else type(causes[-1]).__name__


def _causes(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from or while handling, outermost first (as
    Python's traceback shows them: not the context of one raised ``from None``)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ if current.__cause__ is not None or \
            current.__suppress_context__ else current.__context__


def forget_active_runs() -> None:
    """Drop MLflow's active runs of this process without a word to the store: MLflow ends
    them at exit otherwise (``mlflow.end_run`` in its ``atexit``), which waits out the retries
    when the tracking server is gone, and would mark FINISHED a run that an interrupt left
    open. The next run of the command closes them as Optuna recorded their trials
    (``StudyTracker.close_orphan_runs``). MLflow has no public call that leaves a run without
    ending it: its stack of active runs is emptied here."""
    from mlflow.environment_variables import MLFLOW_RUN_ID
    from mlflow.tracking import fluent

    fluent._active_run_stack.get().clear()
    MLFLOW_RUN_ID.unset()


PAGE_SIZE = 1000
"""Runs asked of MLflow a page at a time (MLflow's own default page), every page read."""


def search_all_runs(client: Any, experiment_ids: list[str], filter_string: str = "", *,
                    page_size: int = PAGE_SIZE, **kwargs: Any) -> list[Any]:
    """Every run that ``client.search_runs`` finds, page after page (MLflow's ``page_token``):
    one call returns at most one page (1,000 runs by default, 50,000 at most), and a study of
    more trials than that would otherwise be cut short without a word. ``kwargs`` go to
    ``search_runs`` (``order_by``, ``run_view_type``)."""
    found, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string,
                                  max_results=page_size, page_token=token, **kwargs)
        found.extend(page)
        token = page.token
        if not token:
            return found


GONE_DELETED = "deleted"
GONE_WITH_EXPERIMENT = "experiment deleted"
GONE_REMOVED = "removed"
GONE = {
    GONE_DELETED: "deleted in MLflow (restorable: mlflow runs restore)",
    GONE_WITH_EXPERIMENT: "in a deleted MLflow experiment (restorable: mlflow experiments "
                          "restore)",
    GONE_REMOVED: "removed for good (by mlflow gc, alone or with the experiment; or "
                  "recorded in another tracking store)",
}
"""How a run can be gone from the tracking store, in words (``find_runs``)."""


def find_runs(client: Any, run_ids: Any, found: dict[str, Any] | None = None, *,
              experiment_id: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The runs of ``run_ids`` that are in the tracking store and live (active, in an active
    experiment), by id, and how each other one went (a key of ``GONE``): deleted, in a deleted
    experiment, or removed (not in the store at all: ``mlflow gc`` removed it for good, with
    its experiment or alone, or it was recorded in another store). ``found``: runs read
    already (a search of the study's experiment), by id; ``experiment_id``: where most of the
    others are, looked up there in one search (``attributes.run_id IN (...)``, deleted runs
    included) instead of one read each (about 5 ms a run on a SQLite store, 2 in the search);
    the rest are asked for one by one (a copied trial's run lives in another study's
    experiment). Trials whose runs are gone are run-less: nothing is written to those runs,
    and nothing is read from them."""
    found = dict(found or {})
    if experiment_id is not None:
        from mlflow.entities import ViewType

        wanted = [r for r in dict.fromkeys(run_ids) if r and r not in found]
        for start in range(0, len(wanted), 100):  # 100 ids a search: a short filter.
            chunk = wanted[start:start + 100]  # Run ids are hexadecimal: no quoting.
            listed = ", ".join(f"'{run_id}'" for run_id in chunk)
            found.update((run.info.run_id, run) for run in client.search_runs(
                [experiment_id], f"attributes.run_id IN ({listed})",
                run_view_type=ViewType.ALL, max_results=len(chunk)))
    live: dict[str, Any] = {}
    gone: dict[str, str] = {}
    experiments: dict[str, str] = {}
    for run_id in dict.fromkeys(r for r in run_ids if r):
        run = found.get(run_id)
        if run is None:
            try:
                run = client.get_run(run_id)
            except mlflow.exceptions.MlflowException as err:
                if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                gone[run_id] = GONE_REMOVED
                continue
        if run.info.lifecycle_stage != "active":
            gone[run_id] = GONE_DELETED
            continue
        number = run.info.experiment_id
        if number not in experiments:
            experiments[number] = client.get_experiment(number).lifecycle_stage
        if experiments[number] != "active":
            gone[run_id] = GONE_WITH_EXPERIMENT
            continue
        live[run_id] = run
    return live, gone


def gone_in_words(gone: dict[Any, str], what: str = "trial") -> str:
    """Trials (or other things) whose runs are gone, by how (``find_runs``), in words:
    ``the MLflow runs of 2 trials are gone: #0 #1 removed for good (...)``."""
    from cnnlab.spec.words import count

    parts = []
    for how, words in GONE.items():
        keys = sorted(key for key, kind in gone.items() if kind == how)
        if keys:
            parts.append(" ".join(f"#{key}" for key in keys) + f" {words}")
    return f"the MLflow runs of {count(len(gone), what)} are gone: {'; '.join(parts)}"


def missing_local_path(location: str | None, inside: str | None = None) -> Path | None:
    """The path that is missing of a local artifact location (``file://`` URI or absolute
    path): the location itself, or ``inside`` it (a file such as ``MLmodel``); None when it is
    all there, or the location is not local (a server's, a bucket's) or unknown."""
    path = local_artifact_path(location or "")
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        return path
    if inside is not None and not (path / inside).exists():
        return path / inside
    return None


def get_or_create_experiment(name: str, uri: str | None = None) -> str:
    """The id of experiment ``name``, created if needed.

    For a SQLite store, artifacts go beside the database (``<db folder>/<experiment>``) rather
    than into MLflow's default ``./mlruns`` of whatever the current directory is. The
    experiment is tagged for the MLflow UI's model-training pages and cnnlab's view of its runs
    (``cnnlab.tracking.ui``), an existing one too if it lacks the tags.
    """
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        check_experiment_active(experiment, uri)
        ui.tag_experiment(client, experiment)
        return experiment.experiment_id
    location = None
    db = sqlite_path(resolve_tracking_uri(uri))
    if db is not None:
        location = (db.parent.resolve() / experiment_folder(name)).as_uri()
    return client.create_experiment(name, artifact_location=location, tags=ui.experiment_tags())


def check_experiment_active(experiment: Any, uri: str | None = None) -> None:
    """A deleted experiment takes no runs, and MLflow keeps its name: say what to do, as
    commands on the tracking store ``uri`` (default: as resolved) that work as printed."""
    from cnnlab.errors import ConfigError

    if experiment is not None and experiment.lifecycle_stage != "active":
        uri = resolve_tracking_uri(uri)
        number = experiment.experiment_id
        restore = mlflow_command(f"experiments restore --experiment-id {number}", uri)
        if uri.startswith(("http://", "https://")):  # gc works on the server's own database.
            remove = "on the server, with mlflow gc on its backend store"
        else:
            store = shell_uri(uri)
            remove = (f"`{program('mlflow')} gc --backend-store-uri {store} --tracking-uri {store} "
                      f"--experiment-ids {number}`")
        raise ConfigError(
            f"the MLflow experiment '{experiment.name}' was deleted (id {number}); restore it "
            f"(`{restore}`) or remove it for good ({remove}), then run again"
            f"{password_note((uri, 'MLFLOW_TRACKING_URI'))}.")


def check_experiment(name: str, uri: str | None = None) -> None:
    """Refuse, before anything is written, a study whose MLflow experiment was deleted."""
    db = sqlite_path(resolve_tracking_uri(uri))
    if db is not None and not db.exists():
        return  # A new local store: no experiment yet.
    check_experiment_active(MlflowClient(resolve_tracking_uri(uri)).get_experiment_by_name(name),
                            uri)


def epoch_metrics_callback() -> Any:
    """A Keras callback logging ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy`` to the
    active MLflow run once per epoch (step = the epoch's number, from 1: the first epoch is step
    1), and, as training begins, the optimizer's configuration (``optimizer_*`` parameters) and
    the model's summary: what ``mlflow.keras.MlflowCallback`` records (though it counts steps
    from 0), written synchronously (its background queue cost about a second a trial to
    drain)."""
    from cnnlab.train.callbacks import EpochEnd

    return EpochEnd(log_epoch_metrics, on_train_begin=log_model_setup)


def log_model_setup(model: Any) -> None:
    """The optimizer's configuration (``optimizer_*`` parameters) and the model's summary
    (``model_summary.txt``), on the active run."""
    mlflow.log_params({f"optimizer_{k}": v for k, v in model.optimizer.get_config().items()})
    lines: list[str] = []
    model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    mlflow.log_text("\n".join(lines), artifact_file="model_summary.txt")


def log_epoch_metrics(epoch: int, logs: dict[str, Any], timestamp: int | None = None) -> None:
    """One epoch's metrics on the active run, at step ``epoch`` (the epoch's number, from 1, as
    ``cnnlab.train.callbacks.EpochEnd`` gives it) and at ``timestamp`` (milliseconds since
    the Unix epoch, if given; else now)."""
    if logs:
        mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch, synchronous=True,
                           timestamp=timestamp)


def architecture_params(arch: Architecture, table: LayerTable) -> dict[str, Any]:
    """Architecture parameters plus per-layer and total parameter counts."""
    params = arch.to_params()
    params.update({f"{row.name}_params": row.params for row in table.rows if row.params})
    params["total_params"] = table.total_params
    params["total_macs"] = table.total_macs
    derived = getattr(arch, "derived_params", None)
    if derived is not None:
        params.update(derived())
    return params


def data_params(data: MnistSplits) -> dict[str, Any]:
    return {
        "data_source": data.source,
        "train_size": len(data.train),
        "val_size": len(data.validation),
        "train_sha256": data.train.sha256,
        "val_sha256": data.validation.sha256,
    }


def log_run_inputs(spec: TrialSpec, data: MnistSplits,
                   extra: dict[str, Any] | None = None) -> None:
    """Everything known before training: parameters (the spec's, per-layer counts, the data
    used, ``extra``), the spec itself (``trial_spec.json``, ``architecture.json``), the layer
    table and the data as MLflow datasets. An architecture that cannot be built gets its
    parameters and spec only."""
    arch = spec.architecture
    params = {**(extra or {}), **spec.to_params()}
    try:
        table = arch.layer_table()
    except Exception:
        log_batch(params=params)
        log_files({"trial_spec.json": _json(spec.to_dict()),
                   "architecture.json": _json(arch.to_dict())})
        return
    params.update(architecture_params(arch, table))
    params["loss"] = LOSS
    params.update(data_params(data))
    log_batch(params=params, metrics={"n_params": table.total_params, "macs": table.total_macs})
    log_files({"trial_spec.json": _json(spec.to_dict()),
               "architecture.json": _json(arch.to_dict()), "layers.txt": table.format() + "\n"})
    mlflow.log_table(
        {
            "layer": [r.name for r in table.rows],
            "type": [r.kind for r in table.rows],
            "output_shape": [json.dumps(list(r.output_shape)) for r in table.rows],
            "params": [r.params for r in table.rows],
            "macs": [r.macs for r in table.rows],
        },
        "layers.json",
    )
    source = dataset_source(data.source)
    for context, split in (("training", data.train), ("validation", data.validation)):
        dataset = mlflow.data.from_numpy(split.x, targets=split.y, source=source,
                                         name=f"mnist-{context}", digest=split.sha256[:16])
        _log_input(dataset, context)


def log_files(files: dict[str, str]) -> None:
    """Text files (by artifact path, at the run's root) on the active run in one copy into its
    artifact store, as ``mlflow.log_text`` would write each: one artifact write instead of one
    a file (each looks the run up and copies through a temporary folder of its own)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        mlflow.log_artifacts(folder)


def _json(data: Any) -> str:
    """``data`` as ``mlflow.log_dict`` writes a ``.json`` file."""
    return json.dumps(data, indent=2, default=str)


def log_batch(params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
              tags: dict[str, str] | None = None, step: int = 0) -> None:
    """Parameters, metrics and tags of the active run in one write (``MlflowClient.log_batch``)
    instead of one per kind."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    stamp = get_current_time_millis()
    MlflowClient().log_batch(
        mlflow.active_run().info.run_id,
        metrics=[Metric(k, float(v), stamp, step) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()], synchronous=True)


def _log_input(dataset: Any, context: str) -> None:
    once_more_on_a_race(mlflow.log_input, dataset, context=context)


def once_more_on_a_race(write: Any, *args: Any, **kwargs: Any) -> Any:
    """``write(*args, **kwargs)``, once more if a concurrent writer won a race. MLflow's SQL
    store looks a row up, then inserts or updates it (a dataset, a run's tag): two workers
    writing the same new row at once can both miss it, and one insert fails on the unique key
    (seen with PostgreSQL for datasets, with SQLite for the study run's tags). The second try
    finds the other worker's row and updates it."""
    try:
        return write(*args, **kwargs)
    except mlflow.exceptions.MlflowException as err:
        text = str(err)
        if not any(s in text for s in ("UniqueViolation", "UNIQUE constraint", "duplicate key")):
            raise
        return write(*args, **kwargs)


def dataset_source(source: str) -> Any:
    """MLflow's dataset source for where the data came from (the Keras URL, or the folder)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if source == KERAS_SOURCE:
        return HTTPDatasetSource(KERAS_MNIST_URL)
    # A local path is claimed by two registered source types alike; MLflow warns and picks one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        return resolve_dataset_source(Path(source).as_uri())


def model_pip_requirements() -> list[str]:
    """The model's requirements, pinned from what is installed.

    Given explicitly because MLflow's inference of them imports the model in a subprocess,
    which is nearly all of ``log_model``'s time (``benchmarks/log_model_overhead.py``).
    """
    return [f"keras=={version('keras')}", f"tensorflow=={version('tensorflow')}"]


def log_model(model: Any, sample_x: Any) -> None:
    """The model through MLflow's Keras 3 flavour, with its signature."""
    mlflow.keras.log_model(model, name=MODEL_NAME, signature=model_signature(model, sample_x),
                           pip_requirements=model_pip_requirements())


def model_signature(model: Any, sample_x: Any) -> Any:
    """The signature MLflow would infer from a prediction on ``sample_x`` (a float tensor of
    the input's shape in, one of the output's shape out), written from the shapes instead:
    inferring it ran the model once per trial, and the first prediction of a new model traces
    a TensorFlow function (tenths of a second a trial)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(dtype: Any, shape: Any) -> Any:
        return Schema([TensorSpec(np.dtype(dtype), (-1, *shape[1:]))])

    return ModelSignature(inputs=spec(sample_x.dtype, sample_x.shape),
                          outputs=spec(model.dtype, model.output_shape))


def log_curve_plots(history: dict[str, list[float]]) -> None:
    for path, fig in curve_figures(history).items():
        mlflow.log_figure(fig, path, save_kwargs=CURVE_SAVE_KWARGS)


def command_line() -> str:
    """The command that produced this run, for the ``cnnlab.command`` tag (passwords in URLs
    hidden)."""
    argv = [Path(sys.argv[0]).name if sys.argv else "python"] + sys.argv[1:]
    return redact(" ".join(argv))


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """``text`` as the artifact ``artifact_file`` of run ``run_id``, in the tracking store that
    MLflow points at (``use_tracking_store``)."""
    MlflowClient().log_text(run_id, text, artifact_file)


def check_reachable(uri: str | None = None) -> None:
    """Fail fast, in one sentence, if the tracking store cannot be reached (before anything is
    written anywhere). A local SQLite store is always reachable; a server gets 10 seconds."""
    from cnnlab.errors import ConfigError

    uri = resolve_tracking_uri(uri)
    if sqlite_path(uri) is not None:
        return
    try:
        if uri.startswith(("http://", "https://")):
            import requests

            requests.get(uri.rstrip("/") + "/health", timeout=10).raise_for_status()
        else:
            from sqlalchemy import create_engine, text

            engine = create_engine(uri, connect_args={"connect_timeout": 10}
                                   if uri.startswith("postgresql") else {})
            with engine.connect() as connection:
                connection.execute(text("select 1"))
            engine.dispose()
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot reach the MLflow tracking store {redact(uri)}: "
                          f"{redact(reason)}") from None


@contextmanager
def tracked_run(experiment: str, run_name: str | None, tags: dict[str, str] | None = None,
                uri: str | None = None) -> Iterator[Any]:
    """A new MLflow run in experiment ``experiment`` (created if needed), active in the block;
    it ends FINISHED, or FAILED if the body raises; async metrics flushed.

    The run is created explicitly (``MlflowClient.create_run`` in that experiment), then made
    active by its id: ``mlflow.start_run`` alone would resume the run named by
    ``$MLFLOW_RUN_ID`` (in whatever experiment) instead of creating one (see
    ``new_run_tags``)."""
    experiment_id = get_or_create_experiment(experiment, uri)
    run = MlflowClient().create_run(experiment_id, run_name=run_name,
                                    tags=new_run_tags(tags))
    with mlflow.start_run(run_id=run.info.run_id) as active:
        try:
            yield active
        finally:
            mlflow.flush_async_logging()


def new_run_tags(tags: dict[str, str] | None = None) -> dict[str, str]:
    """``tags`` and the tags MLflow gives a run it starts (user, source, git commit), but
    none that nests it: ``$MLFLOW_RUN_CONTEXT`` may hold any tags, ``mlflow.parentRunId``
    included, and a run cnnlab creates has the parent cnnlab names or none."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    resolved = resolve_tags(dict(tags or {}))
    if MLFLOW_PARENT_RUN_ID not in (tags or {}):
        resolved.pop(MLFLOW_PARENT_RUN_ID, None)
    return resolved
