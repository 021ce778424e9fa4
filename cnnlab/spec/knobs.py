"""The notebook's knobs, read off a whole network: what its conv layers have in common, one
value per network and knob, and the mean score of a group of networks with its interval kept
inside the score's bounds.

Pure arithmetic on plain values (the t quantile comes from SciPy, through
``cnnlab.spec.ranking``). ``cnnlab.results.compare.knob_effects`` groups a study's trials by these
values; each network has exactly one value per knob, so no trial is in two groups of one knob.

The knobs (``KNOBS``), each a function of the network's conv layers, first to last:

- ``paddings``: ``"all same"``, ``"all valid"`` or ``"mixed"``;
- ``kernels``: ``"all 3x3"``, ``"all 5x5"`` ... when every layer has that kernel, else
  ``"mixed"``;
- ``stride2_layers``: how many conv layers have a stride above 1 (on either axis): each one
  halves (or more) the feature map; pools are not counted;
- ``filters_scale``: the network's filters against the notebook CNN's (``filters_scale``);
- ``n_conv``: the number of conv layers (the depth).
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.spec import shapes
from cnnlab.spec.architecture import NOTEBOOK_CONV, Architecture
from cnnlab.spec.ranking import LEVEL, summarize

KNOBS = ("paddings", "kernels", "stride2_layers", "filters_scale", "n_conv")
"""The per-network knobs, by their column names."""
ALIASES = {"padding": "paddings", "kernel_size": "kernels", "strides": "stride2_layers",
           "filters": "filters_scale"}
"""A conv layer's field, as a study file or ``per_layer`` names it -> its per-network knob."""
NOTEBOOK_FILTERS = tuple(layer.filters for layer in NOTEBOOK_CONV)
"""The notebook CNN's filters, conv1 to conv4: (32, 32, 64, 64); their mean is 48."""

Pair = int | tuple[int, int] | Sequence[int]


def paddings(values: Sequence[str]) -> str | None:
    """``"all same"`` or ``"all valid"`` when every conv layer has that padding, ``"mixed"``
    when they differ; None for a network without conv layers."""
    found = set(values)
    if not found:
        return None
    return f"all {found.pop()}" if len(found) == 1 else "mixed"


def kernels(values: Sequence[Pair]) -> str | None:
    """``"all 3x3"`` (``"all 3x5"`` for a rectangular kernel, height x width) when every conv
    layer has that kernel, ``"mixed"`` when they differ; None without conv layers. A kernel
    is an int (square) or a (height, width) pair. Raises ``ValueError`` for anything else."""
    found = {_pair(v, "kernel_size") for v in values}
    if not found:
        return None
    if len(found) > 1:
        return "mixed"
    height, width = found.pop()
    return f"all {height}x{width}"


def stride2_layers(values: Sequence[Pair]) -> int:
    """How many conv layers have a stride above 1 on either axis (a stride is an int or a
    (height, width) pair). Raises ``ValueError`` for anything else."""
    return sum(max(_pair(v, "strides")) > 1 for v in values)


def filters_scale(values: Sequence[int], base: Sequence[int] = NOTEBOOK_FILTERS) -> float | None:
    """The network's filters against ``base`` (the notebook CNN's 32, 32, 64, 64), as a power
    of two a student reads as "x0.5 the notebook's filters": the mean filters per conv layer
    over ``base``'s mean (48), rounded to the nearest power of two on a log scale
    (``2 ** floor(log2(ratio) + 1/2)``: a ratio from 0.71 up to 1.41 is 1, from 0.35 to 0.71 is
    0.5 ...). The mean per layer, not the total, so that depth (its own knob) does not move it:
    8-16-32 (mean 18.7, ratio 0.39) is 0.5; every layer of the notebook CNN halved (16-16-32-32)
    is 0.5; doubled, 2. None without conv layers."""
    if not values:
        return None
    ratio = statistics.fmean(values) / statistics.fmean(base)
    return 2.0 ** math.floor(math.log2(ratio) + 0.5)


def network_knobs(filters: Sequence[int], kernel_sizes: Sequence[Pair],
                  strides: Sequence[Pair], padding: Sequence[str]) -> dict[str, Any]:
    """Every knob of ``KNOBS`` of one network, from its conv layers' fields listed first layer
    to last (of equal lengths: one per layer)."""
    if not len(filters) == len(kernel_sizes) == len(strides) == len(padding):
        raise ValueError("give each field once per conv layer.")
    return {"paddings": paddings(padding), "kernels": kernels(kernel_sizes),
            "stride2_layers": stride2_layers(strides), "filters_scale": filters_scale(filters),
            "n_conv": len(filters)}


def architecture_knobs(arch: Architecture) -> dict[str, Any]:
    """``network_knobs`` of an ``Architecture``."""
    return network_knobs([c.filters for c in arch.conv], [c.kernel_size for c in arch.conv],
                         [c.strides for c in arch.conv], [c.padding for c in arch.conv])


def bounds(metric: str) -> tuple[float, float]:
    """Where a metric's values lie: an accuracy in [0, 1], a loss (cross-entropy) in
    [0, inf)."""
    return (0.0, 1.0) if "accuracy" in metric else (0.0, math.inf)


@dataclass(frozen=True)
class Interval:
    """A group's mean score over its trials with the two-sided Student-t interval of that
    mean (``low``/``high``, NaN for one trial), clipped to the score's bounds; ``clipped``
    says whether the t interval ran past them."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    clipped: bool


def mean_interval(values: Sequence[float], level: float = LEVEL,
                  within: tuple[float, float] = (0.0, 1.0)) -> Interval:
    """The mean of ``values`` (one score per trial, at least one) with its ``level`` (95%)
    Student-t interval, clipped to ``within`` (an accuracy's [0, 1]; ``bounds(metric)``).

    Student's t (``cnnlab.spec.ranking.summarize``), not a bootstrap: a group often holds 2 to
    10 trials, and a percentile bootstrap of so few spans little more than their range (for
    two trials, only the two scores and their mean can be drawn), far narrower than the
    uncertainty; t widens with few trials as it should. Its assumption, scores spread
    normally about the mean, fails near 1 (accuracies are bounded and skewed), so the interval
    can run past a bound: above 1 for two trials at 0.99 and 0.5. No mean of accuracies can
    lie there, so it is clipped to the bounds (``clipped`` then true) and only the side inside
    them is read. Raises ``ValueError`` for no values.
    """
    s = summarize("group", values, level)
    if s.n < 2:
        return Interval(s.n, s.mean, s.std, math.nan, math.nan, False)
    low, high = max(s.ci_low, within[0]), min(s.ci_high, within[1])
    return Interval(s.n, s.mean, s.std, low, high, (low, high) != (s.ci_low, s.ci_high))


def _pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints (NumPy's too, as pandas hands them out) as a pair."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    elif isinstance(value, list | tuple):
        value = tuple(int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool)
                      else v for v in value)
    return shapes._pair(value, name)
