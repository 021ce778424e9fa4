"""A study run in one folder and then from another (issue 31): the second run says where the
study's stores are and how to go on with them, every store is printed by its absolute path, and
the commands printed run as pasted in a plain shell (no virtual environment on the PATH) in yet
another folder."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.cli import build_parser
from tests.studies import TINY_ONE, _free_port, pasted_env, run_as_pasted

pytestmark = pytest.mark.slow  # Every test here runs a study.

ONE = TINY_ONE


def _study_run(folder: Path, *argv: str) -> str:
    """``cnnlab study run`` in ``folder`` with the default stores; what it printed."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("CNNLAB_STORAGE", raising=False)
        assert cli.main(["study", "run", *argv]) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A study run in folder ``lab`` (its file there) with the default stores; the folder and
    what the run printed."""
    folder = tmp_path_factory.mktemp("lab")
    (folder / "tiny.toml").write_text(ONE)
    return folder, _study_run(folder, "tiny.toml")


def test_a_run_from_another_folder_names_the_study_s_stores_and_the_command_goes_on_there(
        lab: tuple[Path, str], tmp_path: Path) -> None:
    import optuna

    folder, printed = lab
    storage = f"sqlite:///{folder / 'mlruns' / 'optuna.db'}"
    assert printed.startswith(f"study 'tiny' in {storage}: 0 trial(s) so far")
    assert "note: " not in printed  # Its own stores: nothing to say.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    printed = _study_run(elsewhere, os.path.relpath(folder / "tiny.toml", elsewhere),
                         "--n-trials", "2")
    note, first = printed.splitlines()[:2]
    assert first.startswith(f"study 'tiny' in sqlite:///{elsewhere / 'mlruns' / 'optuna.db'}: "
                            "0 trial(s) so far")
    assert note.startswith("note: study 'tiny' starts afresh in sqlite:///"
                           f"{elsewhere / 'mlruns' / 'optuna.db'} (new there), but the stores "
                           f"beside its file hold it ({storage} and sqlite:///"
                           f"{folder / 'mlruns' / 'mlflow.db'});")
    command = note.split("Ctrl-C this and run: ")[1]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.file, args.n_trials, args.storage) == (folder / "tiny.toml", 2, storage)
    # Run as pasted, from a third folder in a plain shell: it goes on with the study there.
    done = run_as_pasted(command, tmp_path / "third")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"study 'tiny' in {storage}: 1 trial(s) so far, total 2" in done.stdout
    assert "note: " not in done.stdout
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert not (tmp_path / "third" / "mlruns").exists()


def test_the_browse_command_serves_the_study_s_store_from_a_plain_shell(
        lab: tuple[Path, str], tmp_path: Path) -> None:
    folder, printed = lab
    (command,) = re.findall(r"; browse with: (.+)", printed)
    argv = shlex.split(command)
    assert Path(argv[0]).is_absolute() and argv[1] == "ui"
    assert build_parser().parse_args(argv[1:]).tracking_uri == \
        f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    # As pasted, in another folder with a plain PATH; only a free port is added (5000, its
    # default, may be taken on a shared machine).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for _ in range(3):  # A port found free can be taken before the server binds it.
        port = _free_port()
        server = subprocess.Popen(["sh", "-c", f"exec {command} --port {port}"], cwd=elsewhere,
                                  env=pasted_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            experiment = _experiment(f"http://127.0.0.1:{port}", "tiny", server)
        finally:
            server.send_signal(signal.SIGTERM)
            stderr = server.communicate(timeout=60)[1]
        if experiment is not None:
            break
    else:
        raise AssertionError(f"`{command}` never served: {stderr[-3000:]}")
    assert experiment["name"] == "tiny" and experiment["lifecycle_stage"] == "active"
    assert not (elsewhere / "mlruns").exists() and not (elsewhere / "mlflow.db").exists()


def _experiment(base: str, name: str, server: subprocess.Popen) -> dict | None:
    """Experiment ``name`` as the server at ``base`` gives it, once it answers; None if the
    server exited first."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?"
                                        f"experiment_name={name}", timeout=5) as answer:
                return json.load(answer)["experiment"]
        except (OSError, urllib.error.URLError):
            if server.poll() is not None:
                return None
            time.sleep(0.5)
    raise AssertionError(f"no answer from {base} in 180 s")
