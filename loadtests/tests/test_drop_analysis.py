"""The drop's analysis (loadtests/drop/analysis.py) on made-up runs: which seconds judge the
admission rate."""

from __future__ import annotations

from types import SimpleNamespace

from loadtests.drop.analysis import timing

OPENS = 1_000.0


def run_with(samples: list[dict]) -> SimpleNamespace:
    return SimpleNamespace(cfg=SimpleNamespace(opens_at=OPENS), seats=600, admit=11,
                           active_limit=100, admit_per_seat=0, per_buyer=1.0, hold_ttl=3.0,
                           samples=samples)


def admitted(per_second: list[int]) -> list[dict]:
    return [{"type": "ADMITTED", "at": str(int((OPENS + s + 0.01) * 1000)), "count": str(n)}
            for s, n in enumerate(per_second)]


def test_a_second_in_which_the_active_limit_bound_does_not_judge_the_rate() -> None:
    """The stats sampled just before second 4 say 20 places are free; by its end the active
    limit is reached: the tick admitted the 8 the room allowed, as it must. The sample before
    a second may be up to a second old, so a second judges the rate only when it also ends
    with room left (the drop's smoke test saw min 8 of 11 this way)."""
    active = [0, 11, 22, 33, 80, 100, 100]
    samples = [{"epoch": OPENS + s - 0.3, "waiting": 500, "active": a, "sold": 0}
               for s, a in enumerate(active)]
    t = timing(run_with(samples), [], admitted([11, 11, 11, 11, 8, 0]))
    assert t["admit_rate_min"] == 11 and t["admit_rate_max"] == 11
    assert t["admit_seconds"] == 4  # seconds 0-3; 4 ended at the limit, 5 began there
