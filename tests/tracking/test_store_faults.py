"""Stores that cannot be used are said in one sentence before anything starts (issue 31):
creation interrupted at any instant, a read-only folder, a full disk, damaged files, stores of
an older or newer MLflow or Optuna; and a finished study with nothing to do writes nothing.

Real stores, real signals, real read-only bind mounts and small tmpfs mounts (in a private
mount namespace of the command's own: ``unshare --mount``, as root), real stores made by the
previous and next releases (tests/tracking/stores/, remade by scripts/make_store_fixtures.py).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

FIXTURES = Path(__file__).parent / "stores"
ROOT = os.geteuid() == 0 and shutil.which("unshare") is not None
"""Whether mounts can be made (read-only binds, a small tmpfs) in a namespace of a command's
own; else a file the process cannot write stands for a read-only store."""


def cnnlab(*args: str, cwd: Path, mount: str = "", timeout: float = 120
           ) -> subprocess.CompletedProcess:
    """``cnnlab ARGS`` in a new process from ``cwd`` (the code under test first on its path),
    after ``mount`` (shell commands) in a mount namespace of its own when given."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("CNNLAB_STORAGE", None)
    command = [sys.executable, "-m", "cnnlab.cli", *args]
    if mount:
        command = ["unshare", "--mount", "sh", "-c", f'{mount} && exec "$@"', "sh", *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``cnnlab ARGS`` in this process, from ``tmp_path``: a CompletedProcess-like result."""
    from cnnlab import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CNNLAB_STORAGE", raising=False)

    def call(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def one_line(done: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints on stderr (exit 2, nothing on stdout but what
    came before the refusal)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr[-3000:])
    return lines[0]


def read_only(folder: Path) -> str:
    q = shlex.quote(str(folder))
    return f"mount --bind {q} {q} && mount -o remount,bind,ro {q} {q}"


def store_uris(folder: Path) -> tuple[str, ...]:
    return ("--storage", f"sqlite:///{folder / 'optuna.db'}",
            "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}")


def _unpack(name: str, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    path.write_bytes(gzip.decompress((FIXTURES / f"{name}.gz").read_bytes()))
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with whole stores of this MLflow and Optuna: the study 'made' with one
    complete trial (told to Optuna; nothing trained), and an MLflow store (MLflow 3.16.1's,
    upgraded: a second, where a new store takes MLflow several)."""
    import optuna
    import sqlalchemy
    from mlflow.store.db.utils import _upgrade_db

    folder = tmp_path_factory.mktemp("made")
    engine = sqlalchemy.create_engine(
        f"sqlite:///{_unpack('mlflow-3.16.1.db', folder).rename(folder / 'mlflow.db')}")
    _upgrade_db(engine)
    engine.dispose()
    study = optuna.create_study(study_name="made", storage=f"sqlite:///{folder / 'optuna.db'}",
                                direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        value=0.5, params={"x": 1}, distributions={"x": optuna.distributions.IntDistribution(
            0, 2)}))
    return folder


