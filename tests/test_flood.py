"""Open mode under a flood: anonymous charges to made-up customers and fresh Idempotency-Keys
stop at MEMORY_WATERMARK of a master's maxmemory (503 STORE_FULL, nothing applied), so token
issue and the tick go on for real customers; and a Redis that is full still ticks (expired
holds released, admissions made), since the tick is what frees memory."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis
from redis.cluster import RedisCluster
from starlette.testclient import TestClient

from devstack.api_server import Server
from engine import memory, queue, tick, wallet
from engine.config import Settings
from engine.errors import StoreUnavailable
from engine.keys import TOKEN_KEY, CustomerKeys, concert_keys
from engine.store import Store, connect
from tests.conftest import CONCERT, OPTION, auth, seat_id

pytestmark = pytest.mark.both_modes  # the watermark is per master (tests/conftest.py)

NEW = 10_000_000  # customer ids from here on were never seen


@pytest.fixture
def masters(r: redis.Redis) -> Iterator[list[redis.Redis]]:
    """A client on each master of this mode's Redis; their maxmemory is put back after."""
    if isinstance(r, RedisCluster):
        nodes = [redis.Redis(host=n.host, port=n.port) for n in r.get_primaries()]
    else:
        nodes = [r]
    before = [n.config_get("maxmemory")["maxmemory"] for n in nodes]
    yield nodes
    for node, limit in zip(nodes, before, strict=True):
        node.config_set("maxmemory", limit)


def used(node: redis.Redis) -> int:
    return int(node.info("memory")["used_memory"])


def idem_key(customer: int, key: str) -> str:
    return CustomerKeys(customer).idempotency(hashlib.sha256(key.encode()).hexdigest()[:32])


def test_the_watermark_is_a_share() -> None:
    assert Settings(memory_watermark=0).memory_watermark == 0  # off
    with pytest.raises(ValueError, match="MEMORY_WATERMARK"):
        Settings(memory_watermark=1.5)


