"""Comparing trials at equal epochs, read back from a tiny study's stores: ``curves``,
``at_epoch``, ``knob_effects`` and ``anytime`` against what Optuna and MLflow hold, the
notebook example's figures, and ``experiments/compare.ipynb`` executed headless."""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path

import pandas as pd
import pytest

from cnnlab.errors import ConfigError
from cnnlab.search import trials as T
from tests.studies import TINY, Stores

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "experiments" / "compare.ipynb"
# Six trained trials of three epochs; trial 1 is pruned after its second epoch.
TEXT = TINY.replace("n_trials = 3", "n_trials = 6").replace("epochs = 2", "epochs = 3")
PRUNED_TRIAL = 1


# Runs a study: every test that uses it, or `frame`, is marked slow.
@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    import optuna

    def prune(self, study, trial) -> bool:
        # The study's pruner ("none") stands in for a pruner's verdict that rests on no
        # trained value: trial 1 is stopped after its second epoch (Optuna's step 2).
        return trial.number == PRUNED_TRIAL and max(trial.intermediate_values) >= 2

    root = tmp_path_factory.mktemp("notebook")
    stores = Stores(root, TEXT)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(optuna.pruners.NopPruner, "prune", prune)
        assert stores.run() == 0
    return stores


@pytest.fixture(scope="module")
def frame(stores: Stores):
    from cnnlab.results.compare import trials_frame

    return trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)


def _histories(stores: Stores) -> dict[int, list[float]]:
    """Each trained trial's val_accuracy epoch by epoch, from MLflow."""
    _, children = stores.runs("tiny")
    histories = {}
    for number, run in children.items():
        metrics = stores.client.get_metric_history(run.info.run_id, "val_accuracy")
        if metrics:
            assert [m.step for m in sorted(metrics, key=lambda m: m.step)] == \
                list(range(1, len(metrics) + 1))
            histories[number] = [m.value for m in sorted(metrics, key=lambda m: m.step)]
    return histories


def _compared(stores: Stores) -> list:
    """The trials at_epoch counts: trained, ended complete or pruned."""
    return [t for t in stores.study("tiny").trials
            if t.state.name in ("COMPLETE", "PRUNED") and T.outcome(t) == "trained"]


@pytest.mark.slow
def test_the_study_has_a_pruned_trial(stores: Stores) -> None:
    trials = _compared(stores)
    assert len(trials) == 6
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert [t.number for t in pruned] == [PRUNED_TRIAL]
    assert sorted(pruned[0].intermediate_values) == [1, 2]
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials
               if t.state.name == "COMPLETE")


@pytest.mark.slow
def test_curves_are_the_mlflow_histories(stores: Stores, frame) -> None:
    from cnnlab.results.compare import curves

    histories = _histories(stores)
    long = curves(frame)
    assert set(long["trial"]) == set(histories)
    for number, history in histories.items():
        rows = long[long["trial"] == number]
        assert rows["epoch"].tolist() == list(range(1, len(history) + 1))
        assert rows["val_accuracy"].tolist() == history
        row = frame[frame["trial"] == number].iloc[0]
        assert [row[f"val_accuracy_epoch{e}"] for e in range(1, len(history) + 1)] == history
    assert long["val_loss"].notna().all()


@pytest.mark.slow
def test_the_pruned_trials_epochs_count_from_1(stores: Stores, frame) -> None:
    pruned = stores.study("tiny").trials[PRUNED_TRIAL]
    row = frame[frame["trial"] == PRUNED_TRIAL].iloc[0]
    # Stopped after its second epoch: two epochs ran, whatever is asked.
    assert row["pruned_at_epoch"] == row["epochs_run"] == len(pruned.intermediate_values) == 2
    assert row["val_accuracy_epoch2"] == pruned.intermediate_values[2]
    assert pd.isna(row["val_accuracy_epoch3"])
    _, children = stores.runs("tiny")
    assert children[PRUNED_TRIAL].data.tags["cnnlab.pruned_at_epoch"] == "2"


