"""The ticket drop's plan: a pure function of the run's configuration and seed."""

from __future__ import annotations

import itertools

from loadtests.drop import plan


def config(buyers: int = 1000, seed: int = 13) -> plan.DropConfig:
    return plan.DropConfig(base="http://127.0.0.1:1", concert=13, buyers=buyers,
                              options=[{"id": 1, "sections": ["A", "B"], "seats": 10},
                                       {"id": 2, "sections": ["A", "B"], "seats": 10}],
                              t_start=1000.0, opens_at=1008.0, active_ttl=90, out_dir="/tmp",
                              seed=seed)


def test_the_plan_is_a_pure_function_of_its_seed() -> None:
    first, second = plan.make_plan(config()), plan.make_plan(config())
    assert first == second
    assert plan.make_plan(config(seed=14)) != first
    assert [p.index for p in first] == list(range(1000))
    assert all(x.arrival <= y.arrival for x, y in itertools.pairwise(first))
    pre = sum(1 for p in first if p.arrival < 8)
    assert 60 < pre < 140  # pre_share 0.1
    assert len({p.customer for p in first}) == 1000
    assert all(p.quantity == 4 and p.after == "pay" for p in first if p.greedy)
    assert 1.5 < plan.expected_seats(first) < 2.3
