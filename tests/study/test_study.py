"""Studies end to end on tiny MNIST slices: real Optuna storage, real MLflow store, real Keras.

Everything is checked by reading the stores back (`optuna.load_study`, `MlflowClient`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.names import OUTCOME_ATTR
from cnnlab.search import trials as T
from cnnlab.spec.trialspec import TrialSpec
from tests.studies import TINY, Stores


# Runs a study: every test that uses it is marked slow.
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """The study, run in this process; ``frozen``: how many objects the garbage collector had
    frozen as each trial's ``clear_session`` began."""
    import gc

    import keras

    stores = Stores(tmp_path_factory.mktemp("tiny"), TINY)
    clear_session = keras.backend.clear_session
    stores.frozen = []

    def counted(*args, **kwargs):
        stores.frozen.append(gc.get_freeze_count())
        return clear_session(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(stores.root)
        mp.setattr(keras.backend, "clear_session", counted)
        assert stores.run() == 0
    return stores


@pytest.mark.slow
def test_one_child_run_per_trial_linked_both_ways(tiny: Stores) -> None:
    study = tiny.study("tiny")
    parent, children = tiny.runs("tiny")
    assert len(study.trials) == 3
    assert sorted(children) == [0, 1, 2]
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["cnnlab.study"] == "tiny"
    for trial in study.trials:
        run = children[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["cnnlab.study"] == "tiny"
        assert run.data.tags["cnnlab.state"] == trial.state.name == "COMPLETE"
        assert run.info.run_name == f"trial-{trial.number}"
        assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_trial_runs_carry_what_a_single_run_carries(tiny: Stores) -> None:
    from cnnlab.spec.architecture import Architecture
    from cnnlab.train.model import build_model

    study = tiny.study("tiny")
    _, children = tiny.runs("tiny")
    client = tiny.client
    for trial in study.trials:
        run = children[trial.number]
        params = run.data.params
        # Every sampled parameter is on the run, under the same name.
        for key, value in trial.params.items():
            assert params[key] == str(value)
        arch = Architecture.from_dict(json.loads(
            Path(client.download_artifacts(run.info.run_id, "architecture.json")).read_text()))
        assert arch.describe() == trial.user_attrs["architecture"] == params["architecture"]
        model = build_model(arch)
        assert int(params["total_params"]) == model.count_params() == trial.user_attrs["n_params"]
        for layer in model.layers:
            if layer.count_params():
                assert int(params[f"{layer.name}_params"]) == layer.count_params()
        assert params["seed"] == str(5 + trial.number)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):  # Step = epoch, from 1.
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2]
        last = client.get_metric_history(run.info.run_id, "val_accuracy")[-1].value
        assert last == pytest.approx(trial.value)
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert plots == {"plots/loss.png", "plots/accuracy.png"}
        assert len(run.outputs.model_outputs) == 1
        # The signature written from the shapes is the one MLflow infers from a prediction.
        import mlflow
        import numpy as np
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(tiny.tracking)
        uri = f"runs:/{run.info.run_id}/model"
        x = np.zeros((2, 28, 28, 1), np.float32)
        assert mlflow.models.get_model_info(uri).signature == infer_signature(
            x, model.predict(x, verbose=0))
        # The optimizer's settings and the model's summary, as MLflow's Keras callback logs them.
        assert float(params["optimizer_learning_rate"]) == pytest.approx(0.001)
        assert "Total params" in Path(client.download_artifacts(
            run.info.run_id, "model_summary.txt")).read_text()


