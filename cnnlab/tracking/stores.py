"""Where the two stores are, MLflow's tracking store and Optuna's storage, and how to open them.

Defaults are local, under ``mlruns/`` of the current directory: ``sqlite:///mlruns/mlflow.db``
(artifacts beside it) and ``sqlite:///mlruns/optuna.db``. ``MLFLOW_TRACKING_URI`` and
``CNNLAB_STORAGE``, or the commands' ``--tracking-uri`` and ``--storage``, name others.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shlex
import sqlite3
import sys
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
STORAGE_ENV = "CNNLAB_STORAGE"


@dataclass(frozen=True)
class Stores:
    """Where a study is kept: the Optuna storage's URL and the MLflow tracking store's URI,
    resolved once (by the command line, or ``Stores.resolve()``) and handed down."""

    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI

    @classmethod
    def resolve(cls, storage: str | None = None, tracking_uri: str | None = None) -> Stores:
        """The stores named, else those of ``$CNNLAB_STORAGE`` and ``$MLFLOW_TRACKING_URI``,
        else the local ones under ``mlruns/``."""
        return cls(resolve_storage(storage), resolve_tracking_uri(tracking_uri))

    def command(self, command: str, name: str | None = None, *options: str,
                which: tuple[str, ...] = ("storage", "tracking")) -> str:
        """A cnnlab command line on these stores (``cnnlab_command``, ``which`` of them)."""
        return cnnlab_command(command, name, *options, storage=self.storage,
                              tracking_uri=self.tracking_uri, stores=which)

    def password_note(self, which: tuple[str, ...] = ("storage", "tracking")) -> str:
        """``password_note`` for advice that names ``which`` of these stores."""
        return password_note(*[pair for key, pair in (
            ("storage", (self.storage, STORAGE_ENV)),
            ("tracking", (self.tracking_uri, "MLFLOW_TRACKING_URI"))) if key in which])


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking store to use: ``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else local;
    a local SQLite store by its absolute path (``absolute_uri``)."""
    return absolute_uri(uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)


def resolve_storage(storage: str | None = None) -> str:
    """Optuna storage URL: ``storage`` if given, else ``$CNNLAB_STORAGE``, else the local one;
    a local SQLite store by its absolute path (``absolute_uri``)."""
    return absolute_uri(storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other kind of store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).expanduser()


def experiment_folder(name: str) -> str:
    """The folder beside a local store's database that keeps experiment ``name``'s artifacts:
    its name made safe for paths, and a short digest of it (``tiny-6f1c2a4b``), so that two
    names that read alike keep apart."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"
    return f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


_LOCATIONS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
              ("logged_models", "artifact_location"), ("model_versions", "source"),
              ("model_versions", "storage_location"))
"""Where an MLflow SQLite store records artifact locations, always absolute (MLflow resolves
a relative one against the working directory when it records it)."""


def local_artifact_path(location: str) -> str | None:
    """The absolute filesystem path of a local artifact location (``file:///...`` or a bare
    absolute path), else None."""
    if location.startswith("file://"):
        parsed = urllib.parse.urlsplit(location)
        return urllib.parse.unquote(parsed.path) if parsed.netloc in ("", "localhost") else None
    return location if location.startswith("/") else None


def reroot_moved_store(uri: str) -> list[tuple[str, str]]:
    """Make a local SQLite store's artifact locations point beside its database again after
    its folder was moved or copied; returns the (old, new) folders rewritten (none, usually).

    MLflow records every artifact location as an absolute path (experiments, runs, logged
    models, model versions); cnnlab keeps a local store's artifacts beside its database, in
    ``experiment_folder(name)``. An experiment whose recorded folder has that name but lies
    elsewhere than beside the database was made before the store's folder moved (``mv``, ``cp
    -r``): every location under that former folder is rewritten to the same path under the
    database's folder, in one transaction, when the artifacts are there (or no longer at the
    old place), so that a moved store reads and writes its own artifacts from any working
    directory. Said in one line on stderr. Other stores, and locations a user chose, are left
    as they are. A store that cannot be written is left as it is (the commands then name the
    missing paths)."""
    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return []
    root = db.parent.resolve()
    try:
        with sqlite3.connect(db, timeout=60) as conn:
            rows = conn.execute("SELECT name, artifact_location FROM experiments").fetchall()
            moves = {}
            for name, location in rows:
                path = local_artifact_path(location or "")
                if path is None:
                    continue
                old = Path(path)
                if old.name != experiment_folder(name) or old.parent == root:
                    continue
                if (root / old.name).exists() or not old.exists():
                    moves[str(old.parent)] = str(root)
            for old_root, new_root in moves.items():
                _rewrite(conn, old_root, new_root)
    except sqlite3.Error:
        return []
    for old_root, new_root in moves.items():
        print(f"cnnlab: the MLflow store {db.resolve()} was moved from {old_root}; its artifact "
              f"locations now point beside it ({new_root}).", file=sys.stderr, flush=True)
    return list(moves.items())


def _rewrite(conn: sqlite3.Connection, old_root: str, new_root: str) -> None:
    """Every recorded location under ``old_root`` (bare path or ``file://`` URI), under
    ``new_root`` instead."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    prefixes = [(old_root + "/", new_root + "/"),
                (Path(old_root).as_uri() + "/", Path(new_root).as_uri() + "/")]
    for table, column in _LOCATIONS:
        if table not in tables:
            continue
        for old, new in prefixes:
            conn.execute(f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                         f'WHERE substr("{column}", 1, ?) = ?',
                         (new, len(old) + 1, len(old), old))


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s/]*@")
_SECRET_QUERY = re.compile(
    r"(?i)(?P<key>[?&;](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|"
    r"sslpassword)=)[^&;\s#'\"]+")


