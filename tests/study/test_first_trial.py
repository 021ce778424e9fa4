"""A search's first trial counts its own work: Keras and TensorFlow (seconds to import) are
loaded before the loop asks Optuna for it, so that its duration, the time budget and every
benchmark that sums trial durations leave out the process's start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.studies import TINY_SCRIPT

SCRIPT = TINY_SCRIPT.replace("n_trials=3", "n_trials=1").replace(
    '"epochs": 2, "train_size": 512', '"epochs": 1, "train_size": 256').replace(
    "def search(trial):\n", 'def search(trial):\n'
    '    if hasattr(trial, "set_user_attr"):  # Not the check\'s draws: a trial.\n'
    '        trial.set_user_attr("keras_loaded", "keras" in sys.modules)\n')


@pytest.mark.slow
def test_keras_is_loaded_before_the_first_trial(tmp_path: Path, mnist_dir: Path) -> None:
    import optuna

    assert "keras_loaded" in SCRIPT and "n_trials=1" in SCRIPT
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # A process of its own: this one imported Keras long ago.
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli", "study", "run", str(script), "--storage", storage,
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--data-dir", str(mnist_dir)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (trial,) = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert trial.state.name == "COMPLETE"
    assert trial.user_attrs["keras_loaded"] is True
