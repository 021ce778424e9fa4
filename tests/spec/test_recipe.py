"""The training recipe as spec fields (issue 24), in pure Python: defaults that keep every
stored spec and trial key as it was, one-sentence errors naming the field, what each setting
is used with, and the schedules' formulas by hand. The formulas against Keras's own schedule
objects are in tests/train/test_recipe.py."""

from __future__ import annotations

import json
import math

import pytest

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.spec import schedules
from cnnlab.spec.architecture import Architecture, ConvLayer
from cnnlab.spec.trialspec import RECIPE_FIELDS, TrainConfig, TrialSpec

OLD_RECORD = {
    "architecture": {"conv": [{"filters": 8, "kernel_size": 3, "strides": 1, "padding": "same",
                               "batchnorm": True, "pool": "max"}],
                     "dense": [16], "head": "gap", "dropout": 0.25},
    "training": {"epochs": 2, "batch_size": 256, "seed": 0, "optimizer": "adam",
                 "learning_rate": 0.003}}
"""A ``trial_spec.json`` as cnnlab wrote it before the recipe existed."""


def test_an_old_record_loads_and_keeps_its_dict_and_key() -> None:
    spec = TrialSpec.from_dict(json.loads(json.dumps(OLD_RECORD)))
    assert spec.training == TrainConfig(epochs=2, optimizer="adam", learning_rate=0.003)
    assert spec.training.schedule == "constant" and spec.training.weight_decay is None
    assert spec.architecture.conv[0].dropout == 0.0
    assert spec.to_dict() == OLD_RECORD
    # Digests computed by cnnlab before issue 24 (commit bcd082a): duplicates found by key and
    # study scripts' identities (which hash keys) stay the same.
    assert spec.key() == "e4eac92aa975fa85"
    assert TrialSpec().key() == "c64c0ec3c8822b59"


def test_the_defaults_are_the_notebooks() -> None:
    config = TrainConfig()
    assert (config.schedule, config.weight_decay, config.momentum, config.nesterov,
            config.label_smoothing, config.augmentation) == ("constant", None, None, False, 0.0,
                                                            False)
    assert config.describe_recipe() == "" and config.ignored() == []
    assert set(config.to_dict()) == {"epochs", "batch_size", "seed", "optimizer",
                                     "learning_rate"}


def test_a_recipe_round_trips_and_changes_the_key() -> None:
    recipe = TrainConfig(optimizer="sgd", learning_rate=0.05, schedule="cosine", warmup=0.2,
                         weight_decay=1e-4, momentum=0.9, nesterov=True, label_smoothing=0.1,
                         rotation=10, translation=0.1, zoom=0.05, bn_momentum=0.9)
    arch = Architecture(conv=(ConvLayer(8, 3, 1, "same", batchnorm=True, dropout=0.1,
                                        spatial_dropout=True), ConvLayer(10, 1)), dense=(),
                        head="gap")
    spec = TrialSpec(arch, recipe)
    again = TrialSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert set(spec.to_dict()["training"]) >= set(RECIPE_FIELDS) - {"decay_rate", "decay_epochs"}
    assert spec.key() != TrialSpec(arch, TrainConfig(optimizer="sgd", learning_rate=0.05)).key()
    assert spec.describe() == (
        "8k3s1same+bn+sdo0.1-10k1s1valid-gap sgd lr=0.05 cosine warmup=0.2 wd=0.0001 "
        "momentum=0.9 nesterov ls=0.1 bn_momentum=0.9 aug(rot=10,shift=0.1,zoom=0.05)")
    assert arch.short() == "8-10 k3-1 s1 same-valid bn@1 sdo0.1@1 gap"
    # Every recipe field is a tracked parameter, under its own name.
    params = spec.to_params()
    assert {name: params[name] for name in ("schedule", "warmup", "weight_decay",
                                            "rotation")} == {
        "schedule": "cosine", "warmup": 0.2, "weight_decay": 1e-4, "rotation": 10.0}
    assert params["conv1_dropout"] == 0.1 and params["conv1_spatial_dropout"] is True


