"""The stores checked before anything starts, and local stores created whole.

``check_stores`` runs at the start of every command that opens a store, before a trial is
trained or the test set looked at. For each local SQLite store (MLflow's ``mlflow.db``,
Optuna's ``optuna.db``) it proves, in a few milliseconds, that the file is a whole SQLite
database (its header, then SQLite's ``PRAGMA quick_check``), that its schema is the one the
installed MLflow or Optuna reads (the store's alembic revision against the revisions the
library ships), and, for a command that writes, that the file and its folder can be written
(the OS's answer to opening the file for writing and to writing a page beside it, where SQLite
keeps its journal). A store that cannot be used is a ``StoreError``: one sentence naming the
store, its path, the cause as the OS or SQLite gave it and a command that fixes it; nothing
has been written. Stores on servers are left to ``cnnlab.tracking.runs.check_reachable``.

``create_store`` makes a new local store so that an interrupt at any instant leaves no store or
a whole one: the schema is built in a file beside it, which is then renamed into place (MLflow
migrates a new store through some 70 schema revisions over seconds; a Ctrl-C in between left a
file that every later command failed on). A store that such an interrupt left half-made by an
earlier cnnlab holds no data, and is made again.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from cnnlab.errors import ConfigError
from cnnlab.tracking.stores import Stores, program, shell_uri, sqlite_path

SQLITE_HEADER = b"SQLite format 3\x00"


class StoreError(ConfigError):
    """A store that cannot be used (damaged, of another MLflow or Optuna, not writable); the
    message names it, the cause, and a command that fixes it."""


class StoreLocked(StoreError):
    """A store that another process held locked for longer than the check waits."""


@dataclass(frozen=True)
class Kind:
    """What a kind of local store is called, which library reads it, and its data tables."""

    label: str
    library: str
    option: str
    migrations: str
    """The library's alembic folder of schema revisions, inside its package."""
    data: tuple[str, ...]
    """Tables whose rows are the store's data (a store with none holds nothing)."""


TRACKING = Kind("MLflow store", "mlflow", "--tracking-uri", "store/db_migrations/versions",
                ("experiments", "runs", "registered_models"))
STORAGE = Kind("Optuna storage", "optuna", "--storage", "storages/_rdb/alembic/versions",
               ("studies",))


def check_stores(stores: Stores, *, write: bool,
                 which: tuple[str, ...] = ("storage", "tracking")) -> None:
    """Check the local stores of ``stores`` (``which``: "storage", "tracking") before a
    command uses them: each is a whole SQLite database of the schema the installed library
    reads, and with ``write`` it can be written. A store that does not exist yet is fine
    (its folder must be writable when ``write``); one that an interrupted creation left
    half-made, holding nothing, is removed so that it is made again whole.

    Raises ``StoreError`` (one sentence: the store, its path, the cause, the command that fixes
    it)."""
    for role in which:
        uri, kind = (stores.storage, STORAGE) if role == "storage" else \
            (stores.tracking_uri, TRACKING)
        db = sqlite_path(uri)
        if db is not None:
            check_sqlite(db.absolute(), kind, write=write)


def check_writable_stores(stores: Stores, which: tuple[str, ...] = ("storage", "tracking")
                          ) -> None:
    """The writing half of ``check_stores(stores, write=True)``, for stores that
    ``check_stores(stores, write=False)`` checked already. Raises ``StoreError``."""
    for role in which:
        uri, kind = (stores.storage, STORAGE) if role == "storage" else \
            (stores.tracking_uri, TRACKING)
        db = sqlite_path(uri)
        if db is not None:
            db = db.absolute()
            check_writable(db, kind, exists=db.exists())


_SQLITE_CAUSES = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "disk I/O error": errno.EIO,
}
"""SQLite's words for a file system that fails it, and the OS error each stands for."""


def file_system_fault(err: BaseException | None) -> int | None:
    """The OS error number (ENOSPC, EDQUOT, EROFS, EIO) of a file system that failed a store,
    found in ``err`` or its chain of causes (an ``OSError`` without a path, or SQLite's words
    for it, as MLflow, Optuna and SQLAlchemy wrap them); None for any other error."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and not err.filename:
            code = err.errno
        else:
            text = str(err)
            code = next((c for words, c in _SQLITE_CAUSES.items() if words in text), None)
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            return code
        err = err.__cause__ or err.__context__
    return None


def store_fault(err: BaseException, stores: Stores) -> str | None:
    """One sentence for an error raised while a command ran that its local stores' file
    system caused (no space left, read-only, an I/O error: an ``OSError`` without a path, or
    SQLite's words for it anywhere in the chain of causes, as MLflow, Optuna and SQLAlchemy
    wrap them), naming the stores' folder and what to do; None for any other error."""
    folders = sorted({str(path.absolute().parent) for path in (
        sqlite_path(stores.storage), sqlite_path(stores.tracking_uri)) if path is not None})
    code = file_system_fault(err)
    if not folders or code is None:
        return None
    cause = OSError(code, os.strerror(code))
    return (f"the stores in {' and '.join(folders)} could not be written: "
            f"{cause.strerror}{_access_advice(Path(folders[0]), cause)[:-1]} (what was "
            "recorded before is kept: a study goes on from its trials).")


