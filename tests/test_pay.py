"""Pay, the stepped protocol across a concert's slot and a customer's (engine/pay.py): pays
interrupted between their steps and finished on the next touch or by the tick; the
interleavings found in review, forced with a hooked store; a retry whose first reply was lost;
the purge of closed reservations and their pay records. Every order of the protocol's calls is
tests/test_pay_interleavings.py."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from engine import booking, operator, queue
from engine import pay as protocol
from engine.config import Settings
from engine.errors import PaymentInProgress, StoreUnavailable
from engine.ids import Token, parse_reservation, parse_token
from engine.keys import CustomerKeys, concert_keys
from engine.store import Store, connect
from engine.tick import tick as tick_once
from tests.conftest import CONCERT, OPTION, active_token, seat_id
from tests.hooks import HookedStore
from tests.test_booking import SEAT, balance, free_seat_ids, hold, pay

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The stepped protocol, on one Redis too (there a pay is otherwise one script,
    tests/test_pay_one_call.py): its crash windows exist on a cluster, and the one-call pay
    must take over whatever a stepped pay left."""
    return dataclasses.replace(settings, pay_one_call=False)

PRICE = 100_000  # minor units: the test catalog's seats on OPTION
FUNDED = 10_000 * 100


def _with(settings: Settings, **overrides: object) -> Settings:
    return dataclasses.replace(settings, **overrides)


def state(r: redis.Redis, rid: str) -> dict:
    """What the protocol left behind: the reservation, the sales, the customer's money."""
    _, secret = parse_reservation(rid)
    k, c = concert_keys(CONCERT), CustomerKeys(1)
    return {"status": orjson.loads(r.hget(k.res, secret))["status"],
            "sold": int(r.hget(k.concert, "sold") or 0),
            "charged": FUNDED - int(r.get(c.balance)),
            "debit": (r.hget(c.debits, rid) or b"").decode(),
            "history": [e.decode().split("|")[0] for e in r.lrange(c.history, 0, -1)]}


async def held_seat(store: Store) -> tuple[Token, str, str]:
    """Customer 1's ACTIVE token and a hold on SEAT: (token, secret, reservation id)."""
    tok = parse_token((await queue.issue_token(store, 1, CONCERT))["tokenValue"])
    rid = (await booking.reserve(store, tok, OPTION, SEAT))["reservationId"]
    return tok, parse_reservation(rid)[1], rid


async def answer(coro) -> object:
    try:
        return await coro
    except Exception as e:  # the answer an HTTP client would get, by its exception
        return type(e).__name__


# --- a pay interrupted between its steps ----------------------------------------------------
def _begin_only(settings: Settings, token: str, reservation_id: str, debit: bool) -> None:
    """Run pay's first step (and the debit when asked), then 'crash' before the last step."""
    tok = parse_token(token)
    _, secret = parse_reservation(reservation_id)

    async def go() -> None:
        store = Store(connect(settings), settings)
        price, attempt = await protocol.begin(store, tok, secret)
        if debit:
            await protocol.debit(store, tok.customer_id, reservation_id, attempt, price, "DEBIT")
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
        again = pay(client, token, held["reservationId"])  # token finished: the same answer
        assert again.status_code == 200 and again.json() == resp.json()
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


def test_second_pay_while_paying_is_refused(settings: Settings, client: TestClient) -> None:
    async def go() -> None:
        store = Store(connect(settings), settings)
        tok, secret, _ = await held_seat(store)
        await protocol.begin(store, tok, secret)
        with pytest.raises(PaymentInProgress):
            await protocol.begin(store, tok, secret)
        await store.aclose()

    asyncio.run(go())


