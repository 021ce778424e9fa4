"""Interrupts at every point of a trial's life: SIGINT and SIGKILL then a resume, sent by the
process to itself at a named point (``cnnlab.train.faults``); SIGTERM at one point, since the
command line turns it into the same interrupt as Ctrl-C (``cnnlab.study.signals``)
and from there both take one path. After each, the Optuna study and the MLflow runs agree, and
running the same command again finishes the study."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.search import trials as T
from cnnlab.train.faults import POINTS
from tests.studies import TINY, Stores, run_as_pasted, run_pasted_here

STUDY = TINY.replace("train_size = 512", "train_size = 256")  # Three trials to count.
COUNTED_AT = ("refresh",)
"""Points reached once Optuna has been told: the interrupted trial counts. Elsewhere a study of
one trial shows everything (the interrupted runs count none, the last run trains one), and
trains two fewer networks per point than ``STUDY``'s three."""
CODES = {"INT": 130, "TERM": 143, "KILL": -signal.SIGKILL}


def _run(stores: Stores, fault: str | None) -> subprocess.CompletedProcess:
    """The study's command in a new process, which sends itself ``fault`` (``POINT:SIGNAL``)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("CNNLAB_FAULT", None)
    if fault:
        env["CNNLAB_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "cnnlab.cli", "study", "run", str(stores.file), "--storage",
         stores.storage, "--tracking-uri", stores.tracking], cwd=stores.root, env=env,
        capture_output=True, text=True, timeout=600,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _run_here(stores: Stores, fault: str, monkeypatch: pytest.MonkeyPatch,
              capfd: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    """The study's command through ``cli.main`` in this process, which sends itself ``fault``
    (SIGINT: the command's own handler turns it into the interrupt, as in a new process),
    without a new process's start-up (importing TensorFlow again); what it printed to the
    file descriptors, Optuna's and TensorFlow's logging included, as ``_run`` returns it."""
    from cnnlab import cli
    from cnnlab.train import faults

    monkeypatch.setenv("CNNLAB_FAULT", fault)
    monkeypatch.setattr(faults, "_fired", False)
    monkeypatch.chdir(stores.root)
    capfd.readouterr()
    # Python's own SIGINT handler, as ``_run`` gives the new process (``preexec_fn``): where
    # the tests were started as a shell's background job, SIGINT is ignored, and the command
    # keeps ignoring it as it should.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = cli.main(["study", "run", str(stores.file), "--storage", stores.storage,
                         "--tracking-uri", stores.tracking])
    finally:
        signal.signal(signal.SIGINT, previous)
    out, err = capfd.readouterr()
    monkeypatch.delenv("CNNLAB_FAULT")
    return subprocess.CompletedProcess([], code, out, err)


def _assert_agree(stores: Stores) -> None:
    """Every ended trial's run says what Optuna says; a counted trial has its model."""
    study = stores.study("tiny")
    parent, children = stores.runs("tiny")
    assert parent.info.status != "RUNNING"
    for trial in study.trials:
        state = T.state(trial)  # Optuna's, but INFEASIBLE for a draw never built.
        assert state != "RUNNING", f"trial {trial.number} left RUNNING"
        run = children.get(trial.number)
        if run is None:  # Interrupted before its run was opened: failed, not counted.
            assert state == "FAIL" and not T.counts(trial)
            continue
        killed = state == "FAIL" and "fail_reason" not in trial.user_attrs
        expected = ("KILLED" if killed else "FAILED") if state == "FAIL" else "FINISHED"
        assert (run.info.status, run.data.tags.get("cnnlab.state")) == (expected, state), \
            f"trial {trial.number}: Optuna {state}, MLflow {run.info.status}"
        if T.counts(trial) and state == "COMPLETE":
            assert len(run.outputs.model_outputs) == 1, f"trial {trial.number} has no model"


TERM_AT = "epoch"
"""The one point where SIGTERM is sent too (its path after the handler is SIGINT's), and where
the printed command is run as pasted in a shell; elsewhere its arguments run in the test's
process (how the command is made does not depend on the point)."""


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_the_stores_agree_after_an_interrupt_anywhere(tmp_path: Path, point: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture) -> None:
    """At ``point``: SIGINT, then (running the command again) SIGTERM at one point, then
    SIGKILL, each the first time the process reaches the point; after each the stores agree
    (after SIGKILL, once the next run has reconciled them), and a last run, the command the
    interrupt printed, finishes the study from another folder. SIGINT is sent in this process
    where SIGTERM is not also sent (a new process costs ~11 CPU-s of imports); SIGTERM, SIGKILL
    and the SIGINT beside SIGTERM each in a new process."""
    total = 3 if point in COUNTED_AT else 1  # Each interrupt here counts one, the last run one.
    stores = Stores(tmp_path, STUDY.replace("n_trials = 3", f"n_trials = {total}"))
    again = []
    for sig in ("INT", "TERM", "KILL") if point == TERM_AT else ("INT", "KILL"):
        if sig == "INT" and point != TERM_AT:
            interrupted = _run_here(stores, f"{point}:{sig}", monkeypatch, capfd)
        else:
            interrupted = _run(stores, f"{point}:{sig}")
        assert interrupted.returncode == CODES[sig], (sig, interrupted.stderr)
        if sig != "KILL":
            _assert_one_line(interrupted)
            _assert_agree(stores)
            again += re.findall(r"; go on with `([^`]+)` \(nothing finished is trained again\)\.$",
                                interrupted.stderr.strip())
    assert len(again) == (2 if point == TERM_AT else 1), again  # One per SIGINT, SIGTERM.
    elsewhere = tmp_path / "elsewhere"
    if point == TERM_AT:  # The command as pasted in a plain shell in another folder.
        resumed = run_as_pasted(again[0], elsewhere, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
    else:  # Its arguments, in this process (a new one would import TensorFlow again).
        assert run_pasted_here(again[0], elsewhere, monkeypatch) == 0
    assert not (tmp_path / "elsewhere" / "mlruns").exists()  # The study's own stores, named.
    _assert_agree(stores)
    assert sum(T.counts(t) for t in stores.study("tiny").trials) == total


def _assert_one_line(interrupted: subprocess.CompletedProcess) -> None:
    """An interrupt reads as the command's one line: no traceback (Optuna logged one for the
    trial it was training, issue 31), no exception's name, no Optuna warning."""
    output = interrupted.stdout + interrupted.stderr
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert "Terminated" not in output and "failed with" not in output, output[-3000:]
    said = [line for line in output.splitlines() if "were closed" in line]
    assert len(said) == 1 and said[0] in interrupted.stderr, output[-3000:]


def test_sigterm_takes_the_path_of_ctrl_c():
    """The command line's handler turns SIGTERM into an interrupt (a ``KeyboardInterrupt``, as
    Ctrl-C raises) where the program is, and puts the previous handler back afterwards."""
    from cnnlab.study.signals import Terminated, exit_code, signals_as_interrupts

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as raised, signals_as_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 1)  # The handler runs at the next bytecode; wait for it here.
    assert isinstance(raised.value, Terminated)
    assert exit_code(raised.value) == 143 and exit_code(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("where", ["__del__", "weakref callback"])
def test_a_signal_that_lands_where_python_cannot_raise_is_raised_next(where: str) -> None:
    """SIGTERM handled inside a ``__del__`` or a weakref callback (as the garbage collector runs
    them, anywhere in a trial): Python cannot raise the interrupt there ("Exception ignored
    in ..."); it is raised where the program goes on, and the hook is put back after. Seen: a
    study sent SIGTERM went on to its next trial, the interrupt lost in a
    ``WeakKeyDictionary``'s callback."""
    import time
    import weakref

    from cnnlab.study.signals import Terminated, signals_as_interrupts

    class Thing:
        def __del__(self) -> None:
            if where == "__del__":
                _signal_in_here()

    def _signal_in_here(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.2)  # The handler runs in here, at the next bytecode.

    hook = sys.unraisablehook
    went_on = []
    with pytest.raises(Terminated), signals_as_interrupts():
        thing = Thing()
        watch = weakref.ref(thing, _signal_in_here if where != "__del__" else None)
        del thing  # Its __del__ or its weakref's callback runs now.
        went_on.append(watch)
        time.sleep(5)  # Raised here.
    assert went_on, "raised in the callback, not after it"
    assert sys.unraisablehook is hook


def test_an_interrupt_waits_until_the_store_has_committed(tmp_path: Path) -> None:
    """SIGTERM sent while MLflow's SQL store writes a tag (from inside SQLAlchemy, as the
    statement runs) is raised once the write has returned: the tag is committed and no lock is
    left behind, so another connection writes at once. Raised in the store's code, it could
    leave the transaction open with SQLite's write lock (``cnnlab.study.signals``)."""
    import sqlite3
    import time

    import sqlalchemy
    from mlflow.tracking import MlflowClient

    from cnnlab.study.signals import Terminated, signals_as_interrupts

    path = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    run = client.create_run(client.create_experiment("e")).info.run_id
    sent = []

    def send(conn, cursor, statement, *args) -> None:
        if "tags" in statement and statement.lstrip().upper().startswith(("INSERT", "UPDATE")) \
                and not sent:
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGTERM)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", send)
    try:
        with signals_as_interrupts(), pytest.raises(Terminated):
            client.set_tag(run, "k", "v")
            assert sent, "the tag's write was never seen"
            time.sleep(5)  # The interrupt is raised here, out of the store's code.
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "after_cursor_execute", send)
    assert MlflowClient(f"sqlite:///{path}").get_run(run).data.tags["k"] == "v"
    with sqlite3.connect(path, timeout=0) as db:  # No lock left: a write at once.
        db.execute("BEGIN IMMEDIATE")
        db.rollback()
