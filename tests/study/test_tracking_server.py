"""A study tracked on an MLflow tracking server (``mlflow server``, real, on a free port) that
goes away while a trial trains: the command ends within the bound of cnnlab's waits with one
sentence, Ctrl-C ends it within seconds while it waits, and once the server is back the same
command finishes the study, the stores agreeing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.search import trials as T
from cnnlab.tracking import runs as tracking
from tests.studies import Stores, _free_port
from tests.study.test_interrupts import STUDY, _assert_agree


def _server(stores: Stores, port: int) -> subprocess.Popen:
    """``mlflow server`` over the test's MLflow store (artifacts served through it), healthy."""
    (stores.root / "mlruns").mkdir(exist_ok=True)
    log = open(stores.root / "server.log", "a")  # Read when it does not start.
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", stores.tracking,
         "--artifacts-destination", str(stores.root / "artifacts")],
        cwd=stores.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                _stop(server)
                raise AssertionError("mlflow server did not start: "
                                     + (stores.root / "server.log").read_text()[-2000:]) from None
            time.sleep(0.5)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def _study(stores: Stores, url: str, fault: str | None = None, *,
           short: bool = False) -> subprocess.Popen:
    """The study against the server; ``short``: with a user's own bound on MLflow's waits (3
    tries, sleeping 0 and 2 s), which cnnlab keeps, instead of cnnlab's (5 tries, sleeping 0,
    4, 8 and 16 s: about 30 s)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_TRACKING_URI": url}
    if short:
        env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    env.pop("CNNLAB_FAULT", None)
    if fault:
        env["CNNLAB_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab.cli", "study", "run", str(stores.file), "--storage",
         stores.storage], cwd=stores.root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stopped_at_fault(process: subprocess.Popen) -> None:
    """Until ``process`` has stopped itself (SIGSTOP at its failpoint)."""
    deadline = time.monotonic() + 300
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the study never reached its failpoint"
        time.sleep(0.2)


def _ended(process: subprocess.Popen, within: float) -> tuple[str, str, float]:
    """What ``process`` printed, once it ended, and in how many seconds; a failure if it runs
    past ``within`` seconds."""
    started = time.monotonic()
    try:
        out, err = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running {within} s on: {err[-3000:]}") from None
    return out, err, time.monotonic() - started


@pytest.mark.slow
def test_a_tracking_server_that_goes_away_while_a_trial_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    stores = Stores(tmp_path, STUDY)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = study = None
    try:
        # Gone while trial 0 trains: one sentence once the waits are spent, exit 2.
        server = _server(stores, port)
        study = _study(stores, url, "epoch:STOP:0", short=True)
        _stopped_at_fault(study)
        _stop(server)
        os.kill(study.pid, signal.SIGCONT)
        out, err, seconds = _ended(study, within=90)
        assert study.returncode == 2, err
        assert err.splitlines() == [
            f"cnnlab study run: error: the MLflow tracking server {url} does not answer "
            "(Connection refused, tried 3 times); trial 0 is failed; run the same command when "
            "it is back."]
        trials = stores.study("tiny").trials
        assert [t.state.name for t in trials] == ["FAIL"]
        assert trials[0].user_attrs["fail_reason"] == \
            "the MLflow tracking server did not answer (Connection refused)"

        # Gone while trial 1 trains, and Ctrl-C while the command waits for it: ends at once.
        server = _server(stores, port)
        study = _study(stores, url, "epoch:STOP:1")
        _stopped_at_fault(study)
        _stop(server)
        os.kill(study.pid, signal.SIGCONT)
        time.sleep(4)  # Its second epoch logged, or not: waiting for the server either way.
        assert study.poll() is None
        study.send_signal(signal.SIGINT)
        out, err, seconds = _ended(study, within=60)
        assert study.returncode == 130, err
        assert seconds < 20, f"{seconds:.0f} s after Ctrl-C"
        assert err.splitlines()[-1].startswith(
            "interrupted: the current trial and the study's run were closed; go on with `")
        assert [t.state.name for t in stores.study("tiny").trials] == ["FAIL", "FAIL"]

        # Back: the same command finishes the study, and the stores agree (in this process:
        # what it tests is the stores afterwards, not a process; cnnlab's bound on the waits,
        # which it sets in the environment, is taken back afterwards).
        server = _server(stores, port)
        for name in (*tracking.SERVER_WAITS, "CNNLAB_FAULT"):
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.chdir(stores.root)
        code = cli.main(["study", "run", str(stores.file), "--storage", stores.storage])
        assert code == 0, capfd.readouterr().err[-3000:]
    finally:
        for process in (study, server):
            if process is not None and process.poll() is None:
                process.kill() if process is study else _stop(process)
    _assert_agree(stores)
    study = stores.study("tiny")
    assert sum(T.counts(t) for t in study.trials) == 3
    _, runs = stores.runs("tiny")  # Trial 0's run as failed by the server, 1's as interrupted.
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["cnnlab.reason"] == \
        "the MLflow tracking server did not answer (Connection refused)"
    assert runs[1].info.status == "KILLED"


def test_a_server_that_does_not_answer_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's own error for a port where no server listens, from its client, is recognized
    and said in one sentence; cnnlab's bound is the default, a user's own is kept."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    for name in tracking.SERVER_WAITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    tracking.bound_server_waits()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "4"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    url = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with tracking.impatient(), pytest.raises(MlflowException) as raised:
        MlflowClient(url).search_experiments()
    assert time.monotonic() - started < 10  # One try.
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "4"  # Put back.
    gone = tracking.server_gone_error(raised.value, url, 3)
    assert str(gone) == (f"the MLflow tracking server {url} does not answer (Connection "
                         "refused, tried 5 times); trial 3 is failed; run the same command "
                         "when it is back.")
    assert tracking.server_gone_error(MlflowException("RESOURCE_DOES_NOT_EXIST"), url) is None