@pytest.mark.slow
def test_the_study_leaves_the_garbage_collector_as_it_found_it(tiny: Stores) -> None:
    import gc

    # The objective freezes the heap before its first trial's clear_session, and what the
    # first trial left alive after the second's (cnnlab.study.objective). Only gc.freeze
    # adds to the frozen objects (they leave as they are freed): none between the first
    # two trials' starts, more by the third's. The runner thaws it all.
    first, second, third = tiny.frozen
    assert first > 0 and second <= first and third > second
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
def test_live_progress_of_each_trial_on_a_terminal(tmp_path: Path, capsys,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    stores = Stores(tmp_path, TINY.replace("n_trials = 3", "n_trials = 1"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_PROGRESS", "1")  # As on a terminal.
    assert stores.run() == 0
    captured = capsys.readouterr()
    assert "trial 0  epoch 1/2" in captured.err and "trial 0  epoch 2/2" in captured.err
    assert captured.err.rindex("\r\x1b[K") > captured.err.rindex("epoch 2/2")  # Erased.
    assert "trial   0  COMPLETE" in captured.out
    monkeypatch.setenv("CNNLAB_PROGRESS", "0")
    assert stores.run("--n-trials", "2") == 0
    assert "epoch" not in capsys.readouterr().err


@pytest.mark.slow
def test_trial_model_loads_and_scores_as_recorded(tiny: Stores, mnist_dir: Path) -> None:
    import mlflow
    import numpy as np

    from cnnlab.train.data import load_mnist

    study = tiny.study("tiny")
    _, children = tiny.runs("tiny")
    trial = study.best_trial
    mlflow.set_tracking_uri(tiny.tracking)
    model = mlflow.keras.load_model(f"runs:/{children[trial.number].info.run_id}/model")
    val = load_mnist(mnist_dir, train_size=512, val_size=256).validation
    # In batches of fit's validation (the training batch size), so that the same kernels run.
    predicted = model.predict(val.x, batch_size=256, verbose=0).argmax(axis=1)
    accuracy = float((predicted == val.y).mean())
    assert accuracy == pytest.approx(trial.value, abs=1e-6)
    assert np.isfinite(accuracy)


@pytest.mark.slow
def test_parent_run_summarises_the_study(tiny: Stores) -> None:
    study = tiny.study("tiny")
    parent, _ = tiny.runs("tiny")
    client = tiny.client
    run_id = parent.info.run_id
    assert client.download_artifacts(run_id, "config/study.toml")
    text = Path(client.download_artifacts(run_id, "config/study.toml")).read_text()
    assert text == tiny.file.read_text()
    best = json.loads(Path(client.download_artifacts(run_id, "best_trial.json")).read_text())
    assert best["number"] == study.best_trial.number
    assert best["value"] == pytest.approx(study.best_value)
    assert best["params"] == study.best_trial.params
    assert best["n_params"] == study.best_trial.user_attrs["n_params"]
    assert best["run_id"] == study.best_trial.user_attrs["mlflow_run_id"]
    assert parent.data.tags["cnnlab.best_run_id"] == best["run_id"]
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.metrics["n_trials_complete"] == 3
    assert parent.data.params["seed"] == "5" and parent.data.params["sampler"] == "random"
    history = client.get_metric_history(run_id, "best_value")
    assert [m.step for m in history] == [0, 1, 2]  # Refreshed after every trial.
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/optimization_history.png", "plots/parallel_coordinate.png",
                     "plots/param_importances.png", "plots/front.png"}


@pytest.mark.slow
def test_resume_to_a_larger_total_then_nothing_more(tiny: Stores, capsys) -> None:
    parent_before, _ = tiny.runs("tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny.root)
        assert tiny.run("--n-trials", "5") == 0
        assert len(tiny.study("tiny").trials) == 5
        capsys.readouterr()
        assert tiny.run("--n-trials", "5") == 0
    out = capsys.readouterr().out
    assert "study 'tiny' is finished: 5 of 5 trials; nothing to do" in out
    assert len(tiny.study("tiny").trials) == 5
    parent, children = tiny.runs("tiny")
    assert parent.info.run_id == parent_before.info.run_id
    assert sorted(children) == [0, 1, 2, 3, 4]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id
               for c in children.values())
    assert tiny.client.get_metric_history(parent.info.run_id, "n_trials_complete")[-1].value == 5


@pytest.mark.slow
def test_a_changed_study_file_is_refused(tiny: Stores, tmp_path: Path, capsys) -> None:
    changed = Stores(tmp_path, TINY.replace("filters = [4, 8]", "filters = [4, 16]"))
    changed.storage, changed.tracking = tiny.storage, tiny.tracking
    before = len(tiny.study("tiny").trials)
    assert changed.run() == 2
    err = capsys.readouterr().err
    assert "study 'tiny' already exists with a different configuration (differs in: search)" \
        in err
    assert len(tiny.study("tiny").trials) == before


def _pruned(epochs: int, warmup: int) -> str:
    """TINY with 2 trials of ``epochs`` epochs and a pruner that prunes whatever it is asked
    about from step ``warmup`` on: ThresholdPruner(lower=2.0), since an accuracy is at most 1,
    so that every decision rests on no trained value."""
    return TINY.replace('name = "tiny"', 'name = "pruned"').replace(
        '[pruner]\nname = "none"',
        f'[pruner]\nname = "threshold"\nlower = 2.0\nn_warmup_steps = {warmup}').replace(
        "epochs = 2", f"epochs = {epochs}").replace("n_trials = 3", "n_trials = 2")


@pytest.mark.slow
@pytest.mark.parametrize("warmup, ran", [(0, 1), (2, 2)], ids=["no-warmup", "warmup-2"])
def test_pruned_after_epoch_n_means_n_epochs_ran(tmp_path: Path, monkeypatch, capsys,
                                                 warmup: int, ran: int) -> None:
    # Epochs count from 1 everywhere: Optuna's step, MLflow's step, the tag, the printed line.
    # Optuna's pruners skip step < n_warmup_steps, so with 2 the first verdict is after epoch 2.
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, _pruned(3, warmup))
    assert stores.run() == 0
    out = capsys.readouterr().out
    study = stores.study("pruned")
    _, children = stores.runs("pruned")
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    epochs = list(range(1, ran + 1))
    for trial in study.trials:
        assert f"trial {trial.number:>3}  PRUNED      pruned after epoch {ran} " in out
        assert list(trial.intermediate_values) == epochs
        run = children[trial.number]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = stores.client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == epochs, key
        history = stores.client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.value for m in history] == pytest.approx(
            [trial.intermediate_values[e] for e in epochs])
        assert run.data.tags["cnnlab.state"] == "PRUNED"
        assert run.data.tags["cnnlab.pruned_at_epoch"] == str(ran)
        assert run.data.tags["cnnlab.reason"].startswith(f"pruned by threshold after epoch {ran} ")
        assert {a.path for a in stores.client.list_artifacts(run.info.run_id, "plots")} == {
            "plots/loss.png", "plots/accuracy.png"}


