"""A queue that knows its stock (issue 20): sold out as a state every waiter sees within a
second, admission sized to the seats left, returned seats on offer to the head of the queue
rather than to customers ACTIVE already, and paused as a state the waiters see. On a real
Redis and on the cluster, through real servers and concurrent requests."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from engine import concert_settings, queue, tick
from engine.config import Settings
from engine.ids import parse_token
from engine.keys import concert_keys
from engine.seed import Option, Seat, create_concert, fund_customers
from engine.store import Store, connect
from tests.http import fire

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

HOST = "127.0.0.1"
SMALL, OPTION = 20, 20001  # a small concert: one performance of 10 seats
ADMIN = {"Authorization": "Bearer op"}


def small_concert(r: redis.Redis, seats: int = 10) -> None:
    create_concert(r, SMALL, "Small hall", [Option(OPTION, "2027-05-01T19:00:00+09:00", tuple(
        Seat(OPTION * 100 + n, n, 1000, "A", "1") for n in range(1, seats + 1)))])


def issue(port: int, customers: range | list[int]) -> list[tuple[int, dict]]:
    """Concurrent issues, 8 connections."""
    ids = list(customers)
    batches = [[("POST", "/api/token/issue", {"customerId": c, "concertId": SMALL}, {})
                for c in ids[i::8]] for i in range(8) if ids[i::8]]
    return [a for batch in fire(HOST, port, batches) for a in batch]


def call(port: int, method: str, path: str, body: object = None,
         headers: dict | None = None) -> tuple[int, dict]:
    [[answer]] = fire(HOST, port, [[(method, path, body, headers or {})]])
    return answer


def events(r: redis.Redis) -> list[dict]:
    return [{f.decode(): v.decode() for f, v in e.items()}
            for _, e in r.xrange(concert_keys(SMALL).events)]


# --- sold out -----------------------------------------------------------------------------
def test_a_sold_out_concert_tells_every_waiter_and_newcomer_within_a_second(
        live_server, r: redis.Redis) -> None:
    small_concert(r, seats=10)
    server = live_server(TICK_SECONDS="0.2", ACTIVE_LIMIT="10", ADMIT_PER_SEAT="1",
                         ADMIN_TOKEN="op")
    buyers = [a for s, a in issue(server.port, range(1, 11))]
    assert all(b["status"] == "ACTIVE" for b in buyers), buyers
    waiters = [a for s, a in issue(server.port, range(100, 1100))]
    assert {w["status"] for w in waiters} == {"WAITING"}
    # The ten buyers take the ten seats at once, then pay.
    held = fire(HOST, server.port, [[("POST", "/api/reserve", {
        "concertOptionId": OPTION, "quantity": 1}, {"Authorization": b["tokenValue"]})]
        for b in buyers])
    paid = fire(HOST, server.port, [[("POST", "/api/pay", {
        "reservationId": h[0][1]["reservationIds"][0]}, {"Authorization": b["tokenValue"]})]
        for h, b in zip(held, buyers, strict=True)])
    assert all(p[0][0] == 200 for p in paid), paid
    last_sale = time.time()
    time.sleep(1.0)
    polled = fire(HOST, server.port, [[("GET", "/api/token/status", None,
                                        {"Authorization": w["tokenValue"]})
                                       for w in waiters[i::8]] for i in range(8)])
    told = Counter(a["status"] for batch in polled for _, a in batch)
    assert told == {"SOLD_OUT": 1000}, told
    positions = sorted(a["position"] for batch in polled for _, a in batch)
    assert positions == list(range(1, 1001))  # places on the waitlist kept, in queue order
    status, newcomer = call(server.port, "POST", "/api/token/issue",
                            {"customerId": 5000, "concertId": SMALL})
    assert status == 200 and newcomer["status"] == "SOLD_OUT" and newcomer["position"] == 1001
    kinds = Counter(e["type"] for e in events(r))
    assert kinds["SOLD_OUT"] == 1 and kinds["ADMITTED"] >= 1
    [sold_out] = [e for e in events(r) if e["type"] == "SOLD_OUT"]
    assert int(sold_out["at"]) / 1000 - last_sale < 1.0  # the tick said so within a second
    status, stats = call(server.port, "GET", f"/admin/concerts/{SMALL}/stats", None, ADMIN)
    assert stats["soldOut"] and stats["sold"] == stats["seats"] == 10 and stats["freeSeats"] == 0
    token = buyers[0]["tokenValue"]
    status, dates = call(server.port, "GET", f"/api/{SMALL}/available-dates", None,
                         {"Authorization": token})
    assert status == 401 or dates["dates"][0]["availableSeats"] == 0  # its pay ended it


def test_a_refund_after_the_sell_out_brings_the_head_of_the_waitlist_back(
        live_server, r: redis.Redis) -> None:
    """Back on sale: the refunded seat goes on offer, admission resumes in queue order, the
    head of the waitlist is ACTIVE again and holds it; a customer ACTIVE since before the
    return is refused it (409 SEAT_TAKEN)."""
    small_concert(r, seats=2)
    # Views of the queue a tenth of a second old at most: the sleeps below see the tick's work.
    server = live_server(TICK_SECONDS="0.2", ADMIT_PER_SEAT="1.5", ACTIVE_LIMIT="3",
                         RETURN_HOLD_SECONDS="30", ADMIN_TOKEN="op", QUEUE_VIEW_SECONDS="0.1")
    (_, a), (_, b), (_, refresher) = issue(server.port, [1, 2, 3])
    assert [x["status"] for x in (a, b, refresher)] == ["ACTIVE"] * 3
    waiters = [call(server.port, "POST", "/api/token/issue", {"customerId": c,
                                                              "concertId": SMALL})[1]
               for c in range(100, 104)]  # one after another: a known order
    # From here one shopper a seat left: the refund below admits exactly one.
    assert call(server.port, "PATCH", f"/admin/concerts/{SMALL}/settings", {"admitPerSeat": 1},
                ADMIN)[0] == 200
    rids = []
    for buyer in (a, b):
        s, held = call(server.port, "POST", "/api/reserve", {"concertOptionId": OPTION,
                       "quantity": 1}, {"Authorization": buyer["tokenValue"]})
        rids.append(held["reservationIds"][0])
        s, _ = call(server.port, "POST", "/api/pay", {"reservationId": rids[-1]},
                    {"Authorization": buyer["tokenValue"]})
        assert s == 200
    time.sleep(0.6)
    assert call(server.port, "GET", "/api/token/status", None,
                {"Authorization": waiters[0]["tokenValue"]})[1]["status"] == "SOLD_OUT"
    assert call(server.port, "POST", f"/admin/reservations/{rids[0]}/refund", None,
                ADMIN)[0] == 200
    time.sleep(0.6)  # the tick: BACK_ON_SALE, then admission in queue order
    head = call(server.port, "GET", "/api/token/status", None,
                {"Authorization": waiters[0]["tokenValue"]})[1]
    second = call(server.port, "GET", "/api/token/status", None,
                  {"Authorization": waiters[1]["tokenValue"]})[1]
    assert head["status"] == "ACTIVE" and second["status"] == "WAITING", (head, second)
    assert [e["type"] for e in events(r)].count("BACK_ON_SALE") == 1
    seat = int(rids[0].split(".")[0]) and next(
        e for e in events(r) if e["type"] == "REFUNDED")["seatId"]
    # ACTIVE since before the return: the refunded seat is not for it.
    s, body = call(server.port, "POST", "/api/reserve", {"concertOptionId": OPTION,
                   "seatId": int(seat)}, {"Authorization": refresher["tokenValue"]})
    assert s == 409 and body["code"] == "SEAT_TAKEN"
    s, body = call(server.port, "POST", "/api/reserve", {"concertOptionId": OPTION,
                   "seatId": int(seat)}, {"Authorization": head["tokenValue"]})
    assert s == 200, body


# --- returned seats go to the head of the queue -------------------------------------------
@pytest.mark.parametrize("how", ["cancel", "expire", "best available"])
def test_a_returned_seat_goes_to_the_head_of_the_queue_not_to_a_refresher(
        make_client: Callable[..., TestClient], r: redis.Redis, how: str) -> None:
    small_concert(r, seats=2)
    client = make_client(active_limit=3, admit_per_seat=1, return_hold_seconds=30,
                         hold_ttl_seconds=0.3 if how == "expire" else 300)
    tokens = [client.post("/api/token/issue", json={"customerId": c, "concertId": SMALL}).json()
              for c in (1, 2, 3, 4)]
    assert [t["status"] for t in tokens] == ["ACTIVE", "ACTIVE", "WAITING", "WAITING"]
    holder, refresher, head, next_one = (t["tokenValue"] for t in tokens)
    seat = OPTION * 100 + 1
    held = client.post("/api/reserve", headers={"Authorization": holder},
                       json={"concertOptionId": OPTION, "seatId": seat}).json()
    if how == "expire":
        time.sleep(0.35)
        client.get(f"/api/{OPTION}/available-seats", headers={"Authorization": holder})
    else:
        assert client.delete(f"/api/reserve/{held['reservationId']}",
                             headers={"Authorization": holder}).status_code == 200
    # The refresher sees the seat taken and cannot hold it, by id or as best available.
    seats = client.get(f"/api/{OPTION}/available-seats",
                       headers={"Authorization": refresher}).json()["seats"]
    assert seat not in [s["id"] for s in seats]
    body = ({"concertOptionId": OPTION, "quantity": 1} if how == "best available" else
            {"concertOptionId": OPTION, "seatId": seat})
    taken = client.post("/api/reserve", headers={"Authorization": refresher}, json=body)
    if how == "best available":  # the other seat is its to take: the offered one is not
        assert taken.status_code == 200 and taken.json()["seats"][0]["id"] != seat
    else:
        assert taken.status_code == 409 and taken.json()["code"] == "SEAT_TAKEN"
    # The offer admits the head of the queue (one more than the stock alone allows).
    assert client.get("/api/token/status", headers={"Authorization": head}).json()[
        "status"] == "ACTIVE"
    assert client.get("/api/token/status", headers={"Authorization": next_one}).json()[
        "status"] == "WAITING"
    seats = client.get(f"/api/{OPTION}/available-seats",
                       headers={"Authorization": head}).json()["seats"]
    assert seat in [s["id"] for s in seats]
    got = client.post("/api/reserve", headers={"Authorization": head}, json=body)
    assert got.status_code == 200, got.text
    ids = [s["id"] for s in got.json()["seats"]] if how == "best available" else [
        got.json()["seatId"]]
    assert ids == [seat]
    assert r.zcard(concert_keys(SMALL).offers) == 0


def test_seats_back_in_the_same_millisecond_each_admit_their_waiter(
        settings: Settings, r: redis.Redis) -> None:
    """Holds that expire in one tick come back with one score. Admission a second at a time
    credits them one by one; a mark of the last offer credited by its score alone took the
    tie for credited too, and its waiter was never admitted (the drop's smoke test left its
    last seat unsold so: ACTIVE tokens filled the stock's room until their TTL)."""
    small_concert(r, seats=2)
    s = dataclasses.replace(settings, active_limit=10, admit_per_seat=1, admit_per_second=2,
                            return_hold_seconds=30, hold_ttl_seconds=300)
    k = concert_keys(SMALL)

    async def go() -> list[str]:
        store = Store(connect(s), s)
        toks = [await queue.issue_token(store, c, SMALL) for c in (1, 2, 3, 4, 5)]
        assert [t["status"] for t in toks] == ["ACTIVE", "ACTIVE", "WAITING", "WAITING",
                                               "WAITING"]  # the stock's room: 2 seats
        await concert_settings.patch(store, SMALL, {"admitPerSecond": 1})
        # Both seats back at one instant (as one tick's expiries are), room still full.
        now_ms = int(r.time()[0]) * 1000
        r.zadd(k.offers, {"0": now_ms, "1": now_ms})
        for _ in range(3):  # three seconds: one admission each at most
            await tick.tick(store, SMALL)
            time.sleep(1.0 - time.time() % 1 + 0.05)
        states = [(await queue.token_status(store, parse_token(t["tokenValue"])))["status"]
                  for t in toks[2:]]
        await store.aclose()
        return states

    assert asyncio.run(go()) == ["ACTIVE", "ACTIVE", "WAITING"]  # two seats, two waiters


def test_an_offer_is_open_to_everyone_once_its_time_is_over(
        make_client: Callable[..., TestClient], r: redis.Redis) -> None:
    small_concert(r, seats=1)
    client = make_client(active_limit=1, admit_per_seat=0, return_hold_seconds=0.3)
    holder = client.post("/api/token/issue", json={"customerId": 1, "concertId": SMALL}).json()
    client.post("/api/token/issue", json={"customerId": 2, "concertId": SMALL})  # waits
    seat = OPTION * 100 + 1
    held = client.post("/api/reserve", headers={"Authorization": holder["tokenValue"]},
                       json={"concertOptionId": OPTION, "seatId": seat}).json()
    client.delete(f"/api/reserve/{held['reservationId']}",
                  headers={"Authorization": holder["tokenValue"]})
    again = client.post("/api/reserve", headers={"Authorization": holder["tokenValue"]},
                        json={"concertOptionId": OPTION, "seatId": seat})
    assert again.status_code == 409
    time.sleep(0.35)
    again = client.post("/api/reserve", headers={"Authorization": holder["tokenValue"]},
                        json={"concertOptionId": OPTION, "seatId": seat})
    assert again.status_code == 200, again.text


# --- admission sized to the stock ---------------------------------------------------------
def test_admission_never_passes_the_stock_bound_under_200_concurrent_issues(
        live_server, r: redis.Redis) -> None:
    small_concert(r, seats=10)
    server = live_server(ADMIT_PER_SEAT="1.5", ACTIVE_LIMIT="1000")
    answers = issue(server.port, range(1, 201))
    told = Counter(a["status"] for _, a in answers)
    assert told == {"ACTIVE": 15, "WAITING": 185}, told  # ceil(1.5 x 10 seats)
    assert r.zcard(concert_keys(SMALL).active) == 15


def test_admission_follows_the_stock_as_seats_sell(settings: Settings, r: redis.Redis) -> None:
    """Each sale lowers the bound; a customer whose pay ends its token frees a place that
    the stock may no longer allow."""
    small_concert(r, seats=4)
    fund_customers(r, 1, 1, 100_000)
    s = dataclasses.replace(settings, admit_per_seat=1.0, active_limit=100)

    async def go() -> list[str]:
        from engine import booking, pay, queue
        store = Store(connect(s), s)
        toks = [await queue.issue_token(store, c, SMALL) for c in range(1, 8)]
        states = [t["status"] for t in toks]
        from engine.ids import parse_token
        first = parse_token(toks[0]["tokenValue"])
        held = [await booking.reserve(store, first, OPTION, OPTION * 100 + n)
                for n in (1, 2)]  # the first customer buys two of the four seats
        for h in held:
            await pay.pay(store, first, h["reservationId"].split(".")[1])
        await tick.tick(store, SMALL)
        states.append((await queue.concert_stats(store, SMALL))["active"])
        await store.aclose()
        return states

    states = asyncio.run(go())
    assert states[:7] == ["ACTIVE"] * 4 + ["WAITING"] * 3
    # 2 seats left: at most 2 shoppers; the 3 still ACTIVE are not cut, none is added
    assert states[7] == 3


# --- paused ---------------------------------------------------------------------------------
def test_paused_is_a_state_the_waiters_see(make_client: Callable[..., TestClient],
                                           r: redis.Redis) -> None:
    small_concert(r, seats=10)
    client = make_client(active_limit=1, admin_token="op")
    client.post("/api/token/issue", json={"customerId": 1, "concertId": SMALL})
    waiting = client.post("/api/token/issue", json={"customerId": 2, "concertId": SMALL}).json()
    assert waiting["paused"] is False and waiting["estimatedWaitSeconds"] >= 1
    assert client.patch(f"/admin/concerts/{SMALL}/settings", headers=ADMIN,
                        json={"paused": True}).status_code == 200
    for answer in (client.get("/api/token/status",
                              headers={"Authorization": waiting["tokenValue"]}).json(),
                   client.post("/api/token/issue",
                               json={"customerId": 3, "concertId": SMALL}).json()):
        assert answer["status"] == "WAITING" and answer["paused"] is True
        assert answer["estimatedWaitSeconds"] is None  # no pretence that admission runs
        assert answer["pollAfterSeconds"] >= 24  # the most: nothing moves while paused
