"""A queue token's reserve-and-cancel loop ends: each closed hold's record is kept a day (a
late pay of it is 409, not 404), so a token that cancelled twice its ticket limit of holds
(at least 8) holds no more, 409 CANCEL_LIMIT; a new token may. A review kept 0.7-0.8 MB a
second of closed records from one client thread, and past maxmemory a new token was 503."""

from __future__ import annotations

import asyncio

import redis
from starlette.testclient import TestClient

from engine.config import Settings
from engine.keys import concert_keys
from engine.store import Store, connect
from engine.tick import tick as tick_once
from tests.conftest import CONCERT, OPTION, active_token, auth, seat_id

SEAT = seat_id(OPTION, 1)


def reserve(client: TestClient, token: str, **body: object) -> tuple[int, dict]:
    resp = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": OPTION, **(body or {"seatId": SEAT})})
    return resp.status_code, resp.json()


def cancel(client: TestClient, token: str, rid: str) -> None:
    resp = client.delete(f"/api/reserve/{rid}", headers=auth(token))
    assert resp.status_code == 200 and resp.json()["status"] == "CANCELLED", resp.text


def tick(settings: Settings) -> None:
    async def go() -> None:
        store = Store(connect(settings), settings)
        await tick_once(store, CONCERT)
        await store.aclose()

    asyncio.run(go())


def closed_records(r: redis.Redis, customer: int) -> int:
    return sum(f'"customer":"{customer}"'.encode() in v and b'"CANCELLED"' in v
               for v in r.hvals(concert_keys(CONCERT).res))


def test_a_token_that_cancelled_its_limit_holds_no_more(
        client: TestClient, catalog: redis.Redis, settings: Settings) -> None:
    token = active_token(client, 1)
    for _ in range(8):  # the tests' settings have no ticket limit: the floor, 8
        status, held = reserve(client, token)
        assert status == 200, held
        cancel(client, token, held["reservationId"])
    for body in ({"seatId": SEAT}, {"quantity": 2}):  # one seat, and the best seats together
        status, problem = reserve(client, token, **body)
        assert status == 409 and problem["code"] == "CANCEL_LIMIT", problem
    assert closed_records(catalog, 1) == 8
    other = active_token(client, 2)  # another customer's token is not counted with it
    status, held = reserve(client, other)
    assert status == 200, held
    cancel(client, other, held["reservationId"])

    # The count lives with its token: the tick keeps it while the token does ...
    tick(settings)
    assert reserve(client, token)[0] == 409
    # ... and drops it once the token has ended; a new token holds.
    k = concert_keys(CONCERT)
    entry = catalog.hget(k.tokens, 1)
    assert entry is not None and b"@" in entry
    catalog.hset(k.tokens, 1, entry.split(b"@")[0] + b"@1")  # its time is up
    tick(settings)
    assert catalog.hget(k.tickets, 1) is None, catalog.hget(k.tickets, 1)
    fresh = active_token(client, 1)
    assert fresh != token
    status, held = reserve(client, fresh)
    assert status == 200, held


def test_holds_that_expire_do_not_count_as_cancels(
        client: TestClient, catalog: redis.Redis, settings: Settings) -> None:
    """Holds left to expire are not the customer's cancels (they take a hold's time each)."""
    token = active_token(client, 1)
    k = concert_keys(CONCERT)
    for _ in range(9):
        status, held = reserve(client, token)
        assert status == 200, held
        catalog.zadd(k.holds, {held["reservationId"].split(".")[1]: 1})  # its time is up
        tick(settings)  # the tick releases it: EXPIRED
    assert reserve(client, token)[0] == 200


def test_a_hold_no_pay_touched_is_kept_the_short_time_only(
        make_client, catalog: redis.Redis, settings: Settings) -> None:
    """A cancelled hold that no pay touched goes after CLOSED_HOLD_KEEP_SECONDS (it has no pay
    records: a late pay of it is 409 within that time, 404 after), one a pay touched after
    IDEMPOTENCY_TTL_SECONDS (its pay records are kept as long)."""
    import dataclasses
    import time

    s = dataclasses.replace(settings, idempotency_ttl_seconds=3600,
                            closed_hold_keep_seconds=0.05)
    client = make_client(idempotency_ttl_seconds=3600, closed_hold_keep_seconds=0.05)
    k = concert_keys(CONCERT)
    tick(s)  # the tick writes the shift the closing scripts read
    assert catalog.hget(k.concert, "closedshift") == b"%d" % (3_600_000 - 50)
    token = active_token(client, 1)
    rids = []
    for touched in (False, True):
        status, held = reserve(client, token)
        assert status == 200, held
        rid = held["reservationId"].split(".")[1]
        if touched:  # as if a pay had begun and been refused: its attempt counts one
            rec = catalog.hget(k.res, rid).replace(b'"attempt":0', b'"attempt":1')
            catalog.hset(k.res, rid, rec)
        cancel(client, token, held["reservationId"])
        rids.append((held["reservationId"], rid))
    late = client.post("/api/pay", headers=auth(token),
                       json={"reservationId": rids[0][0]})
    assert late.status_code == 409, late.text
    time.sleep(0.1)
    tick(s)
    assert catalog.hget(k.res, rids[0][1]) is None and catalog.zscore(k.gone, rids[0][1]) is None
    assert catalog.hget(k.res, rids[1][1]) is not None  # kept the day's time
    late = client.post("/api/pay", headers=auth(token), json={"reservationId": rids[0][0]})
    assert late.status_code == 404 and late.json()["code"] == "RESERVATION_NOT_FOUND", late.text


def test_open_holds_count_as_cancels_to_come(make_client, catalog: redis.Redis) -> None:
    """With a ticket limit (4: 8 cancels), a token 7 cancels in asks 4 seats together: had it
    held them it could cancel them too, 11 closed by one token (a review found it). Refused;
    one seat more is the last."""
    client = make_client(max_tickets_per_customer=4)
    token = active_token(client, 1)
    for _ in range(7):
        status, held = reserve(client, token)
        assert status == 200, held
        cancel(client, token, held["reservationId"])
    status, problem = reserve(client, token, quantity=4)
    assert status == 409 and problem["code"] == "CANCEL_LIMIT", problem
    status, held = reserve(client, token)
    assert status == 200, held
    cancel(client, token, held["reservationId"])
    assert reserve(client, token)[1]["code"] == "CANCEL_LIMIT"
    assert closed_records(catalog, 1) == 8


def test_its_own_expired_holds_are_released_before_the_count(
        make_client, catalog: redis.Redis) -> None:
    """5 cancels, then 3 holds whose time is up but that nothing released yet: they are not
    holds it could still cancel. The reserve releases them first (as for the ticket limit)
    and holds; counted as open they made 5 + 3 + 1 > 8 and a refusal."""
    client = make_client(max_tickets_per_customer=4)
    token = active_token(client, 1)
    k = concert_keys(CONCERT)
    for _ in range(5):
        status, held = reserve(client, token)
        assert status == 200, held
        cancel(client, token, held["reservationId"])
    for n in (2, 3, 4):
        status, held = reserve(client, token, seatId=seat_id(OPTION, n))
        assert status == 200, held
        catalog.zadd(k.holds, {held["reservationId"].split(".")[1]: 1})  # its time is up
    status, held = reserve(client, token)
    assert status == 200, held
