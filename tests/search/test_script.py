"""Study scripts (``cnnlab.search.script``): a search written as a function of an Optuna trial
is read into the same ``StudyConfig`` as its study file twin, draws the same trials, and is
checked (and refused) as a study file is, before any store is touched. No training here: the
twin runs on real stores are in ``tests/study/test_script_study.py``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.errors import ConfigError
from cnnlab.search.config import load_study, load_study_config, parse_study
from cnnlab.search.script import ScriptSpace
from tests.studies import TINY, TINY_SCRIPT

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _draw(config, n: int) -> list[tuple[dict, dict]]:
    """``n`` trials of the study's own sampler (seeded per trial, TPE after its start-up) in an
    in-memory Optuna study, each told a score that follows from its spec alone (fewer
    parameters, better), so that TPE's later draws are the same for the same history: each
    trial's parameters and spec."""
    import optuna

    from cnnlab.errors import ArchitectureError
    from cnnlab.search.factory import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=config.direction, sampler=make_sampler(config))
    drawn = []
    for _ in range(n):
        trial = study.ask()
        spec = config.space.suggest(trial, config.training)
        try:
            score = 1.0 / spec.architecture.layer_table().total_params
        except ArchitectureError:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, score)
        drawn.append((trial.params, spec.to_dict()))
    return drawn


def test_the_example_script_is_its_toml_twin() -> None:
    """experiments/quickstart.py is experiments/quickstart.toml under another name: the same
    settings, and the same trials drawn for the same seed (random start-up and TPE)."""
    toml = load_study(EXPERIMENTS / "quickstart.toml")
    script = load_study(EXPERIMENTS / "quickstart.py")
    assert isinstance(script.space, ScriptSpace) and script.name == "quickstart-script"
    same = {"name", "description", "space", "path", "text", "source"}  # source: identity.
    for f in dataclasses.fields(toml):
        if f.name not in same:
            assert getattr(script, f.name) == getattr(toml, f.name), f.name
    theirs = {k: v for k, v in toml.identity().items() if k not in ("name", "search")}
    ours = {k: v for k, v in script.identity().items() if k not in ("name", "script")}
    assert ours == theirs
    drawn = _draw(script, 30)
    assert drawn == _draw(toml, 30)
    assert len({str(spec) for _, spec in drawn}) > 20  # Drawn, not one point again and again.


def test_check_says_what_the_function_suggests_and_writes_nothing(tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["study", "check", str(EXPERIMENTS / "quickstart.toml")]) == 0
    toml = capsys.readouterr().out
    assert cli.main(["study", "check", str(EXPERIMENTS / "quickstart.py")]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    feasible = [line for line in toml.splitlines() if line.startswith("search space: ")]
    assert feasible and feasible[0] in out.splitlines()  # The same 2,000 draws.
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("search function search()"))
    shown = [line.split() for line in lines[start + 1:start + 15]]
    assert shown[0] == ["n_conv", "1", "|", "2", "|", "3"]
    assert [row[0] for row in shown[1:5]] == ["conv1_filters", "conv1_kernel_size",
                                              "conv1_strides", "conv1_padding"]
    assert shown[-1] == ["dense1_units", "32", "|", "64", "|", "128"]
    assert lines[-1] == "the script is valid; nothing was written."


