"""cnnlab: hyperparameter experiments on convolutional networks for MNIST.

The public API, layer by layer (docs/architecture.md). The arithmetic (``cnnlab.spec``)
imports no framework; importing ``cnnlab`` imports none either: Keras, Optuna and MLflow are
imported when a name that needs them is first used.

- The spec: ``conv2d`` (the notebook's convolution in NumPy), ``Architecture``/``ConvLayer``
  and ``NOTEBOOK_CNN`` (shapes, parameter counts, multiply-adds: ``Architecture.layer_table``
  gives a ``LayerTable`` of ``LayerRow``), ``TrainConfig`` and ``TrialSpec``.
- Data: ``load_mnist`` (the notebook's split: ``MnistSplits`` of two ``Split``),
  ``load_test_split`` (for the one evaluation only).
- Studies: ``load_study`` (a study file or a study script), ``load_study_config``/``parse_study``
  give a ``StudyConfig``; ``run_study`` runs it into ``Stores`` (``Stores.resolve()``: the local
  ``mlruns/`` stores by default). A study script defines its search as a function of an Optuna
  trial in a ``StudyScript`` and runs itself with ``study_main`` (docs/studies.md).
- Results: ``confirm_study``, ``evaluate_study``; ``trials_frame``, ``leaderboard`` and ``front``
  give studies as pandas DataFrames.

Every bad input raises a ``CnnlabError`` (``ArchitectureError``, ``ConfigError``,
``DataError``, ``EvaluationRefusedError``) whose message names the culprit in one sentence.
"""

from __future__ import annotations

import importlib
from typing import Any

from cnnlab.errors import (
    ArchitectureError,
    CnnlabError,
    ConfigError,
    DataError,
    EvaluationRefusedError,
)

_HOMES = {
    "conv2d": "cnnlab.spec.conv",
    "LayerRow": "cnnlab.spec.shapes",
    "LayerTable": "cnnlab.spec.shapes",
    "NOTEBOOK_CNN": "cnnlab.spec.architecture",
    "Architecture": "cnnlab.spec.architecture",
    "ConvLayer": "cnnlab.spec.architecture",
    "TrainConfig": "cnnlab.spec.trialspec",
    "TrialSpec": "cnnlab.spec.trialspec",
    "MnistSplits": "cnnlab.train.data",
    "Split": "cnnlab.train.data",
    "load_mnist": "cnnlab.train.data",
    "load_test_split": "cnnlab.train.data",
    "StudyConfig": "cnnlab.search.config",
    "load_study": "cnnlab.search.config",
    "load_study_config": "cnnlab.search.config",
    "StudyScript": "cnnlab.search.script",
    "study_main": "cnnlab.cli",
    "parse_study": "cnnlab.search.config",
    "Stores": "cnnlab.tracking.stores",
    "run_study": "cnnlab.study.runner",
    "confirm_study": "cnnlab.results.confirm",
    "evaluate_study": "cnnlab.results.evaluate",
    "trials_frame": "cnnlab.results.compare",
    "leaderboard": "cnnlab.results.compare",
    "front": "cnnlab.results.compare",
}
"""Where each public name lives; it is imported from there on first use (PEP 562), so that
``import cnnlab`` stays light."""

__all__ = [
    "Architecture",
    "ArchitectureError",
    "CnnlabError",
    "ConfigError",
    "ConvLayer",
    "DataError",
    "EvaluationRefusedError",
    "LayerRow",
    "LayerTable",
    "MnistSplits",
    "NOTEBOOK_CNN",
    "Split",
    "Stores",
    "StudyConfig",
    "StudyScript",
    "TrainConfig",
    "TrialSpec",
    "confirm_study",
    "conv2d",
    "evaluate_study",
    "front",
    "leaderboard",
    "load_mnist",
    "load_study",
    "load_study_config",
    "load_test_split",
    "parse_study",
    "run_study",
    "study_main",
    "trials_frame",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
