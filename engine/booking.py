"""Seat holds: reserve one seat (reserve.lua), the best seats together (reserve_best.lua), and
cancel (cancel.lua). Paying for a hold is engine/pay.py."""

from __future__ import annotations

import orjson

from engine.catalog import seat_list
from engine.errors import CatalogChanged, SectionNotFound
from engine.ids import Token, iso_ms, new_hex, reservation_id
from engine.keys import concert_keys
from engine.money import from_minor
from engine.store import Store

MAX_TOGETHER = 8  # seats held together in one best-available request


def _limits(store: Store) -> tuple[int, int, float, int, int]:
    s = store.settings
    return (s.hold_ms, s.max_tickets_per_customer, s.reserve_rate_per_customer, s.rate_burst,
            s.events_maxlen)


async def reserve(store: Store, token: Token, option_id: int, seat_id: int) -> dict:
    """Hold a seat for the hold TTL; of concurrent holds of one seat exactly one wins."""
    k = concert_keys(token.concert_id)
    res_id = new_hex()
    hold_ms, max_tickets, per_second, burst, events = _limits(store)
    _, price, expires = await store.run(
        "reserve",
        (k.tokens, k.active, k.options, k.seats(option_id), k.taken, k.free, k.holds,
         k.res, k.gone, k.settings, k.tickets, k.events, k.concert, k.offers),
        (token.customer_id, token.seq, store.settings.idle_ms, option_id,
         seat_id, res_id, hold_ms, max_tickets, per_second, burst, events,
         store.settings.return_hold_ms, store.settings.active_ttl_ms),
    )
    return {
        "reservationId": reservation_id(token.concert_id, res_id),
        "concertOptionId": option_id,
        "seatId": seat_id,
        "price": from_minor(price),
        "status": "HELD",
        "expiresAt": iso_ms(expires),
    }


async def reserve_best(store: Store, token: Token, option_id: int, quantity: int,
                       section: str | None = None) -> dict:
    """Hold the best ``quantity`` seats next to each other in one row (dearest rows first,
    then in listing order; of one section with ``section``), each its own reservation, in one
    atomic step."""
    k = concert_keys(token.concert_id)
    hold_ms, max_tickets, per_second, burst, events = _limits(store)
    listing = await seat_list(store, token.concert_id, option_id)
    for _ in range(2):  # once more when the seat list changed under us
        if section is not None and section not in listing.sections:
            raise SectionNotFound(f"No section {section!r} in this performance.")
        rows, starts, blocks = listing.best(section, quantity)
        res_ids = [new_hex() for _ in range(quantity)]
        try:
            _, expires, row, offset = await store.run(
                "reserve_best",
                (k.tokens, k.active, k.layout, k.taken, k.free, k.holds, k.res,
                 k.gone, k.settings, k.tickets, k.events, k.concert, k.offers),
                (token.customer_id, token.seq, store.settings.idle_ms, option_id, quantity,
                 hold_ms, max_tickets, per_second, burst, events, listing.version.decode(),
                 ",".join(res_ids), starts, blocks, store.settings.return_hold_ms,
                 store.settings.active_ttl_ms))
            break
        except CatalogChanged:
            listing = await seat_list(store, token.concert_id, option_id, b"")
    chosen = rows[row - 1]
    seats = []
    for i, res_id in enumerate(res_ids):
        seat = orjson.loads(listing.views[chosen.offset + offset + i])
        seats.append({"id": seat["id"], "section": seat.get("section"), "row": seat.get("row"),
                      "number": seat["number"], "price": seat["price"],
                      "reservationId": reservation_id(token.concert_id, res_id)})
    return {"concertOptionId": option_id, "quantity": quantity, "status": "HELD",
            "expiresAt": iso_ms(expires), "seats": seats,
            "reservationIds": [s["reservationId"] for s in seats]}


async def cancel(store: Store, token: Token, res_id: str) -> dict:
    """Cancel the customer's hold; the seat is free at once."""
    k = concert_keys(token.concert_id)
    await store.run(
        "cancel",
        (k.tokens, k.active, k.res, k.holds, k.taken, k.free, k.gone, k.settings,
         k.tickets, k.events, k.concert, k.offers),
        (token.customer_id, token.seq, store.settings.idle_ms, res_id,
         store.settings.events_maxlen, store.settings.return_hold_ms),
    )
    return {"reservationId": reservation_id(token.concert_id, res_id), "status": "CANCELLED"}
