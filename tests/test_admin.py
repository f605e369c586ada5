"""The operators' API (api/admin.py): access, a concert's settings live in every worker, pause
and resume, revoke, refunds under concurrency, the sales export, live stats."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from devstack.api_server import Uvicorn
from engine import booking, queue
from engine import pay as protocol
from engine.config import Settings
from engine.ids import parse_reservation, parse_token
from engine.keys import CustomerKeys, concert_keys
from engine.store import Store, connect
from tests.conftest import CONCERT, NO_LIMITS_ENV, OPTION, active_token, auth, seat_id
from tests.http import fire

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

ADMIN = {"Authorization": "Bearer op-secret"}
HOST = "127.0.0.1"
ROUTES = [("PUT", "/admin/concerts/2"), ("GET", "/admin/concerts/2/settings"),
          ("PATCH", "/admin/concerts/2/settings"), ("DELETE", "/admin/concerts/2/tokens/1"),
          ("POST", "/admin/reservations/2." + "a" * 32 + "/refund"),
          ("GET", "/admin/concerts/2/sales.csv"), ("GET", "/admin/concerts/2/stats")]


@pytest.fixture
def admin(make_client: Callable[..., TestClient], catalog: redis.Redis) -> TestClient:
    return make_client(admin_token="op-secret")


def test_admin_routes_exist_only_with_a_token_and_want_it(make_client, catalog) -> None:
    plain = make_client()
    with_token = make_client(admin_token="op-secret")
    for method, path in ROUTES:
        resp = plain.request(method, path, headers=ADMIN)
        assert resp.status_code == 404 and resp.json()["code"] == "NOT_FOUND", (method, path)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "op-secret"}):
            resp = with_token.request(method, path, headers=headers, json={})
            assert resp.status_code == 401, (method, path, headers)
            assert resp.json()["code"] == "ADMIN_UNAUTHORIZED"


def test_settings_read_validate_and_reset(admin: TestClient) -> None:
    got = admin.get("/admin/concerts/2/settings", headers=ADMIN).json()
    assert got["settings"]["activeLimit"] == 1000 and got["overridden"] == []
    assert got["settings"]["paused"] is False and got["settings"]["queueing"] == "fifo"
    changed = admin.patch("/admin/concerts/2/settings", headers=ADMIN,
                          json={"activeLimit": 3, "holdTtlSeconds": 1.5, "paused": True,
                                "opensAt": "2027-03-01T10:00:00+09:00", "queueing": "random"})
    assert changed.status_code == 200, changed.text
    s = changed.json()["settings"]
    assert (s["activeLimit"], s["holdTtlSeconds"], s["paused"], s["queueing"]) == (
        3, 1.5, True, "random")
    assert s["opensAt"] == "2027-03-01T01:00:00.000Z"
    for body, field in [({"activeLimit": 0}, "activeLimit"), ({"activeLimit": 1.5}, "activeLimit"),
                        ({"paused": "yes"}, "paused"), ({"queueing": "lifo"}, "queueing"),
                        ({"opensAt": "tomorrow"}, "opensAt"), ({"colour": 1}, "colour"),
                        ({"holdTtlSeconds": -1}, "holdTtlSeconds")]:
        resp = admin.patch("/admin/concerts/2/settings", headers=ADMIN, json=body)
        assert resp.status_code == 400 and resp.json()["code"] == "INVALID_SETTING", body
        assert resp.json()["detail"].startswith(field)
    reset = admin.patch("/admin/concerts/2/settings", headers=ADMIN,
                        json={"activeLimit": None, "paused": None})
    assert reset.json()["settings"]["activeLimit"] == 1000
    assert sorted(reset.json()["overridden"]) == ["holdTtlSeconds", "opensAt", "queueing"]
    assert admin.get("/admin/concerts/99/settings", headers=ADMIN).status_code == 404


def test_a_change_is_live_in_every_worker_at_once(live_server, settings: Settings,
                                                   catalog: redis.Redis) -> None:
    """Two workers under load: after PATCH paused=true returns, no worker admits anyone."""
    server = Uvicorn("api.app:app", {"REDIS_URL": settings.redis_url, "TICK_SECONDS": "3600",
                                     "ADMIN_TOKEN": "op-secret", **NO_LIMITS_ENV},
                     workers=2).start()
    try:
        before = fire(HOST, server.port, [[("POST", "/api/token/issue",
                                            {"customerId": c, "concertId": CONCERT}, {})]
                                          for c in range(1, 21)])
        assert all(body["status"] == "ACTIVE" for [(_, body)] in before)
        [[(status, _)]] = fire(HOST, server.port, [[("PATCH", "/admin/concerts/2/settings",
                                                     {"paused": True}, ADMIN)]])
        assert status == 200
        after = fire(HOST, server.port, [[("POST", "/api/token/issue",
                                           {"customerId": c, "concertId": CONCERT}, {})]
                                         for c in range(100, 140)])
        assert all(body["status"] == "WAITING" for [(_, body)] in after)
        assert [b["position"] for [(_, b)] in after] != [None] * 40
    finally:
        server.stop()


def test_pause_keeps_places_and_active_tokens_resume_admits(admin: TestClient) -> None:
    first = active_token(admin, 1)
    admin.patch("/admin/concerts/2/settings", headers=ADMIN, json={"paused": True})
    waiting = [admin.post("/api/token/issue", json={"customerId": c, "concertId": CONCERT})
               .json() for c in (2, 3)]
    assert [w["status"] for w in waiting] == ["WAITING", "WAITING"]
    assert [w["position"] for w in waiting] == [1, 2]
    polled = admin.get("/api/token/status", headers=auth(waiting[0]["tokenValue"])).json()
    assert polled["status"] == "WAITING" and polled["position"] == 1  # places kept
    held = admin.post("/api/reserve", headers=auth(first),
                      json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)})
    assert held.status_code == 200  # an ACTIVE token keeps working
    admin.patch("/admin/concerts/2/settings", headers=ADMIN, json={"paused": False})
    polled = admin.get("/api/token/status", headers=auth(waiting[1]["tokenValue"])).json()
    assert polled["status"] == "ACTIVE"


def test_revoke_ends_the_token_and_frees_its_holds(admin: TestClient,
                                                   catalog: redis.Redis) -> None:
    token = active_token(admin, 5)
    for n in (1, 2):
        assert admin.post("/api/reserve", headers=auth(token),
                          json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, n)}
                          ).status_code == 200
    resp = admin.delete("/admin/concerts/2/tokens/5", headers=ADMIN)
    assert resp.status_code == 200
    assert resp.json() == {"concertId": 2, "customerId": 5, "revoked": True,
                           "holdsReleased": 2, "holdsBeingPaid": 0}
    assert admin.get("/api/token/status", headers=auth(token)).status_code == 401
    other = active_token(admin, 6)
    seats = admin.get(f"/api/{OPTION}/available-seats", headers=auth(other)).json()["seats"]
    assert len(seats) == 4
    kinds = Counter(f[b"type"] for _, f in catalog.xrange(concert_keys(CONCERT).events))
    assert kinds[b"REVOKED"] == 2 and kinds[b"TOKEN_REVOKED"] == 1  # the two holds, the token


def _paid(settings: Settings, customer: int, seats: list[int]) -> list[str]:
    """Reservation ids of ``seats`` of OPTION, paid by ``customer`` through the engine."""
    async def go() -> list[str]:
        store = Store(connect(settings), settings)
        rids = []
        for lo in range(0, len(seats), 500):  # a token ends with its last hold paid: a new one
            tok = parse_token((await queue.issue_token(store, customer, CONCERT))["tokenValue"])
            held = await asyncio.gather(*(booking.reserve(store, tok, OPTION, s)
                                          for s in seats[lo:lo + 500]))
            await asyncio.gather(*(protocol.pay(store, tok, parse_reservation(
                h["reservationId"])[1]) for h in held))
            rids += [h["reservationId"] for h in held]
        await store.aclose()
        return rids

    return asyncio.run(go())



@pytest.mark.parametrize("one_call", [True, False], ids=["one-call", "steps"])
def test_a_retried_pay_after_a_refund_is_told_it_was_refunded(
        make_client: Callable[..., TestClient], catalog: redis.Redis, one_call: bool) -> None:
    """The payer's token ended with its paid seat; a retry after the operator's refund used
    to get 401 (the token) rather than what happened to the reservation."""
    admin = make_client(admin_token="op-secret", pay_one_call=one_call)
    token = active_token(admin, 5)
    rid = admin.post("/api/reserve", headers=auth(token), json={
        "concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)}).json()["reservationId"]
    assert admin.post("/api/pay", headers=auth(token), json={"reservationId": rid}
                      ).status_code == 200
    assert admin.post(f"/admin/reservations/{rid}/refund", headers=ADMIN).status_code == 200
    again = admin.post("/api/pay", headers=auth(token), json={"reservationId": rid})
    assert again.status_code == 409 and again.json()["code"] == "RESERVATION_REFUNDED"

def test_twenty_concurrent_refunds_refund_once(live_server, settings: Settings,
                                               catalog: redis.Redis) -> None:
    server = live_server(ADMIN_TOKEN="op-secret")
    [rid] = _paid(settings, 7, [seat_id(OPTION, 1)])
    before = int(catalog.get(CustomerKeys(7).balance))
    results = fire(HOST, server.port, [[("POST", f"/admin/reservations/{rid}/refund", None,
                                         ADMIN)] for _ in range(20)])
    answers = [body for [(status, body)] in results if status == 200]
    assert len(answers) == 20 and all(a == answers[0] for a in answers)
    assert answers[0]["status"] == "REFUNDED" and answers[0]["amount"] == 1000
    assert int(catalog.get(CustomerKeys(7).balance)) == before + 100_000
    kinds = [e.decode().split("|")[0] for e in catalog.lrange(CustomerKeys(7).history, 0, -1)]
    assert kinds == ["REFUND", "PAYMENT"]
    k = concert_keys(CONCERT)
    assert int(catalog.hget(k.concert, "sold")) == 0 and catalog.getbit(k.taken, 0) == 0
    token = fire(HOST, server.port, [[("POST", "/api/token/issue",
                                       {"customerId": 7, "concertId": CONCERT}, {})]])
    tok = token[0][0][1]["tokenValue"]
    [[(status, body)]] = fire(HOST, server.port, [[("POST", "/api/pay", {"reservationId": rid},
                                                    {"Authorization": tok})]])
    assert status == 409 and body["code"] == "RESERVATION_REFUNDED"
    [[(status, body)]] = fire(HOST, server.port, [[(
        "POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)},
        {"Authorization": tok})]])
    assert status == 200  # the seat is on sale again
    [[(status, body)]] = fire(HOST, server.port, [[(
        "POST", f"/admin/reservations/{body['reservationId']}/refund", None, ADMIN)]])
    assert status == 409 and body["code"] == "NOT_PAID"


@pytest.mark.parametrize("after", ["refund done", "refund cut after its step 2"])
def test_a_sale_forgotten_during_its_refund_is_refunded_once(settings: Settings,
                                                             catalog: redis.Redis,
                                                             after: str) -> None:
    """The tick forgets an old sale's pay record (admit.lua lists it, forget.lua drops it
    later, in a call of its own) while an operator refunds it: the refund's record R:..
    must survive, or a second refund (the operator's again, or the tick finishing one cut
    short) takes the missing record for one forgotten before and pays the price back again."""
    from engine import operator
    from engine.tick import _forget

    [rid] = _paid(settings, 7, [seat_id(OPTION, 1)])
    secret = parse_reservation(rid)[1]
    k, c = concert_keys(CONCERT), CustomerKeys(7)
    before = int(catalog.get(c.balance))

    async def go() -> None:
        store = Store(connect(settings), settings)
        forget = [secret.encode(), b"7"]  # what admit.lua lists of a sale past the keep time
        if after == "refund done":
            await operator.refund_sale(store, CONCERT, secret)
        else:
            _, _, price, _, attempt = await store.run("refund_sale", (k.res, k.refunding),
                                                      (secret,))
            await store.run("refund", (c.balance, c.debits, c.history),
                            (rid, attempt, settings.history_limit, "SALE", price))
        await _forget(store, CONCERT, forget)
        await operator.refund_sale(store, CONCERT, secret)  # again, or the tick finishing it
        await operator.refund_sale(store, CONCERT, secret)
        await store.aclose()

    asyncio.run(go())
    assert int(catalog.get(c.balance)) == before + 100_000
    kinds = [e.decode().split("|")[0] for e in catalog.lrange(c.history, 0, -1)]
    assert kinds == ["REFUND", "PAYMENT"]


def test_sales_export_of_ten_thousand_sales(r: redis.Redis, settings: Settings,
                                            make_client) -> None:
    from engine.seed import Option, Seat, create_concert, fund_customers

    create_concert(r, CONCERT, "Test Concert", [Option(OPTION, "2027-01-10T19:00:00+09:00",
                   tuple(Seat(OPTION * 100_000 + n, (n - 1) % 50 + 1, 100, f"S{n % 3}",
                              str((n - 1) // 50 + 1)) for n in range(1, 10_001)))])
    fund_customers(r, 11, 11, 10**9)
    _paid(settings, 11, [OPTION * 100_000 + n for n in range(1, 10_001)])
    client = make_client(admin_token="op-secret")
    with client.stream("GET", "/admin/concerts/2/sales.csv", headers=ADMIN) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        assert "content-length" not in resp.headers  # streamed
        text = b"".join(resp.iter_bytes()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 10_000
    assert {row["customerId"] for row in rows} == {"11"}
    seat = next(row for row in rows if row["seatId"] == str(OPTION * 100_000 + 51))
    assert (seat["section"], seat["row"], seat["number"], seat["price"]) == ("S0", "2", "1",
                                                                             "1")
    assert all(row["paidAt"].endswith("Z") for row in rows[:10])


def test_live_stats(admin: TestClient) -> None:
    active_token(admin, 1)
    got = admin.get("/admin/concerts/2/stats", headers=ADMIN).json()
    assert got["active"] == 1 and got["freeSeats"] == 8 and got["paused"] is False
    assert got["admissionsPerSecond"] > 0
    assert admin.get("/admin/concerts/77/stats", headers=ADMIN).status_code == 404

