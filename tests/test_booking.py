"""Holds and payment: expiry, cancel, ownership, refusals that change nothing, tokens that
finish after the last pay, and pays interrupted between their steps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from engine import booking
from engine.config import Settings
from engine.errors import PaymentInProgress
from engine.ids import parse_reservation, parse_token
from engine.keys import CustomerKeys, concert_keys
from engine.store import Store, connect
from tests.conftest import CONCERT, OPTION, OTHER_OPTION, active_token, auth, seat_id

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
    assert pay(client, token, second["reservationId"]).status_code == 200
    assert client.get("/api/token/status", headers=auth(token)).status_code == 401
    again = pay(client, token, second["reservationId"])  # the token is gone: 401
    assert again.status_code == 401


# --- a pay interrupted between its steps -------------------------------------------------------
def _begin_only(settings: Settings, token: str, reservation_id: str, debit: bool) -> None:
    """Run pay's first step (and the debit when asked), then 'crash' before the last step."""
    tok = parse_token(token)
    _, secret = parse_reservation(reservation_id)

    async def go() -> None:
        store = Store(connect(settings), settings)
        price, attempt = await booking._begin(store, tok, secret)
        if debit:
            await booking._debit(store, tok.customer_id, reservation_id, attempt, price, "DEBIT")
        await store.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("debited", [False, True], ids=["before-debit", "after-debit"])
def test_interrupted_pay_is_finished_on_next_touch(
    make_client: Callable[..., TestClient], settings: Settings, catalog: redis.Redis,
    debited: bool,
) -> None:
    client = make_client(pay_stale_seconds=0.3, hold_ttl_seconds=0.5)
    token = active_token(client, 1)
    held = hold(client, token)
    before = balance(client, 1)
    _begin_only(settings, token, held["reservationId"], debit=debited)
    resp = pay(client, token, held["reservationId"])
    assert resp.status_code == 409 and resp.json()["code"] == "PAYMENT_IN_PROGRESS"
    time.sleep(0.6)  # past the hold's expiry: a PAYING hold does not expire under its payer
    assert SEAT not in free_seat_ids(client, token)
    resp = pay(client, token, held["reservationId"])  # the next touch finishes the crashed pay
    if debited:
        # The crashed pay had debited: it is completed, and that is this pay's answer.
        assert resp.status_code == 200 and resp.json()["status"] == "PAID"
        assert resp.json()["balance"] == before - 1000 == balance(client, 1)
        assert pay(client, token, held["reservationId"]).status_code == 401  # token finished
    else:
        # Voided and returned to its hold, which had expired meanwhile: released, no debit.
        assert resp.status_code == 409 and resp.json()["code"] == "HOLD_EXPIRED"
        assert balance(client, 1) == before
        assert SEAT in free_seat_ids(client, token)
    assert catalog.zcard(concert_keys(CONCERT).paying) == 0


def test_interrupted_pay_is_finished_in_the_background(
    make_client: Callable[..., TestClient], settings: Settings, catalog: redis.Redis
) -> None:
    client = make_client(pay_stale_seconds=0.2, tick_seconds=0.1)
    token = active_token(client, 1)
    held = hold(client, token)
    before = balance(client, 1)
    _begin_only(settings, token, held["reservationId"], debit=True)
    time.sleep(0.6)
    _, secret = parse_reservation(held["reservationId"])
    record = catalog.hget(concert_keys(CONCERT).res, secret)
    assert b'"status":"PAID"' in record
    assert balance(client, 1) == before - 1000
    assert int(catalog.hget(concert_keys(CONCERT).concert, "sold")) == 1


def test_a_voided_attempt_can_never_debit_later(settings: Settings, client: TestClient) -> None:
    """Recovery voids a crashed attempt; if that attempt's debit arrives late it is refused,
    and a new pay of the same reservation goes through once."""
    token = active_token(client, 1)
    held = hold(client, token)
    tok = parse_token(token)
    _, secret = parse_reservation(held["reservationId"])
    rid = held["reservationId"]

    async def go() -> tuple[dict | None, list]:
        store = Store(connect(settings), settings)
        price, attempt = await booking._begin(store, tok, secret)
        outcome = await booking.recover_pay(store, CONCERT, secret, 1, attempt)
        try:
            late = await booking._debit(store, 1, rid, attempt, price, "DEBIT")
        except Exception as e:  # the voided attempt is refused
            late = [type(e).__name__]
        await store.aclose()
        return outcome, late

    before = balance(client, 1)
    outcome, late = asyncio.run(go())
    assert outcome is None and late == ["PaySuperseded"]
    assert balance(client, 1) == before
    assert pay(client, token, rid).status_code == 200
    assert balance(client, 1) == before - 1000


