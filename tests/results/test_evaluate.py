"""The test set, once: `cnnlab evaluate`, and the proof that nothing else reads the test split."""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab import cli
from cnnlab.tracking.evaluations import registered_model_name
from cnnlab.train import data
from tests.studies import TINY, Stores, run_as_pasted

pytestmark = pytest.mark.slow  # Every test here runs a study (most through `stores`).


def _study(root: Path, name: str, n_trials: int = 2) -> Stores:
    text = TINY.replace('name = "tiny"', f'name = "{name}"').replace(
        "n_trials = 3", f"n_trials = {n_trials}").replace("epochs = 2", "epochs = 1")
    stores = Stores(root, text, name=f"{name}.toml")
    return stores


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """One store with four small studies: evaluated once, raced, crashed, and guarded (every
    evaluation of it is refused). A crashed evaluation is completed on another trial, and a
    raced study is copied whole into a new one: those two have two trials, the others one."""
    root = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name, n_trials in (("once", 1), ("race", 2), ("crash", 2), ("guarded", 1)):
            stores = _study(root, name, n_trials)
            assert stores.run() == 0
    return stores


def _evaluate(stores: Stores, study: str, *extra: str) -> int:
    return cli.main(["evaluate", study, "--storage", stores.storage,
                     "--tracking-uri", stores.tracking, *extra])


def test_evaluate_once_records_everything(stores: Stores, mnist_dir: Path, capsys) -> None:
    import mlflow

    assert _evaluate(stores, "once") == 0
    captured = capsys.readouterr()
    out = captured.out
    # MLflow's registration lines ("Registered model ... already exists. Creating a new version
    # of this model...", about the model cnnlab had just made as its claim) are not printed.
    assert "Registered model" not in captured.err and "already exists" not in captured.err
    assert "Created version" not in captured.err
    study = stores.study("once")
    best = study.best_trial
    parent, children = stores.runs("once")
    trial_run = children[best.number]
    client = stores.client
    test = data.load_test_split(mnist_dir)

    # The registered model, its alias, and the recorded accuracy, recomputed from the registry.
    name = registered_model_name("once")
    assert name.startswith("cnnlab-once-")
    version = client.get_model_version_by_alias(name, "evaluated")
    assert version.run_id == trial_run.info.run_id
    # The version is the trial's logged model, linked both ways as mlflow.register_model links.
    model_id = trial_run.outputs.model_outputs[-1].model_id
    assert version.source == f"models:/{model_id}" and str(version.version) == "1"
    assert json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"]) == [
        {"name": name, "version": 1}]
    mlflow.set_tracking_uri(stores.tracking)
    model = mlflow.keras.load_model(f"models:/{name}@evaluated")
    predicted = model.predict(test.x, batch_size=1024, verbose=0).argmax(axis=1)  # As evaluate.
    accuracy = float((predicted == test.y).mean())
    for run_id in (trial_run.info.run_id, parent.info.run_id):
        run = client.get_run(run_id)
        assert run.data.metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
        assert 0 < run.data.metrics["test_loss"] < 3
        for digit in range(10):
            mask = test.y == digit
            assert run.data.metrics[f"test_accuracy_class_{digit}"] == pytest.approx(
                float((predicted[mask] == digit).mean()))
        assert run.data.tags["cnnlab.evaluated_trial"] == str(best.number)
        assert run.data.tags["cnnlab.evaluated_model"].startswith("models:/m-")
        assert run.data.tags["cnnlab.evaluated_at"].startswith("20")
        paths = {a.path for a in client.list_artifacts(run_id, "evaluation")}
        assert paths == {"evaluation/confusion_matrix.png", "evaluation/result.json"}
        result = json.loads(Path(client.download_artifacts(
            run_id, "evaluation/result.json")).read_text())
        assert result["test_sha256"] == test.sha256 == run.data.tags["cnnlab.test_sha256"]
        assert result["test_source"] == str(mnist_dir.resolve())
        matrix = np.array(result["confusion_matrix"])
        assert matrix.sum() == 10_000 and np.trace(matrix) == round(accuracy * 10_000)
    assert version.tags["cnnlab.trial"] == str(best.number)
    assert float(version.tags["test_accuracy"]) == pytest.approx(accuracy, abs=1e-6)
    assert study.user_attrs["cnnlab_evaluation"]["test_accuracy"] == pytest.approx(accuracy)
    assert f"test accuracy {accuracy:.4f}" in out
    # The study's report is written again with the evaluation on it, and logged on its run.
    page = Path(client.download_artifacts(parent.info.run_id, "report.html")).read_text()
    assert "The test set, once" in page and f"test accuracy <b>{accuracy:.4f}</b>" in page
    assert "report: " in out


