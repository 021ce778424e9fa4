"""Where the two stores are: MLflow's tracking store and Optuna's storage (no framework import).

Defaults are local, under ``mlruns/`` of the current directory: ``sqlite:///mlruns/mlflow.db``
(artifacts beside it) and ``sqlite:///mlruns/optuna.db``. ``MLFLOW_TRACKING_URI`` and
``CNNLAB_STORAGE``, or the commands' ``--tracking-uri`` and ``--storage``, name others.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
STORAGE_ENV = "CNNLAB_STORAGE"


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
