"""What a customer with an ACTIVE token may see: dates (dates.lua) and seats (seats.lua), and
the seat list each worker keeps per option (catalog.lua): the seats' JSON in listing order
(sections, then rows, then numbers), the ranges of its sections, and its rows best first for
best-available (engine/booking.py). A seat list changes only when a catalogue reload
reprices it, which gives the option a new version."""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from dataclasses import dataclass, field

import orjson

from engine.errors import SectionNotFound
from engine.ids import Token
from engine.keys import concert_keys
from engine.store import Store


async def available_dates(store: Store, token: Token, concert_id: int) -> dict:
    """Each option of the concert with its date and free seats, by date."""
    k = concert_keys(token.concert_id)
    reply = await store.run(
        "dates",
        (k.tokens, k.active, k.options, k.free, k.holds, k.res, k.taken, k.gone,
         k.settings, k.tickets, k.events, k.concert, k.offers),
        (token.customer_id, token.seq, store.settings.idle_ms,
         1 if concert_id == token.concert_id else 0, store.settings.events_maxlen,
         store.settings.return_hold_ms),
    )
    # The script builds the list as JSON: no per-option Python objects on this hot read.
    return {"concertId": concert_id, "dates": orjson.Fragment(reply[1])}


@dataclass(frozen=True, slots=True)
class Row:
    """A run of seats next to each other: one row of a section, seat ids consecutive."""

    section: str
    row: str
    offset: int  # in the option's listing
    count: int
    first_id: int
    price: int  # minor units


@dataclass(frozen=True, slots=True)
class SeatList:
    version: bytes
    start: int  # the bitmap place of the option's first seat
    views: list[bytes]  # each seat's JSON, in listing order (= bitmap order)
    sections: dict[str, tuple[int, int]]  # section -> (offset, count)
    rows: tuple[Row, ...]  # best first: dearest, then in listing order
    by_id: tuple[Row, ...]  # the same, by first seat id (to find a seat by its id)
    packed: dict = field(default_factory=dict, compare=False)  # (section, q) -> best(...)

    def best(self, section: str | None, quantity: int) -> tuple[tuple[Row, ...], str, str]:
        """The rows of at least ``quantity`` seats best first (of one section), as
        reserve_best.lua takes them, made once per section and quantity (1-8) and kept: each
        row's first bitmap place (8 hex digits a row, so the script reads row i without
        parsing the rest), and the blocks of rows that follow each other in the bitmap with
        consecutive seat ids and one price, as
        "firstRow:lastRow:lastPlace:firstSeatId:price" (rows 1-based): the script counts a
        block's free seats with one BITCOUNT, and skips it whole when too few are free."""
        got = self.packed.get((section, quantity))
        if got is None:
            rows = tuple(r for r in self.rows if r.count >= quantity
                         and (section is None or r.section == section))
            blocks, first = [], 0
            for i in range(1, len(rows) + 1):
                a, b = rows[i - 1], rows[i] if i < len(rows) else None
                if b is None or b.offset != a.offset + a.count or b.price != a.price or (
                        b.first_id != a.first_id + a.count):
                    head = rows[first]
                    blocks.append(f"{first + 1}:{i}:{self.start + a.offset + a.count - 1}:"
                                  f"{head.first_id}:{head.price}")
                    first = i
            got = self.packed[(section, quantity)] = (
                rows, "".join(f"{self.start + r.offset:08x}" for r in rows), ",".join(blocks))
        return got

    def index_of(self, seat_id: int) -> int | None:
        """A seat's place in the listing, from its id."""
        i = bisect_right(self.by_id, seat_id, key=lambda r: r.first_id) - 1
        if i >= 0 and seat_id < self.by_id[i].first_id + self.by_id[i].count:
            return self.by_id[i].offset + seat_id - self.by_id[i].first_id
        return None

    @classmethod
    def build(cls, version: bytes, start: int, views: list[bytes]) -> SeatList:
        sections: dict[str, list[int]] = {}
        rows: list[list] = []
        for i, raw in enumerate(views):
            s = orjson.loads(raw)
            section, row = s.get("section") or "", s.get("row") or ""
            span = sections.setdefault(section, [i, 0])
            span[1] += 1
            last = rows[-1] if rows else None
            if (last and last[0] == section and last[1] == row and last[5] == s["price"]
                    and last[4] + last[3] == s["id"]):
                last[3] += 1
            else:  # a new row, or a break in it (another price, ids not consecutive)
                rows.append([section, row, i, 1, s["id"], s["price"]])
        runs = [Row(r[0], r[1], r[2], r[3], r[4], round(r[5] * 100)) for r in rows]
        return cls(version, start, views, {k: (v[0], v[1]) for k, v in sections.items()},
                   tuple(sorted(runs, key=lambda r: (-r.price, r.offset))),
                   tuple(sorted(runs, key=lambda r: r.first_id)))


