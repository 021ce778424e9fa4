"""A study script on real stores is its study file twin: the same trials drawn for the same
seed, the same records and `compare` columns, resumed, refused when edited, run by workers,
confirmed, reported and evaluated once (``cnnlab.search.script``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.names import CONFIG_KEY_ATTR, OUTCOME_ATTR, SPEC_ATTR
from tests.studies import TINY, TINY_SCRIPT, Stores

pytestmark = pytest.mark.slow  # Every test here runs studies.


def _stores(root: Path, text: str, name: str) -> Stores:
    root.mkdir()
    return Stores(root, text, name)


def _trials(stores: Stores) -> dict[int, tuple[dict, dict, object, str]]:
    """Each trial's parameters, their distributions, spec and configuration key."""
    return {t.number: (t.params, t.distributions, t.user_attrs[SPEC_ATTR],
                       t.user_attrs[CONFIG_KEY_ATTR]) for t in stores.study("tiny").trials}


def _compare(stores: Stores, capsys) -> list[str]:
    capsys.readouterr()
    assert cli.main(["compare", "--storage", stores.storage, "--tracking-uri",
                     stores.tracking]) == 0
    return capsys.readouterr().out.splitlines()


def test_a_script_runs_resumes_and_compares_as_its_study_file(tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    """TINY run to 3 trials, and its script twin run to 2 and resumed to 3: the same trials,
    records and columns; the script study is then confirmed, reported and evaluated once."""
    from cnnlab.results.compare import CURVES, at_epoch, knob_effects, trials_frame

    monkeypatch.chdir(tmp_path)
    toml = _stores(tmp_path / "toml", TINY, "tiny.toml")
    script = _stores(tmp_path / "script", TINY_SCRIPT, "tiny.py")
    assert toml.run() == 0
    assert script.run("--n-trials", "2") == 0
    assert len(script.study("tiny").trials) == 2
    capsys.readouterr()
    assert script.run() == 0
    assert "study 'tiny' in " in capsys.readouterr().out  # Resumed: 2 so far, total 3.
    ours, theirs = _trials(script), _trials(toml)
    assert sorted(ours) == [0, 1, 2] and ours == theirs
    assert {t.user_attrs[OUTCOME_ATTR] for t in script.study("tiny").trials} == {"trained"}
    # The same records: one study run holding one child run per trial, the script logged.
    parent, children = script.runs("tiny")
    assert sorted(children) == [0, 1, 2]
    artifacts = [a.path for a in script.client.list_artifacts(parent.info.run_id, "config")]
    assert artifacts == ["config/tiny.py"]
    assert set(children[2].data.params) == set(toml.runs("tiny")[1][2].data.params)
    # The same columns, per-epoch curves included (issue 23's KeyError), in `compare` too.
    frames = [trials_frame("tiny", storage=s.storage, tracking_uri=s.tracking,
                           epoch_curves=CURVES) for s in (script, toml)]
    assert list(frames[0].columns) == list(frames[1].columns)
    assert {"final_val_accuracy", "val_accuracy_epoch1", "val_accuracy_epoch2"} <= \
        set(frames[0].columns)
    assert _compare(script, capsys)[0] == _compare(toml, capsys)[0]
    effects = [knob_effects(at_epoch(frame, 1), "paddings") for frame in frames]
    assert list(effects[0].index) == list(effects[1].index) and len(effects[0]) >= 1
    # The study's settings read back from its identity: confirm, report, evaluate once.
    common = ["--storage", script.storage, "--tracking-uri", script.tracking]
    assert cli.main(["confirm", "tiny", "--top", "1", "--seeds", "2", *common]) == 0
    assert cli.main(["report", "tiny", "--out", str(tmp_path / "tiny.html"), *common]) == 0
    assert "Leaderboard" in (tmp_path / "tiny.html").read_text()
    assert cli.main(["evaluate", "tiny", *common]) == 0
    assert cli.main(["evaluate", "tiny", *common]) == 1  # Once.
    capsys.readouterr()
    assert script.run("--n-trials", "4") == 2
    assert "was evaluated on the test set" in capsys.readouterr().err
    assert len(script.study("tiny").trials) == 3


ONE = TINY_SCRIPT.replace("n_trials=3", "n_trials=1").replace('"epochs": 2', '"epochs": 1')


@pytest.mark.parametrize("twin", ["script", "toml"])
def test_an_edited_script_is_refused_as_an_edited_study_file(twin: str, tmp_path: Path,
                                                              monkeypatch, capsys) -> None:
    """A changed choice is another search: refused before anything is written, in one line
    naming what differs (``script`` for a script, ``search`` for a file). A changed comment
    or budget is the same study, which resumes."""
    monkeypatch.chdir(tmp_path)
    if twin == "script":
        text, name = ONE, "tiny.py"
        edits = [("[4, 8]", "[4, 16]"), ('"""TINY as', '"""Edited: TINY as')]
    else:
        text = TINY.replace("n_trials = 3", "n_trials = 1").replace("epochs = 2", "epochs = 1")
        name = "tiny.toml"
        edits = [("filters = [4, 8]", "filters = [4, 16]"),
                 ('name = "tiny"', '# Edited.\nname = "tiny"')]
    stores = Stores(tmp_path, text, name)
    assert stores.run() == 0
    changed, harmless = edits
    stores.file.write_text(text.replace(*changed))
    capsys.readouterr()
    assert stores.run("--n-trials", "2") == 2
    err = capsys.readouterr().err.strip()
    differs = "script" if twin == "script" else "search"
    assert err == ("cnnlab study run: error: study 'tiny' already exists with a different "
                   f"configuration (differs in: {differs}); give the study a new name, or "
                   "restore the file.")
    assert len(stores.study("tiny").trials) == 1
    stores.file.write_text(text.replace(*harmless))
    assert stores.run("--n-trials", "2") == 0
    assert len(stores.study("tiny").trials) == 2


def test_python_script_with_two_workers_draws_what_one_process_draws(
        tmp_path: Path, monkeypatch) -> None:
    """``python tiny.py --workers 2``: the script loaded in each worker process; each trial
    number's draw is the one a single `cnnlab study run tiny.py` makes (run in this process:
    no start-up of its own)."""
    text = TINY_SCRIPT.replace("n_trials=3", "n_trials=2").replace('"epochs": 2', '"epochs": 1')
    single = _stores(tmp_path / "single", text, "tiny.py")
    pair = _stores(tmp_path / "pair", text, "tiny.py")
    monkeypatch.chdir(single.root)
    assert single.run() == 0
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(pair.file), "--storage", pair.storage, "--tracking-uri",
         pair.tracking, "--workers", "2"], cwd=pair.root, capture_output=True, text=True,
        timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    trials = pair.study("tiny").trials
    assert len({t.user_attrs["cnnlab_worker"]["pid"] for t in trials}) == 2
    assert _trials(pair) == _trials(single) and len(trials) == 2