def copy_of(made: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for name in ("mlflow.db", "optuna.db"):
        shutil.copy2(made / name, where / name)
    return where


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def taken() -> Iterator[int]:
    """A port that a socket holds while the test runs: `cnnlab ui` cannot serve on it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- 1: creation that cannot be half-done -------------------------------------------------

FORKER = r"""
import os, signal, sys, time
from mlflow.tracking import MlflowClient
from cnnlab.tracking import runs
from cnnlab.tracking.stores import open_storage, sqlite_path

def make(kind, uri):
    if kind == "mlflow":  # What `cnnlab study run` does as the first epoch ends.
        runs.use_tracking_store(uri)
        MlflowClient(uri).search_experiments()
    else:  # What `cnnlab study run` does as it opens the study.
        from cnnlab.tracking import preflight

        preflight.create_store(sqlite_path(uri), preflight.STORAGE)
        open_storage(uri)

print("ready", flush=True)
for line in sys.stdin:
    kind, uri, delay, signame = line.split()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            make(kind, uri)
        finally:
            os._exit(0)
    if float(delay) >= 0:
        time.sleep(float(delay))
        os.kill(pid, getattr(signal, signame))
    _, status = os.waitpid(pid, 0)
    print(f"{time.monotonic() - started:.3f} {status}", flush=True)
"""


def _whole(db: Path, head: str) -> bool:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)


@pytest.mark.slow  # Trains nothing; MLflow makes a new store in seconds, many times over.
def test_creation_interrupted_at_any_instant_leaves_no_store_or_a_whole_one(
        tmp_path: Path) -> None:
    import optuna
    from mlflow.store.db.utils import _get_latest_schema_revision
    from mlflow.tracking import MlflowClient

    from cnnlab.tracking import preflight, runs
    from cnnlab.tracking.stores import open_storage

    heads = {"mlflow": _get_latest_schema_revision(), "optuna": "v3.2.0.a"}
    # No cache to copy a template from: every store is built in place, migration by migration
    # (as the template itself is built once), so that the interrupts land inside the build.
    (tmp_path / "no-cache").write_text("")
    forker = subprocess.Popen([sys.executable, "-c", FORKER], cwd=tmp_path, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO),
                                   "CNNLAB_CACHE_DIR": str(tmp_path / "no-cache")})
    assert forker.stdout.readline().strip() == "ready"

    def make(kind: str, folder: Path, delay: float, signame: str = "SIGKILL") -> float:
        db = folder / f"{kind}.db"
        forker.stdin.write(f"{kind} sqlite:///{db} {delay} {signame}\n")
        forker.stdin.flush()
        return float(forker.stdout.readline().split()[0])

    try:
        interrupted = 0
        for kind in ("mlflow", "optuna"):
            whole = make(kind, tmp_path / f"{kind}-whole", -1)  # Its creation, uninterrupted.
            assert _whole(tmp_path / f"{kind}-whole" / f"{kind}.db", heads[kind])
            instants = 4 if kind == "mlflow" else 6  # The next command makes MLflow's again.
            for k in range(1, instants + 1):
                folder = tmp_path / f"{kind}-{k}"
                make(kind, folder, whole * k / (instants + 1), ("SIGINT", "SIGKILL")[k % 2])
                db = folder / f"{kind}.db"
                # No store, or a whole one, whenever the interrupt came.
                assert not db.exists() or _whole(db, heads[kind]), (kind, k)
                interrupted += not db.exists()
                # The next command makes it (again) and reads it; nothing is left beside it.
                if kind == "mlflow":
                    uri = runs.use_tracking_store(f"sqlite:///{db}")
                    assert [e.name for e in MlflowClient(uri).search_experiments()] == \
                        ["Default"]
                else:
                    preflight.create_store(db, preflight.STORAGE)
                    storage = open_storage(f"sqlite:///{db}")
                    optuna.create_study(study_name="next", storage=storage)
                    assert optuna.load_study(study_name="next", storage=storage)
                assert _whole(db, heads[kind])
                assert sorted(p.name for p in folder.iterdir()) == [db.name]
        assert interrupted >= 3, "the interrupts came while the stores were being made"
    finally:
        forker.stdin.close()
        forker.wait(timeout=60)


def _half_made(db: Path, revision: str, data: bool = False) -> None:
    """An MLflow store as a Ctrl-C left it while MLflow migrated it (cnnlab before issue 31):
    its first tables, migrated up to ``revision``, with the copy of the table that the next
    migration (cc1f77228345, after 0c779009ac13) was rebuilding (``_alembic_tmp_params``); with
    ``data``, an experiment in it."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)
    with engine.begin() as connection:
        config = _get_alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.exec_driver_sql("CREATE TABLE _alembic_tmp_params (key VARCHAR(250))")
        if data:
            connection.exec_driver_sql(
                "INSERT INTO experiments (name, lifecycle_stage) VALUES ('mine', 'active')")
    engine.dispose()


@pytest.mark.slow  # MLflow makes the store again: seconds.
def test_a_store_left_half_made_is_made_again_or_named(tmp_path: Path, made: Path,
                                                       run) -> None:
    """A store that an interrupted creation left half-migrated holds nothing: the next
    command makes it again; one that holds data is named, with the command that moves it
    aside (MLflow cannot go on from a half-done migration)."""
    from mlflow.tracking import MlflowClient

    from cnnlab.tracking import runs

    db = tmp_path / "empty" / "mlflow.db"
    db.parent.mkdir()
    _half_made(db, "0c779009ac13")
    uri = runs.use_tracking_store(f"sqlite:///{db}")
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]

    kept = copy_of(made, tmp_path / "kept")
    (kept / "mlflow.db").unlink()
    _half_made(kept / "mlflow.db", "0c779009ac13", data=True)
    before = digests(kept)
    line = one_line(run("compare", *store_uris(kept)))
    assert f"the MLflow store {kept / 'mlflow.db'} was left half-upgraded" in line
    assert "_alembic_tmp_params" in line
    move = re.search(r"`(mv [^`]+)`", line)[1]
    assert digests(kept) == before, "nothing written"
    subprocess.run(move, shell=True, check=True, cwd="/")
    assert (kept / "mlflow.db.half-upgraded").exists() and not (kept / "mlflow.db").exists()


