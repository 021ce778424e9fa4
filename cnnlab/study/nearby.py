"""A study's own stores, when ``study run`` is about to make new ones elsewhere.

The default stores are ``mlruns/`` of the current directory, so ``study run`` from another
folder than the one a study ran in makes a fresh, empty pair and starts the study at 0 trials.
``stores_beside`` looks where the study's stores would be (``mlruns/`` beside its file, or in
the folder above it: the repository root for ``experiments/NAME.toml``) and says whether they
hold the study; it only reads, through SQLite's read-only mode.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from cnnlab.tracking.stores import DEFAULT_STORAGE, DEFAULT_TRACKING_URI, Stores, sqlite_path


def stores_beside(file: Path, study_name: str, storage: str) -> Stores | None:
    """The local stores (``mlruns/optuna.db`` and ``mlruns/mlflow.db``) in the folder of the
    study file ``file`` or the folder above it that hold study ``study_name``, when ``storage``
    (the Optuna storage about to be used) is another local SQLite store, without that study
    (new: the run would start it afresh); else None. Nothing is written."""
    used = sqlite_path(storage)
    if used is None or _holds(used, study_name):
        return None
    folder = file.absolute().parent
    for root in (folder, folder.parent):
        db = root / sqlite_path(DEFAULT_STORAGE)
        if db.is_file() and not _same(db, used) and _holds(db, study_name):
            return Stores(f"sqlite:///{db.resolve()}",
                          f"sqlite:///{(root / sqlite_path(DEFAULT_TRACKING_URI)).resolve()}")
    return None


def _holds(db: Path, study_name: str) -> bool:
    """Whether the Optuna SQLite file ``db`` holds a study named ``study_name`` (opened
    read-only: a missing file is not made, a locked or foreign one holds none)."""
    if not db.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True,
                                                timeout=10)) as conn:
            found = conn.execute("SELECT 1 FROM studies WHERE study_name = ?",
                                 (study_name,)).fetchone()
    except sqlite3.Error:
        return False
    return found is not None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # ``b`` does not exist yet.
        return False
