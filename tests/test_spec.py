"""Architecture specs: parsing, validation and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.errors import ArchitectureError
from cnnlab.spec import NOTEBOOK_CNN, Architecture, ConvLayer


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


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "architectures").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_architecture_file_loads_and_fits(path: Path) -> None:
    arch = Architecture.from_file(path)
    assert arch.layer_table().total_params > 0
    if path.name == "notebook_cnn.toml":
        assert arch == NOTEBOOK_CNN
