"""The load tests' statistics (loadtests/generator/stats.py): one percentile for every report,
rank correlation and FIFO inversions (the drop's fairness), the stress ramp's histogram."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from loadtests.generator import stats


def test_percentile_interpolates_between_the_closest_ranks() -> None:
    """One definition for every report (the drop's interpolated; the probe's and the
    connection benchmark's were nearest-rank, the drop's sleep overshoot a third)."""
    assert stats.percentile([4, 1, 3, 2], 0.5) == 2.5  # any order
    assert stats.percentile([4, 1, 3, 2], 0) == 1 and stats.percentile([4, 1, 3, 2], 1) == 4
    assert stats.percentile([1, 2, 3, 4], 0.99) == pytest.approx(3.97)
    assert stats.percentile([7.0], 0.99) == 7.0
    assert stats.percentile([], 0.5) is None
    rng = random.Random(3)
    values = [rng.expovariate(1) for _ in range(1001)]
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    assert [stats.percentile(values, k / 10) for k in range(1, 10)] == pytest.approx(deciles)


def test_spearman_and_fifo_inversions() -> None:
    xs = list(range(200))
    assert stats.spearman(xs, xs) == pytest.approx(1)
    assert stats.spearman(xs, xs[::-1]) == pytest.approx(-1)
    rng = random.Random(1)
    shuffled = xs[:]
    rng.shuffle(shuffled)
    assert abs(stats.spearman(xs, shuffled)) < 0.2
    assert stats.ranks([3, 1, 3, 2]) == [3.5, 1, 3.5, 2]
    assert stats.inversions_beyond([(0, 0), (1, 1), (2, 5), (3, 2)], 0.5) == 1


def test_histogram_percentiles_err_high_by_under_a_bucket() -> None:
    rng = random.Random(2)
    values = [rng.lognormvariate(0, 1) for _ in range(20_000)]
    hist = Counter(stats.bucket(v) for v in values)
    exact = sorted(values)
    for q in (0.5, 0.99):
        got = stats.hist_percentile(hist, q)
        want = exact[int(q * len(exact))]
        assert want <= got * 1.001 and got <= want * stats.BUCKET ** 2
