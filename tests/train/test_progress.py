"""The live status line of a training (cnnlab.train.progress): pure formatting, when it is drawn,
a real Keras fit drawing it, and ``cnnlab train``'s wiring (erased on success and on errors)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest

from cnnlab.train import progress
from cnnlab.train.callbacks import progress_callback
from cnnlab.train.progress import (
    ERASE,
    estimate_remaining,
    format_duration,
    status_line,
)


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.delenv("TERM", raising=False)


# --- pure formatting -------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (0, "00:00"), (0.4, "00:00"), (0.6, "00:01"), (41, "00:41"), (59.6, "01:00"),
    (725, "12:05"), (3599, "59:59"), (3600, "1:00:00"), (3723, "1:02:03"),
    (36000 + 61, "10:01:01"), (None, "--:--"), (-1, "--:--"), (float("nan"), "--:--"),
    (float("inf"), "--:--"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_estimate_remaining_is_the_pace_so_far():
    assert estimate_remaining(41.0, 316, 1960) == pytest.approx(41.0 / 316 * 1644)
    assert estimate_remaining(10.0, 1, 4) == pytest.approx(30.0)
    assert estimate_remaining(10.0, 4, 4) == 0
    assert estimate_remaining(10.0, 5, 4) == 0  # Never negative.
    assert estimate_remaining(10.0, 0, 4) is None  # No pace yet.
    assert estimate_remaining(0.0, 0, 0) is None


def test_status_line_as_in_the_issue():
    line = status_line("trial 3", 2, 10, 120, 196,
                       {"accuracy": 0.931, "loss": 0.23124},  # Keras 3's order.
                       {"val_accuracy": 0.965, "val_loss": 0.12006}, 41, 164)
    assert line == ("trial 3  epoch 2/10  batch 120/196  loss 0.2312 acc 0.9310 | "
                    "val_loss 0.1201 val_acc 0.9650  00:41 elapsed, ~02:44 left")


def test_status_line_before_the_first_epoch_ends_and_without_an_estimate():
    line = status_line("train", 1, 2, 1, None, {"loss": 2.3, "val_loss": 9.9}, {}, 0.2, None)
    # No validation yet; val_* keys among the training logs are not shown as training metrics.
    assert line == "train  epoch 1/2  batch 1  loss 2.3000  00:00 elapsed"
    assert "|" not in line and "left" not in line


def test_status_line_skips_what_is_not_a_number():
    line = status_line("", 3, 3, None, 10, {"loss": "n/a", "accuracy": np.float32(0.5),
                                             "flag": True}, {"val_loss": None}, 3723, 0)
    assert line == "epoch 3/3  acc 0.5000  1:02:03 elapsed, ~00:00 left"
    assert "\r" not in line and "\n" not in line


# --- when it is drawn ------------------------------------------------------------------------

def test_no_callback_for_a_stream_that_is_not_a_terminal():
    assert progress_callback("train", 2, io.StringIO()) is None
    assert progress.enabled(io.StringIO()) is False


def test_no_callback_for_a_closed_stream_or_a_dumb_terminal(monkeypatch):
    closed = io.StringIO()
    closed.close()
    assert progress.enabled(closed) is False
    assert progress.enabled(object()) is False  # No isatty at all.
    assert progress.enabled(FakeTTY()) is True
    monkeypatch.setenv("TERM", "dumb")
    assert progress.enabled(FakeTTY()) is False


def test_the_setting_forces_it_on_or_off(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")
    callback = progress_callback("trial 1", 2, io.StringIO())
    assert callback is not None and hasattr(callback, "clear")
    monkeypatch.setenv(progress.ENV, "0")
    assert progress_callback("trial 1", 2, FakeTTY()) is None


def test_default_stream_is_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    callback = progress_callback("train", 2)
    assert callback is not None and callback.stream is sys.stderr
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_callback("train", 2) is None


def test_clear_erases_only_a_drawn_line():
    stream = FakeTTY()
    callback = progress_callback("trial 1", 2, stream)
    callback.clear()
    assert stream.getvalue() == ""  # Nothing drawn, nothing erased.
    callback.set_params({"epochs": 2, "steps": 4})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(0, {"loss": 1.0})
    callback.clear()
    callback.clear()  # Idempotent.
    out = stream.getvalue()
    assert out.startswith("\r") and "trial 1  epoch 1/2  batch 1/4  loss 1.0000" in out
    assert out.endswith(ERASE) and out.count(ERASE) == 1



def test_a_short_last_call_of_several_steps_counts_only_the_epochs_batches():
    """With steps_per_execution 8 Keras ends an epoch's short last call as if it were whole:
    a 2-batch epoch's one call at "step 7"."""
    stream = FakeTTY()
    callback = progress_callback("trial 1", 2, stream)
    callback.set_params({"epochs": 2, "steps": 2})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(7, {"loss": 1.0})
    assert "trial 1  epoch 1/2  batch 2/2  loss 1.0000" in stream.getvalue()

