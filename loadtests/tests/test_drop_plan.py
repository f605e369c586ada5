"""The ticket drop's plan (a pure function of its seed) and the statistics its report judges
fairness with: rank correlation, FIFO inversions, percentiles."""

from __future__ import annotations

import itertools
import random

import pytest

from loadtests import dropgen


def config(buyers: int = 1000, seed: int = 13) -> dropgen.DropConfig:
    return dropgen.DropConfig(base="http://127.0.0.1:1", concert=13, buyers=buyers,
                              options=[{"id": 1, "sections": ["A", "B"], "seats": 10},
                                       {"id": 2, "sections": ["A", "B"], "seats": 10}],
                              t_start=1000.0, opens_at=1008.0, active_ttl=90, out_dir="/tmp",
                              seed=seed)


def test_the_plan_is_a_pure_function_of_its_seed() -> None:
    first, second = dropgen.make_plan(config()), dropgen.make_plan(config())
    assert first == second
    assert dropgen.make_plan(config(seed=14)) != first
    assert [p.index for p in first] == list(range(1000))
    assert all(x.arrival <= y.arrival for x, y in itertools.pairwise(first))
    pre = sum(1 for p in first if p.arrival < 8)
    assert 60 < pre < 140  # pre_share 0.1
    assert len({p.customer for p in first}) == 1000
    assert all(p.quantity == 4 and p.after == "pay" for p in first if p.greedy)
    assert 1.5 < dropgen.expected_seats(first) < 2.3


def test_spearman_and_fifo_inversions() -> None:
    xs = list(range(200))
    assert dropgen.spearman(xs, xs) == pytest.approx(1)
    assert dropgen.spearman(xs, xs[::-1]) == pytest.approx(-1)
    rng = random.Random(1)
    shuffled = xs[:]
    rng.shuffle(shuffled)
    assert abs(dropgen.spearman(xs, shuffled)) < 0.2
    assert dropgen.ranks([3, 1, 3, 2]) == [3.5, 1, 3.5, 2]
    assert dropgen.inversions_beyond([(0, 0), (1, 1), (2, 5), (3, 2)], 0.5) == 1
    assert dropgen.percentile([1, 2, 3, 4], 0.5) == 2.5
