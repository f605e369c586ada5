"""What a customer with an ACTIVE token may see: dates (dates.lua) and seats (seats.lua).
Both scripts return their list as JSON, embedded as is (``orjson.Fragment``) in the answer."""

from __future__ import annotations

import orjson

from engine.ids import Token
from engine.keys import concert_keys
from engine.store import Store


async def available_dates(store: Store, token: Token, concert_id: int) -> dict:
    """Each option of the concert with its date and free seats, by date."""
    k = concert_keys(token.concert_id)
    reply = await store.run(
        "dates",
        (k.tokens, k.active, k.options, k.free, k.holds, k.res, k.taken, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.idle_ms,
         1 if concert_id == token.concert_id else 0),
    )
    # The script builds the list as JSON: no per-option Python objects on this hot read.
    return {"concertId": concert_id, "dates": orjson.Fragment(reply[1])}


async def available_seats(store: Store, token: Token, option_id: int) -> dict:
    """The option's seats that are neither held nor sold, by seat number: the option's bits
    from Redis, over the seats' JSON the engine read once (seats never change)."""
    k = concert_keys(token.concert_id)
    _, version, start, _count, bits = await store.run(
        "seats",
        (k.tokens, k.active, k.layout, k.holds, k.res, k.taken, k.free, k.held, k.gone),
        (token.customer_id, token.secret, store.settings.idle_ms, option_id),
    )
    views = await _seat_views(store, token.concert_id, option_id, version)
    first = start >> 3
    free = [
        view for i, view in enumerate(views, start)
        if (i >> 3) - first >= len(bits) or not bits[(i >> 3) - first] & (0x80 >> (i & 7))
    ]
    return {"concertOptionId": option_id, "seats": orjson.Fragment(b"[" + b",".join(free) + b"]")}


# (concertId, optionId) -> (version, seat JSONs by number). Seats never change once created;
# an option created anew (another Redis, a re-seed) has another version and is read again.
_VIEWS: dict[tuple[int, int], tuple[bytes, list[bytes]]] = {}


async def _seat_views(store: Store, concert_id: int, option_id: int,
                      version: bytes) -> list[bytes]:
    cached = _VIEWS.get((concert_id, option_id))
    if cached is None or cached[0] != version:
        k = concert_keys(concert_id)
        reply = await store.run("catalog", (k.layout, k.seat_view(option_id)), (option_id,))
        cached = (reply[1], reply[3:])
        _VIEWS[(concert_id, option_id)] = cached
    return cached[1]