def redact(text: str) -> str:
    """``text`` with every password of a URL in it shown as ``***``: the user-info form
    (``scheme://user:password@host``), wherever the URL stands in the text (``--opt=URL``
    included), and query parameters that carry secrets (``?password=...``, ``&token=...``)."""
    text = _USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)


# -- advice: commands that name the stores -----------------------------------------------------
#
# Every command cnnlab prints as advice works when pasted as printed, from a plain shell (no
# virtual environment activated) in any directory: its program by the path that finds it, and
# the stores it acts on named (MLflow's own commands default to other stores than cnnlab's), a
# local one by its absolute path, quoted for a POSIX shell. A store whose URI holds a password is
# named by the variable that holds it ("$MLFLOW_TRACKING_URI", "$CNNLAB_STORAGE"), since cnnlab
# prints no passwords; the advice then says to set it when the URI did not come from it.


def absolute_uri(uri: str) -> str:
    """``uri`` with a local store named by its absolute path (``sqlite:///mlruns/optuna.db`` ->
    ``sqlite:////home/me/lab/mlruns/optuna.db``): the same store from any directory, and to
    MLflow, which keeps one store per URI for the process's life (a relative one would stay
    the first directory's). Other stores as given."""
    db = sqlite_path(uri)
    return f"sqlite:///{db.resolve()}" if db is not None else uri


def shown_uri(uri: str) -> str:
    """``uri`` as cnnlab prints where a store is: absolute (``absolute_uri``), password hidden."""
    return redact(absolute_uri(uri))


def shell_uri(uri: str, env: str = "MLFLOW_TRACKING_URI") -> str:
    """``uri`` as one word of a shell command: a local SQLite store by its absolute path, so
    that the command works from any directory; a URI with a password as ``"$<env>"``."""
    if redact(uri) != uri:
        return f'"${env}"'
    return shlex.quote(absolute_uri(uri))


def password_note(*stores: tuple[str, str]) -> str:
    """For advice naming a store by its variable (``shell_uri``): the sentence that says to
    set the variable, unless it holds that URI already; "" otherwise. ``stores`` are
    (URI, variable) pairs."""
    unset = [env for uri, env in stores if redact(uri) != uri and os.environ.get(env) != uri]
    return (f" (with ${' and $'.join(unset)} set to the store's URL: cnnlab prints no "
            "passwords)" if unset else "")


