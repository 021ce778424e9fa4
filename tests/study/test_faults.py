"""Faults that really happen: a worker killed or interrupted mid-trial, a diverging trial,
unreachable stores, and several workers on one study. Each reads the stores back."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlab import cli
from cnnlab.train.data import NUM_CLASSES, MnistSplits, Split, load_mnist
from tests.studies import TINY, Stores

# Trials of many short epochs: a trial is inside fit for seven epochs of eight, a window that
# _freeze_in_trial's checks (every few hundredths of a second) cannot miss on a fast machine.
SLOW_EPOCHS = 8
SLOW = TINY.replace("epochs = 2", f"epochs = {SLOW_EPOCHS}").replace("train_size = 512",
                                                                     "train_size = 2048")


def _command(stores: Stores, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab.cli", "study", "run", str(stores.file), "--storage",
            stores.storage, "--tracking-uri", stores.tracking, *extra]


def _default_signals() -> None:
    # A test runner started in the background by a shell without job control ignores SIGINT,
    # and so would its children: the study process gets the default, as from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(stores: Stores, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen(_command(stores, *extra), cwd=stores.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)


def _freeze_in_trial(stores: Stores, proc: subprocess.Popen, first: int = 0) -> int:
    """Stop the study process (SIGSTOP) at an instant when one of its trials, numbered ``first``
    or later, is RUNNING, has its MLflow run, and has trained at least one epoch but not all
    (so it is inside ``fit``); returns that trial's number, the process left stopped.

    The state is read while the process is frozen, so it cannot move on between the check and
    the caller's signal (with a live process, a fast machine could finish the trial in that
    gap). The caller signals the process, then sends SIGCONT."""
    import optuna
    from optuna.trial import TrialState

    storage = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            if storage is None:
                # Read-only: never create or migrate tables the process may be creating; a
                # frozen writer's lock makes a read fail fast rather than wait.
                storage = optuna.storages.RDBStorage(
                    stores.storage, engine_kwargs={"connect_args": {"timeout": 1}},
                    skip_compatibility_check=True, skip_table_creation=True)
            study_id = storage.get_study_id_from_name("tiny")
            for trial in storage.get_all_trials(study_id, deepcopy=False,
                                                states=(TrialState.RUNNING,)):
                if trial.number >= first and "mlflow_run_id" in trial.user_attrs and \
                        1 <= len(trial.intermediate_values) < SLOW_EPOCHS:
                    return trial.number
        except Exception:  # noqa: BLE001 - no study or tables yet, or the frozen writer's lock.
            pass
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGCONT)
    raise AssertionError("no trial was caught inside fit")


@pytest.mark.slow
def test_killed_mid_trial_then_resumed(tmp_path: Path) -> None:
    stores = Stores(tmp_path, SLOW.replace("n_trials = 3", "n_trials = 2"))
    proc = _start(stores)
    killed = _freeze_in_trial(stores, proc, first=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The same command again (here, in this process): the killed trial is failed at once (its
    # process is gone), its MLflow run is ended as KILLED, and the study goes on to its 2
    # counted trials.
    assert stores.run() == 0
    study = stores.study("tiny")
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL" if n == killed else "COMPLETE" for n in range(3)]
    assert "fail_reason" not in study.trials[killed].user_attrs
    parent, children = stores.runs("tiny")
    assert children[killed].info.status == "KILLED"
    assert children[killed].data.tags["cnnlab.state"] == "FAIL"
    assert "killed or interrupted" in children[killed].data.tags["cnnlab.reason"]
    assert [m.step for m in stores.client.get_metric_history(
        children[killed].info.run_id, "val_accuracy")] != []  # Its partial curve is kept.
    for number in set(range(3)) - {killed}:
        assert children[number].info.status == "FINISHED"
        assert children[number].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_closes_the_trial_and_the_study_run(tmp_path: Path, signum: int,
                                                        code: int) -> None:
    stores = Stores(tmp_path, SLOW)
    proc = _start(stores)
    caught = _freeze_in_trial(stores, proc)
    proc.send_signal(signum)  # Delivered as the process continues, inside fit.
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "the current trial and the study's run were closed" in err
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * caught + ["FAIL"]
    parent, children = stores.runs("tiny")
    assert children[caught].info.status == "KILLED"
    assert children[caught].data.tags["cnnlab.state"] == "FAIL"
    assert parent.info.status == "KILLED"


@dataclasses.dataclass(frozen=True)
class _NanTargets(Split):
    """Training examples whose one-hot targets are NaN. Categorical cross-entropy multiplies
    the targets into the loss, and NaN times any number is NaN (IEEE 754), so the first batch's
    loss is NaN on every CPU: divergence by construction, not by a learning rate's luck."""

    @property
    def y_onehot(self) -> np.ndarray:
        return np.full((len(self.y), NUM_CLASSES), np.nan, dtype=np.float32)