def _screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: "\\r" back to the line's start, "\\x1b[K" clears to
    its end, "\\n" a new line; the last line, if empty, is where the cursor waits."""
    lines, column = [""], 0
    for piece in re.split(r"(\r|\n|\x1b\[K)", text):
        if piece == "\r":
            column = 0
        elif piece == "\n":
            lines.append("")
            column = 0
        elif piece == "\x1b[K":
            lines[-1] = lines[-1][:column]
        elif piece:
            line = lines[-1]
            lines[-1] = line[:column] + piece + line[column + len(piece):]
            column += len(piece)
    return lines[:-1] if lines[-1] == "" else lines


def _two_epochs(callback) -> None:
    """Keras's calls for 2 epochs of 2 batches, with validation, as ``fit`` makes them."""
    callback.set_params({"epochs": 2, "steps": 2})
    callback.on_train_begin()
    for epoch, (loss, val_loss) in enumerate([(2.0, 1.5), (1.0, 0.5)]):
        callback.on_epoch_begin(epoch)
        callback.on_train_batch_end(0, {"accuracy": 0.25, "loss": loss + 0.5})
        callback.on_train_batch_end(1, {"accuracy": 0.5, "loss": loss})
        callback.on_epoch_end(epoch, {"accuracy": 0.5, "loss": loss,
                                      "val_accuracy": 0.75, "val_loss": val_loss})
    callback.on_train_end()


EPOCH_LINES = [
    "train  epoch 1/2  loss 2.0000 acc 0.5000 | val_loss 1.5000 val_acc 0.7500",
    "train  epoch 2/2  loss 1.0000 acc 0.5000 | val_loss 0.5000 val_acc 0.7500",
]
"""The epoch lines of ``_two_epochs``, up to their times (``  MM:SS elapsed``)."""


def _without_times(lines: list[str]) -> list[str]:
    assert all(re.search(r"  (\d\d:\d\d|--:--) elapsed$", line) for line in lines), lines
    return [line.rsplit("  ", 1)[0] for line in lines]


def test_on_a_terminal_each_epochs_line_stays_after_the_live_line():
    terminal = FakeTTY()  # Standard error and standard output on one terminal, as usual.
    callback = progress_callback("train", 2, terminal, epoch_lines=terminal)
    _two_epochs(callback)
    out = terminal.getvalue()
    assert "train  epoch 1/2  batch 1/2" in out  # The live line was drawn ...
    assert "train  epoch 2/2  batch 1/2" in out
    screen = _screen(out)
    assert _without_times(screen) == EPOCH_LINES  # ... and each epoch's numbers stayed.
    assert "batch" not in "".join(screen)


def test_live_line_and_epoch_lines_on_two_streams():
    errors, output = FakeTTY(), io.StringIO()  # cnnlab train ... > log: the live line stays.
    callback = progress_callback("train", 2, errors, epoch_lines=output)
    _two_epochs(callback)
    assert _without_times(output.getvalue().splitlines()) == EPOCH_LINES
    assert "\r" not in output.getvalue() and "\x1b" not in output.getvalue()
    live = errors.getvalue()  # The first batch of each epoch is drawn at once, then erased.
    assert "train  epoch 1/2  batch 1/2" in live and "train  epoch 2/2  batch 1/2" in live
    assert _screen(live) == []


def test_in_a_pipe_or_a_file_only_the_epoch_lines_are_written():
    errors, output = io.StringIO(), io.StringIO()
    callback = progress_callback("train", 2, errors, epoch_lines=output)
    assert callback is not None
    _two_epochs(callback)
    callback.clear()
    assert errors.getvalue() == ""  # No live line where it could not be redrawn.
    assert _without_times(output.getvalue().splitlines()) == EPOCH_LINES
    assert progress_callback("train", 2, io.StringIO()) is None  # Nothing to do at all.


def test_without_epoch_lines_a_trials_line_is_erased_and_nothing_stays():
    terminal = FakeTTY()  # A study's trial: its one summary line follows.
    callback = progress_callback("trial 3", 2, terminal)
    _two_epochs(callback)
    assert "trial 3  epoch 2/2" in terminal.getvalue() and _screen(terminal.getvalue()) == []