def check_sqlite(db: Path, kind: Kind, *, write: bool) -> None:
    """``check_stores`` for one SQLite file ``db`` of kind ``kind``."""
    try:
        state = inspect(db, kind, wait=60 if write else 5)
    except StoreLocked:
        if write:
            raise
        return  # A command that only reads says what it cannot read itself (compare's note).
    if state == "blank" and write:  # A command that only reads writes nothing, removes nothing.
        with _folder_lock(db.parent):
            if inspect(db, kind) == "blank":  # Not made whole by another process meanwhile.
                with contextlib.suppress(OSError):  # Else the command says what it cannot do.
                    db.unlink()
                    print(f"cnnlab: the {kind.label} {db} was left half-made by an "
                          "interrupted creation and held nothing; it is made again.",
                          file=sys.stderr, flush=True)
        state = "absent"
    if write:
        check_writable(db, kind, exists=state != "absent")


def inspect(db: Path, kind: Kind, *, quick: bool = False, wait: float = 60) -> str:
    """"absent", "blank" (an empty file, or a schema left half-made with no data in it) or
    "whole"; raises ``StoreError`` for a damaged store or one of another library version.
    ``quick`` leaves out SQLite's ``quick_check`` (which reads the whole file); ``wait`` is how
    many seconds a lock that another process holds is waited for (``StoreLocked`` after it)."""
    try:
        with db.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return "absent"
    except OSError as err:
        raise StoreError(f"cannot read the {kind.label} {db}: {err.strerror}"
                         f"{_access_advice(db, err)}") from None
    if not header:
        return "blank"
    if header != SQLITE_HEADER:
        raise damaged(db, kind, "file is not a database")
    try:
        # mode=rw: read-only where the OS says so, and never a new file; where it can be
        # written, SQLite rolls back the journal of a writer that was killed, as any command
        # opening the store would (read-only, it would call such a store unreadable).
        conn = sqlite3.connect(f"{db.as_uri()}?mode=rw", uri=True, timeout=wait)
    except sqlite3.Error as err:
        raise damaged(db, kind, str(err)) from None
    try:
        with conn:
            check = ("ok",) if quick else conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise damaged(db, kind, check[0] if check else "quick_check found nothing")
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = (conn.execute("SELECT version_num FROM alembic_version").fetchone()
                        if "alembic_version" in tables else None)
            holds = any(conn.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]
                        for table in kind.data if table in tables)
            made_by = (conn.execute("SELECT library_version FROM version_info").fetchone()
                       if "version_info" in tables else None)
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
            raise StoreLocked(f"the {kind.label} {db} stayed locked by another process for "
                              f"{wait:g} s; run again once it is done.") from None
        raise damaged(db, kind, str(err)) from None
    finally:
        conn.close()
    revision = revision[0] if revision else None
    half = any(name.startswith("_alembic_tmp_") for name in tables)
    head, known = schema(kind)
    if not holds and (half or revision is None or revision in known and revision != head):
        return "blank"
    if half:
        raise StoreError(
            f"the {kind.label} {db} was left half-upgraded (an interrupted schema migration left "
            f"its table {min(n for n in tables if n.startswith('_alembic_tmp_'))}); put back a "
            f"backup of it, or move it aside to start a new, empty one: "
            f"`{_move_aside(db, 'half-upgraded')}`.")
    if revision is not None and revision not in known:
        by = f" {made_by[0]}" if made_by and made_by[0] else ""
        raise StoreError(
            f"the {kind.label} {db} was written by a newer {_name(kind)}{by} than the "
            f"{version(kind.library)} installed here (its schema revision {revision} is unknown "
            f"to it); run cnnlab where {_name(kind)}{by or ' of that version'} is installed "
            f"(`{program('pip')} install --upgrade {kind.library}`; cnnlab supports "
            f"{_supported(kind)}).")
    if revision != head:
        raise StoreError(
            f"the {kind.label} {db} was written by an older {_name(kind)} (schema revision "
            f"{revision}; {_name(kind)} {version(kind.library)} reads {head}); upgrade it, "
            f"after a backup: `cp {shlex.quote(str(db))} {shlex.quote(str(db) + '.bak')} && "
            f"{_upgrade_command(db, kind)}`.")
    return "whole"


