"""What a customer with an ACTIVE token may see: dates (dates.lua) and seats (seats.lua)."""

from __future__ import annotations

from engine.ids import Token
from engine.keys import concert_keys
from engine.money import from_minor
from engine.store import Store


async def available_dates(store: Store, token: Token, concert_id: int) -> dict:
    """Each option of the concert with its date and free seats, by date."""
    k = concert_keys(token.concert_id)
    reply = await store.run(
        "dates",
        (k.tokens, k.active, k.seen, k.options, k.free, k.holds, k.res, k.taken, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.ms("waiting_idle_seconds"),
         1 if concert_id == token.concert_id else 0),
    )
    dates = [
        {"concertOptionId": int(reply[i]), "date": reply[i + 1].decode(),
         "availableSeats": reply[i + 2]}
        for i in range(1, len(reply), 3)
    ]
    dates.sort(key=lambda d: (d["date"], d["concertOptionId"]))
    return {"concertId": concert_id, "dates": dates}


async def available_seats(store: Store, token: Token, option_id: int) -> dict:
    """The option's seats that are neither held nor sold, by seat number."""
    k = concert_keys(token.concert_id)
    reply = await store.run(
        "seats",
        (k.tokens, k.active, k.seen, k.options, k.seats(option_id), k.holds, k.res, k.taken,
         k.free, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.ms("waiting_idle_seconds"), option_id),
    )
    seats = [
        {"id": int(reply[i]), "number": reply[i + 1], "price": from_minor(reply[i + 2])}
        for i in range(1, len(reply), 3)
    ]
    seats.sort(key=lambda s: s["number"])
    return {"concertOptionId": option_id, "seats": seats}