@pytest.mark.slow
def test_runs_recorded_with_steps_from_0_read_as_epochs_from_1(stores: Stores, frame,
                                                              tmp_path: Path) -> None:
    """Earlier versions of cnnlab logged the first epoch at MLflow step 0: a copy of the stores
    whose trained runs' curves are moved back one step gives the same per-epoch columns."""
    import shutil
    import sqlite3

    import mlflow

    from cnnlab.results.compare import trials_frame

    copy = tmp_path / "copy"
    shutil.copytree(stores.root, copy)
    db = copy / "mlruns" / "mlflow.db"
    run_ids = frame.loc[frame["epochs_run"].notna(), "run_id"].tolist()
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    marks = ", ".join("?" * len(run_ids))
    with sqlite3.connect(db) as connection:
        for table in ("metrics", "latest_metrics"):
            connection.execute(f"UPDATE {table} SET step = step - 1 WHERE run_uuid IN ({marks}) "
                               "AND key IN (?, ?, ?, ?)", (*run_ids, *keys))
    connection.close()
    before = mlflow.get_tracking_uri()
    try:
        legacy = trials_frame("tiny", storage=f"sqlite:///{copy / 'optuna.db'}",
                              tracking_uri=f"sqlite:///{db}")
        client = mlflow.tracking.MlflowClient(f"sqlite:///{db}")
        assert client.get_metric_history(run_ids[0], "val_accuracy")[0].step == 0
    finally:
        mlflow.set_tracking_uri(before)
    columns = [c for c in frame.columns if re.fullmatch(r"(val_accuracy|val_loss)_epoch\d", c)]
    assert len(columns) == 6  # val_accuracy and val_loss after epochs 1, 2 and 3.
    assert legacy[columns].equals(frame[columns])


@pytest.mark.slow
def test_at_epoch_compares_every_finished_trial_at_the_shortest_ones_last_epoch(
        stores: Stores, frame) -> None:
    from cnnlab.results.compare import at_epoch, trials_frame

    histories = _histories(stores)
    trials = _compared(stores)
    scores = at_epoch(frame)
    # Default: the last epoch every counted trial reached -- the pruned trial's second.
    assert min(len(histories[t.number]) for t in trials) == 2
    assert set(scores["epoch"]) == {2}
    assert scores["trial"].tolist() == [t.number for t in trials]
    for trial in trials:
        row = scores[scores["trial"] == trial.number].iloc[0]
        assert row["score"] == histories[trial.number][1]
        assert row["score"] == trial.intermediate_values[2]  # What Optuna was told then.
        assert row["epochs_reached"] == len(histories[trial.number])
        assert row["state"] == trial.state.name
    assert not any(c.startswith("val_accuracy_epoch") for c in scores.columns)
    # At the last epoch the pruned trial is out and the others' score is their value.
    last = at_epoch(frame, 3)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert last["trial"].tolist() == [t.number for t in complete]
    assert last["score"].tolist() == [t.value for t in complete]
    first = at_epoch(frame, 1)
    assert first["score"].tolist() == [histories[t.number][0] for t in trials]
    with pytest.raises(ConfigError, match="no trial reached epoch 4"):
        at_epoch(frame, 4)
    with pytest.raises(ConfigError, match="from 1"):
        at_epoch(frame, 0)
    bare = trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking,
                        curves=False)
    with pytest.raises(ConfigError, match="curves=True"):
        at_epoch(bare)


def _t_interval(values: list[float]) -> tuple[float, float]:
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return math.nan, math.nan
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def _check_row(row, values: list[float], sizes: list[int]) -> None:
    assert row["trials"] == len(values)
    assert row["mean"] == pytest.approx(statistics.fmean(values))
    low, high = _t_interval(values)
    for got, want in ((row["ci_low"], low), (row["ci_high"], high)):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
    assert row["best"] == max(values)
    assert row["median_params"] == statistics.median(sizes)
    assert row["epoch"] == 2


