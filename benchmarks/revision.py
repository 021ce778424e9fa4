"""cnnlab's files at a git revision, for the benchmarks' ``--before REV`` (before and after in
one run, the same interpreter)."""

from __future__ import annotations

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The repository's root: ``git archive`` run in a subfolder takes that folder only."""


def extract(revision: str, folder: str) -> str:
    """The repository's files at ``revision`` written into ``folder`` (made if missing) with
    ``git archive`` (no worktree is added to the repository); returns ``folder``, to put first
    on ``sys.path`` (or ``PYTHONPATH``). Raises ``subprocess.CalledProcessError`` for a revision
    git does not know."""
    os.makedirs(folder, exist_ok=True)
    archive = subprocess.run(["git", "-C", ROOT, "archive", revision], check=True,
                             capture_output=True)
    subprocess.run(["tar", "x", "-C", folder], input=archive.stdout, check=True)
    return folder
