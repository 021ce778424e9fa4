"""Comparing trials in pandas, the notebook example, and the MLflow UI's REST API over a study."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from cnnlab import cli
from tests.studies import TINY, Stores, _free_port, ui_server

pytestmark = pytest.mark.slow  # Every test here uses `stores`, which runs a study.



@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    root = tmp_path_factory.mktemp("compare")
    # Four trained trials; with this budget some draws are over it (infeasible, not trained).
    text = TINY.replace("n_trials = 3", "n_trials = 4\nmax_params = 60000")
    stores = Stores(root, text)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert stores.run() == 0
    return stores


def test_frame_rows_and_columns_match_the_stores(stores: Stores) -> None:
    from cnnlab.results.compare import trials_frame

    frame = trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)
    study = stores.study("tiny")
    _, children = stores.runs("tiny")
    assert len(frame) == len(study.trials) > 4
    assert frame["trial"].tolist() == [t.number for t in study.trials]
    assert (frame["outcome"] == "trained").sum() == 4
    for trial, (_, row) in zip(study.trials, frame.iterrows(), strict=True):
        assert row["optuna_state"] == trial.state.name
        assert row["run_id"] == trial.user_attrs["mlflow_run_id"]
        assert row["architecture"] == trial.user_attrs["architecture"]
        assert row["n_params"] == trial.user_attrs["n_params"]
        for key, value in trial.params.items():
            assert row[key] == value
        run = children[trial.number]
        assert row["outcome"] == trial.user_attrs["cnnlab_outcome"]
        if row["outcome"] == "infeasible":
            # Optuna keeps an infeasible draw as PRUNED; cnnlab shows it INFEASIBLE.
            assert "max_params" in row["reason"] and trial.state.name == "PRUNED"
            assert row["state"] == "INFEASIBLE"
            assert pd.isna(row["value"]) and pd.isna(row["pruned_at_epoch"])
        else:
            assert row["state"] == trial.state.name
        if trial.state.name == "COMPLETE":
            assert row["value"] == pytest.approx(trial.value)
            assert row["final_val_accuracy"] == pytest.approx(run.data.metrics["val_accuracy"])
            history = [m.value for m in stores.client.get_metric_history(
                run.info.run_id, "val_accuracy")]
            assert row["best_val_accuracy"] == pytest.approx(max(history))
            assert row["epochs_run"] == len(history) == 2
            assert row["artifact_uri"] == run.info.artifact_uri
    assert {"trained", "infeasible"} == set(frame["outcome"].astype(str))
    assert frame["n_params"].dtype == "Int64" and frame["trial"].dtype == "Int64"
    assert frame["state"].dtype == "category" and frame["study"].dtype == "category"
    assert frame["outcome"].dtype == "category" and frame["reason"].dtype == "string"
    assert frame["value"].dtype == "float64" and frame["duration_s"].dtype == "float64"
    assert frame["conv1_padding"].dtype == "category"
    assert str(frame["started"].dtype).startswith("datetime64")


def test_compare_command_sorts_filters_and_writes_csv(stores: Stores, tmp_path: Path,
                                                      capsys) -> None:
    csv = tmp_path / "board.csv"
    assert cli.main(["compare", "--storage", stores.storage, "--tracking-uri", stores.tracking,
                     "--state", "complete", "--top", "2", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    written = pd.read_csv(csv)
    study = stores.study("tiny")
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"),
                      key=lambda t: -t.value)
    assert written["trial"].tolist() == [t.number for t in complete[:2]]
    assert written["value"].tolist() == pytest.approx([t.value for t in complete[:2]])
    assert "run_id" in written.columns and "best_val_accuracy" in written.columns
    assert "wrote 2 row(s)" in out and "PRUNED" not in out
    assert cli.main(["compare", "tiny", "--sort", "n_params", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking, "--columns", "trial,n_params"]) == 0
    lines = capsys.readouterr().out.splitlines()
    sizes = [int(line.split()[1]) for line in lines[1:]]
    assert sizes == sorted(sizes)
    assert cli.main(["compare", "--sort", "colour", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking]) == 2
    assert "--sort 'colour' is not a column" in capsys.readouterr().err


def test_columns_and_sort_follow_one_rule_and_globs_stand_for_columns(
        stores: Stores, tmp_path: Path, capsys) -> None:
    from cnnlab.results.compare import trials_frame

    base = ["compare", "tiny", "--storage", stores.storage, "--tracking-uri", stores.tracking]
    csv = tmp_path / "board.csv"
    # An unknown name is refused as --sort's is, before the CSV is written.
    assert cli.main([*base, "--columns", "trial,bogus", "--csv", str(csv)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("cnnlab compare: error: --columns 'bogus' is not a column; the "
                          "leaderboard's are study, trial, ") and "\n" not in err
    assert captured.out == "" and not csv.exists()
    assert cli.main([*base, "--sort", "bogus"]) == 2
    assert "error: --sort 'bogus' is not a column; the leaderboard's are study, trial, " in \
        capsys.readouterr().err
    # A glob matching nothing is refused; --sort, one column, refuses a glob.
    assert cli.main([*base, "--columns", "trial,colour*"]) == 2
    assert "--columns 'colour*' matches no column" in capsys.readouterr().err
    assert cli.main([*base, "--sort", "conv*_filters"]) == 2
    assert "--sort 'conv*_filters' is a pattern; --sort takes one column" in \
        capsys.readouterr().err
    # A glob stands for the columns it matches, in the frame's order; a name comes once.
    assert cli.main([*base, "--sort", "trial", "--columns", "trial,conv*_filters,trial"]) == 0
    lines = capsys.readouterr().out.splitlines()
    frame = trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)
    filters = [c for c in frame.columns if c.startswith("conv") and c.endswith("_filters")]
    assert filters == ["conv1_filters", "conv2_filters"]  # The study draws 1 or 2 layers.
    assert lines[0].split() == ["trial", *filters]
    assert [int(line.split()[0]) for line in lines[1:]] == sorted(
        t.number for t in stores.study("tiny").trials)


def test_sort_takes_what_trial_lines_print_and_sorts_biggest_first(stores: Stores,
                                                                   capsys) -> None:
    # Issue 31: every trial line prints `val_accuracy 0.95` and `361,322 params`, and --sort
    # refused both names, listing about a hundred columns; nothing sorted biggest first.
    base = ["compare", "tiny", "--storage", stores.storage, "--tracking-uri", stores.tracking]
    assert cli.main([*base, "--sort", "value"]) == 0
    ranked = capsys.readouterr().out
    assert cli.main([*base, "--sort", "val_accuracy"]) == 0  # The study's objective.
    assert capsys.readouterr().out == ranked
    sizes = {}
    for name in ("n_params", "params"):
        assert cli.main([*base, "--sort", name, "--descending", "--columns", "trial,n_params"]) \
            == 0
        sizes[name] = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    numbers = [int(row[1]) for row in sizes["n_params"] if row[1] != "NaN"]
    assert len(numbers) >= 4 and numbers == sorted(numbers, reverse=True)
    assert sizes["params"] == sizes["n_params"]
    for wrong, meant in (("val_acc", "val_accuracy"), ("n_parms", "n_params")):
        assert cli.main([*base, "--sort", wrong]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and len(err) < 200, err
        assert f"--sort {wrong!r} is not a column; did you mean {meant}" in err, err


def test_compare_labels_infeasible_draws_infeasible(stores: Stores, capsys) -> None:
    # The study's pruner is "none": every PRUNED trial in Optuna's store is an infeasible
    # draw, never built, and none may show as PRUNED.
    study = stores.study("tiny")
    infeasible = {t.number for t in study.trials if t.user_attrs["cnnlab_outcome"] == "infeasible"}
    trained = {t.number for t in study.trials if t.user_attrs["cnnlab_outcome"] == "trained"}
    assert infeasible and len(trained) == 4
    assert {t.number for t in study.trials if t.state.name == "PRUNED"} == infeasible
    assert cli.main(["compare", "tiny", "--sort", "trial", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking, "--columns", "trial,state"]) == 0
    rows = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    assert {int(n) for n, state in rows.items() if state == "INFEASIBLE"} == infeasible
    assert {int(n) for n, state in rows.items() if state == "COMPLETE"} == trained
    assert "PRUNED" not in rows.values()
    # --state infeasible keeps exactly those; --state pruned keeps none of them.
    assert cli.main(["compare", "--state", "infeasible", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking, "--columns", "trial,state"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert {int(line.split()[0]) for line in lines} == infeasible
    assert cli.main(["compare", "--state", "pruned", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking, "--columns", "trial,state"]) == 0
    assert "INFEASIBLE" not in capsys.readouterr().out


def test_compare_unknown_study_and_missing_storage(stores: Stores, tmp_path: Path,
                                                   capsys) -> None:
    assert cli.main(["compare", "nope", "--storage", stores.storage,
                     "--tracking-uri", stores.tracking]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert cli.main(["compare", "--storage", missing]) == 2
    assert "there is no Optuna storage at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def _api(base: str, path: str, body: dict | None = None) -> dict:
    if body is None:
        request = urllib.request.Request(base + path)
    else:
        request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_ui_shows_the_study_nested(stores: Stores) -> None:
    with ui_server(stores.tracking) as (base, banner):
        assert f"MLflow UI at {base}" in banner
        name = urllib.parse.quote("tiny")
        experiment = _api(base, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}")
        experiment_id = experiment["experiment"]["experiment_id"]
        runs = _api(base, "/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [experiment_id], "max_results": 100})["runs"]
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])}
                for r in runs}
        parents = [rid for rid, t in tags.items() if t.get("cnnlab.kind") == "study"]
        assert len(parents) == 1
        children = [rid for rid, t in tags.items() if t.get("mlflow.parentRunId") == parents[0]]
        assert len(children) == len(stores.study("tiny").trials) > 4
        complete = [rid for rid in children if tags[rid].get("cnnlab.state") == "COMPLETE"]
        assert len(complete) == 4
        for rid in complete:
            history = _api(base, f"/api/2.0/mlflow/metrics/get-history?run_id={rid}"
                                 "&metric_key=val_accuracy")["metrics"]
            assert [m["step"] for m in history] == [1, 2]
        png = urllib.request.urlopen(
            f"{base}/get-artifact?path=plots/front.png&run_uuid={parents[0]}",
            timeout=10).read()
        assert png[:4] == b"\x89PNG"


def test_study_experiment_is_tagged_for_the_model_training_ui(stores: Stores,
                                                             tmp_path: Path) -> None:
    """A study's experiment carries MLflow's model-training kind and cnnlab's view of its runs
    (the trials' state, outcome and validation accuracy as columns); one that lacks them (made
    by an earlier cnnlab) gets them when `cnnlab ui` lists its pages, except a kind someone
    chose in the UI, which is kept."""
    from mlflow.tracking import MlflowClient

    from cnnlab.tracking import ui

    experiment = stores.client.get_experiment_by_name("tiny")
    wanted = ui.experiment_tags()
    assert {key: experiment.tags.get(key) for key in wanted} == wanted
    view = json.loads(experiment.tags["mlflow.sharedViewState.cnnlab"])
    assert {"tags.`cnnlab.state`", "tags.`cnnlab.outcome`", "metrics.`val_accuracy`",
            "metrics.`n_params`"} <= set(view["selectedColumns"])
    assert view["runsHiddenMode"] == "SHOW_ALL"  # Not MLflow's first 10 in the charts.

    shutil.copytree(stores.root / "mlruns", tmp_path / "mlruns")  # Older stores, as a copy.
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(uri)
    for key in wanted:
        client.delete_experiment_tag(experiment.experiment_id, key)
    assert not set(wanted) & set(client.get_experiment(experiment.experiment_id).tags)
    pages = ui.study_pages(uri, "http://h:1")
    parent, _ = stores.runs("tiny")
    assert [(p.study, p.study_run) for p in pages] == [
        ("tiny", f"http://h:1/#/experiments/{experiment.experiment_id}/runs/"
                 f"{parent.info.run_id}/artifacts/report.html?workflowType=machine_learning")]
    assert pages[0].runs == (f"http://h:1/#/experiments/{experiment.experiment_id}/runs?"
                             "workflowType=machine_learning&viewStateShareKey=cnnlab")
    tags = client.get_experiment(experiment.experiment_id).tags
    assert {key: tags.get(key) for key in wanted} == wanted

    client.set_experiment_tag(experiment.experiment_id, "mlflow.experimentKind",
                              "genai_development")
    ui.study_pages(uri, "http://h:1")
    tags = client.get_experiment(experiment.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "genai_development"


CHROMIUM_ENV = "CNNLAB_TEST_CHROMIUM"
"""The Chromium the browser test drives: `export CNNLAB_TEST_CHROMIUM=$(bash
scripts/chromium-for-tests.sh)` (Debian's package; no `playwright install`)."""


def test_ui_opens_on_the_trial_runs_in_a_browser(stores: Stores) -> None:
    """The URL `cnnlab ui` prints for a study opens, in a real headless Chromium, on MLflow's
    model-training runs page listing every trial run by name, not on the GenAI overview (MLflow
    3.17's landing page for an experiment), with each trial's outcome and validation accuracy
    as columns nobody had to choose, and the study run's URL opens on the study run."""
    chromium = os.environ.get(CHROMIUM_ENV)
    if not chromium:
        pytest.skip(f"no browser: ${CHROMIUM_ENV} names none "
                    "(export CNNLAB_TEST_CHROMIUM=$(bash scripts/chromium-for-tests.sh))")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright (the test extra) is not installed")
    parent, children = stores.runs("tiny")
    outcomes = {r.data.tags["cnnlab.outcome"] for r in children.values()}
    assert outcomes == {"trained", "infeasible"}  # The fixture's budget makes both.
    with ui_server(stores.tracking) as (base, printed):
        trials = re.findall(r"^study 'tiny': its trial runs (\S+)$", printed, re.M)
        study_run = re.findall(r"^  its study run \(report, plots\) (\S+)$", printed, re.M)
        assert len(trials) == len(study_run) == 1, printed
        assert trials[0].startswith(base) and parent.info.run_id in study_run[0]
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--no-sandbox", "--disable-gpu"])
            try:
                # Wide enough that the grid draws every column (it draws only those in view).
                page = browser.new_page(viewport={"width": 2600, "height": 1400})
                page.goto(trials[0])
                for run in children.values():
                    page.get_by_role("link", name=run.info.run_name, exact=True).wait_for(
                        timeout=120_000)
                for header in ("cnnlab.outcome", "cnnlab.state", "val_accuracy", "n_params"):
                    page.get_by_text(header, exact=True).first.wait_for(timeout=30_000)
                for outcome in outcomes:
                    page.get_by_text(outcome, exact=True).first.wait_for(timeout=30_000)
                # The model-training side: its sidebar, not the GenAI one (whose "Training
                # runs" tab shows the same table under Observability, Evaluation, Prompts).
                page.get_by_text("Model registry", exact=True).first.wait_for(timeout=30_000)
                for genai in ("Observability", "Detect Issues", "Token Usage"):
                    assert page.get_by_text(genai).count() == 0, genai
                # The study run's URL opens on its report, drawn in the Artifacts tab.
                assert study_run[0].split("?")[0].endswith(f"{parent.info.run_id}/artifacts/"
                                                           "report.html"), study_run[0]
                page.goto(study_run[0])
                page.frame_locator("iframe").first.get_by_text(
                    "cnnlab report: tiny").first.wait_for(timeout=120_000)
            finally:
                browser.close()


def test_ui_shows_how_each_trial_ended_beside_the_assistant_at_1400_px(stores: Stores) -> None:
    """At 1400 x 900 on a first visit, when MLflow 3.17 opens its Assistant panel by itself (it
    does for a page served from this machine), the trial runs page still shows each trial's
    state, outcome and validation accuracy: cnnlab's view puts those columns right after the
    run's name (``columnOrder``), narrow enough (``columnWidths``) to fit beside the panel."""
    chromium = os.environ.get(CHROMIUM_ENV)
    if not chromium:
        pytest.skip(f"no browser: ${CHROMIUM_ENV} names none "
                    "(export CNNLAB_TEST_CHROMIUM=$(bash scripts/chromium-for-tests.sh))")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright (the test extra) is not installed")
    _, children = stores.runs("tiny")
    with ui_server(stores.tracking) as (base, printed):
        (trials,) = re.findall(r"^study 'tiny': its trial runs (\S+)$", printed, re.M)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(trials)
                for run in children.values():
                    page.get_by_role("link", name=run.info.run_name, exact=True).wait_for(
                        timeout=120_000)
                # The Assistant opened by itself: the case a newcomer met.
                page.get_by_placeholder("Ask a question...").wait_for(timeout=30_000)
                page.wait_for_timeout(2_000)  # The view's column order and widths applied.
                shown = page.locator(".ag-header-viewport").bounding_box()
                for column in ("tags.`cnnlab.state`", "tags.`cnnlab.outcome`",
                               "metrics.`val_accuracy`"):
                    header = page.locator(f'.ag-header-cell[col-id="{column}"]')
                    # The grid draws only the columns in view (and a few beyond).
                    assert header.count() == 1, f"{column} is not drawn"
                    box = header.bounding_box()
                    assert shown["x"] <= box["x"] and \
                        box["x"] + box["width"] <= shown["x"] + shown["width"], (column, box, shown)
                outcome = page.locator('.ag-cell[col-id="tags.`cnnlab.outcome`"]',
                                       has_text="trained").first.bounding_box()
                assert outcome["x"] + outcome["width"] <= shown["x"] + shown["width"]
            finally:
                browser.close()


def test_dashboard_serves_the_study_and_stops(stores: Stores) -> None:
    """`cnnlab dashboard` serves optuna-dashboard over the study's Optuna storage: its API lists
    the study with every trial, it prints the study's page, and SIGTERM stops it (exit 143)."""
    for _ in range(3):  # A free port can be taken before the server binds it: try another.
        port = _free_port()
        out = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "dashboard", "--port",
                                 str(port), "--storage", stores.storage],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    summaries = _api(base, "/api/studies")["study_summaries"]
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                continue
            study = stores.study("tiny")
            assert [s["study_name"] for s in summaries] == ["tiny"]
            detail = _api(base, f"/api/studies/{summaries[0]['study_id']}?after=0")
            assert len(detail["trials"]) == len(study.trials) > 4
            out.seek(0)
            assert (f"study 'tiny': {base}/dashboard/studies/{summaries[0]['study_id']}"
                    in out.read().splitlines())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 128 + signal.SIGTERM
            return
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    raise AssertionError("cnnlab dashboard did not serve, three times")