@pytest.mark.slow
def test_knob_effects_are_the_trials_means_with_t_intervals(stores: Stores, frame) -> None:
    from cnnlab.results.compare import at_epoch, knob_effects

    histories = _histories(stores)
    trials = _compared(stores)
    scores = at_epoch(frame)

    def kernels(trial) -> list[int]:
        return [trial.params[f"conv{i}_kernel_size"] for i in range(1, trial.params["n_conv"] + 1)]

    # A per-layer knob, pooled over the layers: a trial counts once per value it has.
    table = knob_effects(scores, "kernel_size")
    values = sorted({k for t in trials for k in kernels(t)})
    assert table.index.tolist() == values
    for k in values:
        having = [t for t in trials if k in kernels(t)]
        row = table.loc[k]
        _check_row(row, [histories[t.number][1] for t in having],
                   [t.user_attrs["n_params"] for t in having])
        assert row["layers"] == sum(kernels(t).count(k) for t in having)
    # The same from the trials frame (at_epoch taken first).
    assert knob_effects(frame, "kernel_size").equals(table)
    # A trial-level knob.
    depth = knob_effects(scores, "n_conv")
    for n, row in depth.iterrows():
        having = [t for t in trials if t.params["n_conv"] == n]
        _check_row(row, [histories[t.number][1] for t in having],
                   [t.user_attrs["n_params"] for t in having])
    assert depth["trials"].sum() == len(trials)
    # Grouped by layer first: each layer's own padding.
    by_layer = knob_effects(scores, "padding", by="layer")
    for (layer, padding), row in by_layer.iterrows():
        having = [t for t in trials if t.params.get(f"conv{layer}_padding") == padding]
        _check_row(row, [histories[t.number][1] for t in having],
                   [t.user_attrs["n_params"] for t in having])
    with pytest.raises(ConfigError, match="neither a column"):
        knob_effects(scores, "colour")


@pytest.mark.slow
def test_anytime_is_the_best_so_far_against_optunas_clock(stores: Stores, frame) -> None:
    from cnnlab.results.compare import anytime

    study = stores.study("tiny")
    curve = anytime(frame)
    done = sorted((t for t in study.trials if t.datetime_complete is not None),
                  key=lambda t: (t.datetime_complete, t.number))
    start = min(t.datetime_start for t in study.trials)
    assert curve["trial"].tolist() == [t.number for t in done]
    best, best_trial = -math.inf, None
    for trial, (_, row) in zip(done, curve.iterrows(), strict=True):
        assert row["elapsed_s"] == pytest.approx(
            (trial.datetime_complete - start).total_seconds())
        if trial.state.name == "COMPLETE" and trial.value > best:
            best, best_trial = trial.value, trial.number
        assert row["best_value"] == best and row["best_trial"] == best_trial
    assert curve["best_trial"].iloc[-1] == T.best(study).number


def _compare_notebook():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        import compare_notebook
    finally:
        sys.path.pop(0)
    return compare_notebook


