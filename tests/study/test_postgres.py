"""More than one machine: Optuna on PostgreSQL, MLflow on a tracking server with a PostgreSQL
backend store, and two worker processes of one study. Read back from both stores.

Needs a PostgreSQL server: ``CNNLAB_TEST_POSTGRES`` (set by ``.ci/run`` through
``scripts/postgres-for-tests.sh``) holds ``postgresql://user:password@host:port``, with the
databases ``cnnlab_optuna`` and ``cnnlab_mlflow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.studies import TINY, Stores, ui_server

pytestmark = pytest.mark.slow  # Its one test runs workers and a tracking server.

SERVER = os.environ.get("CNNLAB_TEST_POSTGRES")
needs_postgres = pytest.mark.skipif(
    not SERVER, reason="set CNNLAB_TEST_POSTGRES (bash scripts/postgres-for-tests.sh prints it)")


@needs_postgres
def test_two_workers_on_postgres_and_a_tracking_server(tmp_path: Path) -> None:
    name = f"pg-{uuid.uuid4().hex[:8]}"  # A new study each run, in long-lived databases.
    stores = Stores(tmp_path, TINY.replace('name = "tiny"', f'name = "{name}"').replace(
        "n_trials = 3", "n_trials = 4"))
    user, password = SERVER.split("//")[1].split("@")[0].split(":")
    host = SERVER.split("@")[1]
    # The password as a query parameter, given in the --storage=URL form: both must be hidden.
    stores.storage = f"postgresql://{user}@{host}/cnnlab_optuna?password={password}"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                              "CNNLAB_STORAGE")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # The tracking server, as README says to start it (cnnlab ui over a PostgreSQL store).
    with ui_server(f"{SERVER}/cnnlab_mlflow", cwd=tmp_path, env=env) as (base, banner):
        stores.tracking = base
        assert password not in banner and "***" in banner
        # No process that cnnlab started shows a password on its command line (what ps
        # shows every user): the processes below `cnnlab ui` (which this test started with
        # the URL on its command line, as a user may): the MLflow server and what it runs.
        listing = "\n".join(_descendants_command_lines(os.getpid(), below=1))
        assert "mlflow" in listing and "server" in listing
        assert password not in listing and "postgresql://" not in listing
        result = subprocess.run(
            [sys.executable, "-m", "cnnlab.cli", "study", "run", str(stores.file), "--workers",
             "2", f"--storage={stores.storage}", "--tracking-uri", stores.tracking],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr
        assert password not in result.stdout + result.stderr

        study = stores.study(name)
        assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
        assert {t.state.name for t in study.trials} == {"COMPLETE"}
        assert len({t.user_attrs["cnnlab_worker"]["pid"] for t in study.trials}) == 2
        parent, children = stores.runs(name)
        assert sorted(children) == [0, 1, 2, 3]
        assert {c.data.tags["mlflow.parentRunId"] for c in children.values()} == \
            {parent.info.run_id}
        client = stores.client
        for trial in study.trials:
            run = children[trial.number]
            assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
            assert [m.step for m in client.get_metric_history(
                run.info.run_id, "val_accuracy")] == [1, 2]
            assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
                "plots/loss.png", "plots/accuracy.png"}
        # No credentials anywhere in what was recorded: runs' params, tags and every artifact
        # file, the Optuna study's and trials' attributes.
        for run in [parent, *children.values()]:
            recorded = " ".join([*run.data.params.values(), *run.data.tags.values()])
            assert password not in recorded
            folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "a")))
            for path in folder.rglob("*"):
                if path.is_file():
                    assert password.encode() not in path.read_bytes(), path
        attrs = [study.user_attrs, *[(t.user_attrs, t.system_attrs) for t in study.trials]]
        assert password not in json.dumps(attrs, default=str)


def _descendants_command_lines(root: int, below: int = 0) -> list[str]:
    """The command lines of ``root``'s descendants, from ``below + 1`` generations down."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier, depth = [], {root}, 0
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        depth += 1
        for pid in frontier if depth > below else ():
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                             .decode(errors="replace"))
            except OSError:
                continue
    return found