@pytest.mark.slow
def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(
        tmp_path: Path, mnist_dir: Path, monkeypatch, capsys) -> None:
    from cnnlab.search.config import load_study_config
    from cnnlab.study.runner import run_study
    from cnnlab.tracking.stores import Stores as StoreURLs

    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, TINY.replace("epochs = 2", "epochs = 3").replace(
        "n_trials = 3", "n_trials = 2"))
    real = load_mnist(mnist_dir, train_size=512, val_size=256)
    diverging = MnistSplits(train=_NanTargets(real.train.x, real.train.y, real.train.sha256),
                            validation=real.validation, source=real.source)
    outcome = run_study(load_study_config(stores.file),
                        StoreURLs(storage=stores.storage, tracking_uri=stores.tracking),
                        data=diverging, out=lambda _: None)
    assert outcome.ran == 2
    # cnnlab says why in the trial's line; Keras's own line on stdout is not passed on.
    printed = capsys.readouterr()
    assert "Invalid loss" not in printed.out + printed.err
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]  # Both ran: it went on.
    parent, children = stores.runs("tiny")
    assert parent.info.status == "FINISHED"
    for trial in study.trials:
        # Stopped by TerminateOnNaN after its first batch, so in its first epoch of three.
        assert trial.user_attrs["fail_reason"] == (
            "training diverged: the loss became nan in epoch 1 and training was stopped.")
        run = children[trial.number]
        assert run.info.status == "FAILED"
        assert run.data.tags["cnnlab.state"] == "FAIL"
        assert run.data.tags["cnnlab.reason"] == trial.user_attrs["fail_reason"]


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
    from cnnlab.tracking.runs import command_line

    monkeypatch.setattr(sys, "argv", ["cnnlab", "study", "run", "f.toml", "--storage",
                                      "postgresql://me:hunter2@db:5432/optuna",
                                      "--tracking-uri=http://me:hunter2@tracker:5000",
                                      "--storage=postgresql://me@db/optuna?password=hunter2"])
    assert command_line() == (
        "cnnlab study run f.toml --storage postgresql://me:***@db:5432/optuna "
        "--tracking-uri=http://me:***@tracker:5000 --storage=postgresql://me@db/optuna"
        "?password=***")


@pytest.mark.slow  # Recompresses the 47 MB training images: about 15 s.
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


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _freeze_workers(stores: Stores, parent: subprocess.Popen) -> dict[int, int]:
    """Stop (SIGSTOP) both workers of ``parent`` at an instant when each is inside ``fit`` of a
    trial; returns {worker pid: trial number}, the workers left stopped."""
    import optuna
    from optuna.trial import TrialState

    storage = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert parent.poll() is None, parent.communicate()
        workers = _children(parent.pid)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            if storage is None:
                storage = optuna.storages.RDBStorage(
                    stores.storage, engine_kwargs={"connect_args": {"timeout": 1}},
                    skip_compatibility_check=True, skip_table_creation=True)
            running = {t.user_attrs["cnnlab_worker"]["pid"]: t.number
                       for t in storage.get_all_trials(
                           storage.get_study_id_from_name("tiny"), deepcopy=False,
                           states=(TrialState.RUNNING,))
                       if "mlflow_run_id" in t.user_attrs and "cnnlab_worker" in t.user_attrs
                       and 1 <= len(t.intermediate_values) < SLOW_EPOCHS}
            if len(workers) == 2 and set(running) == set(workers):
                return running
        except Exception:  # noqa: BLE001 - no study or tables yet, or a frozen writer's lock.
            pass
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the workers were never both inside fit")