def test_ui_runs_one_server_and_no_job_runner(stores: Stores) -> None:
    """`cnnlab ui` starts MLflow with job execution off (its job runner and Huey consumers, each
    a Python of about 240 MB, only serve GenAI jobs), and the server process becomes uvicorn
    itself: below `cnnlab ui` there is one process, the uvicorn server, with one worker."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    with ui_server(stores.tracking, env=env) as (base, _):
        port = base.rsplit(":", 1)[1]
        ui = [pid for pid, line in _descendants(os.getpid())
              if f" ui --port {port} " in line and "cnnlab.cli" in line]
        assert len(ui) == 1
        below = _descendants(ui[0])
        lines = [line for _, line in below]
        assert not [line for line in lines if "huey" in line or "jobs." in line], lines
        assert len(below) == 1 and " -m uvicorn " in lines[0], lines
        assert f"--port {port} --workers 1 mlflow.server.fastapi_app:app" in lines[0]
        environ = Path(f"/proc/{below[0][0]}/environ").read_bytes().split(b"\0")
        assert b"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in environ
        with urllib.request.urlopen(base + "/", timeout=10) as response:
            assert b"<html" in response.read().lower()


def test_ui_logs_no_request_and_no_deprecation_warning(stores: Stores) -> None:
    """MLflow's server printed a StarletteDeprecationWarning as it started and a line for every
    request (uvicorn's access log); `cnnlab ui` prints its one line, and the server only what
    is wrong."""
    import subprocess
    import sys
    import tempfile
    import time

    from tests.studies import _free_port

    for _ in range(3):  # Another process may take the free port first: then another port.
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        out, err = tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "ui", "--port", str(port),
                                 "--tracking-uri", stores.tracking], stdout=out, stderr=err,
                                text=True)
        try:
            deadline = time.monotonic() + 180
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(base + "/health", timeout=5).read()
                    break
                except OSError:
                    time.sleep(0.5)
            if proc.poll() is not None:
                continue
            with urllib.request.urlopen(base + "/", timeout=10) as response:
                assert b"<html" in response.read().lower()
            assert _api(base, "/api/2.0/mlflow/registered-models/search") is not None
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(base + "/api/2.0/mlflow/no-such-endpoint", timeout=10)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        break
    else:
        raise AssertionError("cnnlab ui exited before it was healthy, three times")
    out.seek(0)
    err.seek(0)
    printed, logged = out.read(), err.read()
    lines = printed.splitlines()
    assert lines[0] == f"MLflow UI at {base} over {stores.tracking} (Ctrl-C stops it)"
    # Then the study's two pages, and nothing else: no request, no warning.
    assert [line.split(" http")[0] for line in lines[1:]] == [
        "study 'tiny': its trial runs", "  its study run (report, plots)"], lines
    assert "Warning" not in logged and "starlette" not in logged, logged
    assert "GET " not in printed + logged and " INFO: " not in printed + logged, logged


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``root``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        for pid in sorted(frontier):
            try:
                line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            found.append((pid, line.decode(errors="replace")))
    return found
