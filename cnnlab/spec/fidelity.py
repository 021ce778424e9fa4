"""Fidelity rungs: a trial trained in stages of growing cost, continued only while it ranks well.

A study file's ``[fidelity]`` declares rungs, each a number of epochs (counted from 1, the total
so far) and a training-set size (the first N images of the study's training split; the
validation split stays whole, so that every score compares)::

    [fidelity]
    rungs = [{ epochs = 1, train_size = 10000 }, { epochs = 3 }, { epochs = 10 }]
    promote = 0.34    # the best third of the trials at a rung go on to the next
    min_trials = 3    # a rung stops no trial before this many trials have reached it

A trial trains the first rung, then (the same model, its weights and optimizer state kept)
each next rung's further epochs on that rung's images, as long as it is promoted. The last rung
is the study's full fidelity: its epochs are the trial's ``epochs``, its images the whole
training split. A trial stopped at a lower rung ends PRUNED (Optuna's samplers rank such trials
below every complete one, by the step reached, then the value): it is never ranked against
full-fidelity trials as if equal.

The promotion rule is asynchronous successive halving (ASHA: Li et al., "A System for Massively
Parallel Hyperparameter Tuning", MLSys 2020), in the form Optuna's ``SuccessiveHalvingPruner``
implements it without suspending trials: at the end of a rung a trial is compared with every
trial that has reached that rung so far (finished, stopped there or beyond, or still running),
and goes on if it is among the best ``floor(n * promote)`` of those ``n`` (or, while that is 0,
if it is the best of them). With a size objective (a two-objective study), trials are ordered by
non-dominated sorting of (metric, size), then by the metric within a front (multi-objective
ASHA: Schmucker et al., "Multi-objective Asynchronous Successive Halving", 2021, with the
metric in place of their crowding/epsilon-net tie-break).

Pure arithmetic: no Optuna, no Keras (``cnnlab.study.objective`` applies it to a trial).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cnnlab.spec.words import count


@dataclass(frozen=True)
class Rung:
    """One rung: train up to ``epochs`` epochs in all (counted from 1) on the first
    ``train_size`` training images (None: the whole training split)."""

    epochs: int
    train_size: int | None = None

    def describe(self, whole: int | None = None) -> str:
        """``3 epochs on 50,000 images`` (``whole``: the size of the whole training split, for
        a rung on all of it; else ``all images``)."""
        size = self.train_size if self.train_size is not None else whole
        images = f"{size:,} images" if size is not None else "all images"
        return f"{count(self.epochs, 'epoch')} on {images}"


@dataclass(frozen=True)
class Fidelity:
    """A study's rungs and how many trials go on from each (see the module's docstring)."""

    rungs: tuple[Rung, ...]
    promote: float = 1 / 3
    """The fraction of a rung's trials promoted to the next (ASHA's ``1 / eta``)."""
    min_trials: int = 3
    """Trials that must have reached a rung before any is stopped there."""

    def __post_init__(self) -> None:
        if not self.rungs:
            raise ValueError("a fidelity schedule needs at least one rung.")
        if not 0 < self.promote <= 1:
            raise ValueError(f"promote must be a fraction in (0, 1], not {self.promote}.")
        if self.min_trials < 1:
            raise ValueError(f"min_trials must be at least 1, not {self.min_trials}.")
        for number, (before, after) in enumerate(zip(self.rungs, self.rungs[1:],
                                                     strict=False), start=2):
            if after.epochs <= before.epochs:
                raise ValueError(f"rungs' epochs must grow: rung {number} has {after.epochs} "
                                 f"after {before.epochs}.")
            if before.train_size is not None and (
                    after.train_size is not None and after.train_size < before.train_size):
                raise ValueError(f"rungs' train_size must not shrink: rung {number} has "
                                 f"{after.train_size:,} after {before.train_size:,}.")
            if before.train_size is None and after.train_size is not None:
                raise ValueError(f"a rung on all images cannot be followed by one on "
                                 f"{after.train_size:,} (rung {number}).")
        if self.rungs[-1].train_size is not None:
            raise ValueError("the last rung is the study's full fidelity: it trains on the whole "
                             "training split (leave its train_size out).")

    @property
    def epochs(self) -> int:
        """The full fidelity's epochs (the last rung's)."""
        return self.rungs[-1].epochs

    def segments(self, n_train: int) -> list[tuple[int, int]]:
        """Each rung as (epochs in all, images) for a training split of ``n_train`` images; a
        rung's ``train_size`` above ``n_train`` is cut to it."""
        return [(r.epochs, min(r.train_size or n_train, n_train)) for r in self.rungs]

    def total_steps(self, n_train: int, batch_size: int) -> int:
        """Optimizer updates of a trial trained through every rung: each rung's further epochs
        times ``ceil(images / batch_size)``."""
        done = total = 0
        for epochs, size in self.segments(n_train):
            total += (epochs - done) * math.ceil(size / batch_size)
            done = epochs
        return total

    def rung_ending_at(self, epoch: int) -> int | None:
        """The index (from 0) of the rung that ends with ``epoch`` (counted from 1), or None."""
        for index, rung in enumerate(self.rungs):
            if rung.epochs == epoch:
                return index
        return None

    def describe(self, n_train: int | None = None) -> str:
        """``1 epoch on 10,000 images -> 3 epochs on 50,000 images -> ...; the best 34% go on``."""
        return (" -> ".join(r.describe(n_train) for r in self.rungs)
                + f"; the best {self.promote:.0%} of each rung go on")

    def to_dict(self) -> dict[str, object]:
        return {"rungs": [{"epochs": r.epochs, **({"train_size": r.train_size}
                                                  if r.train_size is not None else {})}
                          for r in self.rungs],
                "promote": self.promote, "min_trials": self.min_trials}