def _pending(pid: int, signum: int) -> bool:
    """Whether ``signum`` is pending for the stopped process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) >> (signum - 1) & 1:
            return True
    return False


def _start_workers(stores: Stores) -> subprocess.Popen:
    return _start(stores, "--workers", "2")


@pytest.mark.slow
def test_sigterm_to_the_workers_parent_ends_every_worker(tmp_path: Path) -> None:
    stores = Stores(tmp_path, SLOW.replace("n_trials = 3", "n_trials = 8"))
    parent = _start_workers(stores)
    workers = _freeze_workers(stores, parent)
    parent.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while not all(_pending(pid, signal.SIGTERM) for pid in workers):  # Passed on to both.
        assert time.monotonic() < deadline, "the parent did not pass SIGTERM on"
        time.sleep(0.05)
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 143, err
    assert err.count("terminated: the current trial and the study's run were closed") == 2, err
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    study = stores.study("tiny")
    for number in workers.values():
        assert study.trials[number].state.name == "FAIL"
    assert "RUNNING" not in {t.state.name for t in study.trials}


@pytest.mark.slow
def test_a_worker_killed_by_a_signal_makes_the_command_fail(tmp_path: Path) -> None:
    stores = Stores(tmp_path, SLOW.replace("n_trials = 3", "n_trials = 2"))
    parent = _start_workers(stores)
    workers = _freeze_workers(stores, parent)
    victim, survivor = sorted(workers)
    os.kill(victim, signal.SIGKILL)
    os.kill(survivor, signal.SIGCONT)
    _, err = parent.communicate(timeout=300)
    assert parent.returncode == 128 + signal.SIGKILL, err
    assert f"(pid {victim}) was killed by SIGKILL" in err
    # The same command again (here, in this process) finishes the study.
    assert stores.run() == 0
    from cnnlab.search import trials as T

    assert sum(T.counts(t) for t in stores.study("tiny").trials) == 2


DRIVER = """
import sys
from cnnlab.search.config import load_study_config
from cnnlab.study.runner import run_study
from cnnlab.tracking.stores import Stores

outcome = run_study(load_study_config(sys.argv[1]), Stores(sys.argv[2], sys.argv[3]),
                    out=lambda line: None)
