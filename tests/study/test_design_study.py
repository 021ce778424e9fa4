"""A designed experiment end to end on tiny MNIST slices: every setting and seed trained and
tracked, and its report's tables equal to what MLflow holds."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import statistics
from pathlib import Path

import pytest

from cnnlab.results.compare import CURVES, trials_frame
from cnnlab.results.report import design_tables
from cnnlab.search.config import load_study_config
from tests.studies import Stores, run_as_pasted

DESIGN = """
name = "tiny-design"
seed = 7

[training]
epochs = 2
train_size = 512
val_size = 256

[design]
seeds = 2
filters = [0.25, 1]
padding = ["valid"]
"""


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    stores = Stores(tmp_path_factory.mktemp("design"), DESIGN)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.chdir(stores.root)
        assert stores.run() == 0
    stores.printed = printed.getvalue()
    return stores


@pytest.mark.slow
def test_every_setting_and_seed_is_trained_and_tracked(design: Stores) -> None:
    study = design.study("tiny-design")
    parent, children = design.runs("tiny-design")
    cells = {(t.params["design_setting"], t.params["design_seed"]) for t in study.trials}
    assert cells == {(s, i) for s in ("base", "filters x0.25", "padding valid") for i in (0, 1)}
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    for trial in study.trials:
        run = children[trial.number]
        # Every setting is trained with the same seeds: the study's seed plus the seed's index.
        assert trial.user_attrs["seed"] == 7 + trial.params["design_seed"]
        assert run.data.params["design_setting"] == trial.params["design_setting"]
        assert run.data.params["design_seed"] == str(trial.params["design_seed"])
        assert run.data.params["design_knob"] == trial.user_attrs["design_knob"]
        assert run.data.params["design_value"] == trial.user_attrs["design_value"]
        # Epochs are counted from 1: MLflow's steps, Optuna's intermediate values.
        for metric in CURVES:
            steps = [m.step for m in design.client.get_metric_history(run.info.run_id, metric)]
            assert sorted(steps) == [1, 2], metric
        assert sorted(trial.intermediate_values) == [1, 2]
    # Each trial's line names its setting, its seed and its architecture.
    lines = [line for line in design.printed.splitlines() if line.startswith("trial ")]
    assert len(lines) == 6
    for trial, line in zip(study.trials, lines, strict=True):
        assert line.startswith(f"trial {trial.number:>3}  COMPLETE")
        assert line.endswith(f"{trial.params['design_setting']}, seed "
                             f"{trial.params['design_seed']}: "
                             + config_arch(design, trial.params["design_setting"]).short())
    knobs = {t.params["design_setting"]: t.user_attrs["design_knob"] for t in study.trials}
    assert knobs == {"base": "base", "filters x0.25": "filters", "padding valid": "padding"}


def config_arch(stores: Stores, label: str):
    return load_study_config(stores.file).design.setting(label).architecture


@pytest.mark.slow
def test_the_report_tables_are_what_mlflow_holds(design: Stores) -> None:
    parent, children = design.runs("tiny-design")
    config = load_study_config(design.file)
    frame = trials_frame("tiny-design", storage=design.storage, tracking_uri=design.tracking,
                         epoch_curves=CURVES)
    tables = design_tables(frame, config.design)
    assert list(tables) == ["filters", "padding"]
    by_setting: dict[str, dict[int, dict[str, float]]] = {}
    params = {run.data.params["design_setting"]: run.data.params for run in children.values()}
    for run in children.values():
        by_setting.setdefault(run.data.params["design_setting"], {})[
            int(run.data.params["design_seed"])] = run.data.metrics
    for table in tables.values():
        assert table["setting"].tolist()[0] == "base"
        for row in table.itertuples():
            runs = by_setting[row.setting]
            assert row.seeds == len(runs) == 2
            # Sizes as the runs recorded them: parameters and the map before Flatten.
            assert {m["n_params"] for m in runs.values()} == {row.n_params}
            assert row.final_feature_map == params[row.setting]["final_feature_map"]
            for metric in ("val_accuracy", "val_loss", "accuracy", "loss"):
                assert getattr(row, metric) == pytest.approx(
                    statistics.fmean(m[metric] for m in runs.values()), abs=1e-12)
            diffs = [runs[i]["val_accuracy"] - by_setting["base"][i]["val_accuracy"]
                     for i in (0, 1)]
            assert row.diff_val_accuracy == pytest.approx(statistics.fmean(diffs), abs=1e-12)
            # Intervals stay where accuracies can be.
            assert 0 <= row.val_accuracy_low <= row.val_accuracy <= row.val_accuracy_high <= 1
            assert -1 <= row.diff_val_accuracy_low <= row.diff_val_accuracy_high <= 1


@pytest.mark.slow
def test_the_report_is_on_the_study_run_and_printed(design: Stores, tmp_path: Path,
                                                    capsys) -> None:
    parent, _ = design.runs("tiny-design")
    artifacts = [a.path for a in design.client.list_artifacts(parent.info.run_id)]
    assert "report.html" in artifacts
    assert "plots" not in artifacts  # A search's plots say nothing of a design.
    page = Path(design.client.download_artifacts(parent.info.run_id, "report.html",
                                                 str(tmp_path))).read_text()
    assert page.count("<img") == 2 and "data:image/png;base64," in page
    # The page opens with its answer in one line, right under the title.
    title = "<h1>cnnlab report: tiny-design</h1>\n"
    answer = page.split(title, 1)[1].split("\n", 1)[0]
    assert answer.startswith("<p class=answer><b>Answer:</b> ") and answer.endswith("</p>")
    assert "the base (notebook CNN, " in answer and answer.count("<p") == 1
    assert "filters" in page and "padding" in page and "x0.25" in page
    # The run ended with the tables and the report's path.
    assert "filters:" in design.printed and "padding:" in design.printed
    assert "report: " in design.printed and "(report.html)" in design.printed
    # `confirm` refuses a design, pointing to `cnnlab report`, which writes the same page
    # again: the command as printed (it names the stores), pasted in a plain shell (no virtual
    # environment on the PATH) in another folder.
    from cnnlab import cli

    capsys.readouterr()
    assert cli.main(["confirm", "tiny-design", "--storage", design.storage, "--tracking-uri",
                     design.tracking]) == 2
    (advice,) = re.findall(r"`([^`]+)`", capsys.readouterr().err)
    argv = shlex.split(advice)
    assert Path(argv[0]).name == "cnnlab" and argv[1] == "report"
    out = design.root / "mlruns" / "reports" / "tiny-design.html"
    out.unlink()
    done = run_as_pasted(advice, tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "filters:" in done.stdout and "padding:" in done.stdout and "vs base" in done.stdout
    assert f"report: {out}" in done.stdout
    assert out.read_text().count("<img") == 2
    assert not (tmp_path / "elsewhere" / "mlruns").exists()


@pytest.mark.slow
def test_a_stopped_design_resumes_where_it_stopped(tmp_path: Path, monkeypatch) -> None:
    text = DESIGN.replace("seeds = 2", "seeds = 1").replace('padding = ["valid"]\n', "")
    stores = Stores(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    assert stores.run("--n-trials", "1") == 0
    assert [t.params["design_setting"] for t in stores.study("tiny-design").trials] == ["base"]
    assert stores.run() == 0  # The design's own total: its two cells.
    study = stores.study("tiny-design")
    assert [(t.params["design_setting"], t.state.name) for t in study.trials] == [
        ("base", "COMPLETE"), ("filters x0.25", "COMPLETE")]
    _, children = stores.runs("tiny-design")
    assert sorted(children) == [0, 1]
