"""Commands cnnlab prints as advice work as printed (issues 22 and 31): their program by its
path, the stores named, by absolute path for local ones, and a study's name quoted for the
shell, whatever it holds; an unknown option gets the one meant. The commands themselves are run,
as printed, in a plain shell in another folder, in tests/study/test_edited.py,
tests/study/test_other_folder.py, tests/study/test_design_study.py and
tests/results/test_evaluate.py."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.cli import build_parser
from cnnlab.tracking.stores import (
    cnnlab_command,
    mlflow_command,
    option_with,
    password_note,
    shell_uri,
    shown_uri,
)
from tests.studies import PLAIN_PATH

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
    assert Path(argv[0]).name == "cnnlab"
    args = build_parser().parse_args(argv[1:])
    assert args.study == name and args.complete
    assert args.storage == f"sqlite:///{tmp_path / 'stores' / 'optuna.db'}"
    assert args.tracking_uri == f"sqlite:///{tmp_path / 'stores' / 'mlflow.db'}"
    flag = shlex.split(f"cnnlab study run f.toml {option_with('--from-study', name)}")
    assert build_parser().parse_args(flag[1:]).from_study == name


def test_the_program_is_named_by_its_path_and_every_store_absolutely(
        tmp_path: Path, monkeypatch) -> None:
    # Issue 31: a bare `cnnlab` is "command not found" in a shell without the virtual
    # environment activated, and a default store left out makes a new one in another folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CNNLAB_STORAGE", raising=False)
    monkeypatch.setenv("PATH", PLAIN_PATH)
    for line, command in ((cnnlab_command("ui", stores=("tracking",)), "cnnlab"),
                          (mlflow_command("ui", "sqlite:///mlruns/mlflow.db"), "mlflow")):
        argv = shlex.split(line.split(" ", 1)[1] if command == "mlflow" else line)
        assert Path(argv[0]).is_absolute() and Path(argv[0]).name == command
        assert os.access(argv[0], os.X_OK)
    argv = shlex.split(cnnlab_command("evaluate", "tiny", "--complete"))
    args = build_parser().parse_args(argv[1:])
    assert args.storage == f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    assert args.tracking_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    argv = shlex.split(cnnlab_command("ui", stores=("tracking",)))
    assert build_parser().parse_args(argv[1:]).tracking_uri == \
        f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def test_a_password_is_left_to_a_variable(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CNNLAB_STORAGE", raising=False)
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


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """Every command of ``parser`` that takes options (``study run``, ``compare``...): its
    words and its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield words, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*words, name))


def _typo(option: str) -> str:
    """``option`` without its second letter (``--srt`` for ``--sort``)."""
    return option[:3] + option[4:]


LEAVES = list(_commands(build_parser()))


@pytest.mark.parametrize("words,parser", LEAVES, ids=[" ".join(w) for w, _ in LEAVES])
def test_an_unknown_option_gets_the_closest_one_in_one_line(words, parser, capsys) -> None:
    # Positionals given, so that only the unknown option is wrong.
    given = ["x" for a in parser._actions if not a.option_strings and a.nargs in (None, 1)]
    options = [o for a in parser._actions if a.help != argparse.SUPPRESS
               for o in a.option_strings if o.startswith("--") and len(o) > 5]
    assert options, words
    for option in options:
        typo = _typo(option)
        assert cli.main([*words, *given, typo]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"cnnlab {' '.join(words)}: error: unrecognized arguments: {typo}")
        assert f"; did you mean {option}?" in err, err
    assert cli.main([*words, *given, "--quite-unlike-anything"]) == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and err.count("\n") == 1


def test_trials_gets_n_trials(tmp_path: Path, capsys) -> None:
    assert cli.main(["study", "run", str(tmp_path / "knobs.toml"), "--trials", "20"]) == 2
    assert capsys.readouterr().err == (
        "cnnlab study run: error: unrecognized arguments: --trials 20; did you mean "
        "--n-trials? (see cnnlab study run --help)\n")


def test_stores_are_shown_absolutely_with_passwords_hidden(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert shown_uri("sqlite:///mlruns/optuna.db") == f"sqlite:///{tmp_path}/mlruns/optuna.db"
    assert shown_uri("postgresql://me:hunter2@db/optuna") == "postgresql://me:***@db/optuna"


def test_a_study_s_stores_are_found_beside_its_file_and_only_read(tmp_path: Path) -> None:
    import optuna

    from cnnlab.study.nearby import stores_beside

    lab = tmp_path / "lab"
    (lab / "mlruns").mkdir(parents=True)
    storage = f"sqlite:///{lab / 'mlruns' / 'optuna.db'}"
    optuna.create_study(study_name="tiny", storage=storage)
    (lab / "experiments").mkdir()
    before = (lab / "mlruns" / "optuna.db").stat().st_mtime_ns
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'mlruns' / 'optuna.db'}"
    for file in (lab / "tiny.toml", lab / "experiments" / "tiny.toml"):  # Its folder, or above.
        found = stores_beside(file, "tiny", elsewhere)
        assert found is not None and found.storage == storage
        assert found.tracking_uri == f"sqlite:///{lab / 'mlruns' / 'mlflow.db'}"
    assert stores_beside(lab / "tiny.toml", "other", elsewhere) is None  # Not this study.
    assert stores_beside(lab / "tiny.toml", "tiny", storage) is None  # Its own stores.
    (tmp_path / "second" / "mlruns").mkdir(parents=True)
    optuna.create_study(study_name="tiny", storage=elsewhere.replace("elsewhere", "second"))
    assert stores_beside(lab / "tiny.toml", "tiny",  # The stores in use hold it: a resume.
                         elsewhere.replace("elsewhere", "second")) is None
    assert not (tmp_path / "elsewhere").exists() and not (lab / "mlruns" / "mlflow.db").exists()
    assert (lab / "mlruns" / "optuna.db").stat().st_mtime_ns == before