def damaged(db: Path, kind: Kind, cause: str) -> StoreError:
    """The sentence for a store that SQLite cannot read whole."""
    return StoreError(
        f"the {kind.label} {db} is damaged ({cause}); put back a backup of it, or move it aside "
        f"and run again to start a new, empty one: `{_move_aside(db, 'damaged')}`.")


def check_writable(db: Path, kind: Kind, *, exists: bool) -> None:
    """Prove that ``db`` (when it ``exists``) and its folder can be written: the file opened
    for writing, and a page written beside it (where SQLite puts its journal), then removed;
    a folder still to be made, by its nearest folder that exists (where it would be made).
    Nothing is left behind. Raises ``StoreError`` with the OS's cause (read-only file system,
    no space left, permission denied)."""
    folder = db.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        if exists:
            os.close(os.open(db, os.O_RDWR))
        fd, probe = tempfile.mkstemp(prefix=f".{db.name}.", suffix=".probe", dir=folder)
        try:
            os.write(fd, bytes(4096))
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        where = db if exists and err.filename == str(db) else folder
        raise StoreError(f"cannot write the {kind.label} {db} (in {folder}): "
                         f"{err.strerror or err}{_access_advice(where, err)}") from None


def _access_advice(path: Path, err: OSError) -> str:
    """What to do about an OS error on ``path``: "; <advice with a command>." (or ".")."""
    folder = path if path.is_dir() else path.parent
    q = shlex.quote
    if err.errno == errno.EROFS:
        copy = Path.home() / f"{folder.name}-copy"
        return (f"; copy the folder where it can be written and name the copies with --storage "
                f"and --tracking-uri (`cp -a {q(str(folder))} {q(str(copy))}`), or mount "
                f"{folder} read-write.")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"; free space there (`df -h {q(str(folder))}` shows what is left), then run "
                "again.")
    if err.errno in (errno.EACCES, errno.EPERM):
        return (f"; give yourself write access to it (`sudo chown -R \"$USER\" "
                f"{q(str(folder))}`), then run again.")
    return "."


def _move_aside(db: Path, why: str) -> str:
    return f"mv {shlex.quote(str(db))} {shlex.quote(f'{db}.{why}')}"


def _name(kind: Kind) -> str:
    return {"mlflow": "MLflow", "optuna": "Optuna"}[kind.library]