# --- interleavings found in review (each failed on the code before the fix) -----------------
def test_a_late_recovery_of_a_superseded_attempt_changes_nothing(
    settings: Settings, catalog: redis.Redis
) -> None:
    """Attempt 1 begins and its payer dies; the tick lists it as stale; the customer's retry
    voids it, begins attempt 2 and debits; only then does the tick's void of attempt 1 reach
    Redis. It used to read "already debited", refund attempt 2's debit, and attempt 2's step 3
    then sold the seat: PAID and refunded."""
    s = _with(settings, pay_stale_seconds=0.2)
    a2_debited, tick_done, listed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def tick_hook(name, keys, args) -> None:
        if name == "debit" and args[3] == "VOID":  # the tick's recovery of attempt 1 ...
            listed.set()
            await a2_debited.wait()  # ... reaches Redis late
        if name == "pay_finish":
            tick_done.set()

    async def customer_hook(name, keys, args) -> None:
        if name == "pay_begin":
            await listed.wait()  # the tick has listed attempt 1 already
        if name == "pay_finish" and args[1] == 2 and args[2] == "PAID":
            a2_debited.set()  # attempt 2 has debited; its step 3 comes a moment later
            await tick_done.wait()

    async def go() -> tuple[object, dict]:
        plain = HookedStore(s)
        tok, secret, rid = await held_seat(plain)
        await protocol.begin(plain, tok, secret)  # attempt 1; then the payer is gone
        await asyncio.sleep(0.3)  # stale now
        ticker, customer = HookedStore(s, tick_hook), HookedStore(s, customer_hook)
        tick = asyncio.create_task(tick_once(ticker, CONCERT))
        paid = await answer(protocol.pay(customer, tok, secret))
        await tick
        for store in (plain, ticker, customer):
            await store.aclose()
        return paid, state(catalog, rid)

    paid, after = asyncio.run(go())
    assert isinstance(paid, dict) and paid["status"] == "PAID", paid
    assert after["status"] == "PAID" and after["sold"] == 1
    assert after["charged"] == PRICE and after["history"] == ["PAYMENT"]
    assert after["debit"].startswith("D:2:")


def test_two_retries_of_a_stale_pay_charge_once(settings: Settings,
                                                 catalog: redis.Redis) -> None:
    """The same without the tick: two retries of one stale pay (the 503 said to retry). R1
    voids attempt 1 and pays as attempt 2; R2's void of attempt 1 reaches Redis after attempt
    2's debit, and its step 3 before attempt 2's."""
    s = _with(settings, pay_stale_seconds=0.2)
    both_stale, a2_debited, r2_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def h1(name, keys, args) -> None:
        if name == "debit" and args[3] == "VOID":
            await both_stale.wait()
        if name == "pay_finish" and args[1] == 2 and args[2] == "PAID":
            a2_debited.set()
            await r2_done.wait()

    async def h2(name, keys, args) -> None:
        if name == "debit" and args[3] == "VOID":
            both_stale.set()
            await a2_debited.wait()
        if name == "pay_finish":
            r2_done.set()

    async def go() -> tuple[list, dict]:
        plain = HookedStore(s)
        tok, secret, rid = await held_seat(plain)
        await protocol.begin(plain, tok, secret)
        await asyncio.sleep(0.3)
        r1, r2 = HookedStore(s, h1), HookedStore(s, h2)
        answers = await asyncio.gather(answer(protocol.pay(r1, tok, secret)),
                                       answer(protocol.pay(r2, tok, secret)))
        for store in (plain, r1, r2):
            await store.aclose()
        return list(answers), state(catalog, rid)

    answers, after = asyncio.run(go())
    # R2 comes while attempt 2 runs (409) or after it (the same payment's answer).
    assert answers[0]["status"] == "PAID", answers
    assert answers[1] in ("PaymentInProgress", answers[0]), answers
    assert after["status"] == "PAID" and after["sold"] == 1
    assert after["charged"] == PRICE and after["history"] == ["PAYMENT"]


@pytest.mark.parametrize("lost", ["pay_finish", "debit"])
def test_a_retry_after_a_lost_reply_learns_it_paid(settings: Settings, catalog: redis.Redis,
                                                   lost: str) -> None:
    """The 503 of a lost reply says to retry the pay. When the lost reply was step 3 of the
    customer's last open hold, the token is finished, and the retry got 401: the client never
    learned it paid. Now a pay of a reservation this customer paid answers that payment."""
    s = _with(settings, pay_stale_seconds=0.2)

    def lose(name: str, reply: list) -> None:
        if name == lost:
            raise StoreUnavailable("Redis did not answer: ReplyTimeout", maybe_applied=True)

    async def go() -> tuple[list, dict]:
        plain = HookedStore(s)
        tok, secret, rid = await held_seat(plain)
        lossy = HookedStore(s, after=lose)
        first = await answer(protocol.pay(lossy, tok, secret))
        retries = [await answer(protocol.pay(plain, tok, secret))]
        if lost == "debit":  # step 3 never ran: PAYING until it is stale, then finished
            await asyncio.sleep(0.3)
            retries.append(await answer(protocol.pay(plain, tok, secret)))
        retries.append(await answer(protocol.pay(plain, tok, secret)))
        await plain.aclose()
        await lossy.aclose()
        return [first, *retries], state(catalog, rid)

    answers, after = asyncio.run(go())
    assert answers[0] == "StoreUnavailable"
    if lost == "debit":
        assert answers[1] == "PaymentInProgress"
    paid = answers[-1]
    assert paid == answers[-2] and paid["status"] == "PAID", answers
    assert paid["amount"] == PRICE / 100 and paid["balance"] == (FUNDED - PRICE) / 100
    assert after["status"] == "PAID" and after["charged"] == PRICE
    assert after["history"] == ["PAYMENT"]


