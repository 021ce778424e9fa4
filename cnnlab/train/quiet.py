"""Keras (and TensorFlow under it), imported without TensorFlow's start-up noise.

On a machine without a GPU, importing TensorFlow and touching its devices prints about nine
lines to the process's standard error from C++ (absl) before its log level applies: CUDA driver
and ``cuInit`` failures, the oneDNN notice, absl's own banner. They say nothing about a CPU run
and bury cnnlab's output. ``import_keras`` imports Keras and lists TensorFlow's devices once
with file descriptor 2 led through a pipe; a thread passes every line on to the real standard
error as it arrives *except* those known start-up lines (``NOISE``). Any other line, an error
above all, comes through unchanged, and nothing is held back if the import fails.

``TF_CPP_MIN_LOG_LEVEL=0`` in the environment (asking TensorFlow for everything) turns the
filter off. This module imports no framework itself.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO and WARNING lines off.

NOISE = tuple(re.compile(pattern) for pattern in (
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"port\.cc:\d+\] oneDNN custom operations are on",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
    r"cuda_platform\.cc:\d+\] failed call to cuInit",
    r"cuda_(?:dnn|fft|blas)\.cc:\d+\] Unable to register cu(?:DNN|FFT|BLAS) factory",
    r"computation_placer\.cc:\d+\] computation placer already registered",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU",
    r"rebuild TensorFlow with the appropriate compiler flags",
    r"TF-TRT Warning: Could not find TensorRT",
    r"Skipping registering GPU devices",
))
_lock = threading.Lock()
_done = False


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's known start-up lines."""
    return any(pattern.search(line) for pattern in NOISE)


def import_keras() -> Any:
    """``keras``, imported (once) with TensorFlow's start-up lines filtered out."""
    global _done
    with _lock:
        if not _done:
            _done = True
            if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
                import keras  # noqa: F401
            else:
                with _filtered_stderr():
                    import keras  # noqa: F401
                    import tensorflow as tf

                    tf.config.list_physical_devices()  # Where the cuInit line comes from.
    import keras

    return keras


class _filtered_stderr:
    """File descriptor 2 through a pipe, non-noise lines passed on to the real one."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pass_on, args=(read,), daemon=True,
                                        name="cnnlab-tf-stderr")
        self._thread.start()

    def _pass_on(self, read: int) -> None:
        with os.fdopen(read, "rb") as pipe:
            for raw in pipe:
                if not is_noise(raw.decode("utf-8", "replace")):
                    os.write(self._saved, raw)

    def __exit__(self, *exc: Any) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # Closes the pipe's last write end: the thread sees its end.
        self._thread.join(timeout=10)
        os.close(self._saved)
