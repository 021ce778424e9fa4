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
# Six trained trials of three epochs; trial 1 is pruned after its second epoch. Under this
# max_params some draws are infeasible (never built): INFEASIBLE, compared nowhere.
TEXT = TINY.replace("n_trials = 3", "n_trials = 6\nmax_params = 60000").replace(
    "epochs = 2", "epochs = 3")
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


def _infeasible(stores: Stores) -> list:
    """The draws that were never built: PRUNED in Optuna's store, infeasible in cnnlab's."""
    return [t for t in stores.study("tiny").trials if T.outcome(t) == "infeasible"]


@pytest.mark.slow
def test_the_study_has_a_pruned_trial(stores: Stores) -> None:
    trials = _compared(stores)
    assert len(trials) == 6
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert [t.number for t in pruned] == [PRUNED_TRIAL]
    assert sorted(pruned[0].intermediate_values) == [1, 2]
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials
               if t.state.name == "COMPLETE")
    infeasible = _infeasible(stores)
    assert infeasible and all(t.state.name == "PRUNED" for t in infeasible)
    assert all(t.user_attrs["n_params"] > 60000 for t in infeasible)


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
    """Student's t interval of the mean, as a textbook gives it (not clipped)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return math.nan, math.nan
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def _check_row(row, values: list[float], sizes: list[int], epoch: int = 2) -> None:
    assert row["trials"] == len(values)
    assert row["mean"] == pytest.approx(statistics.fmean(values))
    low, high = _t_interval(values)
    # The t interval, clipped to an accuracy's [0, 1]; `clipped` says where it ran past.
    assert row["clipped"] == (low < 0 or high > 1)
    for got, want in ((row["ci_low"], max(low, 0.0)), (row["ci_high"], min(high, 1.0))):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
    assert row["best"] == max(values)
    assert row["median_params"] == statistics.median(sizes)
    assert row["epoch"] == epoch


def _knobs_of(trial) -> dict:
    """A trial's knobs from the spec stored with it in Optuna."""
    from cnnlab.spec.knobs import architecture_knobs
    from cnnlab.spec.trialspec import TrialSpec

    return architecture_knobs(TrialSpec.from_dict(trial.user_attrs["cnnlab_spec"]).architecture)


def _inside_0_1(table) -> bool:
    low, high = table["ci_low"], table["ci_high"]
    return bool(((low.isna() | (low >= 0)) & (high.isna() | (high <= 1))
                 & (low.isna() | (low <= table["mean"]))).all())


@pytest.mark.slow
def test_knob_effects_group_whole_networks_each_trial_once(stores: Stores, frame) -> None:
    from cnnlab.results.compare import at_epoch, knob_effects, network_knobs, per_layer
    from cnnlab.spec.knobs import KNOBS

    histories = _histories(stores)
    trials = _compared(stores)
    numbers = {t.number for t in trials}
    scores = at_epoch(frame)
    # One value per trial and knob, as the spec stored with the trial says.
    knobs = network_knobs(scores).set_index("trial")
    for trial in trials:
        for knob, value in _knobs_of(trial).items():
            assert knobs.loc[trial.number, knob] == value
    for knob in KNOBS:
        table = knob_effects(scores, knob)
        groups = []
        for value, row in table.iterrows():
            having = [t for t in trials if _knobs_of(t)[knob] == value]
            _check_row(row, [histories[t.number][1] for t in having],
                       [t.user_attrs["n_params"] for t in having])
            groups.append(frozenset(t.number for t in having))
        # Each trial in exactly one group: no two groups share a trial, so no group is
        # compared with itself, and the infeasible draws are in none.
        assert sum(map(len, groups)) == len(numbers) and frozenset().union(*groups) == numbers
        assert _inside_0_1(table), table
    # A conv layer's field names its knob; a trials frame is taken at equal epochs first.
    assert knob_effects(scores, "padding").equals(knob_effects(scores, "paddings"))
    assert knob_effects(frame, "kernel_size").equals(knob_effects(scores, "kernels"))
    # Grouped by depth first: each trial once, in its depth's row of its padding.
    by_depth = knob_effects(scores, "paddings", by="n_conv")
    for (depth, padding), row in by_depth.iterrows():
        having = [t for t in trials if t.params["n_conv"] == depth
                  and _knobs_of(t)["paddings"] == padding]
        _check_row(row, [histories[t.number][1] for t in having],
                   [t.user_attrs["n_params"] for t in having])
    assert by_depth["trials"].sum() == len(trials)
    with pytest.raises(ConfigError, match="neither a knob"):
        knob_effects(scores, "colour")
    with pytest.raises(ConfigError, match="not per_layer's"):
        knob_effects(per_layer(scores), "padding")


def _network(trial: int, score: float, conv: list[str], state: str = "COMPLETE",
             outcome: str = "trained") -> dict:
    """A hand-made at_epoch row: conv layers as FILTERS:KERNEL:STRIDES:PADDING."""
    row = {"study": "hand", "trial": trial, "state": state, "outcome": outcome,
           "n_conv": len(conv), "score": score, "score_metric": "val_accuracy", "epoch": 3,
           "n_params": 1000 * (trial + 1)}
    for i, text in enumerate(conv, start=1):
        filters, kernel, strides, padding = text.split(":")
        row.update({f"conv{i}_filters": int(filters), f"conv{i}_kernel_size": int(kernel),
                    f"conv{i}_strides": int(strides), f"conv{i}_padding": padding})
    return row


