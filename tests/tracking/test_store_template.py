"""A new local store is a copy of a template of its library's schema, built once per library
version on this machine (``preflight.schema_template``): the same tables as the library makes,
a template that is not whole made again, and no cache needed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cnnlab.tracking import preflight


def _schema(db: Path) -> list[tuple[str, list[str]]]:
    """Each table's and index's definition, its lines in order (MLflow's own builds list a
    table's constraints in varying order: alembic's batch migrations copy them from a set),
    and the schema's revision."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return [*((name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
              for name, sql in rows), ("alembic_version", [str(version)])]


@pytest.mark.parametrize("kind", [preflight.TRACKING, preflight.STORAGE], ids=lambda k: k.library)
def test_a_new_store_is_the_librarys_schema_copied_from_a_template(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: preflight.Kind) -> None:
    monkeypatch.setenv(preflight.CACHE_ENV, str(tmp_path / "cache"))
    built = tmp_path / "built.db"
    preflight._build(kind, built)  # What the library makes, in place.
    preflight.create_store(tmp_path / "a" / "store.db", kind)
    template = preflight.schema_template(kind)
    assert template is not None and template.parent == tmp_path / "cache" / "stores"
    made = template.stat().st_mtime_ns
    preflight.create_store(tmp_path / "b" / "store.db", kind)
    assert template.stat().st_mtime_ns == made  # Built once, copied since.
    for store in (template, tmp_path / "a" / "store.db", tmp_path / "b" / "store.db"):
        assert _schema(store) == _schema(built)
        assert preflight.inspect(store, kind) == "whole"
    # A template that is not whole (a damaged cache) is made again.
    template.write_bytes(b"not a database")
    preflight.create_store(tmp_path / "c" / "store.db", kind)
    assert _schema(template) == _schema(built) == _schema(tmp_path / "c" / "store.db")
    # No cache to write: the store is built in place all the same.
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(preflight.CACHE_ENV, str(tmp_path / "file"))
    assert preflight.schema_template(kind) is None
    preflight.create_store(tmp_path / "d" / "store.db", kind)
    assert _schema(tmp_path / "d" / "store.db") == _schema(built)
