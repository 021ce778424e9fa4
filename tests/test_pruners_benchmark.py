"""benchmarks/pruners.py's replay on curves made by hand: Optuna's real pruners, the clock, the
budget and the counts (no training)."""

from __future__ import annotations

from tests.studies import load_script


def _benchmark():
    return load_script("benchmarks/pruners.py", "pruners_benchmark")


def test_the_replay_counts_time_stops_and_the_target():
    bench = _benchmark()
    good = bench.Curve("good", (0.90, 0.95, 0.99), (10.0, 10.0, 10.0))
    bad = bench.Curve("bad", (0.50, 0.55, 0.60), (10.0, 10.0, 10.0))
    stream = [good, good, good, good, good, bad, good]
    # No pruner: every trial trains its 3 epochs; the budget of 200 s fits 6 trials and 20 s
    # of the 7th, which the budget cuts (not counted as a stop).
    plain = bench.replay(stream, "none", 0.99, 200.0, 0)
    assert (plain.started, plain.stopped, plain.reached, plain.best) == (7, 0, 30.0, 0.99)
    # Optuna's default median pruner stops the bad curve after its first epoch (0.50 below
    # the five earlier trials' median 0.90): 20 s saved, the 7th trial then fits.
    eager = bench.replay(stream, "median-eager", 0.99, 200.0, 0)
    assert (eager.started, eager.stopped, eager.false_stops) == (7, 1, 0)
    # With the shipped warm-up (no verdict before epoch 6) a 3-epoch curve is never stopped.
    assert bench.replay(stream, "median", 0.99, 200.0, 0).stopped == 0
