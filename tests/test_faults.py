"""Faults that really happen: a worker killed or interrupted mid-trial, a diverging trial,
unreachable stores, and several workers on one study. Each reads the stores back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from studies import TINY, Stores

from cnnlab import cli

pytestmark = pytest.mark.slow

# Long enough per trial (a few seconds) to be caught in the middle of one.
SLOW = TINY.replace("epochs = 2", "epochs = 3").replace("train_size = 512", "train_size = 3072")


def _command(stores: Stores, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab.cli", "study", "run", str(stores.file), "--storage",
            stores.storage, "--tracking-uri", stores.tracking, *extra]


def _start(stores: Stores, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(_command(stores, *extra), cwd=stores.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_running_trial(stores: Stores, proc: subprocess.Popen, number: int) -> None:
    """Until trial ``number`` is RUNNING, has its MLflow run and has trained an epoch."""
    import optuna

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            study = optuna.load_study(study_name="tiny", storage=stores.storage)
            trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
            if trials and trials[0].state.name == "RUNNING" and \
                    "mlflow_run_id" in trials[0].user_attrs and trials[0].intermediate_values:
                return
        except (KeyError, ValueError):
            pass  # The study is not created yet.
        time.sleep(0.3)
    raise AssertionError(f"trial {number} never ran")


def test_killed_mid_trial_then_resumed(tmp_path: Path) -> None:
    stores = Stores(tmp_path, SLOW)
    proc = _start(stores)
    _wait_for_running_trial(stores, proc, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The same command again: the killed trial is failed at once (its process is gone), its
    # MLflow run is ended as KILLED, and the study goes on to its 3 counted trials.
    again = subprocess.run(_command(stores), cwd=tmp_path, capture_output=True, text=True,
                           timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert again.returncode == 0, again.stderr
    study = stores.study("tiny")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    killed = study.trials[1]
    assert "fail_reason" not in killed.user_attrs
    parent, children = stores.runs("tiny")
    assert children[1].info.status == "KILLED"
    assert children[1].data.tags["cnnlab.state"] == "FAIL"
    assert "killed or interrupted" in children[1].data.tags["cnnlab.reason"]
    assert [m.step for m in stores.client.get_metric_history(
        children[1].info.run_id, "val_accuracy")] != []  # Its partial curve is kept.
    for number in (0, 2, 3):
        assert children[number].info.status == "FINISHED"
        assert children[number].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "FINISHED"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_closes_the_trial_and_the_study_run(tmp_path: Path, signum: int,
                                                        code: int) -> None:
    stores = Stores(tmp_path, SLOW)
    proc = _start(stores)
    _wait_for_running_trial(stores, proc, 0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "the current trial and the study's run were closed" in err
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    parent, children = stores.runs("tiny")
    assert children[0].info.status == "KILLED"
    assert children[0].data.tags["cnnlab.state"] == "FAIL"
    assert parent.info.status == "KILLED"


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path: Path,
                                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = TINY.replace("epochs = 2", "epochs = 3\nlearning_rate = 1e30").replace(
        "n_trials = 3", "n_trials = 2")
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]  # Both ran: it went on.
    _, children = stores.runs("tiny")
    for trial in study.trials:
        assert trial.user_attrs["fail_reason"].startswith("training diverged: the loss became")
        run = children[trial.number]
        assert run.info.status == "FAILED"
        assert run.data.tags["cnnlab.reason"] == trial.user_attrs["fail_reason"]
        assert run.data.params["learning_rate"] == "1e+30"


def test_unreachable_stores_are_named_without_password_and_nothing_is_written(
        tmp_path: Path, capsys) -> None:
    stores = Stores(tmp_path, TINY)
    secret = "postgresql://cnnlab:s3cret@127.0.0.1:1/optuna"
    assert cli.main(["study", "run", str(stores.file), "--storage", secret,
                     "--tracking-uri", stores.tracking]) == 2
    err = capsys.readouterr().err
    assert "cannot open the Optuna storage postgresql://cnnlab:***@127.0.0.1:1/optuna" in err
    assert "s3cret" not in err and "\n" not in err.strip()
    assert not (tmp_path / "mlruns").exists()
    assert cli.main(["study", "run", str(stores.file), "--storage", stores.storage,
                     "--tracking-uri", "http://u:pw@127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the MLflow tracking store http://u:***@127.0.0.1:1" in err
    assert "pw@" not in err
    assert not (tmp_path / "optuna.db").exists()


def test_command_tag_hides_passwords(monkeypatch) -> None:
    from cnnlab.tracking import command_line

    monkeypatch.setattr(sys, "argv", ["cnnlab", "study", "run", "f.toml", "--storage",
                                      "postgresql://me:hunter2@db:5432/optuna"])
    assert command_line() == "cnnlab study run f.toml --storage postgresql://me:***@db:5432/optuna"


def test_workers_share_one_study_on_the_local_default(tmp_path: Path) -> None:
    """`--workers 2` on the default local stores: exactly the total, no lost or duplicate
    trials, one study run, and no 'database is locked'."""
    stores = Stores(tmp_path, TINY.replace("n_trials = 3", "n_trials = 4"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "CNNLAB_STORAGE")}  # The defaults, really.
    result = subprocess.run([sys.executable, "-m", "cnnlab.cli", "study", "run",
                             str(stores.file), "--workers", "2"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert "locked" not in result.stderr + result.stdout
    stores.storage = f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    stores.tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    study = stores.study("tiny")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    assert len({t.user_attrs["cnnlab_worker"]["pid"] for t in study.trials}) == 2
    parent, children = stores.runs("tiny")  # Asserts a single study run.
    assert sorted(children) == [0, 1, 2, 3]
    assert {c.data.tags["mlflow.parentRunId"] for c in children.values()} == {parent.info.run_id}
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == \
        {c.info.run_id for c in children.values()}


def test_corrupt_data_leaves_the_stores_as_they_were(mnist_dir: Path, tmp_path: Path,
                                                      capsys) -> None:
    import gzip
    import shutil

    broken = tmp_path / "mnist"
    broken.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        shutil.copy(mnist_dir / f"{name}.gz", broken / f"{name}.gz")
    images = broken / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-1000]))
    stores = Stores(tmp_path, TINY)
    assert stores.run("--data-dir", str(broken)) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz holds" in err and "truncated or corrupt" in err
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlruns").exists()