# -- 4: a read-only store; a finished study writes nothing ------------------------------------

@pytest.mark.slow  # Commands in a mount namespace of their own: a new process each.
def test_a_store_that_cannot_be_written_is_one_sentence(tmp_path: Path, made: Path) -> None:
    """`evaluate` and `study run` refuse a store they cannot write before they start, in one
    sentence with the OS's cause (read-only file system); `compare` reads it as it is."""
    folder = copy_of(made, tmp_path / "mlruns")
    study = tmp_path / "made.toml"
    study.write_text('name = "made"\nn_trials = 2\n[training]\nepochs = 1\ntrain_size = 64\n'
                     'val_size = 64\n[search]\nfilters = [4]\ndense_units = [8]\n')
    before = digests(folder)
    if ROOT:
        mount, cause = read_only(folder), "Read-only file system"
    else:  # A file the process cannot write.
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        mount, cause = "", "Permission denied"
    for args in (("evaluate", "made"), ("study", "run", str(study))):
        line = one_line(cnnlab(*args, *store_uris(folder), cwd=tmp_path, mount=mount))
        assert f"cannot write the Optuna storage {folder / 'optuna.db'}" in line
        assert cause in line and "exceeding max length" not in line
        assert "`" in line, "a command that fixes it"
    done = cnnlab("compare", *store_uris(folder), cwd=tmp_path, mount=mount)
    assert done.returncode == 0 and "made" in done.stdout, done.stderr[-3000:]
    assert digests(folder) == before


@pytest.mark.slow  # Trains one tiny trial.
def test_a_finished_study_with_nothing_to_do_writes_nothing(tmp_path: Path, run) -> None:
    from tests.studies import TINY

    study = tmp_path / "tiny.toml"
    study.write_text(TINY.replace("n_trials = 3", "n_trials = 1")
                     .replace("epochs = 2", "epochs = 1"))
    first = run("study", "run", str(study))  # The study made here; the commands after, anew.
    assert first.returncode == 0, first.stderr[-3000:]
    folder = tmp_path / "mlruns"
    before = digests(folder)
    again = cnnlab("study", "run", str(study), cwd=tmp_path)
    assert again.returncode == 0 and "is finished" in again.stdout, again.stderr[-3000:]
    assert digests(folder) == before, "the stores are as they were"
    if ROOT:  # And so it runs as well on a read-only copy of the results.
        done = cnnlab("study", "run", str(study), cwd=tmp_path, mount=read_only(folder))
        assert done.returncode == 0 and "is finished" in done.stdout, done.stderr[-3000:]
        line = one_line(cnnlab("study", "run", str(study), "--n-trials", "2", cwd=tmp_path,
                               mount=read_only(folder)))
        assert "Read-only file system" in line


# -- 5: a full disk ----------------------------------------------------------------------------

@pytest.mark.slow  # Commands in a mount namespace of their own: a new process each.
@pytest.mark.skipif(not ROOT, reason="a small tmpfs needs root and unshare")
def test_a_full_disk_is_one_sentence_naming_the_store(tmp_path: Path, made: Path) -> None:
    """A folder whose file system is full: `study run` and `evaluate` refuse before they
    start, naming the store and the folder, with the OS's cause and `df`."""
    disk = tmp_path / "disk"
    disk.mkdir()
    q = shlex.quote(str(disk))
    mount = (f"mount -t tmpfs -o size=3m tmpfs {q} && cp {made}/mlflow.db {made}/optuna.db {q} "
             f"&& (dd if=/dev/zero of={q}/filler bs=4k 2>/dev/null; true)")
    study = tmp_path / "made.toml"
    study.write_text('name = "made"\nn_trials = 2\n[training]\nepochs = 1\ntrain_size = 64\n'
                     'val_size = 64\n[search]\nfilters = [4]\ndense_units = [8]\n')
    for args in (("evaluate", "made"), ("study", "run", str(study))):
        line = one_line(cnnlab(*args, *store_uris(disk), cwd=tmp_path, mount=mount))
        assert f"cannot write the Optuna storage {disk / 'optuna.db'} (in {disk})" in line
        assert "No space left on device" in line and f"df -h {disk}" in line
    # A new store in a full folder: the same, before anything is made.
    new = (f"mount -t tmpfs -o size=1m tmpfs {q} && "
           f"(dd if=/dev/zero of={q}/filler bs=4k 2>/dev/null; true)")
    line = one_line(cnnlab("study", "run", str(study), *store_uris(disk), cwd=tmp_path,
                           mount=new))
    assert "No space left on device" in line and str(disk) in line