def program(name: str) -> str:
    """How to call the console script ``name`` (``cnnlab``, ``mlflow``) from a plain shell in
    any directory: by the absolute path of the one installed beside this Python (a virtual
    environment's ``bin/``, activated or not: a new terminal has it on no PATH) or in this
    Python's scripts folder (``sysconfig``'s, ``pip install --user``'s), else by its name."""
    import sysconfig

    folders = [Path(sys.executable).absolute().parent, Path(sysconfig.get_path("scripts")),
               Path(sysconfig.get_path("scripts", sysconfig.get_preferred_scheme("user")))]
    for folder in folders:
        if (folder / name).is_file():
            return shlex.quote(str(folder / name))
    return name


def mlflow_command(words: str, uri: str) -> str:
    """An MLflow command line (``words`` after ``mlflow``) on the tracking store ``uri``: MLflow's
    commands read the store from ``$MLFLOW_TRACKING_URI``, and default to ``./mlflow.db``."""
    return f"MLFLOW_TRACKING_URI={shell_uri(uri)} {program('mlflow')} {words}"


def cnnlab_command(command: str, name: str | None = None, *options: str,
                   storage: str | None = None, tracking_uri: str | None = None,
                   stores: tuple[str, ...] = ("storage", "tracking")) -> str:
    """A cnnlab command line: ``<cnnlab's path> <command> <options> <store options> <name>``,
    naming the ``stores`` it takes as resolved (``resolve_storage``, ``resolve_tracking_uri``),
    a local one by its absolute path even when it is the default (``mlruns/`` of this directory:
    pasted in another, the command would make a new store there), and the study's name quoted
    (after ``--`` if it starts with a dash)."""
    words = [f"{program('cnnlab')} {command}", *options]
    if "storage" in stores:
        words += ["--storage", shell_uri(resolve_storage(storage), STORAGE_ENV)]
    if "tracking" in stores:
        words += ["--tracking-uri", shell_uri(resolve_tracking_uri(tracking_uri))]
    if name is not None:
        words += (["--"] if name.startswith("-") else []) + [shlex.quote(name)]
    return " ".join(words)


def option_with(flag: str, value: str) -> str:
    """``--flag value`` for a shell, ``--flag=value`` when the value starts with a dash."""
    quoted = shlex.quote(value)
    return f"{flag}={quoted}" if value.startswith("-") else f"{flag} {quoted}"


HEARTBEAT_INTERVAL = 10
"""Seconds between a running trial's heartbeats in the Optuna storage."""
GRACE_PERIOD = 60
"""A running trial without a heartbeat for this long is stale: failed, unless its process is
known to be alive (``cnnlab.tracking.liveness``)."""
HEARTBEAT_ENV = "CNNLAB_HEARTBEAT"
"""``INTERVAL,GRACE`` in whole seconds (``10,60`` by default): the heartbeat's period and the
silence after which a trial is stale. Shorter ones make tests of stopped processes quick."""


def heartbeat() -> tuple[int, int]:
    """(interval, grace period) in seconds: ``$CNNLAB_HEARTBEAT`` or (10, 60). Raises
    ``ConfigError`` for a value that is not two whole numbers of seconds, grace above interval."""
    text = os.environ.get(HEARTBEAT_ENV)
    if not text:
        return HEARTBEAT_INTERVAL, GRACE_PERIOD
    try:
        interval, grace = (int(part) for part in text.split(","))
    except ValueError:
        interval = grace = 0
    if not 0 < interval < grace:
        raise ConfigError(f"{HEARTBEAT_ENV}={text!r} is not INTERVAL,GRACE in whole seconds "
                          "with 0 < INTERVAL < GRACE (the default is 10,60).")
    return interval, grace