def test_python_runs_the_script_as_the_cnnlab_command(tmp_path: Path) -> None:
    """``python NAME.py check`` is ``cnnlab study check NAME.py``; its options go to the
    command (``--help`` is study run's)."""
    repo = EXPERIMENTS.parent
    env = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}
    check = subprocess.run([sys.executable, str(EXPERIMENTS / "quickstart.py"), "check"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("study 'quickstart-script': 10 trained trials x 3 epochs")
    helped = subprocess.run([sys.executable, str(EXPERIMENTS / "quickstart.py"), "--help"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert helped.returncode == 0 and "--workers" in helped.stdout
    assert list(tmp_path.iterdir()) == []


def _script(tmp_path: Path, text: str, name: str = "tiny.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_edited_search_is_another_identity(tmp_path: Path) -> None:
    """What a resume compares: the function's parameters and the specs it builds change the
    identity; comments, the budget and the words do not."""
    def identity(text: str) -> dict:
        return load_study(_script(tmp_path, text)).identity()

    base = identity(TINY_SCRIPT)
    assert base == identity(TINY_SCRIPT.replace("n_trials=3", "n_trials=30").replace(
        '"""TINY as', '"""An edited comment: TINY as').replace(
        'description="a tiny study', 'description="another word on a tiny study'))
    for change in [("[4, 8]", "[4, 16]"),                       # A choice.
                   ('"dense1_units"', '"dense_units"'),         # A parameter's name.
                   ("dense=(trial", "dropout=0.25, dense=(trial"),  # A fixed field, not drawn.
                   ("seed=5", "seed=6")]:                       # A setting.
        other = identity(TINY_SCRIPT.replace(*change))
        differs = sorted(k for k in base if base[k] != other.get(k))
        assert differs == (["seed"] if change[0] == "seed=5" else ["script"]), change


def test_a_stored_identity_reads_back_without_the_function(tmp_path: Path) -> None:
    """``cnnlab confirm`` and ``report`` read a study's settings from its stored identity: a
    script's reads back with a space that draws nothing (its specs are stored with its
    trials)."""
    config = load_study(_script(tmp_path, TINY_SCRIPT))
    back = parse_study({**config.identity(), "n_trials": 1}, where="study 'tiny'")
    assert isinstance(back.space, ScriptSpace) and back.space.search is None
    assert back.training == config.training and back.train_size == 512
    assert back.identity() == config.identity()
    with pytest.raises(ConfigError, match="not loaded here"):
        back.space.suggest(object(), back.training)


def test_a_study_file_cannot_give_script(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text("script = {}\n" + TINY)
    with pytest.raises(ConfigError, match=r"unknown key 'script'.*study script"):
        load_study_config(path)


TRIAL = "def search(trial):\n"
ARCH = "    return cnnlab.Architecture(conv=(cnnlab.ConvLayer(filters=4),), dense=(8,))\n"
STUDY = 'study = cnnlab.StudyScript(search, name="s", n_trials=1)\n'


@pytest.mark.parametrize("text, message", [
    ("import cnnlab\n" + TRIAL + ARCH,
     "defines no cnnlab.StudyScript at module level"),
    ("import cnnlab\n" + TRIAL + ARCH + STUDY + STUDY.replace("study =", "again ="),
     "defines 2 (study, again) cnnlab.StudyScript"),
    ("import cnnlab\n" + TRIAL + ARCH + STUDY.replace("n_trials", "n_trails"),
     "unknown key 'n_trails'"),
    ("import cnnlab\n" + TRIAL + ARCH + STUDY.replace("n_trials=1", "n_trials=1, search={}"),
     "'search' is not a setting of a study script"),
    ("import cnnlab\n" + TRIAL + ARCH
     + STUDY.replace("n_trials=1", 'n_trials=1, training={"epoch": 2}'),
     "training has unknown key 'epoch'"),
    ("import cnnlab\n" + TRIAL + "    return 1 / 0\n" + STUDY,
     "search() failed at a check's draw: ZeroDivisionError: division by zero"),
    ("import cnnlab\n" + TRIAL + "    return trial.number\n" + STUDY,
     "AttributeError"),
    ("import cnnlab\n" + TRIAL + "    return {'conv': []}\n" + STUDY,
     "search() returned dict at a check's draw; it must return a cnnlab.TrialSpec or a "
     "cnnlab.Architecture"),
    ("import cnnlab\n" + TRIAL + "    return cnnlab.TrialSpec()\n"
     + STUDY.replace("n_trials=1", 'n_trials=1, training={"epochs": 3}'),
     "returned a TrialSpec of 10 epochs at a check's draw; the study's are 3"),
    ("import cnnlab\n" + TRIAL + "    return cnnlab.Architecture(conv=(cnnlab.ConvLayer("
     "filters=trial.suggest_int('f', 1, 8), padding='full'),))\n" + STUDY,
     "padding must be 'valid' or 'same', not 'full'"),
    ("import cnnlab\n" + TRIAL + "    trial.suggest_int('f', 1, 8)\n"
     "    trial.suggest_float('f', 0.1, 0.2)\n" + ARCH + STUDY,
     "search() failed at trial 0: ValueError: Cannot set different distribution kind"),
    ("import cnnlab\n" + TRIAL + ARCH + STUDY + "oops(\n", "SyntaxError"),
    ("import cnnlab\nimport no_such_module_here\n", "fails when it is run (line 2): "
     "ModuleNotFoundError"),
], ids=["none", "two", "unknown-key", "search-setting", "training-key", "raises",
        "trial-number", "returns-dict", "epochs", "bad-field", "two-kinds", "syntax",
        "import"])
def test_a_bad_script_is_one_sentence_before_any_store(text: str, message: str,
                                                        tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    monkeypatch.chdir(tmp_path)
    path = _script(tmp_path, text, "bad.py")
    for command in ("check", "run"):
        assert cli.main(["study", command, str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cnnlab study {command}: error: ") and "\n" not in err, err
        assert message in err and "bad.py" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]