def test_a_second_evaluation_is_refused(stores: Stores, capsys) -> None:
    if "cnnlab_evaluation" not in stores.study("once").user_attrs:
        assert _evaluate(stores, "once") == 0
    capsys.readouterr()
    assert _evaluate(stores, "once") == 1
    err = capsys.readouterr().err
    assert "study 'once' was already evaluated on the test set at" in err
    assert "the test set is looked at once per study" in err
    versions = stores.client.search_model_versions(f"name = '{registered_model_name('once')}'")
    assert len(versions) == 1
    parent, _ = stores.runs("once")
    assert len(stores.client.get_metric_history(parent.info.run_id, "test_accuracy")) == 1


def test_two_evaluations_at_once_yield_exactly_one(stores: Stores) -> None:
    command = [sys.executable, "-m", "cnnlab.cli", "evaluate", "race", "--storage",
               stores.storage, "--tracking-uri", stores.tracking]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen(command, cwd=stores.root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "refused" in refused and ("claimed" in refused or "already evaluated" in refused)
    versions = stores.client.search_model_versions(f"name = '{registered_model_name('race')}'")
    assert len(versions) == 1
    parent, _ = stores.runs("race")
    assert len(stores.client.get_metric_history(parent.info.run_id, "test_accuracy")) == 1


def _folder_with_broken_test_files(mnist_dir: Path, root: Path) -> Path:
    """Real training files (linked), and test files that are not MNIST at all."""
    folder = root / "mnist-no-test"
    folder.mkdir()
    for name in data.TRAIN_FILES:
        (folder / f"{name}.gz").symlink_to(mnist_dir / f"{name}.gz")
    for name in data.TEST_FILES:
        (folder / f"{name}.gz").write_bytes(gzip.compress(b"not the test set"))
    return folder


def test_bad_test_files_are_refused_before_the_claim(stores: Stores, mnist_dir: Path,
                                                     tmp_path: Path, capsys) -> None:
    broken = _folder_with_broken_test_files(mnist_dir, tmp_path)
    for folder in (broken, tmp_path / "missing"):
        assert _evaluate(stores, "crash", "--data-dir", str(folder)) == 2
        err = capsys.readouterr().err
        assert "t10k-images-idx3-ubyte.gz is not an IDX file" in err or "missing" in err
        # Nothing claimed, nothing recorded: a later evaluation is still possible.
        assert stores.client.search_registered_models(
            f"name = '{registered_model_name('crash')}'") == []


def test_a_crashed_evaluation_completes_on_the_same_model_only(
        stores: Stores, tmp_path: Path, monkeypatch, capsys) -> None:
    import cnnlab.results.evaluate

    def crash(*args, **kwargs):  # The process dies between the claim and the result.
        raise RuntimeError("crashed after the claim")

    with monkeypatch.context() as mp:
        mp.setattr(cnnlab.results.evaluate, "_evaluate", crash)
        with pytest.raises(RuntimeError, match="crashed after the claim"):
            _evaluate(stores, "crash")
    capsys.readouterr()
    assert _evaluate(stores, "crash") == 1
    err = capsys.readouterr().err
    assert "has no result yet: it is running, or it crashed" in err
    (advice,) = re.findall(r"`([^`]+)`", err)  # Run below as printed: it names the stores.
    complete = shlex.split(advice)
    assert Path(complete[0]).name == "cnnlab" and complete[1] == "evaluate"
    assert "--complete" in complete
    study = stores.study("crash")
    other = next(t.number for t in study.trials if t.number != study.best_trial.number)
    assert _evaluate(stores, "crash", "--complete", "--trial", str(other)) == 1
    assert "completed on the same model only" in capsys.readouterr().err
    # As pasted, in a plain shell (no virtual environment on the PATH) in another folder.
    done = run_as_pasted(advice, tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "elsewhere" / "mlruns").exists()
    version = stores.client.get_model_version_by_alias(registered_model_name("crash"),
                                                      "evaluated")
    assert version.run_id == study.best_trial.user_attrs["mlflow_run_id"]
    assert _evaluate(stores, "crash", "--complete") == 1  # Done is done.


def test_unknown_study_is_named_and_nothing_is_written(stores: Stores, capsys) -> None:
    assert _evaluate(stores, "nope") == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and "studies there: crash, guarded, once, race" in err
    assert stores.client.search_registered_models("name = 'cnnlab-nope'") == []


def test_studies_and_training_never_read_the_test_split(
        mnist_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A whole study and a tracked run succeed with test files that cannot be read and with
    the test loader made to fail: only `cnnlab evaluate` touches the test split."""
    import cnnlab.results.evaluate

    def forbidden(*args, **kwargs):
        raise AssertionError("the test split was read outside cnnlab evaluate")

    monkeypatch.setattr(data, "load_test_split", forbidden)
    monkeypatch.setattr(cnnlab.results.evaluate, "load_test_split", forbidden)
    broken = _folder_with_broken_test_files(mnist_dir, tmp_path)
    monkeypatch.setenv("CNNLAB_MNIST_DIR", str(broken))
    monkeypatch.chdir(tmp_path)
    stores = _study(tmp_path, "blind", n_trials=2)
    assert stores.run() == 0
    assert [t.state.name for t in stores.study("blind").trials] == ["COMPLETE", "COMPLETE"]
    capsys.readouterr()
    assert cli.main(["train", "--conv", "4:3:2", "--dense", "8", "--epochs", "1",
                     "--train-size", "256", "--val-size", "128",
                     "--tracking-uri", stores.tracking]) == 0
    assert " after 1 epoch\n" in capsys.readouterr().out  # Not "1 epochs".


def _npz_folder(root: Path, mnist_dir: Path, *, test_from_validation: bool = False,
                other_training: bool = False) -> Path:
    """A Keras-style mnist.npz made from the real files, with the test images replaced by
    validation images, or with one validation image changed."""
    (x_train, y_train), (x_test, y_test) = [
        (data.read_idx(mnist_dir / f"{images}.gz"), data.read_idx(mnist_dir / f"{labels}.gz"))
        for images, labels in (data.TRAIN_FILES, data.TEST_FILES)]
    x_train = x_train.copy()
    if test_from_validation:
        x_test = x_train[:10_000].copy()
    if other_training:
        x_train[0] = 255 - x_train[0]
    folder = root / ("leak" if test_from_validation else "other")
    folder.mkdir()
    np.savez(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    return folder


def _nothing_claimed(stores: Stores, study: str) -> bool:
    return stores.client.search_registered_models(
        f"name = '{registered_model_name(study)}'") == []


def test_a_test_split_that_is_not_held_out_is_refused(stores: Stores, mnist_dir: Path,
                                                      tmp_path: Path, capsys) -> None:
    leak = _npz_folder(tmp_path, mnist_dir, test_from_validation=True)
    assert _evaluate(stores, "guarded", "--data-dir", str(leak)) == 2
    err = capsys.readouterr().err
    assert "256 of the 10,000 test images" in err and "are also validation images" in err
    other = _npz_folder(tmp_path, mnist_dir, other_training=True)
    assert _evaluate(stores, "guarded", "--data-dir", str(other)) == 2
    assert "are not the study's: its validation split has digest" in capsys.readouterr().err
    assert _nothing_claimed(stores, "guarded")


def test_a_registered_model_of_another_study_is_not_taken_for_ours(stores: Stores,
                                                                   capsys) -> None:
    import json

    assert registered_model_name("rev a") != registered_model_name("rev-a")
    assert registered_model_name("rev a").startswith("cnnlab-rev-a-")
    name = registered_model_name("guarded")
    # What a study of the same name in another Optuna storage would have claimed.
    stores.client.create_registered_model(name, tags={
        "cnnlab.study": "guarded", "cnnlab.study_uid": "another-storage",
        "cnnlab.claim": json.dumps({"trial": 0, "run_id": "x", "model_uri": "x"})})
    try:
        assert _evaluate(stores, "guarded") == 1
        assert "belongs to another study" in capsys.readouterr().err
        assert "cnnlab_evaluation" not in stores.study("guarded").user_attrs
    finally:
        stores.client.delete_registered_model(name)


def test_once_survives_deleting_records_with_the_stock_tools(stores: Stores, capsys) -> None:
    """Deleting the registered model and the study's run in the MLflow UI does not make the
    study evaluable again: any one record of the evaluation is enough."""
    from cnnlab.tracking.evaluations import evaluation_records

    if "cnnlab_evaluation" not in stores.study("once").user_attrs:
        assert _evaluate(stores, "once") == 0
    parent, children = stores.runs("once")
    stores.client.delete_registered_model(registered_model_name("once"))
    stores.client.delete_run(parent.info.run_id)
    capsys.readouterr()
    assert _evaluate(stores, "once") == 1
    err = capsys.readouterr().err
    assert "study 'once' was already evaluated on the test set" in err
    assert _nothing_claimed(stores, "once")
    import mlflow

    mlflow.set_tracking_uri(stores.tracking)
    where = [w for w, _ in evaluation_records(stores.study("once"))]
    assert where[0] == "the study's attribute in Optuna"
    assert f"MLflow run {parent.info.run_id}" in where  # Deleted, and still a record.
    best = stores.study("once").best_trial.user_attrs["mlflow_run_id"]
    assert f"MLflow run {best}" in where


def test_an_evaluated_study_takes_no_more_trials_and_a_new_one_starts_from_it(
        stores: Stores, capsys) -> None:
    if "cnnlab_evaluation" not in stores.study("race").user_attrs:
        assert _evaluate(stores, "race") == 0
    root = stores.root
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        capsys.readouterr()
        assert cli.main(["study", "run", str(root / "race.toml"), "--n-trials", "3",
                         "--storage", stores.storage, "--tracking-uri", stores.tracking]) == 2
        err = capsys.readouterr().err
        assert "study 'race' was evaluated on the test set at" in err
        assert "--from-study race " in err and "\n" not in err.strip()
        assert len(stores.study("race").trials) == 2
        text = (root / "race.toml").read_text().replace('name = "race"', 'name = "race-2"')
        (root / "race-2.toml").write_text(text.replace("n_trials = 2", "n_trials = 1"))
        assert cli.main(["study", "run", str(root / "race-2.toml"), "--from-study", "race",
                         "--storage", stores.storage, "--tracking-uri", stores.tracking]) == 0
    old = stores.study("race").trials
    new = stores.study("race-2").trials
    assert [t.user_attrs["cnnlab_outcome"] for t in new] == ["copied", "copied", "trained"]
    for copy, trial in zip(new, old, strict=False):
        assert copy.params == trial.params and copy.value == trial.value
        assert copy.user_attrs["cnnlab_copied_from"] == {"study": "race", "trial": trial.number}
    assert "cnnlab_evaluation" not in stores.study("race-2").user_attrs
