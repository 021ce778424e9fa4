"""Where the two stores are, MLflow's tracking store and Optuna's storage, and how to open them.

Defaults are local, under ``mlruns/`` of the current directory: ``sqlite:///mlruns/mlflow.db``
(artifacts beside it) and ``sqlite:///mlruns/optuna.db``. ``MLFLOW_TRACKING_URI`` and
``CNNLAB_STORAGE``, or the commands' ``--tracking-uri`` and ``--storage``, name others.
"""

from __future__ import annotations

import os
import re
import shlex
import warnings
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


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking store to use: ``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else local."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def resolve_storage(storage: str | None = None) -> str:
    """Optuna storage URL: ``storage`` if given, else ``$CNNLAB_STORAGE``, else the local one."""
    return storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other kind of store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).expanduser()


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
# Every command cnnlab prints as advice works when pasted as printed, in the same directory and
# shell: it names the stores it acts on (MLflow's own commands default to other stores than
# cnnlab's), quoted for a POSIX shell. A store whose URI holds a password is named by the
# variable that holds it ("$MLFLOW_TRACKING_URI", "$CNNLAB_STORAGE"), since cnnlab prints no
# passwords; the advice then says to set it when the URI did not come from it.


def shell_uri(uri: str, env: str = "MLFLOW_TRACKING_URI") -> str:
    """``uri`` as one word of a shell command: a local SQLite store by its absolute path, so
    that the command works from any directory; a URI with a password as ``"$<env>"``."""
    if redact(uri) != uri:
        return f'"${env}"'
    db = sqlite_path(uri)
    return shlex.quote(f"sqlite:///{db.resolve()}" if db is not None else uri)


def password_note(*stores: tuple[str, str]) -> str:
    """For advice naming a store by its variable (``shell_uri``): the sentence that says to
    set the variable, unless it holds that URI already; "" otherwise. ``stores`` are
    (URI, variable) pairs."""
    unset = [env for uri, env in stores if redact(uri) != uri and os.environ.get(env) != uri]
    return (f" (with ${' and $'.join(unset)} set to the store's URL: cnnlab prints no "
            "passwords)" if unset else "")


def mlflow_command(words: str, uri: str) -> str:
    """An MLflow command line (``words`` after ``mlflow``) on the tracking store ``uri``: MLflow's
    commands read the store from ``$MLFLOW_TRACKING_URI``, and default to ``./mlflow.db``."""
    return f"MLFLOW_TRACKING_URI={shell_uri(uri)} mlflow {words}"


def cnnlab_command(command: str, name: str | None = None, *options: str,
                   storage: str | None = None, tracking_uri: str | None = None,
                   stores: tuple[str, ...] = ("storage", "tracking")) -> str:
    """A cnnlab command line: ``cnnlab <command> <options> <store options> <name>``, with the
    stores given (those the command would find by itself left out: the defaults, with neither
    variable set) and the study's name quoted (after ``--`` if it starts with a dash)."""
    words = [f"cnnlab {command}", *options]
    storage, tracking_uri = resolve_storage(storage), resolve_tracking_uri(tracking_uri)
    if "storage" in stores and (storage != DEFAULT_STORAGE or os.environ.get(STORAGE_ENV)):
        words += ["--storage", shell_uri(storage, STORAGE_ENV)]
    if "tracking" in stores and (tracking_uri != DEFAULT_TRACKING_URI
                                 or os.environ.get("MLFLOW_TRACKING_URI")):
        words += ["--tracking-uri", shell_uri(tracking_uri)]
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
"""A running trial without a heartbeat for this long belongs to a dead worker: it is failed."""


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``, with heartbeats so that a killed worker's trial is failed.

    A local SQLite file gets its folder and a patient lock (several workers may share it). An
    unreachable or malformed URL is a ``ConfigError`` that names it (password hidden).
    """
    import optuna

    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_INTERVAL,
                              "grace_period": GRACE_PERIOD}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 10},
                                   "pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as err:  # SQLAlchemy's and Optuna's errors alike: say which URL and why.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot open the Optuna storage {redact(url)}: {reason}") from None


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
