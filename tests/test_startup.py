"""Start-up: commands that train nothing import no TensorFlow, and TensorFlow's start-up noise
stays out of cnnlab's output while every other line of standard error comes through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.train import quiet as tf_quiet

REPO = Path(__file__).resolve().parents[1]

# Runs one cnnlab command in this interpreter, then says which frameworks it imported.
PROBE = """
import sys
from cnnlab.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("IMPORTED", sorted(m for m in ("tensorflow", "keras") if m in sys.modules), code)
"""


def imported_by(*argv: str, cwd: Path = REPO) -> tuple[list[str], str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                            text=True, cwd=cwd, timeout=120)
    line = [x for x in result.stdout.splitlines() if x.startswith("IMPORTED")][-1]
    return eval(line.split(" ", 1)[1].rsplit(" ", 1)[0]), result.stderr  # A list literal.


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["--version"],
    ["shapes"],
    ["shapes", "--conv", "8:5:2:same", "--dense", "16"],
    ["study", "check", "experiments/quickstart.toml"],
    ["study", "check", "experiments/quickstart.py"],
    ["study", "run", "experiments/no-such-file.toml"],
    ["study", "run", "experiments/quickstart.toml", "--n-trials", "0"],
    ["train", "--epochs", "0"],
    ["compare", "quickstart", "--storage", "sqlite:///no/such/optuna.db"],
    ["evaluate", "quickstart", "--storage", "sqlite:///no/such/optuna.db"],
], ids=lambda argv: " ".join(argv))
def test_commands_that_train_nothing_import_no_tensorflow(argv: list[str]) -> None:
    imported, stderr = imported_by(*argv)
    assert imported == [], (argv, stderr)


def test_the_known_start_up_lines_are_noise_and_nothing_else() -> None:
    # Read from this machine's TensorFlow 2.21 on a CPU (cnnlab train, before the filter).
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795667699.170617    7057 port.cc:153] oneDNN custom operations are on. "
        "You may see slightly different numerical results due to floating-point round-off "
        "errors from different computation orders. To turn them off, set the environment "
        "variable `TF_ENABLE_ONEDNN_OPTS=0`.",
        "I0000 00:00:1795667699.171675    7057 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "E0000 00:00:1795667701.447518    7057 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    real = [
        "E0000 00:00:1795667701.447518    7057 op_kernel.cc:1830] OP_REQUIRES failed at "
        "conv_ops.cc:120 : RESOURCE_EXHAUSTED: OOM when allocating tensor",
        "Traceback (most recent call last):",
        "ImportError: libcudart.so.12: cannot open shared object file",
        "cnnlab train: error: the data folder is empty.",
    ]
    assert all(tf_quiet.is_noise(line) for line in noise)
    assert not any(tf_quiet.is_noise(line) for line in real)


FILTERED = """
import os, sys
from cnnlab.train import quiet as tf_quiet
with tf_quiet._filtered_stderr():
    os.write(2, b"I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers here\\n")
    os.write(2, b"E0000 00:00:1.0 1 some_kernel.cc:7] a real error\\n")
    print("from Python", file=sys.stderr)
os.write(2, b"after\\n")
"""


def test_the_filter_passes_every_other_line_on() -> None:
    result = subprocess.run([sys.executable, "-c", FILTERED], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "E0000 00:00:1.0 1 some_kernel.cc:7] a real error", "from Python", "after"]


@pytest.mark.slow
def test_importing_keras_through_cnnlab_prints_no_start_up_noise() -> None:
    code = ("from cnnlab.train.quiet import import_keras; import_keras(); "
            "import tensorflow as tf; tf.zeros(1); print('ok')")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok", quiet.stderr
    assert not any(tf_quiet.is_noise(line) for line in quiet.stderr.splitlines()), quiet.stderr


def test_version_is_the_installed_version(capsys) -> None:
    from importlib.metadata import version

    from cnnlab import cli

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"cnnlab {version('cnnlab')}\n"


def test_a_new_tracking_store_is_made_without_mlflows_info_lines(tmp_path: Path) -> None:
    """The first command over a store made MLflow say "Creating initial MLflow database
    tables..." and "Updating database tables" (INFO) about a store cnnlab makes itself."""
    code = ("import mlflow\n"
            "from cnnlab.tracking import runs\n"
            "runs.use_tracking_store('sqlite:///mlruns/mlflow.db')\n"
            "print([e.name for e in mlflow.search_experiments()])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['Default']"  # The store was made, tables and all ...
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert "database tables" not in result.stderr and " INFO " not in result.stderr  # ... quietly.


def test_a_reader_that_leaves_early_gets_no_error_line(tmp_path: Path) -> None:
    """`cnnlab shapes | head -1` said "cnnlab shapes: error: Broken pipe:" when head had left;
    here the pipe's reading end is closed before cnnlab writes, so every write fails."""
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "cnnlab.cli", "shapes"], stdout=write,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 1
