"""Pay: the one protocol that spans two slots, a concert's (the seat) and a customer's (the
money), so it runs as three atomic scripts, each idempotent by (reservation, attempt).

Concert side, the reservation's ``status`` and ``attempt`` (lua/pay_begin.lua, pay_finish.lua):

    state            event                          next state            script
    HELD             pay begins                     PAYING, attempt + 1   pay_begin
    HELD             hold time up                   EXPIRED (seat free)   any release_due
    HELD             customer cancels               CANCELLED (seat free) cancel
    PAYING a         step 3 PAID for a              PAID (seat sold)      pay_finish
    PAYING a         step 3 REFUSED for a           HELD, or EXPIRED      pay_finish
                                                    (CANCELLED, revoked)
    PAYING a         an operator revokes            marked revoked        revoke
    PAYING a         step 3 PAID for b != a         unchanged; 17         pay_finish
    PAYING a, stale  pay begins                     unchanged; 14 a       pay_begin
    PAID             pay begins (same customer)     unchanged; 18 answer  pay_begin

Customer side, the reservation's debit record (lua/debit.lua, refund.lua); its attempt only
rises, and "already debited" is only ever said to the attempt that debited:

    record           call                           next record           answer
    (none) or V:k    DEBIT a > k, balance ok        D:a:amount:after      debited
    (none) or V:k    DEBIT a > k, balance low       unchanged             11
    (none) or V:k    VOID a > k                     V:a                   16
    D:k (k < a)      DEBIT or VOID a                (refund k) then as V:k
    D:a              DEBIT or VOID a                unchanged             already debited
    V:a or R:a       DEBIT or VOID a                unchanged             16
    any, attempt > a DEBIT or VOID a                unchanged             16
    D:a              refund a                       R:a:amount            refunded
    other            refund a                       unchanged             nothing

Why it is exact: attempt a can become PAID only while the reservation is PAYING under a, and
only after D:a was written; a later attempt b > a exists only once a was finished REFUSED, so
a can then never be PAID, and any debit of a is refunded when b reaches the customer's record
(or by refund.lua when step 3 answers 17, or 7 for a reservation purged meanwhile). A VOID of
a written first makes a's own debit refuse (16); a debit of a written first makes the VOID
answer "already debited", and the recovery then finishes the pay as PAID.
tests/test_pay_interleavings.py runs every order of these calls for the customer, a retry,
the tick, a cancel and the hold's expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from engine.errors import (
    InsufficientBalance,
    PaidEarlier,
    PayOrphaned,
    PayStale,
    PaySuperseded,
    ReservationNotFound,
    StoreUnavailable,
)
from engine.ids import Token, reservation_id
from engine.keys import CustomerKeys, concert_keys
from engine.money import from_minor
from engine.store import Store

log = logging.getLogger(__name__)


async def begin(store: Store, token: Token, res_id: str) -> tuple[int, int]:
    """Step 1: the reservation PAYING under a new attempt; returns (price, attempt)."""
    k = concert_keys(token.concert_id)
    _, price, attempt = await store.run(
        "pay_begin",
        (k.tokens, k.active, k.res, k.holds, k.paying, k.taken, k.free, k.gone,
         k.settings, k.tickets, k.events, k.concert, k.offers),
        (token.customer_id, token.seq, store.settings.idle_ms, res_id,
         store.settings.stale_ms, store.settings.events_maxlen, store.settings.return_hold_ms),
    )
    return price, attempt


async def debit(store: Store, customer_id: int, rid: str, attempt: int, amount: int,
                mode: str) -> tuple[int, int]:
    """Step 2: DEBIT (or VOID) one attempt; returns (balance after the debit, amount)."""
    c = CustomerKeys(customer_id)
    _, after, _already, debited = await store.run(
        "debit", (c.balance, c.debits, c.history),
        (rid, attempt, amount, mode, store.settings.history_limit))
    return after, debited


async def finish(store: Store, concert_id: int, res_id: str, attempt: int, outcome: str,
                 balance: int = 0) -> None:
    """Step 3: PAID (with the balance right after the debit, kept as the answer) or REFUSED."""
    k = concert_keys(concert_id)
    await store.run(
        "pay_finish",
        (k.res, k.paying, k.holds, k.taken, k.free, k.tokens, k.active, k.concert,
         k.gone, k.tickets, k.events, k.offers, k.settings),
        (res_id, attempt, outcome, balance, store.settings.events_maxlen,
         store.settings.return_hold_ms),
    )


async def run_pay_script(store: Store, token: Token, res_id: str) -> tuple[int, int]:
    """The three steps in one script (lua/pay.lua), where the concert's keys and the
    customer's are on one Redis; returns (price, balance after the debit)."""
    k, c = concert_keys(token.concert_id), CustomerKeys(token.customer_id)
    _, price, after = await store.run(
        "pay",
        (k.tokens, k.active, k.res, k.holds, k.paying, k.taken, k.free, k.gone,
         k.settings, k.tickets, k.events, k.concert, c.balance, c.debits, c.history,
         k.offers),
        (token.customer_id, token.seq, store.settings.idle_ms, res_id,
         store.settings.stale_ms, store.settings.events_maxlen,
         reservation_id(token.concert_id, res_id), store.settings.history_limit,
         store.settings.return_hold_ms),
    )
    return price, after


