"""What an operator does to a concert on sale: revoke a customer's token (revoke.lua), refund a
paid reservation (refund_sale.lua, refund.lua SALE, refund_done.lua), export the sales. The
admin API (api/admin.py) and the CLI (python -m engine ...) are both doors onto these."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import orjson

from engine.catalog import SeatList, seat_list
from engine.errors import AlreadyCheckedIn, OptionNotFound
from engine.ids import iso_ms, reservation_id
from engine.keys import CustomerKeys, concert_keys
from engine.money import from_minor
from engine.store import Store


async def revoke(store: Store, concert_id: int, customer_id: int) -> dict:
    """End the customer's token for the concert and release its open holds."""
    k = concert_keys(concert_id)
    _, had, released, paying = await store.run(
        "revoke",
        (k.tokens, k.seqs, k.active, k.res, k.holds, k.taken, k.free, k.gone,
         k.tickets, k.events, k.offers, k.settings, k.concert, k.left, k.departed),
        (customer_id, store.settings.events_maxlen, store.settings.return_hold_ms))
    return {"concertId": concert_id, "customerId": customer_id, "revoked": bool(had),
            "holdsReleased": released, "holdsBeingPaid": paying}


async def refund_sale(store: Store, concert_id: int, res_id: str, force: bool = False) -> dict:
    """Refund a paid reservation: the points back (a REFUND in the history), the seat on sale
    again. Idempotent: a refund under way or done is finished or answered the same, once. A
    ticket checked in at the door is refunded only when ``force``d (else AlreadyCheckedIn)."""
    k = concert_keys(concert_id)
    rid = reservation_id(concert_id, res_id)
    try:
        _, status, price, customer, attempt = await store.run(
            "refund_sale", (k.res, k.refunding), (res_id, 1 if force else 0))
    except AlreadyCheckedIn as e:
        raise AlreadyCheckedIn(e.detail + " Refund it with force to refund it all the same.",
                               e.reply) from None
    if status != b"REFUNDED":  # done before: its points went back once, and only once
        c = CustomerKeys(int(customer))
        await store.run("refund", (c.balance, c.debits, c.history),
                        (rid, attempt, store.settings.history_limit, "SALE", price))
        await store.run("refund_done",
                        (k.res, k.refunding, k.taken, k.free, k.concert, k.gone, k.tickets,
                         k.events, k.offers, k.settings),
                        (res_id, store.settings.events_maxlen, store.settings.return_hold_ms))
    return {"reservationId": rid, "status": "REFUNDED", "amount": from_minor(price),
            "customerId": int(customer)}


SALES_COLUMNS = ["reservationId", "concertOptionId", "seatId", "section", "row", "number",
                 "price", "customerId", "paidAt", "checkedInAt"]


async def sales_csv(store: Store, concert_id: int, batch: int = 1000) -> AsyncIterator[bytes]:
    """The concert's paid reservations as CSV, a chunk at a time: an HSCAN of the
    reservations, so memory stays bounded by a batch and the options' seat lists."""
    k = concert_keys(concert_id)
    yield csv_row(SALES_COLUMNS)
    lists: dict[int, SeatList | None] = {}
    cursor = b"0"
    while True:
        cursor, flat = await store.execute("HSCAN", k.res, cursor, "COUNT", batch)
        rows = []
        for i in range(0, len(flat), 2):
            rec = orjson.loads(flat[i + 1])
            if rec.get("status") != "PAID":
                continue
            option = int(rec["option"])
            if option not in lists:
                lists[option] = await _current_list(store, concert_id, option)
            seat = _seat(lists[option], int(rec["seat"]))
            rows.append(csv_row([
                reservation_id(concert_id, flat[i].decode()), rec["option"], rec["seat"],
                seat.get("section", ""), seat.get("row", ""), seat.get("number", ""),
                from_minor(rec["price"]), rec["customer"],
                iso_ms(rec["paid"]) if rec.get("paid") else "",
                iso_ms(rec["checkedIn"]) if rec.get("checkedIn") else ""]))
        if rows:
            yield b"".join(rows)
        if cursor in (b"0", 0):
            return


async def seat_view(store: Store, concert_id: int, option_id: int, seat_id: int) -> dict:
    """A seat as its option lists it now ({id, number, price, section, row}; {} if none)."""
    return _seat(await _current_list(store, concert_id, option_id), seat_id)


async def _current_list(store: Store, concert_id: int, option_id: int) -> SeatList | None:
    """The option's seat list as it is now (its version checked: one call per option)."""
    layout = await store.execute("HGET", concert_keys(concert_id).layout, option_id)
    if layout is None:
        return None
    try:
        return await seat_list(store, concert_id, option_id, layout.rsplit(b":", 1)[1])
    except OptionNotFound:
        return None


def _seat(listing: SeatList | None, seat_id: int) -> dict:
    index = listing.index_of(seat_id) if listing is not None else None
    return orjson.loads(listing.views[index]) if index is not None else {}


def csv_row(values: list) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()
