"""The background tick scales out: with several workers each concert is ticked about once a
period in all (a lease in the concert's slot), concerts are ticked concurrently, and one
concert in trouble holds up none of the others."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import redis

from engine import tick
from engine.config import Settings
from engine.errors import StoreUnavailable
from engine.keys import concert_keys
from engine.seed import Option, Seat, create_concert
from tests.hooks import HookedStore

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

CONCERTS = range(100, 130)


def many_concerts(r: redis.Redis) -> None:
    for c in CONCERTS:
        create_concert(r, c, f"Concert {c}", [Option(c * 10, "2027-03-01T19:00:00+09:00",
                                                     (Seat(c * 1000 + 1, 1, 100),))])


def test_workers_share_the_ticks_one_per_concert_a_period(settings: Settings,
                                                          r: redis.Redis) -> None:
    many_concerts(r)
    s = dataclasses.replace(settings, tick_seconds=0.5)

    async def go() -> list[int]:
        workers = [HookedStore(s) for _ in range(4)]
        first = await asyncio.gather(*(tick.tick_all(w) for w in workers))
        again = await asyncio.gather(*(tick.tick_all(w) for w in workers))
        await asyncio.sleep(tick.lease_ms(workers[0]) / 1000 + 0.05)  # the leases lapse
        later = await asyncio.gather(*(tick.tick_all(w) for w in workers))
        for w in workers:
            await w.aclose()
        return [sum(first), sum(again), sum(later)]

    assert asyncio.run(go()) == [len(CONCERTS), 0, len(CONCERTS)]
    assert r.pttl(concert_keys(CONCERTS[0]).lease) > 0  # the lease expires by itself


def test_a_concert_in_trouble_holds_up_none_of_the_others(settings: Settings,
                                                          r: redis.Redis) -> None:
    many_concerts(r)
    s = dataclasses.replace(settings, tick_seconds=0.2)
    sick = concert_keys(CONCERTS[3]).tokens
    ticked: list[str] = []

    async def hook(name: str, keys: list, _args: list) -> None:
        if name == "admit" and keys[0] == sick:
            raise StoreUnavailable("its master is down")
        if name == "admit":
            ticked.append(keys[0])

    async def go() -> tuple[int, float]:
        store = HookedStore(s, hook)
        t0 = time.monotonic()
        n = await tick.tick_all(store)
        await store.aclose()
        return n, time.monotonic() - t0

    n, took = asyncio.run(go())
    assert n == len(CONCERTS) - 1 == len(ticked) and sick not in ticked
    assert took < 1  # concurrently: one round of pipelined calls, not thirty in a row
