"""Pay in one call on one Redis (lua/pay.lua): one script instead of three, leaving the very
records the three steps leave, refusing whole, taking over what a stepped pay left halfway,
and learning a lost reply by paying again. Every order among stepped payers, the tick, a
cancel and the expiry: tests/test_pay_interleavings.py (way one-call)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis

from engine import booking, queue, wallet
from engine import pay as protocol
from engine.config import Settings
from engine.errors import InsufficientBalance, StoreUnavailable
from engine.ids import Token, parse_reservation, parse_token
from engine.keys import CustomerKeys, concert_keys
from tests.conftest import CONCERT, OPTION, seat_id
from tests.hooks import HookedStore

PRICE = 100_000  # minor units: the test catalog's seats on OPTION
FUNDED = 10_000 * 100


def run(settings: Settings, go: Callable[[HookedStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = HookedStore(settings)
        try:
            return await go(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


async def held(store: HookedStore, customer: int, seat: int) -> tuple[Token, str]:
    tok = parse_token((await queue.issue_token(store, customer, CONCERT))["tokenValue"])
    rid = (await booking.reserve(store, tok, OPTION, seat_id(OPTION, seat)))["reservationId"]
    return tok, parse_reservation(rid)[1]


def left(r: redis.Redis, tok: Token, secret: str) -> dict:
    """What a pay leaves, without what differs by customer, seat or time."""
    k, c = concert_keys(CONCERT), CustomerKeys(tok.customer_id)
    rec = orjson.loads(r.hget(k.res, secret))
    debit = (r.hget(c.debits, f"{CONCERT}.{secret}") or b"").decode()
    return {"record": {f: rec.get(f) for f in ("status", "attempt", "price", "balance")},
            "in": {name: getattr(r, cmd)(key, secret) is not None for name, key, cmd in (
                ("holds", k.holds, "zscore"), ("paying", k.paying, "zscore"),
                ("gone", k.gone, "zscore"))},
            "debit": debit, "balance": int(r.get(c.balance)),
            "history": [e.decode().split("|")[:3] for e in r.lrange(c.history, 0, -1)],
            "token": r.hget(k.tokens, str(tok.customer_id)),
            "tickets": r.hget(k.tickets, str(tok.customer_id)),
            "event": r.xrevrange(k.events, count=1)[0][1][b"type"]}


def test_a_pay_is_one_call_and_leaves_what_the_three_steps_leave(
    r: redis.Redis, settings: Settings, catalog: redis.Redis
) -> None:
    stepped = dataclasses.replace(settings, pay_one_call=False)
    calls: dict[str, list[str]] = {}

    async def pay_as(store: HookedStore, way: str, customer: int, seat: int) -> dict:
        tok, secret = await held(store, customer, seat)
        names: list[str] = []

        async def hook(name: str, _keys: object, _args: object) -> None:
            names.append(name)

        store.hook = hook
        answer = await protocol.pay(store, tok, secret)
        store.hook = None
        calls[way] = names
        return {"answer": {**answer, "reservationId": None}, **left(r, tok, secret)}

    one = run(settings, lambda s: pay_as(s, "one", 1, 1))
    three = run(stepped, lambda s: pay_as(s, "three", 2, 2))
    assert calls == {"one": ["pay"], "three": ["pay_begin", "debit", "pay_finish"]}
    assert one == three
    assert one["answer"] == {"reservationId": None, "status": "PAID", "amount": PRICE / 100,
                             "balance": (FUNDED - PRICE) / 100}
    assert one["debit"] == f"D:1:{PRICE}:{FUNDED - PRICE}" and one["token"] is None
    assert int(r.hget(concert_keys(CONCERT).concert, "sold")) == 2


def test_a_refused_pay_changes_nothing_but_the_attempt(
    r: redis.Redis, settings: Settings, catalog: redis.Redis
) -> None:
    c = CustomerKeys(1)
    r.set(c.balance, PRICE - 1)

    async def go(store: HookedStore) -> tuple[dict, dict, dict]:
        tok, secret = await held(store, 1, 1)
        before = left(r, tok, secret)
        expires = r.zscore(concert_keys(CONCERT).holds, secret)
        with pytest.raises(InsufficientBalance):
            await protocol.pay(store, tok, secret)
        assert r.zscore(concert_keys(CONCERT).holds, secret) == expires  # the same hold
        refused = left(r, tok, secret)
        await wallet.charge(store, 1, 1)  # one minor unit: now exactly enough
        return before, refused, await protocol.pay(store, tok, secret)

    before, refused, paid = run(settings, go)
    assert refused == {**before, "record": {**before["record"], "attempt": 1}}
    assert refused["record"]["status"] == "HELD" and refused["debit"] == ""
    assert paid["status"] == "PAID" and paid["balance"] == 0
    assert r.hget(c.debits, paid["reservationId"]) == f"D:2:{PRICE}:0".encode()


@pytest.mark.parametrize("debited", [False, True], ids=["before-debit", "after-debit"])
def test_a_stepped_pay_left_halfway_is_taken_over(
    r: redis.Redis, settings: Settings, catalog: redis.Redis, debited: bool
) -> None:
    """A worker that paid in steps (PAY_ONE_CALL off) died after step 1 or 2: the next
    one-call pay finishes it, and the customer is charged once."""
    s = dataclasses.replace(settings, pay_stale_seconds=0.001)

    async def go(store: HookedStore) -> dict:
        tok, secret = await held(store, 1, 1)
        price, attempt = await protocol.begin(store, tok, secret)
        if debited:
            await protocol.debit(store, 1, f"{CONCERT}.{secret}", attempt, price, "DEBIT")
        await asyncio.sleep(0.01)  # the stepped attempt is stale now
        return await protocol.pay(store, tok, secret)

    paid = run(s, go)
    assert paid["status"] == "PAID" and paid["balance"] * 100 == FUNDED - PRICE
    c = CustomerKeys(1)
    assert int(r.get(c.balance)) == FUNDED - PRICE
    # after-debit: the crashed attempt's debit is the payment; before: voided, a new one paid
    assert r.hget(c.debits, paid["reservationId"]).startswith(
        b"D:1:" if debited else b"D:2:")
    kinds = [e.split(b"|")[0] for e in r.lrange(c.history, 0, -1)]
    assert kinds.count(b"PAYMENT") == 1 and b"REFUND" not in kinds


def test_a_lost_reply_is_learned_by_paying_again(
    r: redis.Redis, settings: Settings, catalog: redis.Redis
) -> None:
    async def go(store: HookedStore) -> tuple[StoreUnavailable, dict]:
        tok, secret = await held(store, 1, 1)

        def lose(name: str, _reply: list) -> None:
            if name == "pay":
                store.after = None
                raise StoreUnavailable("Redis did not answer: lost", maybe_applied=True)

        store.after = lose
        with pytest.raises(StoreUnavailable) as lost:
            await protocol.pay(store, tok, secret)
        return lost.value, await protocol.pay(store, tok, secret)

    lost, again = run(settings, go)
    assert lost.maybe_applied and "pay again to learn" in lost.detail
    assert again["status"] == "PAID" and again["balance"] * 100 == FUNDED - PRICE
    assert int(r.get(CustomerKeys(1).balance)) == FUNDED - PRICE