sys.exit(0 if outcome.stopped is None else 1)
"""


@pytest.mark.slow
def test_a_live_trial_of_another_program_is_never_failed(tmp_path: Path) -> None:
    """A study driven through the Python API (its command line does not say cnnlab) is inside a
    trial when `cnnlab study run` starts beside it: that trial is alive, and stays alive."""
    import sqlite3

    stores = Stores(tmp_path, SLOW.replace("n_trials = 3", "n_trials = 2"))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), str(stores.file), stores.storage,
                             stores.tracking], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    while True:
        number = _freeze_in_trial(stores, proc)
        try:  # Frozen without a write lock on the storage, or the other run would wait on it.
            with sqlite3.connect(stores.storage.removeprefix("sqlite:///"), timeout=1) as db:
                db.execute("BEGIN IMMEDIATE")
                db.rollback()
            break
        except sqlite3.OperationalError:
            os.kill(proc.pid, signal.SIGCONT)
    assert stores.run() == 0  # Beside it: here, in this process.
    assert stores.study("tiny").trials[number].state.name == "RUNNING"
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert stores.study("tiny").trials[number].state.name == "COMPLETE"


HEARTBEAT = {"CNNLAB_HEARTBEAT": "1,2"}
"""Heartbeats every second, stale after two: a stopped process is past the grace period
in seconds (the default is 10,60)."""


def _stale(storage_url: str, study_name: str, number: int) -> bool:
    """Whether Optuna itself (a plain ``RDBStorage`` with the tests' heartbeat, as a process on
    another host would have) takes trial ``number`` for stale now."""
    import optuna

    storage = optuna.storages.RDBStorage(storage_url, heartbeat_interval=1, grace_period=2,
                                         skip_compatibility_check=True, skip_table_creation=True)
    study_id = storage.get_study_id_from_name(study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return trial_id in storage._get_stale_trial_ids(study_id)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask, here.
def test_optuna_never_fails_the_stale_trial_of_a_live_process(tmp_path: Path,
                                                               monkeypatch) -> None:
    """Optuna's own stale check (at the start of every trial of ``study.optimize``) passes over
    a silent trial whose process is alive here (this one, stopped as far as its heartbeat
    goes), and fails those of a process that is gone and of one on another host."""
    import optuna

    from cnnlab.names import WORKER_ATTR
    from cnnlab.tracking import liveness
    from cnnlab.tracking.stores import open_storage

    monkeypatch.setenv("CNNLAB_HEARTBEAT", "1,2")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    here = liveness.identity()
    owners = {"alive": here, "gone": {**here, "pid": int(gone.stdout)},
              "elsewhere": {**here, "host": "another-host"}}
    numbers = {}
    for name, owner in owners.items():
        trial = study.ask()
        trial.set_user_attr(WORKER_ATTR, owner)
        study._storage.record_heartbeat(trial._trial_id)
        numbers[name] = trial.number
    while not all(_stale(url, "s", n) for n in numbers.values()):
        time.sleep(0.2)
    study.optimize(lambda trial: 1.0, n_trials=1)  # Optuna fails stale trials first.
    states = {name: study.trials[n].state.name for name, n in numbers.items()}
    assert states == {"alive": "RUNNING", "gone": "FAIL", "elsewhere": "FAIL"}


def test_a_malformed_heartbeat_setting_is_named(monkeypatch) -> None:
    from cnnlab.errors import ConfigError
    from cnnlab.tracking.stores import heartbeat

    monkeypatch.setenv("CNNLAB_HEARTBEAT", "60,10")
    with pytest.raises(ConfigError, match="CNNLAB_HEARTBEAT='60,10' is not INTERVAL,GRACE"):
        heartbeat()


def _frozen_unlocked(stores: Stores, proc: subprocess.Popen, first: int = 0) -> int:
    """``_freeze_in_trial``, at an instant when the frozen process holds no write lock on the
    SQLite storage (its heartbeat thread writes every second), so that other processes can
    write; returns the trial's number."""
    import sqlite3

    while True:
        number = _freeze_in_trial(stores, proc, first)
        try:
            with sqlite3.connect(stores.storage.removeprefix("sqlite:///"), timeout=1) as db:
                db.execute("BEGIN IMMEDIATE")
                db.rollback()
            return number
        except sqlite3.OperationalError:
            os.kill(proc.pid, signal.SIGCONT)


