"""Holds and payment: expiry, cancel, ownership, refusals that change nothing, tokens that
finish after the last pay, and pays interrupted between their steps."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from engine.config import Settings
from engine.ids import parse_reservation, parse_token
from engine.keys import CustomerKeys, concert_keys
from engine.store import Store, connect
from engine.tick import tick as tick_once
from tests.conftest import CONCERT, OPTION, OTHER_OPTION, active_token, auth, seat_id

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

SEAT = seat_id(OPTION, 1)


def hold(client: TestClient, token: str, seat: int = SEAT, option: int = OPTION) -> dict:
    resp = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": option, "seatId": seat})
    assert resp.status_code == 200, resp.text
    return resp.json()


def free_seat_ids(client: TestClient, token: str, option: int = OPTION) -> list[int]:
    resp = client.get(f"/api/{option}/available-seats", headers=auth(token))
    return [s["id"] for s in resp.json()["seats"]]


def free_count(client: TestClient, token: str, option: int = OPTION) -> int:
    dates = client.get(f"/api/{CONCERT}/available-dates", headers=auth(token)).json()["dates"]
    return {d["concertOptionId"]: d["availableSeats"] for d in dates}[option]


def pay(client: TestClient, token: str, reservation_id: str):
    return client.post("/api/pay", headers=auth(token), json={"reservationId": reservation_id})


def balance(client: TestClient, customer: int) -> float:
    return client.get("/api/point", params={"customerId": customer}).json()["balance"]


def test_hold_expiry_releases_the_seat(make_client: Callable[..., TestClient], catalog) -> None:
    client = make_client(hold_ttl_seconds=0.3)
    token = active_token(client, 1)
    held = hold(client, token)
    assert SEAT not in free_seat_ids(client, token) and free_count(client, token) == 3
    time.sleep(0.4)
    assert SEAT in free_seat_ids(client, token)  # released by the read itself: no cron
    assert free_count(client, token) == 4
    before = balance(client, 1)
    resp = pay(client, token, held["reservationId"])
    assert resp.status_code == 409 and resp.json()["code"] == "HOLD_EXPIRED"
    assert balance(client, 1) == before
    hold(client, active_token(client, 2))  # anyone may take it now



def test_a_hold_that_ran_out_stands_in_no_reserves_way(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """A reserve releases holds whose time is up only when one is in its way: the customer's
    own holds at the ticket limit, or the seat it asks for. Either way it succeeds at once,
    with no read or tick between."""
    client = make_client(max_tickets_per_customer=1)
    k = concert_keys(CONCERT)

    def run_out(held: dict) -> None:  # its time is up; nothing has released it yet
        catalog.zadd(k.holds, {parse_reservation(held["reservationId"])[1]: 1})

    def expired() -> int:
        return [f[b"type"] for _, f in catalog.xrange(k.events)].count(b"EXPIRED")

    first, second, third = (active_token(client, c) for c in (1, 2, 3))
    run_out(hold(client, first))
    assert expired() == 0
    assert hold(client, first, seat_id(OPTION, 2))["status"] == "HELD"  # at the limit
    assert expired() == 1
    refused = client.post("/api/reserve", headers=auth(first),
                          json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, 3)})
    assert refused.status_code == 409 and refused.json()["code"] == "TICKET_LIMIT"
    run_out(hold(client, second, seat_id(OPTION, 3)))
    assert hold(client, third, seat_id(OPTION, 3))["status"] == "HELD"  # the seat
    assert expired() == 2

def test_cancel_frees_the_seat_at_once(client: TestClient) -> None:
    token = active_token(client, 1)
    held = hold(client, token)
    resp = client.delete(f"/api/reserve/{held['reservationId']}", headers=auth(token))
    assert resp.status_code == 200 and resp.json()["status"] == "CANCELLED"
    assert SEAT in free_seat_ids(client, token) and free_count(client, token) == 4
    again = client.delete(f"/api/reserve/{held['reservationId']}", headers=auth(token))
    assert again.status_code == 409 and again.json()["code"] == "HOLD_CANCELLED"
    resp = pay(client, token, held["reservationId"])
    assert resp.status_code == 409 and resp.json()["code"] == "HOLD_CANCELLED"


def test_another_customers_reservation_is_404(client: TestClient) -> None:
    owner, other = active_token(client, 1), active_token(client, 2)
    held = hold(client, owner)
    for resp in (pay(client, other, held["reservationId"]),
                 client.delete(f"/api/reserve/{held['reservationId']}", headers=auth(other))):
        assert resp.status_code == 404 and resp.json()["code"] == "RESERVATION_NOT_FOUND"
    # A well-formed id nobody issued, and one of another concert, are 404 too.
    unknown = held["reservationId"][:-4] + "0000"
    assert pay(client, owner, unknown).status_code == 404
    assert pay(client, owner, "3." + "a" * 32).status_code == 404
    assert pay(client, owner, held["reservationId"]).status_code == 200  # the owner still can


def test_taken_unknown_and_foreign_seats(client: TestClient) -> None:
    a, b = active_token(client, 1), active_token(client, 2)
    hold(client, a)
    resp = client.post("/api/reserve", headers=auth(b),
                       json={"concertOptionId": OPTION, "seatId": SEAT})
    assert resp.status_code == 409 and resp.json()["code"] == "SEAT_TAKEN"
    cases = [(OPTION, seat_id(OPTION, 99), "SEAT_NOT_FOUND"),
             (OPTION, seat_id(OTHER_OPTION, 1), "SEAT_NOT_FOUND"),
             (50001, seat_id(50001, 1), "OPTION_NOT_FOUND"),  # concert 3's option
             (77777, 1, "OPTION_NOT_FOUND")]
    for option, seat, code in cases:
        resp = client.post("/api/reserve", headers=auth(b),
                           json={"concertOptionId": option, "seatId": seat})
        assert resp.status_code == 404 and resp.json()["code"] == code, (option, seat)
    assert client.get("/api/77777/available-seats", headers=auth(b)).status_code == 404


def test_insufficient_balance_is_402_and_changes_nothing(
    client: TestClient, catalog: redis.Redis
) -> None:
    poor = 5000  # never funded: balance 0
    token = active_token(client, poor)
    held = hold(client, token)
    resp = pay(client, token, held["reservationId"])
    assert resp.status_code == 402 and resp.json()["code"] == "INSUFFICIENT_BALANCE"
    assert balance(client, poor) == 0
    assert catalog.llen(CustomerKeys(poor).history) == 0
    assert SEAT not in free_seat_ids(client, token)  # still HELD by this customer
    client.patch("/api/point/charge", json={"customerId": poor, "amount": 1000})
    assert pay(client, token, held["reservationId"]).status_code == 200
    assert balance(client, poor) == 0


def test_token_finishes_only_after_the_last_open_hold(client: TestClient) -> None:
    token = active_token(client, 1)
    first, second = hold(client, token), hold(client, token, seat_id(OPTION, 2))
    assert pay(client, token, first["reservationId"]).status_code == 200
    assert client.get("/api/token/status", headers=auth(token)).json()["status"] == "ACTIVE"
    paid = pay(client, token, second["reservationId"])
    assert paid.status_code == 200
    assert client.get("/api/token/status", headers=auth(token)).status_code == 401
    # The token is gone, but a retried pay of a paid reservation answers that payment.
    again = pay(client, token, second["reservationId"])
    assert again.status_code == 200 and again.json() == paid.json()
    third = client.post("/api/reserve", headers=auth(token),
                        json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, 3)})
    assert third.status_code == 401  # anything else needs a live token



def test_a_hold_under_an_earlier_token_neither_keeps_nor_ends_the_next(
        client: TestClient, catalog: redis.Redis) -> None:
    """A customer's ticket record counts the holds of the token of its latest hold: a hold
    left from an earlier token changes nothing of the next token's count."""
    k = concert_keys(CONCERT)
    first = active_token(client, 1)
    old = hold(client, first)
    secret = catalog.hget(k.tokens, "1").split(b"@")[0]  # ACTIVE: "secret@activeUntilMs"
    catalog.hset(k.tokens, "1", secret + b"@1")  # the first token's time ran out long ago
    catalog.zadd(k.active, {"1": 1})
    second = active_token(client, 1)
    assert second != first
    a, b = hold(client, second, seat_id(OPTION, 2)), hold(client, second, seat_id(OPTION, 3))
    catalog.zadd(k.holds, {parse_reservation(old["reservationId"])[1]: 1})  # the old one expires
    assert SEAT in free_seat_ids(client, second)  # released by the read: it counted as nothing
    assert pay(client, second, a["reservationId"]).status_code == 200
    assert client.get("/api/token/status", headers=auth(second)).json()["status"] == "ACTIVE"
    assert pay(client, second, b["reservationId"]).status_code == 200
    assert client.get("/api/token/status", headers=auth(second)).status_code == 401