def test_second_pay_while_paying_is_refused(settings: Settings, client: TestClient) -> None:
    token = active_token(client, 1)
    held = hold(client, token)
    tok = parse_token(token)
    _, secret = parse_reservation(held["reservationId"])

    async def go() -> None:
        store = Store(connect(settings), settings)
        await booking._begin(store, tok, secret)
        with pytest.raises(PaymentInProgress):
            await booking._begin(store, tok, secret)
        await store.aclose()

    asyncio.run(go())


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
    assert [s["number"] for s in seats] == [n for n in range(1, 51) if n not in numbers]
    other = client.get("/api/41151/available-seats", headers=auth(token)).json()["seats"]
    assert len(other) == 50  # the next option's bits are its own
    dates = client.get("/api/2/available-dates", headers=auth(token)).json()["dates"]
    assert {d["concertOptionId"]: d["availableSeats"] for d in dates}[41150] == 44


def test_a_late_void_never_lowers_a_later_one(settings: Settings, client: TestClient,
                                              catalog: redis.Redis) -> None:
    """Found in review: a tick recovering attempt 1 late turned V:2 back into V:1, so that
    attempt 2's late debit then went through for a seat the customer had cancelled."""
    token = active_token(client, 1)
    held = hold(client, token)
    tok = parse_token(token)
    _, secret = parse_reservation(held["reservationId"])
    rid = held["reservationId"]

    async def go() -> list:
        store = Store(connect(settings), settings)
        try:
            _, a1 = await booking._begin(store, tok, secret)
            await booking.recover_pay(store, CONCERT, secret, 1, a1)  # V:1, back to HELD
            price, a2 = await booking._begin(store, tok, secret)
            await booking.recover_pay(store, CONCERT, secret, 1, a2)  # V:2, back to HELD
            await booking.recover_pay(store, CONCERT, secret, 1, a1)  # late: must not lower
            try:
                return await booking._debit(store, 1, rid, a2, price, "DEBIT")
            except Exception as e:
                return [type(e).__name__]
        finally:
            await store.aclose()

    before = balance(client, 1)
    assert asyncio.run(go()) == ["PaySuperseded"]
    assert catalog.hget(CustomerKeys(1).debits, rid) == b"V:2"
    assert balance(client, 1) == before


def test_a_debit_whose_attempt_lost_the_seat_is_refunded(settings: Settings, client: TestClient,
                                                         catalog: redis.Redis) -> None:
    """The safety net: step 3 refuses PAID for an attempt that no longer holds the seat, and
    the engine gives the debit back (REFUND in the history)."""
    token = active_token(client, 1)
    held = hold(client, token)
    tok = parse_token(token)
    _, secret = parse_reservation(held["reservationId"])
    rid = held["reservationId"]
    before = balance(client, 1)

    async def go() -> str:
        store = Store(connect(settings), settings)
        try:
            price, attempt = await booking._begin(store, tok, secret)
            await booking._debit(store, 1, rid, attempt, price, "DEBIT")
            # Force the record out of PAYING behind the protocol's back.
            k = concert_keys(CONCERT)
            rec = catalog.hget(k.res, secret).replace(b'"PAYING"', b'"CANCELLED"')
            catalog.hset(k.res, secret, rec)
            try:
                await booking._finish_paid(store, CONCERT, 1, secret, attempt)
            except Exception as e:
                return type(e).__name__
            return "no error"
        finally:
            await store.aclose()

    assert asyncio.run(go()) == "PaySuperseded"
    assert balance(client, 1) == before
    entries = client.get("/api/point/history", params={"customerId": 1}).json()["entries"]
    assert [e["type"] for e in entries[:2]] == ["REFUND", "PAYMENT"]
    assert catalog.hget(concert_keys(CONCERT).concert, "sold") is None