@pytest.mark.slow
def test_the_notebook_example_writes_one_figure_per_question(stores: Stores, tmp_path: Path,
                                                             capsys) -> None:
    compare_notebook = _compare_notebook()
    assert compare_notebook.main(["tiny", "--storage", stores.storage, "--tracking-uri",
                                  stores.tracking, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "val_accuracy after 2 epoch(s): 6 trials (1 pruned" in out
    assert "val_accuracy at epoch 2 by the conv layers' kernel_size" in out
    assert "by the number of stride-2 layers" in out
    for name in compare_notebook.FIGURES:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        assert f"wrote {tmp_path / name}" in out
    assert compare_notebook.main(["tiny", "--storage", stores.storage, "--tracking-uri",
                                  stores.tracking, "--out", str(tmp_path), "--epoch", "3"]) == 0
    assert "val_accuracy after 3 epoch(s): 5 trials (0 pruned" in capsys.readouterr().out


@pytest.mark.slow
def test_the_notebook_example_says_which_questions_the_trials_cannot_answer(frame) -> None:
    from cnnlab.results.compare import at_epoch

    compare_notebook = _compare_notebook()
    scores = at_epoch(frame)
    kernels = [c for c in scores.columns if c.startswith("conv") and c.endswith("_kernel_size")]
    paddings = [c for c in scores.columns if c.startswith("conv") and c.endswith("_padding")]
    assert kernels and paddings and len(scores) == 6

    def layers(rows, columns, values):
        # Every conv layer of each trial the same value (the trial's value in ``values``),
        # where the trial has that layer.
        rows = rows.copy()
        for column in columns:
            present = rows[column].notna()
            rows[column] = rows[column].astype(object)
            rows.loc[present, column] = [v for v, p in zip(values, present, strict=True) if p]
        return rows

    # All 3x3 and all same: no question can be answered, each says so.
    none = layers(layers(scores, kernels, [3] * 6), paddings, ["same"] * 6)
    notes = compare_notebook.unanswered(none)
    assert [n.split(":")[0] for n in notes] == [
        "kernel_5x5_vs_3x3.png", "same_padding.png (by depth)",
        "same_padding.png (by kernel size)"]
    assert "No parameter bin holds trials of both 3x3 and 5x5" in notes[0]
    # Both kernels and both paddings (6 trials make one parameter bin; all trials of a kernel
    # size share it): only the depth question can still lack a pair, and only if no depth
    # holds both paddings.
    padding = ["same", "same", "valid", "valid", "same", "valid"]  # both within each kernel
    both = layers(layers(scores, kernels, [3, 5] * 3), paddings, padding)
    notes = compare_notebook.unanswered(both)
    depth_pairs = both.assign(p=padding).groupby(
        "n_conv")["p"].nunique()
    expected = [] if (depth_pairs == 2).any() else ["same_padding.png (by depth)"]
    assert [n.split(":")[0] for n in notes] == expected


def test_the_committed_notebook_has_no_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    for name in ("CNNLAB_STUDY", "CNNLAB_STORAGE", "MLFLOW_TRACKING_URI"):
        assert name in code[0].source


def _text(cell) -> str:
    return "".join(o.get("text", "") if o.output_type == "stream"
                   else o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def _rows(cell) -> dict[int, list[str]]:
    """The DataFrame a cell ends with, as text, by trial: trial number -> the row's fields."""
    [result] = [o for o in cell.outputs if o.output_type == "execute_result"]
    rows = {}
    for line in result["data"]["text/plain"].splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            rows[int(fields[0])] = fields[1:]
    return rows


@pytest.mark.slow
def test_the_notebook_runs_headless_on_the_study(stores: Stores, tmp_path: Path,
                                                 monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    # A kernel that is this Python, whatever kernels the machine has.
    spec = tmp_path / "jupyter" / "kernels" / "cnnlab-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cnnlab tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("CNNLAB_STUDY", "tiny")
    monkeypatch.setenv("CNNLAB_STORAGE", stores.storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores.tracking)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable, STUDY)",
                                              metadata={"tags": ["check"]}))
    NotebookClient(nb, kernel_name="cnnlab-test", timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = {tag: cell for cell in nb.cells for tag in cell.metadata.get("tags", [])}
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert _text(cells["check"]).split() == [sys.executable, "tiny"]

    study = stores.study("tiny")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"
                and T.outcome(t) == "trained"]
    board = _rows(cells["leaderboard"])
    assert set(board) == {t.number for t in complete}
    ranked = sorted(complete, key=lambda t: (-t.value, t.number))
    assert list(board) == [t.number for t in ranked]
    for trial in complete:
        assert board[trial.number][:2] == [f"{trial.value:.4f}", str(trial.user_attrs["n_params"])]
    on_front = T.front(study, T.size_attr(study))
    shown = _rows(cells["front"])
    assert list(shown) == [t.number for t in on_front]
    for trial in on_front:
        assert shown[trial.number][0] == f"{trial.value:.4f}"
    at_two = _rows(cells["at_epoch"])
    pruned = study.trials[PRUNED_TRIAL]
    assert at_two[PRUNED_TRIAL][:3] == ["PRUNED", "2", f"{pruned.intermediate_values[2]:.4f}"]
    assert set(at_two) == {t.number for t in _compared(stores)}
    assert "image/png" in cells["anytime"].outputs[-1].get("data", {})
    assert "by kernel_size" in _text(cells["knobs"])
