"""The live status line of a training (cnnlab.train.progress): pure formatting, when it is drawn,
a real Keras fit drawing it, and ``cnnlab train``'s wiring (erased on success and on errors)."""

from __future__ import annotations

import io
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
def test_run_training_draws_the_line_on_a_terminal_and_erases_it(
        tracking_uri, mnist_dir, monkeypatch):
    from cnnlab.spec.architecture import Architecture
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec
    from cnnlab.tracking.training_run import run_training

    stream = FakeTTY()
    monkeypatch.setattr(sys, "stderr", stream)
    outcome = run_training(TrialSpec(Architecture.from_dict(TINY),
                                     TrainConfig(epochs=2, batch_size=32)),
                           data_dir=str(mnist_dir), train_size=64, val_size=32,
                           experiment="progress", tracking_uri=tracking_uri, verbose=2)
    assert outcome.result.epochs_run == 2
    out = stream.getvalue()
    assert "train  epoch 1/2" in out and "train  epoch 2/2  batch 2/2" in out
    assert out.endswith(ERASE)


def test_run_training_erases_the_line_when_training_raises(tracking_uri, mnist_dir,
                                                           monkeypatch):
    from cnnlab.spec.architecture import Architecture
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec
    from cnnlab.tracking import training_run as run

    def failing_train(spec, data, callbacks=(), verbose=0):
        drawer = callbacks[-1]
        assert verbose == 0  # Keras's own output gives way to the status line.
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
                         verbose=2)
    out = stream.getvalue()
    assert "tiny  epoch 1/2  batch 1/2  loss 2.0000" in out and out.endswith(ERASE)