def test_knob_effects_intervals_stay_in_0_1_on_extreme_scores() -> None:
    import pandas as pd

    from cnnlab.results.compare import knob_effects

    rows = [
        # Two all-same 3x3 networks far apart: the t interval of their mean runs past 0 and 1.
        _network(0, 0.99, ["32:3:1:same", "64:3:2:same"]),
        _network(1, 0.50, ["32:3:1:same", "64:3:2:same"]),
        # Two all-valid ones close together: an interval inside [0, 1], left as it is.
        _network(2, 0.976, ["16:5:1:valid", "32:5:2:valid"]),
        _network(3, 0.975, ["16:5:2:valid", "32:5:2:valid"]),
        # A mixed network: in the mixed row only, not in the same nor the valid one.
        _network(4, 0.96, ["32:3:1:same", "64:5:2:valid"]),
        # Infeasible draws with scores that would move every mean: left out.
        _network(5, 0.0, ["512:9:1:same", "512:9:1:same"], "INFEASIBLE", "infeasible"),
        _network(6, 0.0, ["512:9:1:valid"], "PRUNED", "infeasible"),
    ]
    frame = pd.DataFrame(rows)
    paddings = knob_effects(frame, "padding")
    assert paddings.index.tolist() == ["all same", "all valid", "mixed"]
    assert paddings["trials"].tolist() == [2, 2, 1]
    extreme = paddings.loc["all same"]
    low, high = _t_interval([0.99, 0.50])
    assert low < 0 and high > 1  # Unclipped, this row would fail the test below.
    assert (extreme["ci_low"], extreme["ci_high"], extreme["clipped"]) == (0.0, 1.0, True)
    _check_row(paddings.loc["all valid"], [0.976, 0.975], [3000, 4000], epoch=3)
    assert not paddings.loc["all valid", "clipped"]
    _check_row(paddings.loc["mixed"], [0.96], [5000], epoch=3)
    for knob in ("paddings", "kernels", "stride2_layers", "filters_scale", "n_conv"):
        table = knob_effects(frame, knob)
        assert table["trials"].sum() == 5, knob  # Each trained trial once, no infeasible one.
        assert _inside_0_1(table), table
    assert knob_effects(frame, "kernels")["trials"].to_dict() == {
        "all 3x3": 2, "all 5x5": 2, "mixed": 1}
    assert knob_effects(frame, "strides")["trials"].to_dict() == {1: 4, 2: 1}
    assert knob_effects(frame, "filters")["trials"].to_dict() == {0.5: 2, 1.0: 3}
    with pytest.raises(ConfigError, match="a trial twice"):
        knob_effects(pd.concat([frame, frame]), "paddings")


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


STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", "INFEASIBLE")


def _state_counts(text: str) -> dict[str, int]:
    """A printed count of trials by state (pandas' text of a groupby's sizes, by study and
    state or by state and outcome): state -> n."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        states = [f for f in fields if f in STATES]
        if states and fields[-1].isdigit():
            counts[states[0]] = counts.get(states[0], 0) + int(fields[-1])
    return counts


def _expected_counts(stores: Stores) -> dict[str, int]:
    """The trials by state as cnnlab labels them, read from Optuna's store: trained ones by
    Optuna's state, infeasible draws INFEASIBLE (Optuna keeps them as PRUNED)."""
    trials = stores.study("tiny").trials
    trained = [t.state.name for t in trials if T.outcome(t) == "trained"]
    counts = {state: trained.count(state) for state in set(trained)}
    counts["INFEASIBLE"] = len(_infeasible(stores))
    assert counts == {"COMPLETE": 5, "PRUNED": 1, "INFEASIBLE": counts["INFEASIBLE"]}
    assert counts["INFEASIBLE"] > 0
    return counts


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
    # The counts by state: infeasible draws INFEASIBLE, apart from the trained trials.
    assert _state_counts(out) == _expected_counts(stores)
    assert f"{len(_infeasible(stores))} infeasible draw(s) were never built" in out
    assert "val_accuracy after 2 epoch(s): 6 trials (1 pruned" in out
    assert "val_accuracy at epoch 2 by kernel size (all 3x3, all 5x5 ..., mixed)" in out
    assert "by the number of stride-2 layers" in out
    assert "by the filters against the notebook CNN's" in out
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
    assert "No parameter bin holds both all 3x3 and all 5x5 networks" in notes[0]
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
    # No designed experiment in these stores: the design's cell says how to run one.
    assert "no study 'knobs' yet: run cnnlab study run experiments/knobs.toml" in \
        _text(cells["design"])

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
    assert "by kernels" in _text(cells["knobs"])
    # The counts by state: infeasible draws INFEASIBLE, apart from the trained trials.
    [counts] = [o for o in cells["counts"].outputs if o.output_type == "execute_result"]
    assert _state_counts(counts["data"]["text/plain"]) == _expected_counts(stores)
