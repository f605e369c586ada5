"""The seat map of a performance, as the booking page draws it without being sent 100,000
seats: its layout (sections; one section's rows as runs of seats) and the option's taken
seats as bits (one bit a seat, 12.5 KB for 100,000), with per-section free counts.

Both read what the engine already keeps: the worker's seat list of the option
(engine/catalog.py, read once per version with catalog.lua) and the range of the concert's
taken-seat bitmap that seats.lua returns after its token check (catalog.seat_bits, the one
call of that script). No script of its own.

A seat's *place* is its offset in the option's listing (sections, rows, numbers), which is
also its bit in the option's slice of the bitmap (create_option.lua). A *run* is seats next
to each other at consecutive places, with consecutive numbers and ids and one price: seat i
of a run (0-based) is at ``place + i`` with number ``number + i``, id ``id + i``. A venue
loaded from a catalogue document has one run a row (rows keep one price), so a 100,000-seat
section layout is a few hundred runs, not 100,000 objects.

The layout never changes once the option exists, but the prices of free seats may (a reload
that reprices): the seat list then gets a new version, and so the layout (its ETag, api/app.py)
and every worker's cached copy of it. The taken-seats answer carries the version too, so a
client holding a layout knows whether it is still current without asking for it again."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson

from engine.catalog import SeatList, seat_bits, seat_list
from engine.errors import SectionNotFound
from engine.ids import Token
from engine.store import Store

FORMAT = "map1"  # in the ETag: a deploy that changes the layout's shape changes every ETag


@dataclass(slots=True)
class Layout:
    """One version of an option's layout as JSON, the overview built at once and each
    section's when first asked for."""

    listing: SeatList
    overview: bytes
    head: dict  # the overview's fields, repeated in each section's answer
    section_of: dict[str, dict]  # name -> its overview entry
    sections: dict[str, bytes] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.listing.version.decode()


def _runs(listing: SeatList, offset: int, count: int) -> list[dict]:
    """The rows of one section (``offset``, ``count`` in the listing) with their runs."""
    rows: list[dict] = []
    last_row: str | None = None
    run: dict | None = None
    for place in range(offset, offset + count):
        s = orjson.loads(listing.views[place])
        row = s.get("row") or ""
        if row != last_row:
            rows.append({"name": s.get("row"), "runs": []})
            last_row, run = row, None
        if (run is not None and s["price"] == run["price"]
                and s["id"] == run["id"] + run["count"]
                and s["number"] == run["number"] + run["count"]):
            run["count"] += 1
        else:
            run = {"place": place, "count": 1, "number": s["number"], "id": s["id"],
                   "price": s["price"]}
            rows[-1]["runs"].append(run)
    return rows


def _build(concert_id: int, option_id: int, listing: SeatList) -> Layout:
    sections, prices = [], set()
    for name, (offset, count) in listing.sections.items():
        own, rows = set(), set()
        for view in listing.views[offset:offset + count]:
            s = orjson.loads(view)
            own.add(s["price"])
            rows.add(s.get("row") or "")
        prices |= own
        sections.append({"name": name or None, "place": offset, "count": count,
                         "rowCount": len(rows), "prices": sorted(own, reverse=True)})
    head = {"concertOptionId": option_id, "version": listing.version.decode(),
            "seats": len(listing.views), "prices": sorted(prices, reverse=True)}
    return Layout(listing, orjson.dumps({**head, "sections": sections}), head,
                  {s["name"] or "": s for s in sections})


# (concertId, optionId) -> the layout of the option's current seat list.
_LAYOUTS: dict[tuple[int, int], Layout] = {}


async def _current(store: Store, token: Token, option_id: int) -> Layout:
    """The layout of the option's seat list as of now, after the token's check (seats.lua
    over no seat: the check, and the version)."""
    version, _, _, _ = await seat_bits(store, token, option_id, 0, 0)
    key = (token.concert_id, option_id)
    layout = _LAYOUTS.get(key)
    if layout is None or layout.listing.version != version:
        listing = await seat_list(store, token.concert_id, option_id, version)
        layout = _LAYOUTS[key] = _build(token.concert_id, option_id, listing)
    return layout


def etag(version: str) -> str:
    return f'"{FORMAT}.{version}"'


async def seat_map(store: Store, token: Token, option_id: int,
                   section: str | None = None) -> tuple[str, bytes]:
    """The option's layout as (ETag, JSON): its sections (places, counts, rows, prices), or
    with ``section`` that section with its rows and their runs."""
    layout = await _current(store, token, option_id)
    if section is None:
        return etag(layout.version), layout.overview
    body = layout.sections.get(section)
    if body is None:
        entry = layout.section_of.get(section)
        if entry is None:
            raise SectionNotFound(f"No section {section!r} in this performance.")
        rows = _runs(layout.listing, entry["place"], entry["count"])
        body = layout.sections[section] = orjson.dumps(
            {**layout.head, "sections": [{**entry, "rows": rows}]})
    return etag(layout.version), body


async def taken_seats(store: Store, token: Token, option_id: int,
                      section: str | None = None) -> dict:
    """The option's taken seats (held or sold) as bits, one a place from ``place``, and the
    free seats of each section in the range (the whole option, or one ``section``)."""
    kept = _LAYOUTS.get((token.concert_id, option_id))
    # Not kept yet: the token's check before the seat list is read (a stranger reads nothing).
    listing = (kept or await _current(store, token, option_id)).listing
    for _ in range(2):  # once more when the seat list changed under us
        if section is None:
            offset, count = 0, len(listing.views)
        elif section in listing.sections:
            offset, count = listing.sections[section]
        else:
            raise SectionNotFound(f"No section {section!r} in this performance.")
        version, start, got, bits = await seat_bits(store, token, option_id, offset, count)
        if listing.version == version:
            break
        listing = await seat_list(store, token.concert_id, option_id, version)
    taken = _aligned(bits, start, got)
    sections = []
    for name, (s_offset, s_count) in listing.sections.items():
        if offset <= s_offset and s_offset + s_count <= offset + got:
            shift = got - (s_offset - offset) - s_count
            busy = ((taken >> shift) & ((1 << s_count) - 1)).bit_count()
            sections.append({"name": name or None, "free": s_count - busy})
    pad = -got % 8
    return {"concertOptionId": option_id, "version": listing.version.decode(),
            "place": offset, "count": got, "free": got - taken.bit_count(),
            "taken": base64.b64encode((taken << pad).to_bytes((got + pad) // 8, "big")).decode(),
            "sections": sections}


def _aligned(bits: bytes, start: int, count: int) -> int:
    """The ``count`` bits from bitmap place ``start`` as an integer, the first place the most
    significant bit. ``bits`` are the bitmap's bytes from ``start >> 3`` on."""
    if count == 0:
        return 0
    size = ((start + count - 1) >> 3) - (start >> 3) + 1
    whole = int.from_bytes(bits[:size], "big")
    return (whole >> (size * 8 - (start & 7) - count)) & ((1 << count) - 1)
