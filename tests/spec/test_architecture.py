"""Architecture specs: parsing, validation and round trips."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cnnlab.errors import ArchitectureError
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer


def test_notebook_default() -> None:
    assert NOTEBOOK_CNN.describe() == "32k3s1same-32k3s2valid-64k3s1same-64k3s2valid-d128"
    assert Architecture() == NOTEBOOK_CNN
    assert hash(Architecture()) == hash(NOTEBOOK_CNN)


def test_from_strings_equals_notebook() -> None:
    arch = Architecture.from_strings(
        ["32:3:1:same", "32:3:2:valid", "64:3:1:same", "64:3:2:valid"], ["128"])
    assert arch == NOTEBOOK_CNN


def test_from_strings_rectangular_and_defaults() -> None:
    arch = Architecture.from_strings(["8:3x5", "4:2:2x1:same"], ["64,32"])
    assert arch.conv == (ConvLayer(8, (3, 5), 1, "valid"), ConvLayer(4, 2, (2, 1), "same"))
    assert arch.dense == (64, 32)
    assert arch.describe() == "8k3x5s1valid-4k2s2x1same-d64-d32"


def test_short_form_gives_each_knob_once_when_the_layers_agree() -> None:
    assert NOTEBOOK_CNN.short() == "32-32-64-64 k3 s1-2-1-2 same-valid-same-valid d128"
    assert Architecture.from_strings(["8:5:2:same", "16:5:2:same"], ["64"]).short() == \
        "8-16 k5 s2 same d64"
    assert Architecture.from_strings(["8:3x5", "4:2:2x1:same"], ["64,32"]).short() == \
        "8-4 k3x5-2 s1-2x1 valid-same d64-32"
    options = Architecture.from_strings(
        ["8:3:1:same:bn:max2", "16:3:1:same:max2", "4:3:1:same:bn:avg3"], [],
        head="gap", dropout=0.25)
    assert options.short() == "8-16-4 k3 s1 same bn@1,3 max2@1,2 avg3@3 gap do0.25"
    every = Architecture.from_strings(["8:3:1:same:bn:max2", "8:3:1:same:bn:max2"], ["16"])
    assert every.short() == "8-8 k3 s1 same bn max2 d16"
    assert Architecture(conv=(), dense=()).short() == "d0"
    assert Architecture(conv=(), dense=(10,)).short() == "d10"


@pytest.mark.parametrize(("conv", "message"), [
    (["32"], "FILTERS:KERNEL"),
    (["a:3"], "integers"),
    (["32:3:1:full"], "padding"),
    (["0:3"], "filters"),
    (["8:0"], "kernel_size"),
])
def test_from_strings_errors(conv: list[str], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_strings(conv)


def test_dict_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    arch = Architecture.from_strings(["8:3x5:2:same", "16:3"], ["32"])
    assert Architecture.from_dict(arch.to_dict()) == arch
    with pytest.raises(ArchitectureError, match=r"unknown key\(s\) \['kernel'\]"):
        Architecture.from_dict({"conv": [{"filters": 8, "kernel": 3}]})
    with pytest.raises(ArchitectureError, match=r"unknown key\(s\) \['layers'\]"):
        Architecture.from_dict({"layers": []})
    with pytest.raises(ArchitectureError, match=r"conv\[0\] needs 'filters'"):
        Architecture.from_dict({"conv": [{"kernel_size": 3}]})


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "arch.toml"
    path.write_text('dense = [64]\n\n[[conv]]\nfilters = 16\nkernel_size = 5\n'
                    'strides = 2\npadding = "same"\n')
    assert Architecture.from_file(path) == Architecture(conv=(ConvLayer(16, 5, 2, "same"),),
                                                        dense=(64,))
    (tmp_path / "bad.toml").write_text("dense = [64\n")
    with pytest.raises(ArchitectureError, match="bad.toml is not valid TOML"):
        Architecture.from_file(tmp_path / "bad.toml")
    with pytest.raises(ArchitectureError, match="does not exist"):
        Architecture.from_file(tmp_path / "missing.toml")


def test_to_params_are_flat() -> None:
    params = NOTEBOOK_CNN.to_params()
    assert params["n_conv"] == 4
    assert params["conv2_strides"] == 2
    assert params["conv3_padding"] == "same"
    assert params["dense1_units"] == 128
    assert params["conv1_batchnorm"] is False
    assert params["conv4_pool"] == "none" and params["conv4_pool_size"] == 2
    assert params["head"] == "flatten" and params["dropout"] == 0.0


def test_notebook_unchanged_by_the_new_options() -> None:
    assert NOTEBOOK_CNN.layer_table().total_params == 361_322
    assert [r.name for r in NOTEBOOK_CNN.layer_table().rows] == [
        "conv1", "conv2", "conv3", "conv4", "flatten", "dense1", "output"]
    assert Architecture(head="flatten", dropout=0) == NOTEBOOK_CNN
    assert ConvLayer(32, 3, 1, "same", False, "none", 2) == NOTEBOOK_CNN.conv[0]
    # The dict, and so trial keys and stored architecture.json, are what they were.
    assert NOTEBOOK_CNN.to_dict() == {
        "conv": [{"filters": 32, "kernel_size": 3, "strides": 1, "padding": "same"},
                 {"filters": 32, "kernel_size": 3, "strides": 2, "padding": "valid"},
                 {"filters": 64, "kernel_size": 3, "strides": 1, "padding": "same"},
                 {"filters": 64, "kernel_size": 3, "strides": 2, "padding": "valid"}],
        "dense": [128]}


def test_options_describe_params_and_round_trip() -> None:
    arch = Architecture.from_strings(["8:3:1:same:bn:max2", "16:3x2:1x2:valid:avg3",
                                      "4:1:1:same:bn"], ["32"], head="gap", dropout=0.25)
    assert arch.conv == (
        ConvLayer(8, 3, 1, "same", batchnorm=True, pool="max", pool_size=2),
        ConvLayer(16, (3, 2), (1, 2), "valid", pool="avg", pool_size=3),
        ConvLayer(4, 1, 1, "same", batchnorm=True))
    assert (arch.head, arch.dropout) == ("gap", 0.25)
    assert arch.describe() == (
        "8k3s1same+bn+max2-16k3x2s1x2valid+avg3-4k1s1same+bn-gap-d32-do0.25")
    assert Architecture(dense=(), dropout=0.5).describe().endswith("64k3s2valid-do0.5")
    assert Architecture(conv=(), dense=(), head="gap").describe() == "gap"
    # Options in any order.
    assert Architecture.from_strings(["8:3:1:same:max2:bn"]).conv == arch.conv[:1]
    params = arch.to_params()
    assert params["conv1_batchnorm"] is True and params["conv2_pool"] == "avg"
    assert params["conv2_pool_size"] == 3 and params["conv3_pool"] == "none"
    assert params["head"] == "gap" and params["dropout"] == 0.25
    data = arch.to_dict()
    assert data["conv"][1] == {"filters": 16, "kernel_size": [3, 2], "strides": [1, 2],
                               "padding": "valid", "pool": "avg", "pool_size": 3}
    assert (data["head"], data["dropout"]) == ("gap", 0.25)
    assert Architecture.from_dict(data) == arch
    assert Architecture.from_dict(json.loads(json.dumps(data))) == arch
    assert arch.derived_params() == {"receptive_field": "12x14", "effective_stride": "6x12",
                                     "final_feature_map": "4x2x4"}


def test_options_from_file(tmp_path: Path) -> None:
    path = tmp_path / "arch.toml"
    path.write_text('dense = [64]\nhead = "gap"\ndropout = 0.5\n\n[[conv]]\nfilters = 16\n'
                    'kernel_size = 3\nbatchnorm = true\npool = "max"\npool_size = 3\n')
    assert Architecture.from_file(path) == Architecture(
        conv=(ConvLayer(16, 3, batchnorm=True, pool="max", pool_size=3),), dense=(64,),
        head="gap", dropout=0.5)


@pytest.mark.parametrize(("conv", "message"), [
    (["32:3:1:same:foo"], r"unknown option 'foo'; expected 'sep', 'bn', 'maxN' or 'avgN'"),
    (["32:3:1:same:max"], "unknown option 'max'"),
    (["32:3:1:bn"], "option 'bn' before STRIDES and PADDING"),
    (["32:3:max2"], "option 'max2' before STRIDES and PADDING"),
    (["32:3:1:same:max1"], "pool_size must be an integer of at least 2, not 1"),
    (["32:3:1:same:bn:bn"], "gives bn more than once"),
    (["32:3:1:same:max2:avg2"], "gives a pool more than once"),
])
def test_from_strings_option_errors(conv: list[str], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_strings(conv)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ConvLayer(8, batchnorm=1), "batchnorm must be true or false, not 1"),
    (lambda: ConvLayer(8, pool="min"), "pool must be 'none', 'max' or 'avg', not 'min'"),
    (lambda: ConvLayer(8, pool="max", pool_size=1), "pool_size .* not 1"),
    (lambda: ConvLayer(8, pool="max", pool_size=True), "pool_size .* not True"),
    (lambda: ConvLayer(8, pool="avg", pool_size=2.0), "pool_size .* not 2.0"),
    (lambda: Architecture(head="avg"), "head must be 'flatten' or 'gap', not 'avg'"),
    (lambda: Architecture(dropout=1.0), r"dropout must be a rate .* not 1.0"),
    (lambda: Architecture(dropout=-0.1), r"dropout must be a rate .* not -0.1"),
    (lambda: Architecture(dropout="0.5"), r"dropout must be a rate .* not '0.5'"),
    (lambda: Architecture.from_strings(["8:3"], dropout=1), "dropout"),
    (lambda: Architecture.from_dict({"conv": [{"filters": 8, "pool": "mean"}]}),
     r"architecture.conv\[0\]: pool must be"),
    (lambda: Architecture.from_dict({"dense": [8], "head": "GAP"}),
     "architecture: head must be 'flatten' or 'gap', not 'GAP'"),
    (lambda: Architecture.from_dict({"dense": [8], "pooling": "max"}),
     r"unknown key\(s\) \['pooling'\]"),
])
def test_option_validation(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        make()


EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "architectures").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_architecture_file_loads_and_fits(path: Path) -> None:
    arch = Architecture.from_file(path)
    assert arch.layer_table().total_params > 0
    if path.name == "notebook_cnn.toml":
        assert arch == NOTEBOOK_CNN


# --- names: the describe() form read back ---------------------------------------------------

NAMED = [
    NOTEBOOK_CNN,
    Architecture.from_strings(["8:3:1:same:bn:max2", "16:3x5:2x1:valid:avg3", "4:1"], ["32"],
                              head="gap", dropout=0.25),
    Architecture.from_strings(["8:5:2:same", "16:5:2:same"], ["64", "32"]),
    Architecture.from_strings(["12:3:1:same:bn"], [], head="gap"),
    Architecture.from_strings(["8:3"], ["16"], dropout=0.125),
    Architecture.from_strings(["16:3:1:same:bn:max2:sdo0.1", "8:1:1:valid:do0.25"], [],
                              head="gap"),
    Architecture(conv=(), dense=(10,)),
    Architecture(conv=(), dense=()),
    Architecture(conv=(), dense=(), head="gap", dropout=0.5),
    Architecture.from_strings(["8:3:1:same:sep:bn", "12:5:2:valid:bn:sep:max2:sdo0.05",
                               "10:1:1:same"], [], head="gap"),
    Architecture.from_file(Path(__file__).resolve().parents[2] / "experiments" / "architectures"
                           / "small_cnn.toml"),
]


@pytest.mark.parametrize("arch", NAMED, ids=lambda a: a.describe())
def test_a_name_reads_back_as_its_architecture(arch: Architecture) -> None:
    assert Architecture.from_name(arch.describe()) == arch


def test_every_design_setting_reads_back_from_its_name() -> None:
    from cnnlab.search.config import load_study_config

    root = Path(__file__).resolve().parents[2] / "experiments"
    settings = [setting.architecture for path in sorted(root.glob("*.toml"))
                if (design := load_study_config(path).design) is not None
                for setting in design.settings()]
    assert len(settings) > 10
    for arch in settings:
        assert Architecture.from_name(arch.describe()) == arch


@pytest.mark.parametrize(("name", "message"), [
    ("", r"'' is not a part a name has there"),
    ("32k3s1same-d128-gap", r"'gap' is not a part a name has there"),
    ("d128-32k3s1same", r"'32k3s1same' is not a part"),
    ("32k3s1same-do0.25-do0.5", r"'do0.5' is not a part"),
    ("32k3s1full", r"'32k3s1full' is not a part"),
    ("32k3s1same+max2+bn", r"'32k3s1same\+max2\+bn' is not a part"),  # bn comes first.
    ("32:3:1:same", r"'32:3:1:same' is not a part"),
    ("0k3s1same", r"architecture name '0k3s1same': filters must be a positive integer"),
    ("8k3s1same+max1-d16", r"'8k3s1same\+max1': pool_size must be an integer of at least 2"),
    ("8k3s1same-d0", r"architecture name '8k3s1same-d0': dense units must be positive"),
])
def test_a_name_that_is_not_one_is_refused_naming_the_part(name: str, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_name(name)


def test_shapes_takes_a_name_as_compare_shows_it(capsys) -> None:
    from cnnlab import cli

    assert cli.main(["shapes"]) == 0
    default = capsys.readouterr().out
    assert cli.main(["shapes", NOTEBOOK_CNN.describe()]) == 0
    assert capsys.readouterr().out == default
    name = "8k3s1same+bn+max2-16k3s1same+max2-gap"
    assert cli.main(["shapes", name]) == 0
    by_name = capsys.readouterr().out
    assert cli.main(["shapes", "--conv", "8:3:1:same:bn:max2", "--conv", "16:3:1:same:max2",
                     "--head", "gap", "--dense", ""]) == 0
    assert capsys.readouterr().out == by_name and by_name.startswith(f"architecture {name}\n")
    assert cli.main(["shapes", name, "--conv", "8:3"]) == 2
    assert "either as NAME or with --conv" in capsys.readouterr().err


def test_a_separable_layer_is_named_everywhere_and_changes_no_plain_one() -> None:
    arch = Architecture.from_strings(["8:3:1:same:sep:bn", "16:3:2:same:sep", "12:3"], [],
                                     head="gap")
    assert arch.conv[0] == ConvLayer(8, 3, 1, "same", batchnorm=True, separable=True)
    assert arch.describe() == "8k3s1same+sep+bn-16k3s2same+sep-12k3s1valid-gap"
    assert arch.short() == "8-16-12 k3 s1-2-1 same-same-valid sep@1,2 bn@1 gap"
    assert arch.to_dict()["conv"][1] == {"filters": 16, "kernel_size": 3, "strides": 2,
                                         "padding": "same", "separable": True}
    assert "separable" not in arch.to_dict()["conv"][2]  # A plain layer's dict as before.
    assert arch.to_params()["conv1_separable"] is True
    assert arch.to_params()["conv3_separable"] is False
    kinds = [r.kind for r in arch.layer_table().rows if r.name.startswith("conv")
             and "_" not in r.name]
    assert kinds == ["SeparableConv2D", "SeparableConv2D", "Conv2D"]
    with pytest.raises(ArchitectureError, match="gives sep more than once"):
        Architecture.from_strings(["8:3:1:same:sep:sep"])
    with pytest.raises(ArchitectureError, match="separable must be true or false"):
        ConvLayer(8, separable="yes")
