"""What the MLflow UI opens on for cnnlab's experiments: model training rather than GenAI, and
the trial runs listed with their outcome and key metrics.

How MLflow 3.17's UI decides (read in its built frontend, ``mlflow/server/js/build``, and seen
in headless Chromium):

- GenAI or model training: the ``workflowType`` parameter of the page's URL (``genai`` or
  ``machine_learning``), else the choice last made with the sidebar's toggle in that browser
  (its local storage, ``mlflow.workflowType``), else GenAI, whose landing page is the traces
  overview. The experiment's ``mlflow.experimentKind`` tag is read only by UIs without that
  toggle (in 3.17 the toggle is always on), so cnnlab sets the tag too, and puts
  ``workflowType=machine_learning`` in every URL it prints. No server option changes it.
- A runs page's columns, grouping, sort and which runs the charts show: the browser's local
  storage for that experiment, or, when the URL has ``viewStateShareKey=KEY``, the experiment
  tag ``mlflow.sharedViewState.KEY`` (MLflow's "share view"). Whether a parent run's children
  are expanded is left out of a shared view, so cnnlab's view groups the runs by their kind
  (``cnnlab.kind``): the trial runs are listed flat in an expanded group, each with its Optuna
  state and cnnlab outcome (pruned, infeasible and completed trials all have MLflow's status
  FINISHED, drawn as the same green tick).
- The charts: ``compareRunsMode=CHART`` in the URL; the view shows every run in them (MLflow's
  default is the first 10, which hid the oldest trials).
- The columns' order and widths: the view's ``columnOrder`` and ``columnWidths`` (AG Grid column
  ids, applied with ``applyColumnState``); the name, created and selection columns stay first.
  cnnlab puts state, outcome and validation accuracy right after the run's name, so that they
  show at 1400 px beside the Assistant panel.
- The Assistant panel (about 360 px on the right) opens by itself on a browser's first visit to
  a page served from this machine (host ``localhost``, ``127.0.0.1`` or ``::1``), and stays as
  last left: local storage ``mlflow.assistant.fab.autoOpenedOnFirstLoad_v1`` and
  ``mlflow.assistant.panelOpen_v1``. No URL parameter, server option or environment variable
  keeps it closed; closing it once does, in that browser.
- Numbers: a metric's column has no format; MLflow's table of per-metric formatters is empty in
  3.17's build, so a float32 accuracy shows as logged (``0.95090001...``, cut by the column's
  width). cnnlab logs the metrics exactly as Keras gives them.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cnnlab import names

VIEW_COLUMNS = (
    f"tags.`{names.STATE_TAG}`",
    f"tags.`{names.OUTCOME_TAG}`",
    "metrics.`val_accuracy`",
    "metrics.`val_loss`",
    f"metrics.`{names.N_PARAMS_ATTR}`",
    f"params.`{names.ARCHITECTURE_ATTR}`",
)
"""The runs table's columns in cnnlab's view (MLflow's ``TYPE.`KEY``` column keys): how each
trial ended (Optuna's state, cnnlab's outcome), its last epoch's validation metrics, its
parameter count and its architecture."""

RUN_NAME_COLUMN = "attributes.`Run Name`"
"""The runs table's column of run names (its AG Grid column id)."""

VIEW = {
    "orderByKey": "attributes.start_time",
    "orderByAsc": True,  # Trial 0 first, as `cnnlab study run` prints them.
    "selectedColumns": list(VIEW_COLUMNS),
    # The three that say how each trial ended first, after the run's name, and narrow enough
    # that they show beside the Assistant panel at 1400 px (see the module's docstring).
    "columnOrder": [RUN_NAME_COLUMN, *VIEW_COLUMNS[:3], "duration", *VIEW_COLUMNS[3:]],
    "columnWidths": {RUN_NAME_COLUMN: 140, VIEW_COLUMNS[0]: 110, VIEW_COLUMNS[1]: 120,
                     VIEW_COLUMNS[2]: 110},
    "runsHiddenMode": "SHOW_ALL",
    "groupBy": {"aggregateFunction": "max",
                "groupByKeys": [{"mode": "tag", "groupByData": names.KIND_TAG}]},
    "useGroupedValuesInCharts": False,  # A curve per run, not per group.
    "hideEmptyCharts": True,
}
"""cnnlab's view of an experiment's runs, as MLflow's UI keeps a shared view (its runs page
state: ``searchFilter``, ``orderByKey``, ``selectedColumns``, ``runsHiddenMode``, ``groupBy``
...)."""


def experiment_tags() -> dict[str, str]:
    """The tags every experiment cnnlab makes carries: the model-training kind and cnnlab's
    view of its runs (``VIEW``, as JSON)."""
    return {names.EXPERIMENT_KIND_TAG: names.EXPERIMENT_KIND_MODEL_TRAINING,
            names.SHARED_VIEW_TAG_PREFIX + names.VIEW_KEY: json.dumps(VIEW, sort_keys=True)}


def tag_experiment(client: Any, experiment: Any) -> None:
    """Give ``experiment`` (an MLflow ``Experiment``, read through ``client``) the tags of
    ``experiment_tags()`` it lacks or has with other values; an experiment made by an earlier
    cnnlab gets them the next time a study runs in it or `cnnlab ui` lists it. A kind chosen
    in the UI (another ``mlflow.experimentKind``) is kept."""
    for key, value in experiment_tags().items():
        have = experiment.tags.get(key)
        if have == value or (key == names.EXPERIMENT_KIND_TAG and have):
            continue
        client.set_experiment_tag(experiment.experiment_id, key, value)


def runs_page(base: str, experiment_id: str, *, charts: bool = False) -> str:
    """The URL of an experiment's runs page in cnnlab's view, on the model-training side of
    the UI at ``base`` (``http://HOST:PORT``); ``charts``: its chart view."""
    query = {"workflowType": "machine_learning", "viewStateShareKey": names.VIEW_KEY}
    if charts:
        query["compareRunsMode"] = "CHART"
    return (f"{base}/#/experiments/{urllib.parse.quote(experiment_id)}/runs?"
            f"{urllib.parse.urlencode(query)}")


def run_page(base: str, experiment_id: str, run_id: str, artifact: str | None = None) -> str:
    """The URL of one run's page on the model-training side: its overview, or with ``artifact``
    (a path inside the run's artifacts, ``report.html``) its Artifacts tab showing that file
    (MLflow 3.17's route ``/experiments/:id/runs/:run/artifacts/PATH``)."""
    tab = f"/artifacts/{urllib.parse.quote(artifact)}" if artifact else ""
    return (f"{base}/#/experiments/{urllib.parse.quote(experiment_id)}/runs/"
            f"{urllib.parse.quote(run_id)}{tab}?workflowType=machine_learning")


@dataclass(frozen=True)
class StudyPages:
    """A study's experiment and study run in the UI at some base URL."""

    study: str
    runs: str
    """Its runs page, in cnnlab's view."""
    study_run: str
    """Its study run's page: on its report (``report.html``) where the run has one, else its
    overview (the plots are among its artifacts)."""


def study_pages(tracking_uri: str, base: str) -> list[StudyPages]:
    """Every study of the tracking store, oldest first, with the URLs of its pages in the UI at
    ``base``; each study's experiment gets cnnlab's tags (``tag_experiment``).

    Reads the store with ``MlflowClient``; raises what it raises for a store it cannot open."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = {e.experiment_id: e
                   for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    found = []
    for experiment in experiments.values():
        studies = client.search_runs([experiment.experiment_id],
                                     filter_string=f"tags.`{names.KIND_TAG}` = "
                                                   f"'{names.KIND_STUDY}'",
                                     max_results=10)
        if not studies:
            continue
        tag_experiment(client, experiment)
        for run in studies:
            try:
                artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
            except Exception:  # An artifact store out of reach: the overview still opens.
                artifacts = set()
            report = names.REPORT_ARTIFACT if names.REPORT_ARTIFACT in artifacts else None
            found.append((run.info.start_time or 0, StudyPages(
                study=run.data.tags.get(names.STUDY_TAG, experiment.name),
                runs=runs_page(base, experiment.experiment_id),
                study_run=run_page(base, experiment.experiment_id, run.info.run_id, report))))
    return [pages for _, pages in sorted(found, key=lambda item: item[0])]