@pytest.mark.slow  # Trains a tiny study, then runs it on a disk that fills up.
@pytest.mark.skipif(not ROOT, reason="a small tmpfs needs root and unshare")
def test_a_disk_that_fills_during_a_study_is_one_sentence_and_the_study_run_ends(
        tmp_path: Path, run) -> None:
    from mlflow.tracking import MlflowClient

    from tests.studies import TINY

    study = tmp_path / "tiny.toml"
    study.write_text(TINY.replace("n_trials = 3", "n_trials = 1")
                     .replace("epochs = 2", "epochs = 1"))
    first = run("study", "run", str(study))  # The study made here; its next trial anew.
    assert first.returncode == 0, first.stderr[-3000:]
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir()
    q = shlex.quote
    # The stores on an 8 MB disk with 150 KB left: the next trial's records fill it.
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {q(str(disk))} && cp -a mlruns {q(str(disk))}/ && "
        f"dd if=/dev/zero of={q(str(disk))}/filler bs=1k count=$(( $(df -k --output=avail "
        f"{q(str(disk))} | tail -1) - 150 )) 2>/dev/null; "
        f'"$@" >out.txt 2>err.txt; echo $? >rc.txt; rm {q(str(disk))}/filler; '
        f"cp -a {q(str(disk))}/mlruns {q(str(after))}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", sys.executable, "-m",
                    "cnnlab.cli", "study", "run", str(study), "--n-trials", "3",
                    *store_uris(disk / "mlruns")], cwd=tmp_path, env=env, timeout=600,
                   check=True)
    err = (tmp_path / "err.txt").read_text()
    assert (tmp_path / "rc.txt").read_text().strip() == "2", err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith(
        f"cnnlab study run: error: the stores in {disk / 'mlruns'} could not be written: No "
        f"space left on device; free space there (`df -h {disk / 'mlruns'}`"), err[-3000:]
    client = MlflowClient(f"sqlite:///{after / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert {r.info.status for r in runs if r.data.tags.get("cnnlab.kind") == "study"} == \
        {"FAILED"}, "the study's run ended where it could be"


# -- 6: damaged files --------------------------------------------------------------------------

def _truncate(db: Path) -> None:
    with db.open("r+b") as file:
        file.truncate(db.stat().st_size // 2)


def _scribble(db: Path) -> None:
    with db.open("r+b") as file:
        file.seek(db.stat().st_size // 2)
        file.write(b"garbage!" * 2048)


@pytest.mark.parametrize("damage", [_truncate, _scribble])
@pytest.mark.parametrize("name", ["optuna.db", "mlflow.db"])
def test_a_damaged_store_is_named_as_damaged(tmp_path: Path, made: Path, name: str,
                                             damage, run, taken: int) -> None:
    folder = copy_of(made, tmp_path / "mlruns")
    damage(folder / name)
    label = "Optuna storage" if name == "optuna.db" else "MLflow store"
    commands = [("compare",), ("evaluate", "made")]
    if name == "mlflow.db":  # On a port that is taken: refused, never served, if not before.
        commands.append(("ui", "--port", str(taken)))
    before = digests(folder)
    for args in commands:
        uris = store_uris(folder) if args[0] != "ui" else store_uris(folder)[2:]
        line = one_line(run(*args, *uris))
        assert f"the {label} {folder / name} is damaged (" in line, line
        assert f"`mv {folder / name} {folder / name}.damaged`" in line
    assert digests(folder) == before


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path, made: Path, run) -> None:
    folder = copy_of(made, tmp_path / "mlruns")
    (folder / "optuna.db").write_bytes(b"not sqlite at all\n" * 100)
    line = one_line(run("compare", *store_uris(folder)))
    assert f"the Optuna storage {folder / 'optuna.db'} is damaged (file is not a database)" \
        in line


# -- 7: stores of an older or newer MLflow or Optuna -----------------------------------------

def _advice(line: str) -> str:
    command = re.search(r"`([^`]+)`", line)[1]
    assert "$STORAGE_URL" not in command and "<database_uri>" not in command
    return command


@pytest.mark.slow  # The printed upgrades run as pasted: MLflow's and Optuna's commands.
def test_a_store_of_an_older_mlflow_or_optuna_gets_the_command_that_upgrades_it(
        tmp_path: Path, made: Path, run, taken: int) -> None:
    """Stores made by MLflow 3.16.1 and Optuna 3.1.1 (the releases before the installed
    ones): one sentence with the upgrade command, which works as pasted from any folder."""
    import optuna
    from mlflow.tracking import MlflowClient

    old = tmp_path / "old"
    mlflow_db = _unpack("mlflow-3.16.1.db", old)
    line = one_line(run("ui", "--tracking-uri", f"sqlite:///{mlflow_db}", "--port",
                        str(taken)))
    assert f"the MLflow store {mlflow_db} was written by an older MLflow" in line
    command = _advice(line)
    assert f"db upgrade sqlite:///{mlflow_db}" in command
    subprocess.run(command, shell=True, check=True, cwd="/", capture_output=True)
    runs = MlflowClient(f"sqlite:///{mlflow_db}").search_runs(
        [MlflowClient(f"sqlite:///{mlflow_db}").get_experiment_by_name("old").experiment_id])
    assert [r.data.metrics for r in runs] == [{"val_accuracy": 0.5}]

    optuna_db = _unpack("optuna-3.1.1.db", old)
    line = one_line(run("compare", "--storage", f"sqlite:///{optuna_db}",
                        "--tracking-uri", f"sqlite:///{made / 'mlflow.db'}"))
    assert f"the Optuna storage {optuna_db} was written by an older Optuna" in line
    command = _advice(line)
    assert f"storage upgrade --storage sqlite:///{optuna_db}" in command
    subprocess.run(command, shell=True, check=True, cwd="/", capture_output=True)
    assert len(optuna.load_study(study_name="old", storage=f"sqlite:///{optuna_db}").trials) == 1


def test_a_store_of_a_newer_mlflow_names_the_version_needed(tmp_path: Path, run,
                                                            taken: int) -> None:
    """A store made by MLflow 3.18.0 (newer than the installed 3.17): one sentence, no
    traceback, untouched."""
    from importlib.metadata import version

    if tuple(int(part) for part in version("mlflow").split(".")[:2]) >= (3, 18):
        pytest.skip(f"the installed MLflow {version('mlflow')} is not older than the store's "
                    "3.18.0: make a store of a newer release with scripts/make_store_fixtures.py")
    db = _unpack("mlflow-3.18.0.db", tmp_path / "new")
    before = digests(db.parent)
    line = one_line(run("ui", "--tracking-uri", f"sqlite:///{db}", "--port", str(taken)))
    assert (f"the MLflow store {db} was written by a newer MLflow than the "
            f"{version('mlflow')} installed here") in line
    assert "install --upgrade mlflow" in line
    assert digests(db.parent) == before


def test_the_check_is_cheap(tmp_path: Path, made: Path) -> None:
    """The check runs at every command's start: milliseconds for whole stores."""
    from cnnlab.tracking.preflight import check_stores
    from cnnlab.tracking.stores import Stores

    stores = Stores(f"sqlite:///{made / 'optuna.db'}", f"sqlite:///{made / 'mlflow.db'}")
    check_stores(stores, write=True)
    started = time.perf_counter()
    for _ in range(10):
        check_stores(stores, write=True)
    assert (time.perf_counter() - started) / 10 < 0.5  # Generous: about 5 ms when measured.


def test_a_store_with_the_journal_of_a_killed_writer_is_whole(tmp_path: Path, made: Path,
                                                              run) -> None:
    """A writer killed inside a transaction leaves a hot journal: the check rolls it back, as
    SQLite does for any writer, and does not call the store damaged."""
    folder = copy_of(made, tmp_path / "mlruns")
    pid = os.fork()
    if pid == 0:  # A writer, killed mid-transaction with pages in its journal.
        try:
            conn = sqlite3.connect(folder / "optuna.db", isolation_level=None)
            conn.execute("PRAGMA cache_size = 1")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE big (x)")
            for _ in range(2000):
                conn.execute("INSERT INTO big VALUES (?)", ("x" * 500,))
            os.kill(os.getpid(), 9)
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    assert (folder / "optuna.db-journal").exists()
    done = run("compare", *store_uris(folder))
    assert done.returncode == 0 and "made" in done.stdout, done.stderr