def test_past_the_watermark_a_charge_adds_no_customer_and_no_key(
        settings: Settings, catalog: redis.Redis, masters: list[redis.Redis]) -> None:
    s = dataclasses.replace(settings, memory_watermark=0.5)

    async def go() -> None:
        store = Store(connect(s), s)
        await wallet.charge(store, 1, 100, "before")  # customer 1 is known, and so is this key
        assert await memory.refresh(store) == frozenset()
        for node in masters:  # past half of maxmemory, but not full
            node.config_set("maxmemory", used(node) * 3 // 2)
        assert len(await memory.refresh(store)) == len(masters)
        with pytest.raises(StoreUnavailable) as refused:
            await wallet.charge(store, NEW, 1)
        assert refused.value.full and not refused.value.maybe_applied
        with pytest.raises(StoreUnavailable):
            await wallet.charge(store, 1, 1, "fresh")
        # What adds no customer and no key goes on: a replay, a known customer's charge.
        assert await wallet.charge(store, 1, 100, "before") == (
            {"customerId": 1, "balance": 10_001}, True)
        assert (await wallet.charge(store, 1, 5))[0]["balance"] == 10_001.05
        for node in masters:
            node.config_set("maxmemory", "1gb")
        assert await memory.refresh(store) == frozenset()
        assert (await wallet.charge(store, NEW + 1, 1, "fresh"))[0]["balance"] == 0.01
        await store.aclose()

    asyncio.run(go())
    assert not catalog.exists(CustomerKeys(NEW).balance, CustomerKeys(NEW).history)
    assert catalog.exists(idem_key(NEW + 1, "fresh")) and not catalog.exists(idem_key(1, "fresh"))


def test_past_the_watermark_a_master_stays_so_until_well_below(
        settings: Settings, masters: list[redis.Redis]) -> None:
    """A flood held at the mark moves used_memory a little either way of it: a master taken
    as past it stays so until it uses HYSTERESIS of its maxmemory less, or the flood would
    get through in bursts (test_flood's flood did: 500 keys in a second on the cluster)."""
    s = dataclasses.replace(settings, memory_watermark=0.5)

    def at(share: float) -> None:  # maxmemory such that each master uses `share` of it
        for node in masters:
            node.config_set("maxmemory", int(used(node) / share))

    async def go() -> None:
        store = Store(connect(s), s)
        await wallet.balance(store, 1)  # connected: a cluster's masters known
        try:
            at(0.4)
            assert await memory.refresh(store) == frozenset()
            at(0.5 + memory.HYSTERESIS / 2)
            assert len(await memory.refresh(store)) == len(masters)
            at(0.5 - memory.HYSTERESIS / 2)  # just below: still past
            assert len(await memory.refresh(store)) == len(masters)
            at(0.5 - memory.HYSTERESIS * 2)  # well below: new customers again
            assert await memory.refresh(store) == frozenset()
            at(0.5 - memory.HYSTERESIS / 2)  # and below the mark itself, not past
            assert await memory.refresh(store) == frozenset()
        finally:
            for node in masters:
                node.config_set("maxmemory", "1gb")
            await store.aclose()

    asyncio.run(go())


def test_a_worker_started_on_a_full_redis_reads_the_token_key(
        settings: Settings, r: redis.Redis, masters: list[redis.Redis]) -> None:
    """A worker that starts while Redis is full (autoscaled during a flood) reads the key the
    first one made: a SET NX, even one that would change nothing, is refused then, and the
    worker would answer 503 to every token until memory fell. A short key is refused."""
    s = dataclasses.replace(settings, queue_token_key="")
    r.set(TOKEN_KEY, "k" * 64)
    for node in masters:
        node.config_set("maxmemory", 1)

    async def go() -> bytes:
        store = Store(connect(s), s)
        try:
            return await queue.token_key(store)
        finally:
            await store.aclose()

    assert asyncio.run(go()) == b"k" * 64
    with pytest.raises(ValueError, match="QUEUE_TOKEN_KEY"):
        Settings(queue_token_key="short")


def test_a_full_redis_still_ticks(settings: Settings, make_client: Callable[..., TestClient],
                                  catalog: redis.Redis, masters: list[redis.Redis]) -> None:
    quick = {"active_limit": 1, "active_ttl_seconds": 0.3, "hold_ttl_seconds": 0.3}
    client = make_client(**quick)
    first = client.post("/api/token/issue", json={"customerId": 1, "concertId": CONCERT}).json()
    held = client.post("/api/reserve", headers=auth(first["tokenValue"]),
                       json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)})
    assert held.status_code == 200, held.text
    second = client.post("/api/token/issue", json={"customerId": 2, "concertId": CONCERT})
    assert second.json()["status"] == "WAITING"
    k = concert_keys(CONCERT)
    time.sleep(0.4)  # the hold and the ACTIVE token have expired; nothing has swept them
    assert catalog.zcard(k.holds) == 1 and catalog.zscore(k.active, "2") is None
    for node in masters:  # full: a little below what is used now
        node.config_set("maxmemory", used(node) - 256 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        catalog.set(k.lease, "x", nx=True, px=100)  # the lease as the tick took it

    async def go() -> int:
        s = dataclasses.replace(settings, **quick)
        store = Store(connect(s), s)
        ticked = await tick.tick_all(store)  # with the lease, as the API ticks
        await store.aclose()
        return ticked

    assert asyncio.run(go()) >= 1  # concert 2 at least
    assert catalog.zcard(k.holds) == 0 and int(catalog.hget(k.free, str(OPTION))) == 4
    assert catalog.zscore(k.active, "2") is not None  # admitted
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        catalog.set(k.lease, "x", nx=True, px=100)  # it was full all along


class Flood:
    """Threads that charge 0.01 as fast as they can, each request adding what only a flood
    grows: a made-up customer (even requests) or a fresh Idempotency-Key for one of the seeded
    customers 1-200 (odd), on keep-alive connections, until ``stop``."""

    def __init__(self, port: int, threads: int = 8) -> None:
        self.port, self.codes, self.refused = port, Counter[str](), list[int]()
        self.lock, self.done = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t, threads))
                        for t in range(threads)]

    def __enter__(self) -> Flood:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        for t in self.threads:
            t.join()

    def _run(self, first: int, step: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = first
        while not self.done.is_set():
            customer, headers = (NEW + i, {}) if i % 2 == 0 else (1 + i % 200,
                                                                  {"Idempotency-Key": f"f{i}"})
            conn.request("PATCH", "/api/point/charge", headers=headers,
                         body=orjson.dumps({"customerId": customer, "amount": 0.01}))
            resp = conn.getresponse()
            body = orjson.loads(resp.read())
            with self.lock:
                self.codes[f"{resp.status} {body.get('code', '')}".strip()] += 1
                if resp.status == 503 and customer >= NEW:
                    self.refused.append(customer)
            i += step

    def count(self, what: str) -> int:
        with self.lock:
            return self.codes[what]


def wait_for(what: Callable[[], object], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def test_a_flood_of_anonymous_charges_leaves_the_queue_working(
        live_server: Callable[..., Server], catalog: redis.Redis,
        masters: list[redis.Redis]) -> None:
    share = 0.5  # half the way from the mark to full is the slack the bound is checked with
    # Active and hold TTLs that end while the flood goes on.
    api = live_server(TICK_SECONDS="0.2", ACTIVE_LIMIT="1", ACTIVE_TTL_SECONDS="1",
                      HOLD_TTL_SECONDS="1", MEMORY_WATERMARK=str(share))
    k = concert_keys(CONCERT)
    # Settled first: a script's first run costs Redis ~100 KB for a while (charge's here, the
    # tick's once the concerts' `rate` exists), as much as the flood's own bytes.
    assert call(api.port, "PATCH", "/api/point/charge", {"customerId": 1, "amount": 1})[0] == 200
    wait_for(lambda: catalog.exists(k.rate, concert_keys(3).rate) == 2, 5, "no first tick")
    time.sleep(0.3)
    # Each master's watermark 200 KB above what it uses now: ~600 charges' worth.
    limits = [int((used(node) + 200_000) / share) for node in masters]
    for node, limit in zip(masters, limits, strict=True):
        node.config_set("maxmemory", limit)
    # Every master past its mark at some moment (a thousand refusals may all be one master's
    # while another still has room). Once past, a master may fall back a little (the tick's
    # housekeeping) and stay refused: the watermark's hysteresis holds it until 2 % below.
    reached = [False] * len(masters)

    def past_marks() -> bool:
        for i, (node, limit) in enumerate(zip(masters, limits, strict=True)):
            reached[i] = reached[i] or used(node) > share * limit
        return all(reached)

    def refused() -> bool:
        past_marks()  # a master's moment past its mark may come before the thousandth refusal
        return flood.count("503 STORE_FULL") >= 1000

    with Flood(api.port) as flood:
        wait_for(refused, 60, "the flood never refused")
        wait_for(past_marks, 30, "a master never reached its mark")  # then the next reading:
        time.sleep(2 * memory.CHECK_SECONDS)
        assert set(flood.codes) <= {"200", "503 STORE_FULL"}, flood.codes
        # Refused: no more growth while it goes on (a tick's lease comes and goes).
        keys = sum(node.dbsize() for node in masters)
        time.sleep(1)
        assert sum(node.dbsize() for node in masters) <= keys + 2
        for node, limit in zip(masters, limits, strict=True):  # well below full
            assert used(node) < share * limit + (1 - share) * limit / 2
        # Real customers: issue, hold; their hold expires and the next in line is admitted.
        tok = issue(api.port, 1)
        assert tok["status"] == "ACTIVE", tok
        status, held = call(api.port, "POST", "/api/reserve",
                            {"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)},
                            tok["tokenValue"])
        assert status == 200, held
        assert issue(api.port, 2)["status"] == "WAITING"
        wait_for(lambda: catalog.zcard(k.holds) == 0 and catalog.zscore(k.active, "2"), 5,
                 "the tick neither released the expired hold nor admitted the next")
        assert issue(api.port, 3)["status"] == "WAITING"
    assert not any(catalog.exists(CustomerKeys(c).balance) for c in flood.refused[-100:])
    print(f"\nflood: {dict(flood.codes)}")


def call(port: int, method: str, path: str, body: object, token: str = "") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=orjson.dumps(body),
                 headers={"Authorization": token} if token else {})
    resp = conn.getresponse()
    status, data = resp.status, orjson.loads(resp.read())
    conn.close()
    return status, data


def issue(port: int, customer: int) -> dict:
    status, data = call(port, "POST", "/api/token/issue",
                        {"customerId": customer, "concertId": CONCERT})
    assert status == 200, data
    return data