def test_a_ticket_record_of_nothing_but_an_idle_bucket_is_dropped(
        settings: Settings, make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """The reserve rate limit's bucket lives in the customer's ticket record: a customer whose
    reserves were all refused keeps a record of only a bucket, which the tick drops once it
    is full again; a record with seats keeps them."""
    limited = dataclasses.replace(settings, reserve_rate_per_customer=10)
    client = make_client(reserve_rate_per_customer=10)
    k = concert_keys(CONCERT)
    holder, other = active_token(client, 1), active_token(client, 2)
    hold(client, holder)
    taken = client.post("/api/reserve", headers=auth(other),
                        json={"concertOptionId": OPTION, "seatId": SEAT})
    assert taken.status_code == 409 and taken.json()["code"] == "SEAT_TAKEN"
    records = catalog.hgetall(k.tickets)
    assert set(records) == {b"1", b"2"} and records[b"2"].startswith(b"0|||0|")

    def age() -> None:  # both buckets last touched a minute ago
        for customer, record in records.items():
            rest, bucket = record.rsplit(b"|", 1)
            last = str(int(time.time() * 1000) - 60_000).encode()
            catalog.hset(k.tickets, customer, rest + b"|" + bucket.split(b":")[0] + b":" + last)

    async def go() -> list[set[bytes]]:
        store = Store(connect(limited), limited)
        try:
            await tick_once(store, CONCERT)
            seen = [set(catalog.hgetall(k.tickets))]
            age()
            await tick_once(store, CONCERT)
            return [*seen, set(catalog.hgetall(k.tickets))]
        finally:
            await store.aclose()

    assert asyncio.run(go()) == [{b"1", b"2"}, {b"1"}]  # not idle yet; then only seats stay

def test_seat_list_across_bitmap_bytes(r: redis.Redis, make_client) -> None:
    """50 seats span seven bytes of the taken-seat bitmap: holds on byte edges show exactly."""
    from engine.seed import seed_demo

    seed_demo(r, customers=5)
    client = make_client()
    token = active_token(client, 1)
    numbers = [1, 8, 9, 16, 17, 50]
    for n in numbers:
        hold(client, token, seat=41150 * 100 + n, option=41150)
    seats = client.get("/api/41150/available-seats", headers=auth(token)).json()["seats"]
    # The demo's ids run 4115001..4115050 in listing order; numbers 1..10 within each row.
    assert [s["id"] - 41150 * 100 for s in seats] == [n for n in range(1, 51)
                                                      if n not in numbers]
    assert seats[0] == {"id": 4115002, "number": 2, "price": 150000, "section": "VIP",
                        "row": "1"}
    other = client.get("/api/41151/available-seats", headers=auth(token)).json()["seats"]
    assert len(other) == 50  # the next option's bits are its own
    dates = client.get("/api/2/available-dates", headers=auth(token)).json()["dates"]
    assert {d["concertOptionId"]: d["availableSeats"] for d in dates}[41150] == 44


def test_seats_with_the_same_number_are_listed_by_their_own_bits(
    r: redis.Redis, make_client: Callable[..., TestClient]
) -> None:
    """Seat numbers repeat per row or section. The list used to sort ties by their JSON text
    while the bitmap follows creation order: it showed the held seat and hid the free one."""
    from engine.seed import Option, Seat, create_concert

    create_concert(r, 9, "Venue", [Option(900, "2027-02-01T19:00:00+09:00", (
        Seat(99, 1, 1000), Seat(100, 1, 1000), Seat(101, 2, 1000)))])
    client = make_client()
    token = active_token(client, 1, concert=9)
    hold(client, token, seat=99, option=900)
    assert free_seat_ids(client, token, option=900) == [100, 101]
    hold(client, token, seat=101, option=900)
    assert free_seat_ids(client, token, option=900) == [100]


def test_a_burst_of_first_seat_lists_reads_the_catalog_once(settings, catalog) -> None:
    """Sixteen requests arrive for an option no worker has read yet: one reads its seat list
    (7 MB for 100,000 seats), the others wait for that read instead of making their own."""
    import asyncio

    from engine import catalog as seats
    from engine import queue
    from tests.hooks import HookedStore

    reads = []

    async def count(name, keys, args) -> None:
        if name == "catalog":
            reads.append(name)

    async def go() -> list[dict]:
        store = HookedStore(settings, count)
        tok = parse_token((await queue.issue_token(store, 1, CONCERT))["tokenValue"])
        seats._VIEWS.clear()
        answers = await asyncio.gather(*(seats.available_seats(store, tok, OPTION)
                                         for _ in range(16)))
        await store.aclose()
        return answers

    answers = asyncio.run(go())
    bodies = {orjson.dumps(a) for a in answers}
    assert len(reads) == 1 and len(bodies) == 1