def test_importing_it_imports_no_keras_nor_tensorflow():
    code = ("import cnnlab.train.progress, sys; "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


# --- a real Keras fit ------------------------------------------------------------------------

def _tiny_fit(callbacks, epochs=2):
    from cnnlab.spec.architecture import Architecture, ConvLayer
    from cnnlab.train.model import build_model

    arch = Architecture(conv=(ConvLayer(filters=2, kernel_size=3, strides=2),), dense=(4,))
    model = build_model(arch, seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((32, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
    return model.fit(x, y, batch_size=8, epochs=epochs, validation_data=(x[:8], y[:8]),
                     callbacks=callbacks, verbose=0)


@pytest.mark.slow
def test_a_real_fit_draws_every_epoch_in_place_and_erases_the_line_at_the_end():
    stream = FakeTTY()
    callback = progress_callback("trial 7", 2, stream)
    _tiny_fit([callback])
    out = stream.getvalue()
    assert "trial 7  epoch 1/2" in out and "trial 7  epoch 2/2" in out
    assert "batch 4/4" in out and "val_loss " in out and "val_acc " in out
    assert " elapsed" in out and " left" in out
    assert "\n" not in out  # One line, redrawn in place.
    assert out.startswith("\r") and out.endswith(ERASE)
    # Every redraw is "\r" + line + clear-to-end; the last one is the erase.
    draws = out.split("\r")[1:]
    assert all(draw.endswith("\x1b[K") for draw in draws)
    assert draws[-1] == "\x1b[K"
    # The validation metrics shown with epoch 2 are epoch 1's (the last finished epoch's).
    first_epoch_2 = next(draw for draw in draws if "epoch 2/2" in draw)
    assert "val_loss" in first_epoch_2


@pytest.mark.slow
def test_a_real_fit_on_a_stream_that_is_not_a_terminal_writes_nothing():
    stream = io.StringIO()
    callback = progress_callback("trial 7", 2, stream)
    assert callback is None
    _tiny_fit([callback] if callback is not None else [])
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_a_fit_that_raises_is_erased_by_clear():
    import keras

    class Prune(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("pruned")

    stream = FakeTTY()
    callback = progress_callback("trial 2", 2, stream)
    try:
        with pytest.raises(RuntimeError, match="pruned"):
            _tiny_fit([callback, Prune()])
        assert not stream.getvalue().endswith(ERASE)  # Keras skipped on_train_end ...
    finally:
        callback.clear()
    assert stream.getvalue().endswith(ERASE)  # ... and clear() erased the line.


# --- cnnlab train's wiring -------------------------------------------------------------------

TINY = {"conv": [{"filters": 2, "kernel_size": 3, "strides": 2}], "dense": [4]}


@pytest.mark.slow
def test_run_training_draws_the_line_on_a_terminal_and_keeps_a_line_per_epoch(
        tracking_uri, mnist_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    from cnnlab.spec.architecture import Architecture
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec
    from cnnlab.tracking.training_run import run_training

    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", terminal)
    outcome = run_training(TrialSpec(Architecture.from_dict(TINY),
                                     TrainConfig(epochs=2, batch_size=32)),
                           data_dir=str(mnist_dir), train_size=64, val_size=32,
                           experiment="progress", tracking_uri=tracking_uri, epoch_lines=True)
    assert outcome.result.epochs_run == 2
    out = terminal.getvalue()
    assert "train  epoch 1/2  batch 1/2" in out  # The live line, then each epoch's line stays:
    client = MlflowClient(tracking_uri)
    history = {key: [m.value for m in client.get_metric_history(outcome.run_id, key)]
               for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
    assert _without_times(_screen(out)) == [
        f"train  epoch {n}/2  loss {history['loss'][n - 1]:.4f} acc "
        f"{history['accuracy'][n - 1]:.4f} | val_loss {history['val_loss'][n - 1]:.4f} "
        f"val_acc {history['val_accuracy'][n - 1]:.4f}" for n in (1, 2)]


@pytest.mark.slow
def test_cnnlab_train_into_a_pipe_writes_a_line_per_epoch(tracking_uri, mnist_dir, capsys):
    from cnnlab import cli

    assert cli.main(["train", "--conv", "2:3:2", "--dense", "4", "--epochs", "2",
                     "--batch-size", "32", "--train-size", "64", "--val-size", "32",
                     "--data-dir", str(mnist_dir), "--tracking-uri", tracking_uri]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    epochs = [line for line in lines if line.startswith("train  epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"]
    assert all(" | val_loss " in line for line in epochs)
    assert lines.index(epochs[-1]) == 2 and lines[3].endswith(" after 2 epochs")
    assert "\r" not in captured.out + captured.err and "/step" not in captured.out  # Not Keras's.


def test_run_training_erases_the_line_when_training_raises(tracking_uri, mnist_dir,
                                                           monkeypatch):
    from cnnlab.spec.architecture import Architecture
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec
    from cnnlab.tracking import training_run as run

    def failing_train(spec, data, callbacks=(), verbose=0):
        drawer = callbacks[-1]
        assert verbose == 0  # Keras's own output gives way to cnnlab's lines.
        drawer.set_params({"epochs": spec.training.epochs, "steps": 2})
        drawer.on_train_begin()
        drawer.on_epoch_begin(0)
        drawer.on_train_batch_end(0, {"loss": 2.0})
        raise RuntimeError("interrupted")

    stream = FakeTTY()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(run, "train", failing_train)
    with pytest.raises(RuntimeError, match="interrupted"):
        run.run_training(TrialSpec(Architecture.from_dict(TINY), TrainConfig(epochs=2)),
                         data_dir=str(mnist_dir), train_size=64, val_size=32,
                         experiment="progress", run_name="tiny", tracking_uri=tracking_uri,
                         epoch_lines=True)
    out = stream.getvalue()
    assert "tiny  epoch 1/2  batch 1/2  loss 2.0000" in out and out.endswith(ERASE)