@functools.cache
def _storage_class() -> type:
    """Optuna's ``RDBStorage`` whose stale trials (no heartbeat for the grace period) leave
    out those whose process is known to be alive on this host.

    ``optuna.storages.fail_stale_trials`` (``fail_stale``, before each trial of the study loop,
    in any process that shares the storage) asks the storage which trials are stale through
    ``BaseHeartbeat._get_stale_trial_ids``, which storages implement: overriding it is the one
    use of a private Optuna name in cnnlab, since Optuna has no public hook there. So a process
    that is stopped (Ctrl-Z, SIGSTOP, a suspended laptop) past the grace period keeps its
    trial. Processes on other hosts cannot be checked: their silence is the only evidence, as
    in Optuna."""
    import optuna

    from cnnlab.names import WORKER_ATTR
    from cnnlab.tracking import liveness

    class LiveStorage(optuna.storages.RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return [trial_id for trial_id in super()._get_stale_trial_ids(study_id)
                    if not liveness.is_alive(
                        self.get_trial(trial_id).user_attrs.get(WORKER_ATTR, {}))]

    LiveStorage.__qualname__ = "LiveStorage"  # Found by pickle as this module's attribute.
    return LiveStorage


def __getattr__(name: str) -> Any:
    if name == "LiveStorage":  # Made on first use: Optuna is imported only then.
        return _storage_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``, with heartbeats so that a killed worker's trial is failed
    (``heartbeat()``), but never the trial of a process known to be alive on this host.

    A local SQLite file gets its folder and a patient lock (several workers may share it); a
    new one is made whole first by ``cnnlab.tracking.preflight.create_store``. An
    unreachable or malformed URL is a ``ConfigError`` that names it (password hidden); so is
    a malformed ``$CNNLAB_HEARTBEAT``.
    """
    import optuna

    interval, grace = heartbeat()
    kwargs: dict[str, Any] = {"heartbeat_interval": interval, "grace_period": grace}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 10},
                                   "pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _storage_class()(url, **kwargs)
    except Exception as err:  # SQLAlchemy's and Optuna's errors alike: say which URL and why.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot open the Optuna storage {redact(url)}: {reason}") from None


def trial_id(storage: Any, study_id: int, number: int) -> int:
    """The storage's id of trial ``number`` of the study whose storage id is ``study_id``
    (``storage.get_study_id_from_name``): Optuna's public storage API, since a ``Trial`` keeps
    its id private."""
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


@contextlib.contextmanager
def heartbeats(storage: Any, trial: int) -> Iterator[None]:
    """While the block runs, the trial (its storage id) beats every heartbeat interval, from a
    thread, as ``study.optimize`` does around each trial: a worker that dies stops beating, and
    its trial is failed by the next process that checks (``optuna.storages.fail_stale_trials``).
    ``study.ask`` starts no such thread, and Optuna's own is private
    (``optuna.storages._heartbeat``): this is it, on the storage's public methods
    (``get_heartbeat_interval``, ``record_heartbeat``). A storage without heartbeats: none."""
    import threading

    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial)
            if stop.wait(timeout=interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale(study: Any) -> None:
    """Optuna's heartbeat check (``optuna.storages.fail_stale_trials``): fail the RUNNING trials
    whose heartbeat stopped more than the grace period ago, passing over those whose process is
    alive here (``open_storage``), as ``study.optimize`` does before each trial."""
    import optuna

    with warnings.catch_warnings():  # Experimental in Optuna since 2.9, and what it is for.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def open_existing_storage(storage: str | None = None) -> tuple[str, Any]:
    """(URL, storage) of a storage that studies have run in, for evaluate and compare: a local
    SQLite file that does not exist yet is an error, not a new empty store."""
    url = resolve_storage(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).expanduser().exists():
        raise ConfigError(f"there is no Optuna storage at {url} (no study has run there); "
                          "name the storage a study ran in with --storage (or $CNNLAB_STORAGE).")
    return url, open_storage(url)


def load_existing_study(study_name: str, storage: str | None = None) -> Any:
    """An existing study, or a one-sentence error naming it and what the storage has."""
    import optuna

    url, storage_obj = open_existing_storage(storage)
    names = optuna.study.get_all_study_names(storage=storage_obj)
    if study_name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"no study named {study_name!r} in {redact(url)} "
                          f"(studies there: {known}).")
    return optuna.load_study(study_name=study_name, storage=storage_obj)