# --- the customer's record: attempts never mixed -------------------------------------------
def test_a_later_attempt_refunds_an_earlier_attempts_debit(settings: Settings,
                                                           catalog: redis.Redis) -> None:
    """The safety net: a debit of attempt 1 still standing when attempt 2 reaches the record
    (the protocol never leaves one: attempt 2 exists only once 1 was refused) is given back
    before attempt 2 debits, so the customer pays once."""
    async def go() -> tuple[object, dict]:
        store = HookedStore(settings)
        tok, secret, rid = await held_seat(store)
        price, a1 = await protocol.begin(store, tok, secret)
        await protocol.debit(store, 1, rid, a1, price, "DEBIT")
        k = concert_keys(CONCERT)  # behind the protocol's back: attempt 1 back to HELD
        rec = orjson.loads(catalog.hget(k.res, secret))
        catalog.hset(k.res, secret, orjson.dumps({**rec, "status": "HELD"}))
        catalog.zrem(k.paying, secret)
        paid = await answer(protocol.pay(store, tok, secret))
        await store.aclose()
        return paid, state(catalog, rid)

    paid, after = asyncio.run(go())
    assert paid["status"] == "PAID" and after["status"] == "PAID"
    assert after["charged"] == PRICE
    assert after["history"] == ["PAYMENT", "REFUND", "PAYMENT"]  # newest first


def test_refund_gives_back_only_its_own_attempts_debit(settings: Settings,
                                                       catalog: redis.Redis) -> None:
    async def go() -> tuple[list, dict]:
        store = HookedStore(settings)
        tok, secret, rid = await held_seat(store)
        price, attempt = await protocol.begin(store, tok, secret)
        await protocol.debit(store, 1, rid, attempt, price, "DEBIT")
        c = CustomerKeys(1)
        other = await store.run("refund", (c.balance, c.debits, c.history), (rid, attempt + 1,
                                                                             100))
        mine = await store.run("refund", (c.balance, c.debits, c.history), (rid, attempt, 100))
        again = await store.run("refund", (c.balance, c.debits, c.history), (rid, attempt, 100))
        await store.aclose()
        return [other[2], mine[2], again[2]], state(catalog, rid)

    refunded, after = asyncio.run(go())
    assert refunded == [0, PRICE, 0]
    assert after["charged"] == 0 and after["debit"] == f"R:1:{PRICE}"


# --- purging what is closed -----------------------------------------------------------------
def test_closed_reservations_and_their_pay_records_are_purged(
    make_client: Callable[..., TestClient], settings: Settings, catalog: redis.Redis
) -> None:
    """After IDEMPOTENCY_TTL_SECONDS the tick drops expired and cancelled reservations and the
    customers' pay records of every closed one; a PAID record stays: it is the ticket."""
    client = make_client(idempotency_ttl_seconds=0.3, hold_ttl_seconds=0.2)
    token = active_token(client, 1)
    paid = hold(client, token)
    cancelled = hold(client, token, seat_id(OPTION, 2))
    expired = hold(client, token, seat_id(OPTION, 3))
    refused = hold(client, active_token(client, 4242), seat_id(OPTION, 4))  # balance 0
    assert pay(client, token, paid["reservationId"]).status_code == 200
    assert client.delete(f"/api/reserve/{cancelled['reservationId']}",
                         headers={"Authorization": token}).status_code == 200
    assert pay(client, active_token(client, 4242), refused["reservationId"]).status_code == 402
    k = concert_keys(CONCERT)
    assert catalog.hlen(CustomerKeys(1).debits) == 1
    time.sleep(0.3)  # the holds are due
    s = _with(settings, idempotency_ttl_seconds=0.3)

    async def tick() -> None:
        store = Store(connect(s), s)
        await tick_once(store, CONCERT)  # expires the open holds
        await asyncio.sleep(0.35)
        await tick_once(store, CONCERT)  # purges what closed over 0.3 s ago
        await store.aclose()

    asyncio.run(tick())
    left = {parse_reservation(h["reservationId"])[1]: h for h in (paid, cancelled, expired,
                                                                  refused)}
    kept = {secret for secret in left if catalog.hexists(k.res, secret)}
    assert kept == {parse_reservation(paid["reservationId"])[1]}
    assert catalog.zcard(k.gone) == 0
    assert catalog.hlen(CustomerKeys(1).debits) == 0


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
            _, a1 = await protocol.begin(store, tok, secret)
            await protocol.recover(store, CONCERT, secret, 1, a1)  # V:1, back to HELD
            price, a2 = await protocol.begin(store, tok, secret)
            await protocol.recover(store, CONCERT, secret, 1, a2)  # V:2, back to HELD
            await protocol.recover(store, CONCERT, secret, 1, a1)  # late: must not lower
            try:
                return await protocol.debit(store, 1, rid, a2, price, "DEBIT")
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
            price, attempt = await protocol.begin(store, tok, secret)
            await protocol.debit(store, 1, rid, attempt, price, "DEBIT")
            # Force the record out of PAYING behind the protocol's back.
            k = concert_keys(CONCERT)
            rec = catalog.hget(k.res, secret).replace(b'"PAYING"', b'"CANCELLED"')
            catalog.hset(k.res, secret, rec)
            try:
                await protocol._finish_paid(store, CONCERT, 1, secret, attempt, 0)
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



