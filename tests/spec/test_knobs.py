"""A network's knobs (one value per network and knob) and the interval of a group's mean,
kept inside the score's bounds."""

from __future__ import annotations

import math
import statistics

import pytest

from cnnlab.spec import knobs as K
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture


def test_the_notebook_cnn_is_mixed_padding_all_3x3_two_stride_2_layers_scale_1() -> None:
    assert K.architecture_knobs(NOTEBOOK_CNN) == {
        "paddings": "mixed", "kernels": "all 3x3", "stride2_layers": 2, "filters_scale": 1.0,
        "n_conv": 4}


def test_each_knob_has_one_value_per_network() -> None:
    assert K.paddings(["same", "same"]) == "all same"
    assert K.paddings(["valid"]) == "all valid"
    assert K.paddings(["same", "valid", "same"]) == "mixed"
    assert K.paddings([]) is None
    assert K.kernels([5, 5, 5]) == "all 5x5"
    assert K.kernels([3, (3, 3)]) == "all 3x3"
    assert K.kernels([(3, 5), [3, 5]]) == "all 3x5"
    assert K.kernels([3, 5]) == "mixed"
    assert K.kernels([]) is None
    assert K.stride2_layers([1, 2, 1, 3]) == 2
    assert K.stride2_layers([(1, 2), 1]) == 1
    assert K.stride2_layers([]) == 0
    with pytest.raises(ValueError, match="kernel_size"):
        K.kernels(["3"])


@pytest.mark.parametrize(("filters", "scale"), [
    ((32, 32, 64, 64), 1.0),
    ((16, 16, 32, 32), 0.5),       # every layer halved
    ((64, 64, 128, 128), 2.0),     # doubled
    ((8, 8, 16, 16), 0.25),
    ((48,), 1.0),                  # the mean per layer, whatever the depth
    ((8, 16, 32), 0.5),            # mean 18.7: 0.39 of 48, nearer 0.5 than 0.25 on a log scale
    ((8,), 0.125),                 # 1/6: log2 -2.58, nearer -3
    ((33,), 0.5),                  # 0.6875: under 2 ** -0.5 (0.7071)
    ((34,), 1.0),                  # 0.7083: just over
])
def test_filters_scale_is_the_mean_against_the_notebooks_to_a_power_of_two(
        filters: tuple[int, ...], scale: float) -> None:
    assert K.filters_scale(filters) == scale
    assert K.filters_scale([]) is None


def test_network_knobs_need_one_value_per_layer() -> None:
    with pytest.raises(ValueError, match="once per conv layer"):
        K.network_knobs([8, 8], [3], [1, 1], ["same", "same"])
    arch = Architecture.from_strings(["8:5:2:same", "16:5:1:same"], ["32"])
    assert K.architecture_knobs(arch) == {"paddings": "all same", "kernels": "all 5x5",
                                          "stride2_layers": 1, "filters_scale": 0.25,
                                          "n_conv": 2}


def _t_interval(values: list[float]) -> tuple[float, float]:
    from scipy.stats import t

    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    mean = statistics.fmean(values)
    return mean - half, mean + half


def test_an_accuracy_interval_is_clipped_to_0_1_where_t_runs_past() -> None:
    # Two trials far apart: Student's t with one degree of freedom runs far past both bounds.
    values = [0.99, 0.5]
    low, high = _t_interval(values)
    assert low < 0 and high > 1  # What the interval would be without the clipping.
    interval = K.mean_interval(values)
    assert (interval.low, interval.high, interval.clipped) == (0.0, 1.0, True)
    assert interval.mean == pytest.approx(0.745) and interval.n == 2
    # Close scores: the t interval is inside [0, 1] and left as it is.
    close = [0.97, 0.975, 0.98]
    inside = K.mean_interval(close)
    assert (inside.low, inside.high) == pytest.approx(_t_interval(close))
    assert not inside.clipped
    # One side only: near 1, the upper end is clipped and the lower one kept.
    high_values = [0.999, 0.95, 0.999]
    one_side = K.mean_interval(high_values)
    assert one_side.high == 1.0 and one_side.clipped
    assert one_side.low == pytest.approx(_t_interval(high_values)[0])
    # A loss is clipped below at 0 only.
    loss = K.mean_interval([0.01, 2.0], within=K.bounds("val_loss"))
    assert loss.low == 0.0 and loss.clipped
    assert loss.high == pytest.approx(_t_interval([0.01, 2.0])[1]) and loss.high > 1
    # One trial: no interval.
    single = K.mean_interval([0.9])
    assert math.isnan(single.low) and math.isnan(single.high) and not single.clipped
    with pytest.raises(ValueError):
        K.mean_interval([])
    assert K.bounds("val_accuracy") == (0.0, 1.0) and K.bounds("val_loss") == (0.0, math.inf)