@pytest.mark.parametrize(("field", "value"), [
    ("schedule", "linear"), ("schedule", 3), ("decay_rate", 0), ("decay_rate", 1.5),
    ("decay_epochs", 0), ("decay_epochs", -1), ("warmup", 1.0), ("warmup", -0.1),
    ("weight_decay", -1e-4), ("weight_decay", math.inf), ("momentum", 1.0), ("nesterov", 1),
    ("label_smoothing", 1.0), ("rotation", 181), ("rotation", "10"), ("translation", 1.0),
    ("zoom", -0.1), ("zoom", True), ("bn_momentum", 1.0), ("bn_momentum", -0.1),
])
def test_bad_recipe_values_are_one_sentence_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**{field: value})
    text = str(caught.value)
    assert text.startswith(f"{field} must be") and "\n" not in text, text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dropout": 1.0}, "dropout must be a rate"),
    ({"dropout": "0.1"}, "dropout must be a rate"),
    ({"spatial_dropout": 1}, "spatial_dropout must be true or false"),
])
def test_bad_conv_dropout_is_one_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        ConvLayer(8, 3, **kwargs)


def test_what_each_setting_is_used_with() -> None:
    assert TrainConfig(warmup=0.2).ignored() == ["warmup"]
    assert TrainConfig(schedule="cosine", warmup=0.2).ignored() == []
    assert TrainConfig(decay_rate=0.5, decay_epochs=2).ignored() == ["decay_rate", "decay_epochs"]
    assert TrainConfig(schedule="step", decay_rate=0.5).ignored() == []
    assert TrainConfig(optimizer="adam", momentum=0.9, nesterov=True).ignored() == [
        "momentum", "nesterov"]
    assert TrainConfig(optimizer="rmsprop", momentum=0.9, nesterov=True).ignored() == [
        "nesterov"]
    assert TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True).ignored() == []


def test_conv_dropout_from_the_command_line_form() -> None:
    arch = Architecture.from_strings(["8:3:1:same:bn:max2:sdo0.1", "10:1:1:valid:do0.25"], [""])
    assert arch.conv[0] == ConvLayer(8, 3, 1, "same", batchnorm=True, pool="max", dropout=0.1,
                                     spatial_dropout=True)
    assert arch.conv[1] == ConvLayer(10, 1, dropout=0.25)
    assert Architecture.from_dict(arch.to_dict()) == arch
    with pytest.raises(ArchitectureError, match="gives dropout more than once"):
        Architecture.from_strings(["8:3:1:same:do0.1:sdo0.2"])
    with pytest.raises(ArchitectureError, match="dropout must be a rate"):
        Architecture.from_strings(["8:3:1:same:do1.5"])


def test_conv_dropout_is_a_row_of_the_table_with_no_parameters() -> None:
    plain = Architecture(conv=(ConvLayer(8, 3, pool="max"),), dense=(16,))
    dropped = Architecture(conv=(ConvLayer(8, 3, pool="max", dropout=0.2,
                                           spatial_dropout=True),), dense=(16,))
    rows = dropped.layer_table().rows
    assert [(r.name, r.kind, r.output_shape, r.params) for r in rows[:3]] == [
        ("conv1", "Conv2D", (26, 26, 8), 80), ("conv1_pool", "MaxPooling2D", (13, 13, 8), 0),
        ("conv1_dropout", "SpatialDropout2D", (13, 13, 8), 0)]
    assert dropped.layer_table().total_params == plain.layer_table().total_params


def test_schedules_by_hand() -> None:
    common = {"learning_rate": 0.1, "steps_per_epoch": 10, "total_steps": 40}
    step = {**common, "schedule": "step", "decay_rate": 0.5, "decay_epochs": 2}
    assert [schedules.learning_rate_at(s, **step) for s in (0, 19, 20, 39)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05])
    exponential = {**step, "schedule": "exponential"}
    assert schedules.learning_rate_at(10, **exponential) == pytest.approx(0.1 * 0.5 ** 0.5)
    cosine = {**common, "schedule": "cosine", "warmup": 0.25}  # 10 warm-up steps, 30 decaying.
    assert [schedules.learning_rate_at(s, **cosine) for s in (0, 5, 10, 25, 40, 99)] == \
        pytest.approx([0.0, 0.05, 0.1, 0.05, 0.0, 0.0])
    assert schedules.learning_rate_at(20, **{**cosine, "warmup": 0.0}) == pytest.approx(0.05)
    assert schedules.learning_rate_at(7, **{**common, "schedule": "constant"}) == 0.1
    assert schedules.steps_per_epoch(50_000, 128) == 391
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedules.learning_rate_at(0, **{**common, "schedule": "linear"})
