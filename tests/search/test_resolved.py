"""Fields a study does not search keep the base network's values (the notebook's CNN, layer by
layer), fixed and not Optuna parameters; `conv.FIELD` overrides every layer, `convN.FIELD` one;
`cnnlab study check` prints the resolved space with each value's source."""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from pathlib import Path

import optuna
import pytest

from cnnlab import cli
from cnnlab.errors import ArchitectureError, ConfigError
from cnnlab.search.config import load_study_config, parse_study
from cnnlab.search.resolved import resolved_space
from cnnlab.search.space import Choices, RandomSuggester, feasibility
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


def test_study_checks_rows_name_each_values_source() -> None:
    config = _study(STRIDES_PADDING.replace("[training]\n", '[training]\nbatch_size = 64\n'),
                    'n_conv = [3, 5]\nconv2.filters = [16, 48]\ntraining.optimizer = '
                    '["adam", "sgd"]\n')
    rows = {r.path: r for r in resolved_space(config)}
    expected = {
        "n_conv": (Choices((3, 5)), "search"),
        "conv1.filters": (Choices((32,)), "base"),
        "conv2.filters": (Choices((16, 48)), "search"),
        "conv4.filters": (Choices((64,)), "base"),
        "conv5.filters": (Choices((64,)), "base"),
        "conv1.kernel_size": (Choices((3,)), "base"),
        "conv2.strides": (Choices((1, 2)), "search"),
        "conv5.strides": (Choices((1, 2)), "search"),
        "conv1.batchnorm": (Choices((False,)), "default"),
        "conv5.pool": (Choices(("none",)), "default"),
        "n_dense": (Choices((1,)), "base"),
        "dense1.units": (Choices((128,)), "base"),
        "head": (Choices(("flatten",)), "default"),
        "dropout": (Choices((0.0,)), "default"),
        "training.epochs": (Choices((1,)), "training"),
        "training.batch_size": (Choices((64,)), "training"),
        "training.optimizer": (Choices(("adam", "sgd")), "search"),
        "training.learning_rate": (Choices((None,)), "default"),
        "training.train_size": (Choices((256,)), "training"),
        "training.val_size": (Choices((128,)), "training"),
    }
    assert {path: (rows[path].param, rows[path].source) for path in expected} == expected
    # Every field of every layer up to the largest depth, and no layer past it.
    assert {p for p in rows if p.startswith("conv")} == {
        f"conv{i}.{f}" for i in range(1, 6) for f in ("filters", "kernel_size", "strides",
                                                      "padding", "batchnorm", "pool",
                                                      "pool_size", "dropout",
                                                      "spatial_dropout", "separable")}
    assert not any(p.startswith("dense2") for p in rows)
    assert rows["conv2.filters"].searched and not rows["conv1.filters"].searched


def test_study_check_prints_the_resolved_space(tmp_path: Path, capsys) -> None:
    file = tmp_path / "study.toml"
    file.write_text(STRIDES_PADDING)
    assert cli.main(["study", "check", str(file)]) == 0
    out = capsys.readouterr().out
    lines = {" ".join(line.split()) for line in out.splitlines()}
    assert "n_conv 4 base" in lines
    assert "conv1-4 filters 32, 32, 64, 64 base" in lines
    assert "conv1-4 kernel_size 3 base" in lines
    assert "conv1-4 strides 1 | 2 search" in lines
    assert "conv1-4 padding valid | same search" in lines
    assert "conv1-4 batchnorm false default" in lines
    assert "dense1 units 128 base" in lines
    assert "training.epochs 1 training" in lines
    assert "training.optimizer rmsprop default" in lines
    assert "training.val_size 128 training" in lines
    assert "conv1-4 pool none default" in lines
    assert out.rstrip().endswith("the file is valid; nothing was written.")
    # One layer of its own splits the line; layers past the base's 4 are said to repeat its last.
    file.write_text(STRIDES_PADDING + "conv2.filters = [16, 48]\nn_conv = [6]\n")
    assert cli.main(["study", "check", str(file)]) == 0
    lines = {" ".join(line.split()) for line in capsys.readouterr().out.splitlines()}
    assert {"conv1 filters 32 base", "conv2 filters 16 | 48 search",
            "conv3-6 filters 64 base", "n_conv 6 search"} <= lines
    assert "conv5-6 (past the base's 4 layers): as its last layer, with stride 1, 'same' " \
        "padding, no pool" in lines


def test_the_shipped_studies_resolve_as_their_comments_say() -> None:
    """strides_padding keeps the notebook's filters and kernels; filters_kernels its strides
    and padding; every shipped file searches what its own [search] says and nothing else."""
    root = Path(__file__).resolve().parents[2] / "experiments"
    sp = {r.path: r for r in resolved_space(load_study_config(root / "strides_padding.toml"))}
    assert [sp[f"conv{i}.filters"].param for i in range(1, 5)] == [
        Choices((f,)) for f in NOTEBOOK_FILTERS]
    fk = {r.path: r for r in resolved_space(load_study_config(root / "filters_kernels.toml"))}
    assert [(fk[f"conv{i}.strides"].param.values, fk[f"conv{i}.padding"].param.values)
            for i in range(1, 5)] == [((1,), ("same",)), ((2,), ("valid",)),
                                      ((1,), ("same",)), ((2,), ("valid",))]
    for file in sorted(root.glob("*.toml")):
        config = load_study_config(file)
        if config.design is not None:  # A design has settings, not a space (study check).
            continue
        searched = {r.path for r in resolved_space(config) if r.searched}
        for path in searched:
            assert config.space.given(path) is not None, (file.name, path)


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


def test_feasibility_is_drawn_once_per_space_and_arguments() -> None:
    """A file's space is estimated once per process for the same arguments; a space that
    differs in any field (its base network too), or other arguments, is drawn anew."""
    space = _study(STRIDES_PADDING.replace("max_params = 400000\n", "")).space
    first = feasibility(space, None, draws=300, seed=3)
    assert feasibility(space, None, draws=300, seed=3) is first
    same = _study(STRIDES_PADDING.replace("max_params = 400000\n", "")).space
    assert same is not space and feasibility(same, None, draws=300, seed=3) is first
    other_base = dataclasses.replace(space, base=dataclasses.replace(
        space.base, dense=(space.base.dense[0] * 2,)))
    for again in (feasibility(space, 100_000, draws=300, seed=3),
                  feasibility(space, None, draws=300, seed=4),
                  feasibility(other_base, None, draws=300, seed=3)):
        assert again is not first
    assert feasibility(space, 100_000, draws=300, seed=3).over_budget > 0  # Not first's.


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


def test_the_resolved_space_in_docs_is_what_study_check_prints(tmp_path: Path, capsys) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "studies.md").read_text()
    section = page[page.index("### What a study does not search"):]
    study = section[section.index("```toml\n") + 8:]
    study, shown = study[:study.index("```")], study[study.index("```text\n") + 8:]
    shown = shown[:shown.index("```")]
    file = tmp_path / "study.toml"
    file.write_text(study)
    assert cli.main(["study", "check", str(file)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert printed == shown.splitlines()
