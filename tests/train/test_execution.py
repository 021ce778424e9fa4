"""How Keras runs a recipe's steps (``cnnlab.train.model.Execution``): several steps per call
into TensorFlow's graph where an epoch is long enough to win back the slower trace."""

from __future__ import annotations

from cnnlab.spec.architecture import Architecture
from cnnlab.spec.trialspec import TrainConfig
from cnnlab.train import model as model_module
from cnnlab.train.model import Execution, build_model

TINY = Architecture.from_dict({"conv": [{"filters": 2, "kernel_size": 3, "strides": 2}],
                               "dense": [4]})


def test_a_short_epoch_runs_one_step_per_call():
    execution = Execution(steps_per_execution=8, min_steps_per_epoch=64)
    assert [execution.steps_per_call(n) for n in (1, 63, 64, 391, None)] == [1, 1, 8, 8, 8]
    assert Execution().steps_per_call(391) == 1  # Keras's default.


def test_build_model_compiles_a_recipe_as_execution_says():
    steps = model_module.EXECUTION.min_steps_per_epoch
    long = build_model(TINY, seed=0, training=TrainConfig(), steps_per_epoch=steps)
    short = build_model(TINY, seed=0, training=TrainConfig(), steps_per_epoch=steps - 1)
    assert long.steps_per_execution == model_module.EXECUTION.steps_per_execution > 1
    assert short.steps_per_execution == 1
