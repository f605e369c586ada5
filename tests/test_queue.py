"""Queue tokens: idempotent issue, the ACTIVE cap and admission rate, FIFO positions, idle
expiry of WAITING tokens, TTL of ACTIVE ones, and admission by the background tick."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from engine import queue
from engine.config import Settings
from engine.keys import concert_keys
from engine.store import Store, connect
from engine.tick import tick as tick_once
from tests.conftest import CONCERT, auth, waiting_count

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)


def issue(client: TestClient, customer: int, concert: int = CONCERT) -> dict:
    resp = client.post("/api/token/issue", json={"customerId": customer, "concertId": concert})
    assert resp.status_code == 200, resp.text
    return resp.json()


def status(client: TestClient, token: str) -> tuple[int, dict]:
    resp = client.get("/api/token/status", headers=auth(token))
    return resp.status_code, resp.json()


def wait_for_fresh_second(r: redis.Redis) -> None:
    """Sleep until early in a Redis second, so a short burst stays within one second."""
    while r.time()[1] > 300_000:
        time.sleep(0.05)


def test_issue_is_idempotent_per_customer_and_concert(client: TestClient) -> None:
    a, again = issue(client, 1), issue(client, 1)
    assert a["tokenValue"] == again["tokenValue"]
    assert issue(client, 2)["tokenValue"] != a["tokenValue"]
    assert issue(client, 1, concert=3)["tokenValue"] != a["tokenValue"]
    # The value names its concert, customer and place (seq), with a 128-bit mac of ours:
    # another mac, or another place under the same mac, is refused.
    concert, customer, seq, mac = a["tokenValue"].split(".")
    assert (int(concert), int(customer), int(seq), len(mac)) == (CONCERT, 1, 1, 32)
    for forged in (f"{concert}.{customer}.{seq}.{'0' * 32}",
                   f"{concert}.{customer}.{int(seq) + 1}.{mac}", f"{concert}.2.{seq}.{mac}"):
        code, body = status(client, forged)
        assert code == 401 and body["code"] == "TOKEN_UNKNOWN", forged


def test_unknown_concert_is_404(client: TestClient) -> None:
    resp = client.post("/api/token/issue", json={"customerId": 1, "concertId": 999})
    assert resp.status_code == 404 and resp.json()["code"] == "CONCERT_NOT_FOUND"


def test_active_cap_and_fifo_positions(make_client: Callable[..., TestClient], catalog) -> None:
    client = make_client(active_limit=2)
    assert [issue(client, c)["status"] for c in (1, 2)] == ["ACTIVE", "ACTIVE"]
    waiting = [issue(client, c) for c in (3, 4, 5)]
    assert [w["status"] for w in waiting] == ["WAITING"] * 3
    assert [w["position"] for w in waiting] == [1, 2, 3]
    assert all(w["estimatedWaitSeconds"] >= 1 and w["expiresAt"] is None for w in waiting)
    # Re-issue and polling keep the place in line.
    assert issue(client, 4)["position"] == 2
    assert status(client, waiting[2]["tokenValue"])[1]["position"] == 3
    # A WAITING token may not look at seats.
    resp = client.get(f"/api/{CONCERT}/available-dates", headers=auth(waiting[0]["tokenValue"]))
    assert resp.status_code == 403 and resp.json()["code"] == "TOKEN_WAITING"


def test_admission_rate_per_second(make_client: Callable[..., TestClient], catalog) -> None:
    client = make_client(admit_per_second=2)
    wait_for_fresh_second(catalog)
    tokens = [issue(client, c) for c in range(1, 6)]
    assert [t["status"] for t in tokens] == ["ACTIVE", "ACTIVE", "WAITING", "WAITING", "WAITING"]
    # Two admitted this second: position / 2 a second, rounded up.
    assert [t["estimatedWaitSeconds"] for t in tokens] == [0, 0, 1, 1, 2]
    time.sleep(1.0)  # next second: room for two more, admitted in FIFO order on the next call
    third = issue(client, 3)
    assert third["status"] == "ACTIVE"
    assert issue(client, 5)["position"] == 1  # 4 was admitted with 3


def test_waiters_are_told_when_to_poll_again(make_client: Callable[..., TestClient],
                                             catalog) -> None:
    """pollAfterSeconds: a quarter of the wait, at most 30 s and a third of the idle limit
    (a poll keeps the token in line), at least 1 s; drawn from the top fifth below that bound,
    so that waiters told alike at one moment drift apart instead of polling in waves."""
    client = make_client(active_limit=1, admit_per_second=1)
    first = issue(client, 1)
    assert first["status"] == "ACTIVE" and first["pollAfterSeconds"] is None
    for idle, cap in ((120, 30), (9, 3)):  # the second: behind the first's 300 waiters
        client = make_client(active_limit=1, admit_per_second=1, waiting_idle_seconds=idle)
        base = 1000 * idle
        views = [issue(client, base + c) for c in range(1, 301)]
        assert all(v["status"] == "WAITING" for v in views)
        for v in views:
            most = max(1, min(cap, math.ceil(v["estimatedWaitSeconds"] / 4)))
            assert most - most // 5 <= v["pollAfterSeconds"] <= most, v
        far = [v["pollAfterSeconds"] for v in views if v["estimatedWaitSeconds"] >= 4 * cap]
        assert len(far) > 100 and max(far) == cap
        if cap >= 5:
            assert len(set(far)) > 1  # drawn, not one value for everyone
        polled = client.get("/api/token/status", headers=auth(views[-1]["tokenValue"])).json()
        assert cap - cap // 5 <= polled["pollAfterSeconds"] <= cap


def test_idle_waiting_token_leaves_the_queue(
    make_client: Callable[..., TestClient], catalog: redis.Redis
) -> None:
    client = make_client(active_limit=1, waiting_idle_seconds=0.4, tick_seconds=0.1)
    issue(client, 1)
    idle, kept = issue(client, 2), issue(client, 3)
    assert (idle["position"], kept["position"]) == (1, 2)
    for _ in range(8):  # keep polling 3 while 2 stays silent past the idle limit
        time.sleep(0.1)
        assert status(client, kept["tokenValue"])[0] == 200
    code, body = status(client, idle["tokenValue"])
    assert code == 401 and body["code"] == "TOKEN_UNKNOWN"
    # A serving counter: the place of the waiter who left counts until the queue passes it.
    assert status(client, kept["tokenValue"])[1]["position"] == 2
    k = concert_keys(CONCERT)
    assert waiting_count(catalog) == 1
    assert catalog.hget(k.tokens, "2") is None  # nothing of the abandoned token is left
    assert catalog.hlen(k.seqs) == 1
    # Issuing again after expiry starts a new token at the end of the line.
    again = issue(client, 2)
    assert again["tokenValue"] != idle["tokenValue"] and again["position"] == 3


def test_active_token_expires_and_frees_its_slot(
    make_client: Callable[..., TestClient], catalog: redis.Redis
) -> None:
    client = make_client(active_limit=1, active_ttl_seconds=1.0, tick_seconds=0.1)
    first = issue(client, 1)
    second = issue(client, 2)
    assert second["status"] == "WAITING"
    time.sleep(1.3)  # 1 expires at 1.0 s; the tick admits 2 by 1.1 s, for a second
    assert status(client, first["tokenValue"])[0] == 401
    # The background tick admitted 2 without any call from it; polling only confirms.
    assert catalog.zscore(concert_keys(CONCERT).active, "2") is not None
    code, body = status(client, second["tokenValue"])
    assert code == 200 and body["status"] == "ACTIVE" and body["position"] == 0
    renewed = issue(client, 1)
    assert renewed["tokenValue"] != first["tokenValue"]


def test_token_of_another_concert_is_404(client: TestClient) -> None:
    other = issue(client, 1, concert=3)["tokenValue"]
    resp = client.get(f"/api/{CONCERT}/available-dates", headers=auth(other))
    assert resp.status_code == 404 and resp.json()["code"] == "CONCERT_NOT_FOUND"
    resp = client.get("/api/41150/available-seats", headers=auth(other))
    assert resp.status_code == 404 and resp.json()["code"] == "OPTION_NOT_FOUND"


def test_bad_tokens_are_401(client: TestClient) -> None:
    real = issue(client, 1)["tokenValue"]
    forged = real[:-1] + ("0" if real[-1] != "0" else "1")
    for value in ["", "nope", forged, real.upper(), "2.1.{abc}", f"2.1..{real}", "Bearer "]:
        resp = client.get("/api/token/status", headers={"Authorization": value})
        assert resp.status_code == 401, value
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/token/status").status_code == 401


def test_a_full_queue_takes_no_one_new_and_writes_nothing(
    make_client: Callable[..., TestClient], catalog: redis.Redis
) -> None:
    client = make_client(active_limit=1, max_waiting=3)
    issue(client, 1)  # ACTIVE
    waiting = [issue(client, c) for c in (2, 3, 4)]
    assert [w["position"] for w in waiting] == [1, 2, 3]
    k = concert_keys(CONCERT)
    before = {key: catalog.dump(key) for key in catalog.keys(f"{k.tag}:*")}
    resp = client.post("/api/token/issue", json={"customerId": 5, "concertId": CONCERT})
    assert resp.status_code == 503 and resp.json()["code"] == "QUEUE_FULL"
    assert resp.headers["content-type"] == "application/problem+json"
    assert int(resp.headers["retry-after"]) >= 1
    assert {key: catalog.dump(key) for key in catalog.keys(f"{k.tag}:*")} == before
    # Those already in line keep their tokens: a re-issue answers theirs.
    assert issue(client, 3)["tokenValue"] == waiting[1]["tokenValue"]


def test_the_idle_sweep_keeps_up_with_fake_arrivals(settings: Settings,
                                                    catalog: redis.Redis) -> None:
    """Tokens issued for made-up customers who never poll, while the ACTIVE limit is full (so
    admission pops nothing): one tick after they went idle, all of them are gone. The sweep
    used to drop at most 1,000 a tick per worker, so faster arrivals piled up."""
    s = dataclasses.replace(settings, active_limit=1, waiting_idle_seconds=0.3, tick_seconds=1)

    async def go() -> tuple[int, dict]:
        store = Store(connect(s), s)
        for lo in range(1, 5002, 500):
            await asyncio.gather(*[queue.issue_token(store, c, CONCERT)
                                   for c in range(lo, min(lo + 500, 5002))])
        waiting = waiting_count(catalog)
        await asyncio.sleep(0.65)  # every waiter idle now (unseen for two periods of 0.3 s)
        ticked = await tick_once(store, CONCERT)
        await store.aclose()
        return waiting, ticked

    waiting, ticked = asyncio.run(go())
    assert waiting == 5000
    assert ticked["dropped"] == 5000
    assert waiting_count(catalog) == 0
    assert catalog.hlen(concert_keys(CONCERT).seqs) == 0
    assert catalog.hlen(concert_keys(CONCERT).tokens) == 1  # the ACTIVE one


def test_a_re_issue_seen_by_redis_keeps_the_views_positions_from_going_back(
        make_client: Callable[..., TestClient], catalog: redis.Redis,
        settings: Settings) -> None:
    """One worker: its view answers a waiter 5th; a shopper leaves and a poll near the head
    takes the room (outside the tick); the waiter's page reloads, a re-issue that Redis
    answers, 4th. Its next poll, answered from the same view, said 5th again (a review found
    it): the places Redis showed passed since the read now count in the view's answers."""
    from engine import operator

    client = make_client(active_limit=1, admit_per_second=100, queue_view_seconds=3600)
    tokens = {c: issue(client, c) for c in range(1, 7)}
    assert [tokens[c]["position"] for c in range(2, 7)] == [1, 2, 3, 4, 5]
    assert status(client, tokens[6]["tokenValue"])[1]["position"] == 5  # the view, read now

    async def leave() -> None:
        store = Store(connect(settings), settings)
        await operator.revoke(store, CONCERT, 1)
        await store.aclose()

    asyncio.run(leave())
    assert status(client, tokens[2]["tokenValue"])[1]["status"] == "ACTIVE"  # near the head
    again = issue(client, 6)
    assert again["tokenValue"] == tokens[6]["tokenValue"] and again["position"] == 4, again
    _, body = status(client, tokens[6]["tokenValue"])
    assert body["status"] == "WAITING" and body["position"] == 4, body
