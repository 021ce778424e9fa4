"""A study run in-process freezes the heap for its trials (``gc.freeze``) and leaves the
caller's as it found it: unfrozen if it was, and a caller's own frozen objects still frozen."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.studies import TINY_ONE, Stores

STUDY = TINY_ONE


def test_a_study_run_leaves_the_callers_heap_as_it_found_it(tmp_path: Path) -> None:
    gc.unfreeze()
    try:
        (tmp_path / "plain").mkdir()
        plain = Stores(tmp_path / "plain", STUDY)
        assert plain.run() == 0
        assert gc.get_freeze_count() == 0  # Its own frozen heap thawed.

        gc.freeze()  # The caller's (a server, a notebook kernel that froze its start-up heap).
        frozen = gc.get_freeze_count()
        assert frozen > 0
        other = STUDY.replace('name = "tiny"', 'name = "tiny-2"')
        (tmp_path / "again").mkdir()
        again = Stores(tmp_path / "again", other)
        assert again.run() == 0
        assert gc.get_freeze_count() >= frozen
        assert len(again.study("tiny-2").trials) == 1
    finally:
        gc.unfreeze()
