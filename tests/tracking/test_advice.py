"""Commands cnnlab prints as advice work as printed (issue 22): they name the stores, by
absolute path for local ones, and quote a study's name for the shell, whatever it holds. The
commands themselves are run, as printed, in tests/study/test_edited.py."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cnnlab.cli import build_parser
from cnnlab.tracking.stores import (
    cnnlab_command,
    mlflow_command,
    option_with,
    password_note,
    shell_uri,
)

NAMES = ["tiny", "a\\\\", "it's", 'say "hi"', "`x`", "-x", "a b", "$HOME", "ünï", "'\\\"`"]


@pytest.mark.parametrize("name", NAMES)
def test_a_cnnlab_command_names_its_stores_and_quotes_the_name(name: str, tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CNNLAB_STORAGE", raising=False)
    storage, tracking = "sqlite:///stores/optuna.db", "sqlite:///stores/mlflow.db"
    line = cnnlab_command("evaluate", name, "--complete", storage=storage,
                          tracking_uri=tracking)
    argv = shlex.split(line)
    assert argv[0] == "cnnlab"
    args = build_parser().parse_args(argv[1:])
    assert args.study == name and args.complete
    assert args.storage == f"sqlite:///{tmp_path / 'stores' / 'optuna.db'}"
    assert args.tracking_uri == f"sqlite:///{tmp_path / 'stores' / 'mlflow.db'}"
    flag = shlex.split(f"cnnlab study run f.toml {option_with('--from-study', name)}")
    assert build_parser().parse_args(flag[1:]).from_study == name


def test_the_default_stores_are_left_to_the_command_and_passwords_to_a_variable(
        monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CNNLAB_STORAGE", raising=False)
    assert cnnlab_command("ui", stores=("tracking",)) == "cnnlab ui"
    secret = "postgresql://me:hunter2@db/mlflow"
    assert shell_uri(secret) == '"$MLFLOW_TRACKING_URI"'
    line = mlflow_command("runs restore --run-id abc", secret)
    assert "hunter2" not in line and line.startswith('MLFLOW_TRACKING_URI="$MLFLOW_TRACKING_URI"')
    assert "hunter2" not in cnnlab_command("ui", tracking_uri=secret)
    # The variable is named, and said to be set, unless it holds that URL already.
    assert "$MLFLOW_TRACKING_URI set to the store's URL" in password_note(
        (secret, "MLFLOW_TRACKING_URI"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret)
    assert password_note((secret, "MLFLOW_TRACKING_URI")) == ""
    assert password_note(("sqlite:///x.db", "MLFLOW_TRACKING_URI")) == ""