def test_the_tick_counts_a_recovery_ended_by_the_safety_net_as_done(
        settings: Settings, catalog: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """A stale attempt that had debited but lost the seat before the tick finished it: the
    recovery refunds the debit (PAY_SUPERSEDED to a payer) and is done, not a failure the
    tick logs as one each time (it used to say 'recovering pay ... failed')."""
    s = _with(settings, pay_stale_seconds=0.2)
    k = concert_keys(CONCERT)

    async def cut(name: str, keys, args) -> None:  # the seat lost behind the protocol's back
        if name == "pay_finish":
            _, secret = parse_reservation(held[0])
            catalog.hset(k.res, secret, catalog.hget(k.res, secret).replace(b'"PAYING"',
                                                                           b'"CANCELLED"'))

    held: list[str] = []

    async def go() -> dict:
        plain = HookedStore(s)
        tok, secret, rid = await held_seat(plain)
        held.append(rid)
        price, attempt = await protocol.begin(plain, tok, secret)
        await protocol.debit(plain, 1, rid, attempt, price, "DEBIT")
        await asyncio.sleep(0.25)  # the payer died: the attempt is stale
        done = await tick_once(HookedStore(s, cut), CONCERT)
        await plain.aclose()
        return done

    with caplog.at_level("INFO", logger="engine"):
        done = asyncio.run(go())
    assert done["recovered"] == 1
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    c = CustomerKeys(1)
    assert FUNDED - int(catalog.get(c.balance)) == 0
    assert [e.decode().split("|")[0] for e in catalog.lrange(c.history, 0, -1)] == [
        "REFUND", "PAYMENT"]

# --- found in the review of the fix ----------------------------------------------------------
def test_records_written_before_attempts_were_named_read_as_meant(
    settings: Settings, catalog: redis.Redis
) -> None:
    """A pay interrupted across the upgrade: the old code wrote "D:<amount>" (debited, by the
    pay in flight). Read as "attempt 100000", it left the customer charged and every retry
    refused."""
    s = _with(settings, pay_stale_seconds=0.2)

    async def go() -> tuple[object, dict]:
        store = HookedStore(s)
        tok, secret, rid = await held_seat(store)
        price, _ = await protocol.begin(store, tok, secret)
        c = CustomerKeys(1)
        catalog.decrby(c.balance, price)  # what the old debit.lua did, record and all
        catalog.hset(c.debits, rid, f"D:{price}")
        await asyncio.sleep(0.3)
        await tick_once(store, CONCERT)  # recovers the stale attempt from the old record
        paid = await answer(protocol.pay(store, tok, secret))
        await store.aclose()
        return paid, state(catalog, rid)

    paid, after = asyncio.run(go())
    assert after["status"] == "PAID" and after["charged"] == PRICE and after["sold"] == 1
    assert paid["status"] == "PAID" and after["debit"].startswith("D:1:")


def test_a_debit_that_arrives_after_the_purge_is_refunded(settings: Settings,
                                                          catalog: redis.Redis) -> None:
    """A payer whose debit is held up until its voided, cancelled reservation was purged with
    its record: the debit found no record, charged, and step 3's 'no such reservation' left
    the money taken without a seat."""
    s = _with(settings, pay_stale_seconds=0.2, idempotency_ttl_seconds=0.3)
    purged = asyncio.Event()

    async def slow(name: str, keys, args) -> None:
        if name == "debit" and args[3] == "DEBIT":
            await purged.wait()

    async def go() -> tuple[object, dict]:
        plain = HookedStore(s)
        tok, secret, _ = await held_seat(plain)
        payer = asyncio.create_task(answer(protocol.pay(HookedStore(s, slow), tok, secret)))
        await asyncio.sleep(0.3)
        await tick_once(plain, CONCERT)  # voids the stale attempt: HELD again
        await booking.cancel(plain, tok, secret)
        await asyncio.sleep(0.35)
        await tick_once(plain, CONCERT)  # purges the reservation and its pay record
        assert not catalog.hexists(concert_keys(CONCERT).res, secret)
        purged.set()
        late = await payer
        c = CustomerKeys(1)
        left = {"charged": FUNDED - int(catalog.get(c.balance)),
                "history": [e.decode().split("|")[0] for e in catalog.lrange(c.history, 0, -1)]}
        await plain.aclose()
        return late, left

    late, left = asyncio.run(go())
    assert late == "PaySuperseded"
    assert left == {"charged": 0, "history": ["REFUND", "PAYMENT"]}


def test_the_purge_is_not_lost_when_a_recovery_fails(settings: Settings,
                                                     catalog: redis.Redis) -> None:
    """admit.lua hands over the purged reservations once; a recovery that failed in the same
    tick used to end it before their pay records were forgotten."""
    s = _with(settings, pay_stale_seconds=0.2, idempotency_ttl_seconds=0.3)

    async def down(name: str, keys, args) -> None:
        if name == "debit" and "{u:2}" in keys[0]:
            raise StoreUnavailable("Redis did not answer", maybe_applied=True)

    async def go() -> bytes | None:
        store = HookedStore(s)
        tok, secret, rid = await held_seat(store)
        await protocol.begin(store, tok, secret)
        await asyncio.sleep(0.25)
        await tick_once(store, CONCERT)  # voids customer 1's attempt (V:1)
        await booking.cancel(store, tok, secret)
        other = parse_token((await queue.issue_token(store, 2, CONCERT))["tokenValue"])
        hold2 = await booking.reserve(store, other, OPTION, seat_id(OPTION, 2))
        await protocol.begin(store, other, parse_reservation(hold2["reservationId"])[1])
        await asyncio.sleep(0.35)  # customer 1's reservation is due for the purge; 2's stale
        await tick_once(HookedStore(s, down), CONCERT)
        await store.aclose()
        return catalog.hget(CustomerKeys(1).debits, rid)

    assert asyncio.run(go()) is None


def test_a_revoke_during_a_pay_that_then_fails_releases_the_hold(
        settings: Settings, catalog: redis.Redis) -> None:
    """An operator revokes the customer while its pay is between steps 1 and 2, and the payer
    dies there: the tick rolls the pay back, and the hold is released (REVOKED), not held
    again under a revoked token, keeping the seat and a ticket-limit place (review finding)."""
    s = _with(settings, pay_stale_seconds=0.2)

    async def go() -> tuple[dict, dict]:
        store = HookedStore(s)
        tok, secret, rid = await held_seat(store)
        await protocol.begin(store, tok, secret)  # then the payer is gone
        revoked = await operator.revoke(store, CONCERT, 1)
        await asyncio.sleep(0.3)  # stale now
        await tick_once(store, CONCERT)
        await store.aclose()
        return revoked, state(catalog, rid)

    revoked, after = asyncio.run(go())
    assert revoked["holdsBeingPaid"] == 1 and revoked["holdsReleased"] == 0
    k = concert_keys(CONCERT)
    assert after["status"] == "CANCELLED" and after["charged"] == 0 and after["sold"] == 0
    assert catalog.getbit(k.taken, 0) == 0 and catalog.zcard(k.holds) == 0
    assert (catalog.hget(k.tickets, 1) or b"0|").split(b"|")[:2] == [b"0", b""]
    kinds = [f[b"type"] for _, f in catalog.xrange(k.events)]
    # the token, then the hold its pay gave back
    assert kinds.count(b"TOKEN_REVOKED") == 1 and kinds.count(b"REVOKED") == 1