def promoted(value: float, others: Sequence[float], *, fraction: float, min_trials: int,
             maximize: bool = True, size: float | None = None,
             other_sizes: Sequence[float] | None = None) -> tuple[bool, str]:
    """Whether a trial with ``value`` at the end of a rung goes on to the next, against the
    ``others`` that reached that rung (their values at its end), and why, in a sentence.

    One objective: it goes on if fewer than ``k = floor(n * fraction)`` of the ``n`` trials
    (``others`` and itself) are strictly better, or, while ``k`` is 0, if none is. With
    ``size`` (to minimize, ``other_sizes`` in the order of ``others``), trials are ordered by
    their non-dominated front of (value, size), then by value. Fewer than ``min_trials``
    trials in all: it goes on. A NaN value ranks last. ``ValueError`` if ``other_sizes`` does
    not match ``others``."""
    n = len(others) + 1
    if size is not None and (other_sizes is None or len(other_sizes) != len(others)):
        raise ValueError("other_sizes must give one size per other trial.")
    if n < min_trials:
        return True, f"{count(n, 'trial')} reached this rung, fewer than min_trials {min_trials}"
    k = max(math.floor(n * fraction), 1)

    def key(v: float) -> float:  # Larger is better; NaN last.
        return -math.inf if math.isnan(v) else (v if maximize else -v)

    if size is None:
        ahead = sum(key(v) > key(value) for v in others)
    else:
        values = [*others, value]
        sizes = [*other_sizes, size]
        fronts = nondominated_fronts([key(v) for v in values], [-s for s in sizes])
        mine = len(values) - 1
        ahead = sum((fronts[i], key(values[i])) > (fronts[mine], key(value))
                    for i in range(mine))
    best = f"best {k} of {n}" if k > 1 else f"best of {n}"
    if ahead < k:
        return True, f"among the {best} at this rung"
    return False, f"not among the {best} at this rung, {ahead} ahead of it"


def nondominated_fronts(first: Sequence[float], second: Sequence[float]) -> list[int]:
    """Each point's front, counted down from 0 for the non-dominated (both coordinates to
    maximize): the negated rank of non-dominated sorting (Deb et al., NSGA-II, 2002), so that a
    larger number is a better front. O(n^2) per front: rungs compare tens of trials."""
    n = len(first)
    left = set(range(n))
    front = [0] * n
    level = 0
    while left:
        top = {i for i in left if not any(
            first[j] >= first[i] and second[j] >= second[i]
            and (first[j] > first[i] or second[j] > second[i]) for j in left)}
        for i in top:
            front[i] = level
        left -= top
        level -= 1
    return front