@pytest.mark.slow
def test_no_trial_is_pruned_after_its_last_epoch(tmp_path: Path, monkeypatch, capsys) -> None:
    # The same pruner, in a study of one epoch a trial: that epoch is each trial's last, and
    # nothing is left to save, so no verdict is asked for and both trials complete.
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, _pruned(1, 0))
    assert stores.run() == 0
    out = capsys.readouterr().out
    study = stores.study("pruned")
    _, children = stores.runs("pruned")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert "PRUNED" not in out
    assert [T.counts(t) for t in study.trials] == [True, True]
    for trial in study.trials:
        assert list(trial.intermediate_values) == [1]  # Its last epoch is still told.
        assert trial.value == pytest.approx(trial.intermediate_values[1])
        run = children[trial.number]
        assert run.data.tags["cnnlab.state"] == "COMPLETE"
        assert "cnnlab.pruned_at_epoch" not in run.data.tags
        history = stores.client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1]
        assert history[0].value == pytest.approx(trial.value)


INVALID = """
name = "invalid"
seed = 0
n_trials = 4
max_params = 50000

[sampler]
name = "bruteforce"

[pruner]
name = "none"

[training]
epochs = 1
train_size = 256
val_size = 128

[search]
n_conv = [1, 2]              # 28 -> 7 with one layer; a second 9x9 kernel cannot fit 7x7.
filters = [4]
kernel_size = [9]
strides = [3]
padding = ["valid"]
dense_units = [8, 512]       # 196 x 512 weights are over max_params.
"""


