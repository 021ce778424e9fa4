"""Any console: a study whose name the console cannot encode (ASCII, cp1252, the C locale) is
written with escapes on every command's output and error lines, never a UnicodeEncodeError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.studies import TINY, Stores

NAME = "größe-Ω"
STUDY = TINY.replace('name = "tiny"', f'name = "{NAME}"').replace(
    "n_trials = 3", "n_trials = 1").replace("epochs = 2", "epochs = 1").replace(
    "train_size = 512", "train_size = 256")

# Runs cnnlab's commands one after another in one interpreter (one start-up for them all), each
# given as a JSON list [expected exit code, argv...]; exits 1 at the first other exit code.
COMMANDS = """
import json, sys
from cnnlab.cli import main
for expected, *argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code != expected:
        sys.stderr.write(f"EXIT {code} from {argv!r}, not {expected}\\n")
        sys.exit(1)
"""

CONSOLES = {
    "ascii": {"PYTHONIOENCODING": "ascii"},
    "cp1252": {"PYTHONIOENCODING": "cp1252"},
    "C locale": {"LANG": "C", "LC_ALL": "C"},
}


def _run(stores: Stores, console: dict[str, str], commands: list[list]) -> str:
    import json

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LC_ALL", "LC_CTYPE")}
    env.update(console, TF_CPP_MIN_LOG_LEVEL="3")
    store_options = ["--storage", stores.storage, "--tracking-uri", stores.tracking]
    argv = [[code, *command, *store_options] if command[0] != "study" or command[1] != "check"
            else [code, *command] for code, *command in commands]
    done = subprocess.run([sys.executable, "-c", COMMANDS, json.dumps(argv)], cwd=stores.root,
                          env=env, capture_output=True, timeout=600)
    output = (done.stdout + done.stderr).decode("utf-8", errors="replace")
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "UnicodeEncodeError" not in output, output[-3000:]
    return output


@pytest.mark.slow
def test_a_name_the_console_cannot_encode_never_ends_a_command(tmp_path: Path) -> None:
    """The study runs (one trial) on an ASCII console; then on each console every command that
    prints the name: study check, study run (nothing left to do), compare, report, an error
    line (a study that does not exist lists the studies there), and on the last confirm and
    evaluate."""
    stores = Stores(tmp_path, STUDY)
    file = str(stores.file)
    every = [[0, "study", "check", file], [0, "study", "run", file], [0, "compare"],
             [0, "report", NAME], [2, "evaluate", "no-such-study"]]
    last = [[0, "confirm", NAME, "--top", "1", "--seeds", "2"], [0, "evaluate", NAME]]
    for i, (name, console) in enumerate(CONSOLES.items()):
        output = _run(stores, console, every + (last if i == len(CONSOLES) - 1 else []))
        assert "report: " in output, name
        if name == "ascii":
            assert "study 'gr\\xf6\\xdfe-\\u03a9'" in output
            assert "(studies there: gr\\xf6\\xdfe-\\u03a9)" in output
    assert len(stores.study(NAME).trials) == 1
    assert stores.study(NAME).user_attrs.get("cnnlab_evaluation") is not None
