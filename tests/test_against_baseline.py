"""experiments/against_baseline.py: confirmed entries of one study paired, seed by seed, with
another study's notebook-CNN baseline, read back from a real Optuna store."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from cnnlab.names import CONFIRMED_ATTR
from tests.studies import load_script

SEEDS = [11, 22, 33]


def _script():
    return load_script("experiments/against_baseline.py", "against_baseline")


def _entry(values, seeds=SEEDS, n_params=1000, architecture="8k3s1same-gap"):
    return {"values": values, "seeds": seeds, "n_params": n_params,
            "architecture": architecture}


def _study(storage: str, name: str, entries: dict) -> None:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr(CONFIRMED_ATTR, {"metric": "val_accuracy", "seeds": SEEDS,
                                         "entries": entries})


def test_differences_are_paired_by_seed_with_the_other_studys_baseline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(storage, "big", {"notebook": _entry([0.90, 0.80, 0.70], n_params=10_000),
                            "4": _entry([0.91, 0.82, 0.73])})
    # Seeds listed in another order: the pairing follows the seeds, not the positions.
    _study(storage, "small", {"0": _entry([0.75, 0.88, 0.85], seeds=[33, 11, 22], n_params=150)})
    assert _script().main(["small", "big", "--storage", storage]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("notebook CNN (big)")
    small = next(line for line in lines if line.startswith("small trial 0"))
    # By seed: 0.88-0.90, 0.85-0.80, 0.75-0.70 = -0.02, +0.05, +0.05 (by position: -0.15, +0.08,
    # +0.15, the same mean and an interval three times as wide).
    assert "(1.50%)" in small and "minus the notebook CNN +0.0267 [-0.0737, +0.1271]" in small
    assert "above it on 2 of 3 seeds" in small
    big = next(line for line in lines if line.startswith("big trial 4"))
    assert "minus the notebook CNN +0.0200 [-0.0048, +0.0448]" in big


def test_an_entry_with_other_seeds_is_refused_by_name(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(storage, "big", {"notebook": _entry([0.90, 0.80, 0.70])})
    _study(storage, "other", {"2": _entry([0.9, 0.9, 0.9], seeds=[11, 22, 44])})
    with pytest.raises(SystemExit, match="other trial 2: seed 44 is not one of the baseline's"):
        _script().main(["big", "other", "--storage", storage])


def test_a_study_without_a_confirmation_says_what_to_run(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="bare", storage=storage)
    with pytest.raises(SystemExit, match="run cnnlab confirm bare"):
        _script().main(["bare", "--storage", storage])