@pytest.mark.slow
def test_infeasible_draws_teach_the_sampler_and_do_not_count(tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    """Architectures that cannot be built or are over max_params are judged by the shape
    arithmetic, never built: PRUNED with Optuna constraint values (what TPE and NSGA-II learn
    from), not counted toward n_trials; a space with nothing left ends with a message."""
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, INVALID)
    assert stores.run() == 1  # One trainable configuration of four: the total of 4 is not met.
    out = capsys.readouterr().out
    assert "stopped: the sampler has nothing left to draw" in out
    assert "ran 4 trial(s): 1 trained, 0 duplicate(s) reused, 3 infeasible" in out
    study = stores.study("invalid")
    _, children = stores.runs("invalid")
    by_config = {(t.params["n_conv"], t.params["dense1_units"]): t for t in study.trials}
    assert len(study.trials) == 4 and len(by_config) == 4
    trained = by_config[(1, 8)]
    assert trained.state.name == "COMPLETE" and trained.user_attrs["cnnlab_outcome"] == "trained"
    assert trained.constraints == {"buildable": 0.0,
                                   "max_params": trained.user_attrs["n_params"] / 50000 - 1}
    over = by_config[(1, 512)]
    assert over.state.name == "PRUNED" and over.user_attrs["cnnlab_outcome"] == "infeasible"
    assert "over the study's max_params of 50,000" in over.user_attrs["cnnlab_reason"]
    assert over.constraints == {"buildable": 0.0, "max_params": 106322 / 50000 - 1}
    for n_dense_units in (8, 512):
        shrunk = by_config[(2, n_dense_units)]
        assert shrunk.state.name == "PRUNED"
        assert shrunk.constraints == {"buildable": 1.0, "max_params": 0.0}
        assert "layer conv2 (4k9s3valid) would shrink its 7x7x4 input to 0x0" in \
            shrunk.user_attrs["cnnlab_reason"]
    assert study.best_trial.number == trained.number
    for trial in study.trials:
        run = children[trial.number]
        assert run.data.tags["cnnlab.outcome"] == trial.user_attrs["cnnlab_outcome"]
        assert run.data.params["n_conv"] == str(trial.params["n_conv"])
        if trial.number != trained.number:
            assert run.data.tags["cnnlab.state"] == "INFEASIBLE"  # Optuna's PRUNED.
            assert run.info.status == "FINISHED"
            assert run.data.tags["cnnlab.reason"] == trial.user_attrs["cnnlab_reason"]
            assert stores.client.get_metric_history(run.info.run_id, "loss") == []
            assert len(run.outputs.model_outputs) == 0
    parent, _ = stores.runs("invalid")
    assert parent.data.metrics["n_draws_infeasible"] == 3
    assert parent.data.metrics["n_trials_counted"] == 1
    # One line per trial: INFEASIBLE for a draw never built, and every line names the
    # architecture that the stores hold for its trial.
    lines = {int(line.split()[1]): line for line in out.splitlines()
             if line.startswith("trial ")}
    assert sorted(lines) == [t.number for t in study.trials]
    for trial in study.trials:
        short = TrialSpec.from_dict(trial.user_attrs["cnnlab_spec"]).architecture.short()
        assert lines[trial.number].endswith(f"  {short}")
        infeasible = trial.user_attrs["cnnlab_outcome"] == "infeasible"
        assert lines[trial.number].split()[2] == (
            "INFEASIBLE" if infeasible else trial.state.name)
    assert lines[trained.number].endswith("  4 k9 s3 valid d8")
    assert "  over max_params 50,000  " in lines[over.number]
    assert lines[over.number].endswith("  4 k9 s3 valid d512")
    assert "  conv2 shrinks 7x7x4 to 0x0  " in lines[by_config[(2, 8)].number]
    assert lines[by_config[(2, 8)].number].endswith("  4-4 k9 s3 valid d8")
    # Run again: MLflow is made to agree with Optuna on every trial, and INFEASIBLE stays.
    assert stores.run() == 1
    _, children = stores.runs("invalid")
    again = stores.study("invalid").trials
    assert len(again) > 4
    assert sorted(n for n, run in children.items()
                  if run.data.tags["cnnlab.state"] == "INFEASIBLE") == [
        t.number for t in again if t.user_attrs["cnnlab_outcome"] == "infeasible"]
    assert children[trained.number].data.tags["cnnlab.state"] == "COMPLETE"


def test_an_impossible_space_is_refused_before_any_store(tmp_path: Path, capsys) -> None:
    stores = Stores(tmp_path, TINY.replace("n_trials = 3", "n_trials = 3\nmax_params = 1"))
    assert stores.run() == 2
    err = capsys.readouterr().err.strip()
    assert "only 0% of 2,000 random architectures can be trained" in err and "\n" not in err
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_same_file_and_seed_give_the_same_architectures(tmp_path: Path, monkeypatch) -> None:
    tpe = TINY.replace('[sampler]\nname = "random"',
                       '[sampler]\nname = "tpe"\nn_startup_trials = 2').replace(
        "n_trials = 3", "n_trials = 4").replace("epochs = 2", "epochs = 1")
    sequences = []
    for copy in ("a", "b"):
        (tmp_path / copy).mkdir()
        monkeypatch.chdir(tmp_path / copy)
        stores = Stores(tmp_path / copy, tpe)
        assert stores.run() == 0
        sequences.append([t.params for t in stores.study("tiny").trials])
    assert sum(T.counts(t) for t in stores.study("tiny").trials) == 4
    assert sequences[0] == sequences[1]


