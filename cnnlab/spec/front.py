"""Pareto fronts of (metric, size) and the dominance rule that stops a trial early.

Studies with two objectives (validation accuracy up, network size down) cannot use Optuna's
pruners: ``Trial.report`` and ``Trial.should_prune`` raise ``NotImplementedError`` as soon as a
study has more than one direction. Their replacement here compares a trial with the others *at
the same epoch*: after epoch ``e`` a trial is stopped when some trial had, at its own epoch
``e``, an accuracy at least ``margin`` higher with a size no larger. The size of a network is
known before it is built (parameters or multiply-adds), so only the accuracy is a curve.

The rule never stops a trial for being small: a smaller trial is beaten only by one at least as
small, so the cheap end of the front survives even when its accuracy is modest.

Conventions, kept the same everywhere below:

- A ``Point`` holds the monitored metric in ``accuracy``. It is maximized by default; every
  function takes ``maximize=False`` for a metric to minimize (``val_loss``), and then
  "``margin`` higher" reads "``margin`` lower".
- A point whose metric or size is NaN is left out of fronts and is never stopped: it compares
  with nothing. (A diverging trial is Keras's ``TerminateOnNaN``'s business, not this rule's.)
- Equal points (same metric and size) do not dominate each other, so duplicates are all kept
  on a front, in their input order.
- Epochs are counted from 1, as everywhere in cnnlab: ``curve[e - 1]`` is the metric after
  epoch ``e``, and a curve of ``e`` values has reached epoch ``e``.

This module is plain Python, with no Optuna, Keras or NumPy, so that the arithmetic can be
tested and replayed (``benchmarks/dominance_pruner.py``) on its own; ``cnnlab.search.pruning``
wires it to Optuna trials and Keras.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One trial at one epoch: its ``key`` (a trial number, say), metric and size."""

    key: Hashable
    accuracy: float
    size: float

    def is_finite(self) -> bool:
        """Whether both the metric and the size are numbers (neither NaN nor infinite)."""
        return math.isfinite(self.accuracy) and math.isfinite(self.size)


def dominates(a: Point, b: Point, margin: float = 0.0, *, maximize: bool = True) -> bool:
    """Whether ``a`` dominates ``b`` by ``margin``.

    With ``maximize`` (the default), that is ``a.accuracy >= b.accuracy + margin`` and
    ``a.size <= b.size``; with ``margin == 0`` ``a`` must moreover be strictly better in at
    least one of the two, so that equal points do not dominate each other. With
    ``maximize=False`` the metric condition is ``a.accuracy <= b.accuracy - margin``. The
    comparison is exact: a difference of exactly ``margin`` counts, up to float rounding.
    """
    if margin < 0:
        raise ValueError(f"the margin must be zero or positive, not {margin}.")
    if not (a.is_finite() and b.is_finite()):
        return False
    gain = a.accuracy - b.accuracy if maximize else b.accuracy - a.accuracy
    if a.size > b.size or gain < margin:
        return False
    return margin > 0 or gain > 0 or a.size < b.size


def pareto_front(points: Iterable[Point], *, maximize: bool = True) -> list[Point]:
    """The points no other point dominates (margin 0), sorted by size ascending.

    Points of equal size on the front have equal metric (the others of that size are dominated
    by the best of them); they, and exact duplicates, are all kept, in their input order. Points
    with a NaN or infinite metric or size are left out. Runs in O(n log n).
    """
    finite = [p for p in points if p.is_finite()]
    sign = 1.0 if maximize else -1.0
    # A stable sort by size, best metric first within a size, keeps input order among ties.
    ordered = sorted(finite, key=lambda p: (p.size, -sign * p.accuracy))
    front: list[Point] = []
    best = -math.inf  # The best signed metric among strictly smaller sizes seen so far.
    i = 0
    while i < len(ordered):
        size = ordered[i].size
        j = i
        while j < len(ordered) and ordered[j].size == size:
            j += 1
        top = sign * ordered[i].accuracy
        # The best of this size survive only if nothing smaller is at least as good.
        if top > best:
            front.extend(p for p in ordered[i:j] if sign * p.accuracy == top)
            best = top
        i = j
    return front


