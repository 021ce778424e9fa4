"""Counts in words (cnnlab.spec.words): "1 epoch", never "1 epochs", in what cnnlab prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.spec.words import count
from tests.studies import TINY

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("n", "noun", "plural", "text"), [
    (1, "epoch", None, "1 epoch"), (2, "epoch", None, "2 epochs"), (0, "seed", None, "0 seeds"),
    (1000, "trial", None, "1,000 trials"), (1, "study", "studies", "1 study"),
    (3, "study", "studies", "3 studies"),
])
def test_count(n: int, noun: str, plural: str | None, text: str) -> None:
    assert count(n, noun, plural) == text


def test_study_check_says_1_trial_1_epoch_and_1_seed(tmp_path: Path, capsys) -> None:
    search = tmp_path / "one.toml"
    search.write_text(TINY.replace("n_trials = 3", "n_trials = 1").replace("epochs = 2",
                                                                           "epochs = 1"))
    assert cli.main(["study", "check", str(search)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("study 'tiny': 1 trained trial x 1 epoch, sampler random")
    design = tmp_path / "knobs1.toml"
    design.write_text((REPO / "experiments" / "knobs.toml").read_text()
                      .replace("seeds = 2", "seeds = 1").replace("epochs = 2", "epochs = 1"))
    assert cli.main(["study", "check", str(design)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("study 'knobs': 7 trained trials x 1 epoch, ")
    assert lines[1].endswith("): 7 settings x 1 seed")
