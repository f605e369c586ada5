"""Seat holds: reserve (reserve.lua) and cancel (cancel.lua). Paying for a hold is
engine/pay.py."""

from __future__ import annotations

from engine.ids import Token, iso_ms, new_secret, reservation_id
from engine.keys import concert_keys
from engine.money import from_minor
from engine.store import Store


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
