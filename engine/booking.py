"""Seats and payment: reserve (reserve.lua), cancel (cancel.lua) and pay, which crosses a
concert and a customer and so runs as three atomic steps that are each idempotent by
reservation id: pay_begin.lua (PAYING), debit.lua, pay_finish.lua (PAID or back to HELD)."""

from __future__ import annotations

import logging

from engine.errors import (
    InsufficientBalance,
    PayOrphaned,
    PayStale,
    PaySuperseded,
    StoreUnavailable,
)
from engine.ids import Token, iso_ms, new_secret, reservation_id
from engine.keys import CustomerKeys, concert_keys
from engine.money import from_minor
from engine.store import Store

log = logging.getLogger(__name__)


async def reserve(store: Store, token: Token, option_id: int, seat_id: int) -> dict:
    """Hold a seat for the hold TTL; of concurrent holds of one seat exactly one wins."""
    k = concert_keys(token.concert_id)
    secret = new_secret()
    _, price, expires = await store.run(
        "reserve",
        (k.tokens, k.active, k.options, k.seats(option_id), k.taken, k.free, k.holds,
         k.res, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.idle_ms, option_id,
         seat_id, secret, store.settings.hold_ms),
    )
    return {
        "reservationId": reservation_id(token.concert_id, secret),
        "concertOptionId": option_id,
        "seatId": seat_id,
        "price": from_minor(price),
        "status": "HELD",
        "expiresAt": iso_ms(expires),
    }


async def cancel(store: Store, token: Token, secret: str) -> dict:
    """Cancel the customer's hold; the seat is free at once."""
    k = concert_keys(token.concert_id)
    await store.run(
        "cancel",
        (k.tokens, k.active, k.res, k.holds, k.taken, k.free, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.idle_ms, secret),
    )
    return {"reservationId": reservation_id(token.concert_id, secret), "status": "CANCELLED"}


async def _begin(store: Store, token: Token, secret: str) -> tuple[int, int]:
    k = concert_keys(token.concert_id)
    _, price, attempt = await store.run(
        "pay_begin",
        (k.tokens, k.active, k.res, k.holds, k.paying, k.taken, k.free, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.idle_ms, secret,
         store.settings.stale_ms),
    )
    return price, attempt


async def _debit(
    store: Store, customer_id: int, rid: str, attempt: int, amount: int, mode: str
) -> list:
    c = CustomerKeys(customer_id)
    return await store.run(
        "debit",
        (c.balance, c.debits, c.history),
        (rid, attempt, amount, mode, store.settings.history_limit),
    )


async def _finish(store: Store, concert_id: int, secret: str, attempt: int, outcome: str) -> None:
    k = concert_keys(concert_id)
    await store.run(
        "pay_finish",
        (k.res, k.paying, k.holds, k.taken, k.free, k.tokens, k.active, k.held, k.concert,
         k.gone),
        (secret, attempt, outcome),
    )


async def pay(store: Store, token: Token, secret: str) -> dict:
    """Pay a HELD reservation: debit its price once, then mark it PAID and its seat sold.
    A refused debit returns the reservation to HELD and changes nothing else."""
    rid = reservation_id(token.concert_id, secret)
    try:
        price, attempt = await _begin(store, token, secret)
    except PayStale as stale:
        # An earlier pay of this reservation crashed mid-way: finish it; if its debit had
        # gone through, that pay is this one's answer, else start afresh.
        paid = await recover_pay(store, token.concert_id, secret, token.customer_id, stale.attempt)
        if paid is not None:
            return paid
        price, attempt = await _begin(store, token, secret)
    try:
        try:
            _, after, _already, _amount = await _debit(
                store, token.customer_id, rid, attempt, price, "DEBIT"
            )
        except (InsufficientBalance, PaySuperseded):
            await _finish(store, token.concert_id, secret, attempt, "REFUSED")
            raise
        await _finish_paid(store, token.concert_id, token.customer_id, secret, attempt)
    except StoreUnavailable as e:
        # Past step 1 the reservation is PAYING and the debit may have happened: say so. The
        # pay finishes by itself (tick, or the next pay after PAY_STALE_SECONDS).
        raise StoreUnavailable(
            e.detail + "; the pay may or may not have been applied: it is completed or rolled "
            "back by itself within PAY_STALE_SECONDS, retry the pay then",
            maybe_applied=True, full=e.full) from e
    return _paid(rid, price, after)


def _paid(rid: str, amount: int, balance: int) -> dict:
    return {"reservationId": rid, "status": "PAID", "amount": from_minor(amount),
            "balance": from_minor(balance)}


async def recover_pay(
    store: Store, concert_id: int, secret: str, customer_id: int, attempt: int
) -> dict | None:
    """Finish a pay left in PAYING by a crash, from the balance's record: PAID when the debit
    happened (returns the pay's answer), else void the attempt so that it can never debit
    later, and return the reservation to its hold (returns None)."""
    rid = reservation_id(concert_id, secret)
    try:
        _, after, _already, amount = await _debit(store, customer_id, rid, attempt, 0, "VOID")
    except PaySuperseded:
        await _finish(store, concert_id, secret, attempt, "REFUSED")
        return None
    await _finish_paid(store, concert_id, customer_id, secret, attempt)
    return _paid(rid, amount, after)


async def _finish_paid(store: Store, concert_id: int, customer_id: int, secret: str,
                       attempt: int) -> None:
    """Step 3 after a debit. If the attempt no longer holds the seat (the protocol never
    allows it; money must not depend on that), the debit is refunded and the pay refused."""
    try:
        await _finish(store, concert_id, secret, attempt, "PAID")
    except PayOrphaned:
        c = CustomerKeys(customer_id)
        await store.run("refund", (c.balance, c.debits, c.history),
                        (reservation_id(concert_id, secret), store.settings.history_limit))
        log.error("pay %s.%s attempt %s lost its seat: debit refunded", concert_id, secret,
                  attempt)
        raise PaySuperseded("The payment was interrupted and its amount refunded.") from None
