"""Rankings: the one rule that orders a study's trials and names its best
(``trial_rank_key``: complete trials by the study's direction, pruned ones after), and rankings
that survive seed noise: a score's mean over seeds with its confidence interval, and which
entries are tied with the best.

Pure arithmetic (the t quantile comes from SciPy, imported where it is used):
``cnnlab.results.confirm`` feeds it the validation scores of trials re-trained with further seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

LEVEL = 0.95
"""The confidence level of the intervals."""


@dataclass(frozen=True)
class Summary:
    """One entry's scores over seeds: mean, sample standard deviation, count and the
    two-sided Student-t confidence interval of the mean (an infinite one for a single seed)."""

    key: Hashable
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def describe(self) -> str:
        return f"{self.mean:.4f} ± {self.half_width:.4f} ({self.n} seeds)"


def summarize(key: Hashable, values: Sequence[float], level: float = LEVEL) -> Summary:
    """The ``Summary`` of ``values`` (at least one)."""
    if not values:
        raise ValueError(f"{key!r} has no scores to summarize.")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(key, 1, mean, math.nan, -math.inf, math.inf)
    from scipy.stats import t

    std = statistics.stdev(values)
    half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Summary(key, n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Ranking:
    """Entries best first by mean, and those whose interval overlaps the best one's (the
    best itself included): they are tied, and seeds cannot tell them apart."""

    entries: tuple[Summary, ...]
    tied_with_best: tuple[Hashable, ...]

    @property
    def best(self) -> Summary:
        return self.entries[0]

    def rank(self, key: Hashable) -> int:
        """1 for the best, 2 for the next ..."""
        return [e.key for e in self.entries].index(key) + 1


def rank(summaries: Sequence[Summary], *, maximize: bool = True) -> Ranking:
    """Sort by mean (ties in the mean keep the given order) and find the entries tied with
    the best: those whose confidence interval overlaps the best one's."""
    if not summaries:
        raise ValueError("there is nothing to rank.")
    sign = -1 if maximize else 1
    order = sorted(summaries, key=lambda s: sign * s.mean)
    best = order[0]
    tied = tuple(s.key for s in order if overlaps(s, best))
    return Ranking(tuple(order), tied)


def overlaps(a: Summary, b: Summary) -> bool:
    """Whether the confidence intervals of ``a`` and ``b`` share a point."""
    return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high


RANKED_STATES = ("COMPLETE", "PRUNED")
"""The states a study's trials are ranked in, in this order: every complete trial comes before
every pruned one, whatever their scores (a pruned trial's score is that of an epoch before the
last, a half-trained network's, and no answer of the study); every other state (failed, running,
waiting, an infeasible draw) comes after both."""


def trial_rank_key(state: str, value: float | None, number: int, *,
                   maximize: bool, rung: int = 0) -> tuple[int, int, bool, float, int]:
    """The sort key of the one ranking rule for a study's trials, smallest first:

    1. complete trials, then pruned trials, then the rest (``RANKED_STATES``);
    2. within each, in a study with fidelity rungs, the higher ``rung`` reached first (a score
       after 3 epochs is not weighed against one after 1: ``cnnlab.spec.fidelity``); then by
       the score in the study's direction (highest first when ``maximize``, lowest first
       otherwise), trials without a score (None or NaN) last;
    3. among equal scores, the earliest trial (lowest ``number``) first.

    ``state`` is Optuna's state name (or cnnlab's INFEASIBLE); ``value`` the trial's first
    objective, the validation metric (for a pruned trial the last one it reported). The best
    trial of a study is the first complete trial in this order (``best_of``). Pure: every table,
    choice and line that names a study's best (``cnnlab compare``'s leaderboard and ``--top``,
    ``cnnlab evaluate``'s choice, the study's "best:" line, its report and its MLflow run) sorts by
    this key.
    """
    group = RANKED_STATES.index(state) if state in RANKED_STATES else len(RANKED_STATES)
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    signed = 0.0 if missing else (-float(value) if maximize else float(value))
    return (group, -rung, missing, signed, number)


def best_of(entries: Sequence[tuple[Hashable, str, float | None, int]], *,
            maximize: bool) -> Hashable | None:
    """The key of the best of ``entries`` (``(key, state, value, number)`` each): the first
    complete one in the order of ``trial_rank_key``; None when none is complete."""
    complete = [e for e in entries if e[1] == RANKED_STATES[0]]
    if not complete:
        return None
    return min(complete, key=lambda e: trial_rank_key(e[1], e[2], e[3], maximize=maximize))[0]