@pytest.mark.parametrize(("change", "message"), [
    (("seed = 5", "seed = 5\ncolour = 1"), "unknown key 'colour'"),
    (("n_trials = 3", 'n_trials = "3"'), "'n_trials' must be an integer"),
    (("filters = [4, 8]", "filters = []"), "search.filters is an empty list of choices"),
    (("n_conv = [1, 2]", "n_conv = { low = 3, high = 1 }"), "impossible range: low 3 > high 1"),
    (('name = "random"', 'name = "random"\nwarmup = 3'), "'warmup' is not an option of "
                                                         "optuna.samplers.RandomSampler"),
    (('padding = ["valid", "same"]', 'padding = ["full"]'), "search.padding: padding must be "),
    (("[search]", "[search]\nconv9 = { filters = [4] }"), "search.conv9 is beyond"),
])
def test_bad_study_files_touch_no_store(change: tuple[str, str], message: str,
                                        tmp_path: Path, capsys) -> None:
    stores = Stores(tmp_path, TINY.replace(*change))
    assert stores.run() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab study run: error: ") and message in err, err
    assert "\n" not in err
    assert not (tmp_path / "optuna.db").exists()
    assert not (tmp_path / "mlruns").exists()


EXPERIMENTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.toml"))
SCRIPTS = sorted(p for p in EXPERIMENTS[0].parent.glob("*.py")
                 if "cnnlab.StudyScript(" in p.read_text())
"""The study scripts among the experiments (``cnnlab.search.script``)."""


def test_experiments_include_the_required_studies() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "filters_kernels", "strides_padding", "full_space"} <= names
    assert [p.name for p in SCRIPTS] == ["quickstart.py"]


@pytest.mark.slow
@pytest.mark.parametrize("path", EXPERIMENTS + SCRIPTS, ids=lambda p: p.name)
def test_every_experiment_file_runs_shrunk(path: Path, tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    from cnnlab.search.config import load_study
    from cnnlab.study.runner import run_study
    from cnnlab.tracking.stores import Stores as StoreURLs

    def shrunk(config):
        return replace(config, train_size=256, val_size=128, n_trials=1, fidelity=None,
                       training=replace(config.training, epochs=1))  # Rungs: test_rungs.py.

    config = load_study(path)
    monkeypatch.chdir(tmp_path)
    urls = StoreURLs(f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # A study that starts warm from others (open_accurate.toml from open_front.toml): they run
    # first, shrunk alike, in the same stores.
    files = {load_study(p).name: p for p in EXPERIMENTS if "warm_start" not in p.read_text()}
    for name in config.warm_start:
        run_study(shrunk(load_study(files[name])), urls, out=lambda _: None)
    outcome = run_study(shrunk(config), urls, out=lambda _: None)
    # One trained trial; draws over max_params (five_percent.toml's first) are trials that do
    # not count toward the budget.
    # Configurations enqueued beyond that one (the recipe files') wait for a larger total.
    trials = [t for t in outcome.study.trials if t.state.name != "WAITING"]
    trained = [t.number for t in trials if t.user_attrs.get(OUTCOME_ATTR) == "trained"]
    assert len(trained) == 1
    copied = [t for t in trials if t.user_attrs.get(OUTCOME_ATTR) == "copied"]
    assert len(copied) == len(config.warm_start)  # Each source's one trained trial.
    trials = [t for t in trials if t not in copied]  # Their runs are in their own experiment.
    assert {t.user_attrs.get(OUTCOME_ATTR) for t in trials} <= {"trained", "infeasible"}
    assert outcome.study.study_name == config.name
    stores = Stores.__new__(Stores)
    stores.tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent, children = stores.runs(config.name)
    assert parent.info.run_id == outcome.parent_run_id
    assert sorted(children) == [t.number for t in trials]


@pytest.mark.slow
def test_a_search_has_a_report_on_its_run(tiny: Stores, tmp_path: Path) -> None:
    """The study run ends with the report on the study's MLflow run; `cnnlab report` writes it
    again: the leaderboard holds every complete trial, with its value from Optuna."""
    from cnnlab import cli

    parent, _ = tiny.runs("tiny")
    assert "report.html" in [a.path for a in tiny.client.list_artifacts(parent.info.run_id)]
    out = tmp_path / "tiny.html"
    assert cli.main(["report", "tiny", "--storage", tiny.storage, "--tracking-uri",
                     tiny.tracking, "--out", str(out)]) == 0
    page = out.read_text()
    board = page[page.index("Leaderboard"):page.index("</table>", page.index("Leaderboard"))]
    complete = [t for t in tiny.study("tiny").trials if t.state.name == "COMPLETE"
                and t.user_attrs.get(OUTCOME_ATTR) == "trained"]
    assert board.count("<tr>") == len(complete)  # The header's row has a style.
    for trial in complete:
        assert f"<td>{trial.value:.4f}</td>" in board