def _supported(kind: Kind) -> str:
    """The library's versions that cnnlab is installed with (its requirement)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        for requirement in requires("cnnlab") or []:
            found = re.match(rf"{kind.library}\s*([<>=!~][^;]*)", requirement)
            if found:
                return f"{_name(kind)} {found[1].strip()}"
    except PackageNotFoundError:
        pass
    return f"{_name(kind)} {version(kind.library)}"


def _upgrade_command(db: Path, kind: Kind) -> str:
    uri = shell_uri(f"sqlite:///{db}")
    if kind is TRACKING:
        return f"{program('mlflow')} db upgrade {uri}"
    return f"{program('optuna')} storage upgrade --storage {uri}"


@functools.cache
def schema(kind: Kind) -> tuple[str, frozenset[str]]:
    """(head revision, every revision) of the schema the installed library reads, from the
    ``revision = "..."`` and ``down_revision = ...`` lines of its alembic migration files
    (alembic's own ``ScriptDirectory`` imports every migration module: MLflow's import much of
    MLflow, seconds that `cnnlab ui` and `compare` do not otherwise spend)."""
    spec = find_spec(kind.library)
    folder = Path(spec.origin).parent / kind.migrations
    revisions, downs = set(), set()
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if found is None:
            continue
        revisions.add(found[1])
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
        if down is not None:
            downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down[1]))
    heads = revisions - downs
    return (heads.pop() if len(heads) == 1 else ""), frozenset(revisions)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``flock`` on it), among the processes that create or
    repair stores in it at once (workers starting together); none where locks are not
    available."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_store(db: Path, kind: Kind) -> None:
    """Make the local store ``db`` of ``kind``, unless it is there whole, so that an interrupt
    at any instant leaves no store or a whole one: its schema is built in a new file beside it
    (``.NAME.PID.new``), which is then renamed into place (``os.replace``, atomic in one
    folder). A store that an interrupted creation left half-made (no data in it) is made
    again. Processes that create the same store at once take turns (a lock on its folder); the
    later ones find it made. Files left by builds that were killed are removed.

    Raises ``StoreError`` for a store there that is damaged or of another library version
    (its schema read, as ``check_stores`` does, without SQLite's ``quick_check``)."""
    db = db.absolute()
    if inspect(db, kind, quick=True) == "whole":
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(db.parent):
        if inspect(db, kind, quick=True) == "whole":
            return
        _remove_dead(db, ".new")
        template = schema_template(kind)
        if template is not None:
            _made_beside(db, lambda new: shutil.copyfile(template, new))
        else:
            _made_beside(db, lambda new: _build(kind, new))


def _made_beside(db: Path, make: Callable[[Path], object]) -> None:
    """``make`` a new file beside ``db`` (``.NAME.PID.new``), then rename it into place
    (``os.replace``, atomic in one folder): an interrupt leaves no ``db`` or a whole one. What
    ``make`` left behind is removed however it ends."""
    new = db.with_name(f".{db.name}.{os.getpid()}.new")
    try:
        _remove_build(new)
        make(new)
        os.replace(new, db)
    finally:
        _remove_build(new)


def _build(kind: Kind, db: Path) -> None:
    (build_mlflow_schema if kind is TRACKING else build_optuna_schema)(f"sqlite:///{db}")


CACHE_ENV = "CNNLAB_CACHE_DIR"
"""The folder of cnnlab's cache on this machine (default ``$XDG_CACHE_HOME/cnnlab``, else
``~/.cache/cnnlab``)."""


def schema_template(kind: Kind) -> Path | None:
    """An empty store of ``kind``'s schema as the installed library makes it, built once per
    library version and schema head on this machine (in cnnlab's cache: ``CACHE_ENV``) and
    copied for every new store: MLflow makes a new SQLite store by running each of its
    migrations in turn (2.3 s of CPU here, each time), and what it makes holds no path, no
    time and no id, only tables. A template that is not whole (``inspect``) is made again;
    None where the cache cannot be written (the store is then built in place)."""
    head = schema(kind)[0]
    if not head:
        return None
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cnnlab")
    path = Path(base) / "stores" / f"{kind.library}-{version(kind.library)}-{head}.db"
    try:
        if inspect(path, kind, quick=True) == "whole":
            return path
    except StoreError:
        pass  # Damaged: made again.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _made_beside(path, lambda new: _build(kind, new))
    except (OSError, StoreError):
        return None
    return path


def _remove_build(new: Path) -> None:
    """A build's file and SQLite's files beside it (its journal)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        new.with_name(new.name + suffix).unlink(missing_ok=True)


def _remove_dead(db: Path, suffix: str) -> None:
    """Remove the files ``.NAME.PID<suffix>`` beside ``db`` (builds, reserves) whose process
    is gone (killed)."""
    for path in db.parent.glob(f".{db.name}.*{suffix}"):
        pid = path.name[len(db.name) + 2:-len(suffix)]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _remove_build(path)
        except PermissionError:
            pass


RESERVE_BYTES = 64 * 1024
"""Room kept beside a local MLflow store while a study runs, given back to end its run."""


def reserve(uri: str) -> Path | None:
    """Keep ``RESERVE_BYTES`` of room beside the local store ``uri`` (``.NAME.PID.reserve``),
    so that on a disk that fills up while a study runs its MLflow run can still be ended
    (SQLite needs room for its journal to write a row); None where none could be kept, or the
    store is not local. Reserves of processes that are gone are removed. ``release`` gives it
    back."""
    db = sqlite_path(uri)
    if db is None:
        return None
    db = db.absolute()
    path = db.with_name(f".{db.name}.{os.getpid()}.reserve")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead(db, ".reserve")
        with path.open("wb") as file:
            file.write(bytes(RESERVE_BYTES))
    except OSError:
        release(path)
        return None
    return path


def release(path: Path | None) -> None:
    """Give back the room ``reserve`` kept."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def build_mlflow_schema(url: str) -> None:
    """MLflow's schema in the new SQLite database ``url``, as MLflow makes it for a new store
    (its tables, then every migration: ``mlflow.store.db.utils._initialize_tables``)."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(url)
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()


def build_optuna_schema(url: str) -> None:
    """Optuna's schema in the new SQLite database ``url`` (``RDBStorage`` makes it)."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    storage.engine.dispose()