@pytest.mark.slow
def test_a_stopped_process_keeps_its_trial_past_the_grace_period(
        tmp_path: Path, started: list[subprocess.Popen], monkeypatch, capsys) -> None:
    """A study process stopped (SIGSTOP, as Ctrl-Z or a suspended laptop) inside a trial for
    longer than the heartbeat's grace period, while `cnnlab study run` runs on the same study
    (which finds it finished and trains nothing): the trial stays RUNNING in both stores, and
    once the process continues it completes the trial and the study, exit 0."""
    stores = Stores(tmp_path, SLOW.replace("n_trials = 3", "n_trials = 2"))
    proc = _start(stores, env=HEARTBEAT)
    started.append(proc)
    number = _frozen_unlocked(stores, proc, first=1)
    while not _stale(stores.storage, "tiny", number):
        time.sleep(0.2)
    for name, value in HEARTBEAT.items():  # The command beside it, here in this process.
        monkeypatch.setenv(name, value)
    assert stores.run("--n-trials", "1") == 0
    assert "is finished" in capsys.readouterr().out
    assert stores.study("tiny").trials[number].state.name == "RUNNING"
    assert stores.runs("tiny")[1][number].info.status == "RUNNING"
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "failed by another process" not in out
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    parent, children = stores.runs("tiny")
    assert [children[n].info.status for n in (0, 1)] == ["FINISHED", "FINISHED"]
    assert children[number].data.tags["cnnlab.state"] == "COMPLETE"
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
def test_a_trial_failed_behind_its_back_ends_in_one_line(
        tmp_path: Path, started: list[subprocess.Popen]) -> None:
    """Across machines a stopped process cannot be checked: Optuna on another host fails its
    trial once the heartbeat is stale. When the process continues, it ends that trial with one
    line (no traceback), its run says what Optuna says, and the study goes on to its total."""
    import optuna

    from cnnlab.study.objective import LOST

    stores = Stores(tmp_path, SLOW.replace("n_trials = 3", "n_trials = 1"))
    proc = _start(stores, env=HEARTBEAT)
    started.append(proc)
    number = _frozen_unlocked(stores, proc)
    while not _stale(stores.storage, "tiny", number):
        time.sleep(0.2)
    elsewhere = optuna.storages.RDBStorage(stores.storage, heartbeat_interval=1, grace_period=2)
    optuna.storages.fail_stale_trials(optuna.load_study(study_name="tiny", storage=elsewhere))
    assert stores.study("tiny").trials[number].state.name == "FAIL"
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Cannot tell" not in err, err
    said = [line for line in out.splitlines() if "failed by another process" in line]
    assert len(said) == 1 and said[0].startswith(f"trial {number:>3}  FAIL"), out
    study = stores.study("tiny")
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert "fail_reason" not in study.trials[number].user_attrs  # It does not count.
    parent, children = stores.runs("tiny")
    lost = children[number]
    assert (lost.info.status, lost.data.tags["cnnlab.state"]) == ("KILLED", "FAIL")
    assert lost.data.tags["cnnlab.reason"] == LOST
    assert children[1].info.status == "FINISHED"
    assert parent.info.status == "FINISHED"


ONE_CONFIGURATION = TINY.replace("n_trials = 3", "n_trials = 1").split("[search]")[0] + """
[search]
n_conv = [1]
filters = [4]
kernel_size = [3]
strides = [1]
padding = ["same"]
dense_units = [16]
"""


@pytest.fixture
def started() -> list[subprocess.Popen]:
    """Processes a test started: any still there when it ends (a failed test may leave one
    stopped) are killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.slow
def test_two_processes_that_draw_one_configuration_at_once_train_it_once(
        tmp_path: Path, started: list[subprocess.Popen]) -> None:
    """Two processes on one study draw its only configuration at the same instant: the first
    is held (SIGSTOP) where it has found the configuration new and is about to claim it, the
    instant where both could decide to train it. The second waits for the first's result and
    reuses it (Optuna is told its value, as for a finished duplicate): one training in all."""
    from cnnlab.search import trials as T

    stores = Stores(tmp_path, ONE_CONFIGURATION)
    first = _start(stores, env={"CNNLAB_FAULT": "claim:STOP"})
    started.append(first)
    deadline = time.monotonic() + 300
    while not _stopped(first.pid):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = _start(stores)
    started.append(second)
    while True:  # The second's trial waits, marked a duplicate of the first's.
        assert second.poll() is None and time.monotonic() < deadline, second.communicate()
        trials = stores.study("tiny").trials
        if len(trials) == 2 and trials[1].user_attrs.get("cnnlab_outcome") == "duplicate":
            break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGCONT)
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    study = stores.study("tiny")
    assert [T.outcome(t) for t in study.trials] == ["trained", "duplicate"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[1].user_attrs["cnnlab_duplicate_of"] == 0
    assert study.trials[1].values == study.trials[0].values  # Optuna was told its value.
    assert not study.trials[1].intermediate_values
    _, children = stores.runs("tiny")
    assert len(children[0].outputs.model_outputs) == 1
    assert children[1].data.tags["cnnlab.outcome"] == "duplicate"
    assert not children[1].outputs.model_outputs
    assert stores.client.get_metric_history(children[1].info.run_id, "val_accuracy") == []