def points_at_epoch(curves: Mapping[Hashable, Sequence[float]],
                    sizes: Mapping[Hashable, float], epoch: int) -> list[Point]:
    """The point ``(curve[epoch - 1], size)`` of every curve that reaches ``epoch`` (counted
    from 1), in the order of ``curves``. ``ValueError`` for an epoch below 1 or a curve
    without a size."""
    if epoch < 1:
        raise ValueError(f"epochs are counted from 1, not {epoch}.")
    points = []
    for key, curve in curves.items():
        if len(curve) >= epoch:
            if key not in sizes:
                raise ValueError(f"trial {key!r} has a curve but no size.")
            points.append(Point(key, float(curve[epoch - 1]), float(sizes[key])))
    return points


def front_at_epoch(curves: Mapping[Hashable, Sequence[float]], sizes: Mapping[Hashable, float],
                   epoch: int, *, maximize: bool = True) -> list[Point]:
    """The Pareto front of what the trials whose curve reaches ``epoch`` (counted from 1) had
    at that epoch."""
    return pareto_front(points_at_epoch(curves, sizes, epoch), maximize=maximize)


def should_stop(curve: Sequence[float], size: float,
                others_curves: Mapping[Hashable, Sequence[float]],
                others_sizes: Mapping[Hashable, float], *, margin: float,
                n_warmup_epochs: int, n_min_trials: int, maximize: bool = True,
                metric: str = "accuracy", size_label: str = "size") -> tuple[bool, str | None]:
    """Whether a trial should stop after the last epoch of ``curve``, and why.

    The decision is after epoch ``e = len(curve)`` (counted from 1). There is none
    (``(False, None)``) in the first ``n_warmup_epochs`` epochs (``e <= n_warmup_epochs``), or
    when fewer than ``n_min_trials`` other trials reached epoch ``e`` with a finite value.
    Otherwise the trial stops when a point of the others' front at epoch ``e`` dominates
    ``(curve[-1], size)`` by ``margin``; the reason is one sentence naming that trial (the best
    of them if several), its metric and size, and the epoch. ``metric`` and ``size_label`` only
    name the two quantities in that sentence. ``ValueError`` for an empty curve or a negative
    ``n_warmup_epochs`` or ``n_min_trials``.
    """
    if not curve:
        raise ValueError("a trial's curve needs at least one epoch to decide on.")
    if n_warmup_epochs < 0 or n_min_trials < 0:
        raise ValueError(f"n_warmup_epochs and n_min_trials must be zero or positive, "
                         f"not {n_warmup_epochs} and {n_min_trials}.")
    epoch = len(curve)
    if epoch <= n_warmup_epochs:
        return False, None
    points = [p for p in points_at_epoch(others_curves, others_sizes, epoch) if p.is_finite()]
    if len(points) < n_min_trials:
        return False, None
    me = Point(None, float(curve[-1]), float(size))
    beaters = [p for p in pareto_front(points, maximize=maximize)
               if dominates(p, me, margin, maximize=maximize)]
    if not beaters:
        return False, None
    sign = 1.0 if maximize else -1.0
    # The front is sorted by size; the first of the best metric is the smallest such trial.
    best = max(beaters, key=lambda p: sign * p.accuracy)
    better = "higher" if maximize else "lower"
    return True, (f"trial {best.key} had {metric} {best.accuracy:.4f} at epoch {epoch} with "
                  f"{size_label} {_number(best.size)}, at least {margin:g} {better} than this "
                  f"trial's {me.accuracy:.4f} with {size_label} {_number(me.size)}.")


def _number(value: float) -> str:
    """A size as people read it: 12,345 for whole numbers, 4 significant digits otherwise."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"


@dataclass(frozen=True)
class Anchor:
    """A published small MNIST CNN: its parameters, its *test* accuracy (each chosen on the
    test set, so optimistic beside a validation score) and what it did."""

    params: int
    test_accuracy: float
    note: str


PUBLIC_ANCHORS = (
    Anchor(1_936, 0.9910, "separable convs, weights shared across blocks, 75 epochs"),
    Anchor(4_862, 0.9907, "1x1 conv to 4 channels, 50 epochs"),
    Anchor(8_900, 0.9950, "epoch 15, rotation"),
    Anchor(15_800, 0.9959, "20 epochs"),
)
"""The public anchors issue 33 quotes for small MNIST networks (test accuracy; each selects on
the test set, and trains longer than the notebook's 10 epochs): drawn beside a study's front
of validation accuracy against parameters, as references, not as comparable scores."""
