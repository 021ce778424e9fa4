"""Fields a study does not search keep the base network's values (the notebook's CNN, layer by
layer), fixed and not Optuna parameters; `conv.FIELD` overrides every layer, `convN.FIELD` one."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import optuna
import pytest

from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.search.config import parse_study
from cnnlab.search.space import RandomSuggester, feasibility
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer
from tests.studies import Stores

STRIDES_PADDING = """
name = "strides-only"
seed = 3
n_trials = 1
max_params = 400000

[training]
epochs = 1
train_size = 256
val_size = 128

[search]
conv.strides = [1, 2]
conv.padding = ["valid", "same"]
"""
NOTEBOOK_FILTERS = (32, 32, 64, 64)


def _study(text: str, search: str = "") -> object:
    return parse_study(tomllib.loads(text + search), where="study")


def _specs(space, n: int = 40) -> list:
    """``n`` specs drawn by a real Optuna study in memory, and ``n`` by the RandomSuggester."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    specs = []
    for _ in range(n):
        trial = study.ask()
        specs.append((space.suggest(trial), set(trial.params)))
        study.tell(trial, 0.5)
    suggester = RandomSuggester(1)
    return specs + [(space.suggest(suggester), None) for _ in range(n)]


def test_a_study_of_strides_and_padding_keeps_the_notebooks_filters_kernels_and_depth() -> None:
    space = _study(STRIDES_PADDING).space
    specs = _specs(space)
    searched = {f"conv{i}_{f}" for i in range(1, 5) for f in ("strides", "padding")}
    for spec, params in specs:
        arch = spec.architecture
        assert tuple(layer.filters for layer in arch.conv) == NOTEBOOK_FILTERS
        assert {layer.kernel_size for layer in arch.conv} == {3}
        assert {(layer.batchnorm, layer.pool) for layer in arch.conv} == {(False, "none")}
        assert arch.dense == (128,) and arch.head == "flatten" and arch.dropout == 0.0
        if params is not None:
            assert params == searched  # Only what the file searches is an Optuna parameter.
    drawn = {(layer.strides, layer.padding) for spec, _ in specs
             for layer in spec.architecture.conv}
    assert drawn == {(1, "valid"), (1, "same"), (2, "valid"), (2, "same")}
    # The notebook's own strides and padding make the notebook's network, to the parameter.
    notebook = [spec for spec, _ in specs if spec.architecture == NOTEBOOK_CNN]
    chosen = Architecture(conv=tuple(ConvLayer(f, 3, s, p) for f, (s, p) in zip(
        NOTEBOOK_FILTERS, ((1, "same"), (2, "valid"), (1, "same"), (2, "valid")), strict=True)))
    assert chosen == NOTEBOOK_CNN and chosen.layer_table().total_params == 361_322
    assert all(s.architecture.layer_table().total_params == 361_322 for s in notebook)


def test_conv_field_overrides_every_layer_and_convN_field_one() -> None:
    every = _study(STRIDES_PADDING, 'conv.filters = [8]\n').space
    one = _study(STRIDES_PADDING, 'conv2.filters = [16, 48]\n').space
    both = _study(STRIDES_PADDING, 'conv.filters = [8]\nconv3.filters = [4]\n').space
    for spec, _ in _specs(every, 10):
        assert tuple(layer.filters for layer in spec.architecture.conv) == (8, 8, 8, 8)
    seen = set()
    for spec, params in _specs(one, 20):
        filters = tuple(layer.filters for layer in spec.architecture.conv)
        assert filters[0] == 32 and filters[2:] == (64, 64)
        seen.add(filters[1])
        if params is not None:
            assert "conv2_filters" in params and "conv1_filters" not in params
    assert seen == {16, 48}
    for spec, _ in _specs(both, 5):
        assert tuple(layer.filters for layer in spec.architecture.conv) == (8, 8, 4, 8)


def test_a_layer_past_the_base_repeats_its_last_layer_keeping_the_map_size() -> None:
    space = _study(STRIDES_PADDING.replace("[search]\n", "[search]\nn_conv = [6]\n")
                   .replace("conv.strides = [1, 2]\n", "")
                   .replace('conv.padding = ["valid", "same"]\n', "")).space
    spec = space.suggest(RandomSuggester(0))
    assert spec.architecture.conv == NOTEBOOK_CNN.conv + (ConvLayer(64, 3, 1, "same"),) * 2
    table = spec.architecture.layer_table()
    assert table.final_feature_map == (6, 6, 64)  # The notebook's, kept by both extra layers.
    # A Dense layer past the base's one takes its units.
    deeper = _study(STRIDES_PADDING, "n_dense = [3]\n").space
    assert deeper.suggest(RandomSuggester(0)).architecture.dense == (128, 128, 128)


def test_feasibility_and_the_build_check_see_the_base_values() -> None:
    space = _study(STRIDES_PADDING.replace("max_params = 400000\n", "")).space
    buildable = 0
    for choice in itertools.product(((1, "valid"), (1, "same"), (2, "valid"), (2, "same")),
                                    repeat=4):
        arch = Architecture(conv=tuple(ConvLayer(f, 3, s, p) for f, (s, p) in
                                       zip(NOTEBOOK_FILTERS, choice, strict=True)))
        try:
            arch.layer_table()
            buildable += 1
        except ArchitectureError:
            pass
    exact = buildable / 4 ** 4
    assert 0 < exact < 1
    estimate = feasibility(space, None)
    assert estimate.over_budget == 0
    assert abs(estimate.fraction - exact) < 0.04
    # A kernel that only 'same' padding fits: refused while the base's 'valid' layers are
    # fixed, accepted once the file offers 'same' on every layer.
    with pytest.raises(ConfigError, match="no architecture in this space can be built"):
        _study(STRIDES_PADDING.replace("conv.strides = [1, 2]\n", "").replace(
            'conv.padding = ["valid", "same"]\n', ""), "conv.kernel_size = [20]\n")
    _study(STRIDES_PADDING, "conv.kernel_size = [20]\n")
    # A layer the base network does not have, with no depth searched, names the base's depth.
    with pytest.raises(ConfigError, match="search.conv5 is beyond the largest number of conv "
                                          r"layers \(4\) that the base network has"):
        _study(STRIDES_PADDING, "conv5.filters = [8]\n")


@pytest.mark.slow
def test_a_study_of_strides_and_padding_trains_and_records_the_notebooks_filters(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, STRIDES_PADDING)
    assert stores.run() == 0
    study = stores.study("strides-only")
    _, runs = stores.runs("strides-only")
    trained = [t for t in study.trials if t.user_attrs.get("cnnlab_outcome") == "trained"]
    assert len(trained) == 1
    trial = trained[0]
    assert set(trial.params) == {f"conv{i}_{f}" for i in range(1, 5)
                                 for f in ("strides", "padding")}
    params = runs[trial.number].data.params
    assert [params[f"conv{i}_filters"] for i in range(1, 5)] == ["32", "32", "64", "64"]
    assert [params[f"conv{i}_kernel_size"] for i in range(1, 5)] == ["3"] * 4
    assert params["n_conv"] == "4" and params["dense1_units"] == "128"
    assert [params[f"conv{i}_strides"] for i in range(1, 5)] == [
        str(trial.params[f"conv{i}_strides"]) for i in range(1, 5)]