# (concertId, optionId) -> the option's seat list, current as of its version.
_VIEWS: dict[tuple[int, int], SeatList] = {}
# The reads under way: the first request of a drop's burst reads the list, the others wait for
# it (a 100,000-seat list is 7 MB: sixteen reads at once made every other call wait).
_READING: dict[tuple[int, int], asyncio.Future] = {}


async def seat_list(store: Store, concert_id: int, option_id: int,
                    version: bytes | None = None) -> SeatList:
    """The option's seat list, read from Redis when not kept yet or not of ``version``."""
    key = (concert_id, option_id)
    cached = _VIEWS.get(key)
    if cached is not None and (version is None or cached.version == version):
        return cached
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # driven by hand (loadtests/script_bench/driver.py): nobody to share with
        return await _read(store, concert_id, option_id)
    reading = _READING.get(key)
    if reading is None:
        reading = _READING[key] = asyncio.ensure_future(_read(store, concert_id, option_id))
        reading.add_done_callback(lambda _: _READING.pop(key, None))
    cached = await asyncio.shield(reading)
    if version is not None and cached.version != version:  # changed again meanwhile
        cached = await _read(store, concert_id, option_id)
    return cached


async def _read(store: Store, concert_id: int, option_id: int) -> SeatList:
    k = concert_keys(concert_id)
    reply = await store.run("catalog", (k.layout, k.seat_view(option_id)), (option_id,))
    listing = _VIEWS[(concert_id, option_id)] = SeatList.build(reply[1], int(reply[2]),
                                                                reply[3:])
    return listing


async def seat_bits(store: Store, token: Token, option_id: int, offset: int = 0,
                    count: int = -1) -> tuple[bytes, int, int, bytes]:
    """seats.lua: the token's check and due holds released, then the option's taken bits
    from its ``offset``-th seat for ``count`` seats (-1: to its last) as (version, start,
    count, bits): ``bits`` are the bitmap's bytes from ``start >> 3`` covering the range
    (missing ones filled: free). The one call of the script (available-seats, the seat map's
    taken seats)."""
    k = concert_keys(token.concert_id)
    _, version, start, count, bits, *not_mine = await store.run(
        "seats",
        (k.tokens, k.active, k.layout, k.holds, k.res, k.taken, k.free, k.gone,
         k.settings, k.tickets, k.events, k.concert, k.offers),
        (token.customer_id, token.seq, store.settings.idle_ms, option_id, offset, count,
         store.settings.events_maxlen, store.settings.return_hold_ms,
         store.settings.active_ttl_ms),
    )
    first = start >> 3
    bits += bytes(((start + count + 7) >> 3) - first - len(bits))  # missing: all free
    if not_mine:  # seats on offer to the customers admitted after they came back: not this one
        bits = bytearray(bits)
        for i in not_mine:
            bits[(i >> 3) - first] |= 0x80 >> (i & 7)
        bits = bytes(bits)
    return version, start, count, bits


async def available_seats(store: Store, token: Token, option_id: int,
                          section: str | None = None) -> dict:
    """The option's seats that are neither held nor sold, in listing order (one section's
    with ``section``): the range's bits from Redis over the seats' JSON the worker keeps.
    The work is the range's, whatever the venue's size."""
    listing = _VIEWS.get((token.concert_id, option_id))
    if listing is None and section is not None:  # a section's range needs the list first
        listing = await seat_list(store, token.concert_id, option_id)
    for _ in range(2):  # once more when the seat list changed under us
        offset, count = (0, -1)
        if section is not None and listing is not None:
            if section not in listing.sections:
                raise SectionNotFound(f"No section {section!r} in this performance.")
            offset, count = listing.sections[section]
        version, start, count, bits = await seat_bits(store, token, option_id, offset, count)
        if listing is not None and listing.version == version:
            break
        listing = await seat_list(store, token.concert_id, option_id, version)
        if section is None:
            break
    free = free_views(listing.views, offset, start, count, bits) if count else []
    return {"concertOptionId": option_id, "seats": orjson.Fragment(b"[" + b",".join(free) + b"]")}


def free_views(views: list[bytes], offset: int, start: int, count: int,
               bits: bytes) -> list[bytes]:
    """The views of the ``count`` seats from ``views[offset]`` whose bit is clear, the first
    one's bit at bitmap place ``start`` (``bits`` from byte ``start >> 3``). A byte with no
    seat taken, most of them before a drop, is one slice; a full one is skipped."""
    free: list[bytes] = []
    first, end, base = start >> 3, start + count, offset - start  # views[base + i]: place i
    for j, byte in enumerate(bits):
        lo, hi = max((first + j) << 3, start), min((first + j + 1) << 3, end)
        if lo >= hi or byte == 0xFF:
            continue
        if byte == 0:
            free += views[base + lo:base + hi]
        else:
            free += [views[base + i] for i in range(lo, hi) if not byte & (0x80 >> (i & 7))]
    return free