async def pay(store: Store, token: Token, res_id: str) -> dict:
    """Pay a HELD reservation: debit its price once, then mark it PAID and its seat sold.
    A refused debit returns the reservation to HELD and changes nothing else. A reservation
    this customer paid before answers that payment again. On one Redis this is one call;
    on a cluster (or with PAY_ONE_CALL off), its three steps."""
    rid = reservation_id(token.concert_id, res_id)
    if store.settings.pay_one_call and not store.cluster:
        return await _pay_in_one_call(store, token, res_id, rid)
    try:
        started, paid = await _past_stale(store, token, res_id, lambda: begin(store, token,
                                                                             res_id))
    except PaidEarlier as earlier:
        return await _answer(store, token.customer_id, rid, earlier.amount, earlier.balance)
    if paid is not None:
        return paid
    price, attempt = started
    try:
        after, _ = await debit(store, token.customer_id, rid, attempt, price, "DEBIT")
    except (InsufficientBalance, PaySuperseded):
        try:
            await finish(store, token.concert_id, res_id, attempt, "REFUSED")
        except StoreUnavailable as e:  # nothing was debited; the hold comes back by itself
            raise StoreUnavailable(
                e.detail + "; nothing was debited, and the hold is returned by itself within "
                "PAY_STALE_SECONDS", full=e.full) from e
        raise
    except StoreUnavailable as e:
        raise _maybe_paid(e) from e
    try:
        await _finish_paid(store, token.concert_id, token.customer_id, res_id, attempt, after)
    except StoreUnavailable as e:
        raise _maybe_paid(e) from e
    return _paid(rid, price, after)


async def _past_stale(store: Store, token: Token, res_id: str,
                     start: Callable[[], Awaitable[tuple[int, int]]]
                     ) -> tuple[tuple[int, int], dict | None]:
    """``start()``; when an earlier attempt was interrupted (stale), finish it first: if its
    debit had gone through, that payment is this pay's answer (returned second), else
    ``start()`` afresh."""
    try:
        return await start(), None
    except PayStale as stale:
        paid = await recover(store, token.concert_id, res_id, token.customer_id, stale.attempt)
        if paid is not None:
            return (0, 0), paid
        return await start(), None


async def _pay_in_one_call(store: Store, token: Token, res_id: str, rid: str) -> dict:
    try:
        # A stale attempt here was left by a stepped pay (a worker with PAY_ONE_CALL off).
        (price, after), paid = await _past_stale(store, token, res_id,
                                                 lambda: run_pay_script(store, token, res_id))
        if paid is not None:
            return paid
    except PaidEarlier as earlier:
        return await _answer(store, token.customer_id, rid, earlier.amount, earlier.balance)
    except StoreUnavailable as e:
        if not e.maybe_applied:
            raise
        # One script: applied whole or not at all. Paying again tells which.
        raise StoreUnavailable(e.detail + "; pay again to learn whether it was (a pay that "
                               "went through answers PAID again)", maybe_applied=True,
                               full=e.full) from e
    return _paid(rid, price, after)


def _maybe_paid(e: StoreUnavailable) -> StoreUnavailable:
    """Past step 1 the reservation is PAYING and the debit may have happened: say so. The
    pay finishes by itself (the tick, or the next pay after PAY_STALE_SECONDS)."""
    return StoreUnavailable(
        e.detail + "; the pay may or may not have been applied: it is completed or rolled back "
        "by itself within PAY_STALE_SECONDS, retry the pay then",
        maybe_applied=True, full=e.full)


def _paid(rid: str, amount: int, balance: int) -> dict:
    return {"reservationId": rid, "status": "PAID", "amount": from_minor(amount),
            "balance": from_minor(balance)}


async def _answer(store: Store, customer_id: int, rid: str, amount: int, balance: int) -> dict:
    if balance < 0:  # paid before the record kept its balance: show today's
        _, balance = await store.run("balance", (CustomerKeys(customer_id).balance,))
    return _paid(rid, amount, balance)


async def recover(store: Store, concert_id: int, res_id: str, customer_id: int,
                  attempt: int) -> dict | None:
    """Finish an interrupted attempt from the customer's record: PAID when that attempt had
    debited (returns the pay's answer), else void it so that it can never debit later and
    return the reservation to its hold (returns None)."""
    rid = reservation_id(concert_id, res_id)
    try:
        after, amount = await debit(store, customer_id, rid, attempt, 0, "VOID")
    except PaySuperseded:
        await finish(store, concert_id, res_id, attempt, "REFUSED")
        return None
    await _finish_paid(store, concert_id, customer_id, res_id, attempt, after)
    return _paid(rid, amount, after)


async def _finish_paid(store: Store, concert_id: int, customer_id: int, res_id: str,
                       attempt: int, after: int) -> None:
    """Step 3 after a debit. If the attempt is not the one PAYING, or the reservation is gone
    (a debit that arrived after the purge of a long-closed reservation), that attempt's debit
    is refunded and the pay refused: the protocol never leaves one, but money must not depend
    on that."""
    try:
        await finish(store, concert_id, res_id, attempt, "PAID", after)
    except (PayOrphaned, ReservationNotFound):
        c = CustomerKeys(customer_id)
        await store.run("refund", (c.balance, c.debits, c.history),
                        (reservation_id(concert_id, res_id), attempt,
                         store.settings.history_limit, "ORPHAN", 0))
        log.error("pay %s.%s attempt %s lost its seat: its debit refunded", concert_id, res_id,
                  attempt)
        raise PaySuperseded("The payment was interrupted and its amount refunded.") from None
