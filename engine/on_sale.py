"""The concerts on sale, as anyone may see them (no token): the booking page lists them so
that a fan can book any concert an operator loaded, not one the page was written for.

One concert is one read-only script on its own slot (concert_card.lua). The list reads every
concert the tick walks (the ``concerts`` set), keeps those with a performance to come, soonest
first, at most ``MAX_LISTED``, and each worker keeps it ``KEEP_SECONDS``: a crowd opening the
page costs Redis one read of each concert a worker a second or two, whatever its size."""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import datetime

from engine.errors import ConcertNotFound
from engine.ids import iso_ms
from engine.keys import CONCERTS, concert_keys
from engine.store import Store

MAX_LISTED = 100
KEEP_SECONDS = 2.0
BATCH = 100  # concerts read at once


async def concert_card(store: Store, concert_id: int) -> dict:
    """A concert's name, its performances by date, its free seats, paused, opening."""
    k = concert_keys(concert_id)
    reply = await store.run("concert_card", (k.concert, k.options, k.free, k.settings))
    _, name, paused, opens_at, free = reply[:5]
    dates = sorted(
        ({"concertOptionId": int(reply[i]), "date": reply[i + 1].decode()}
         for i in range(5, len(reply), 2)),
        key=lambda d: (_instant(d["date"]), d["concertOptionId"]))
    return {"concertId": concert_id, "name": name.decode(), "dates": dates,
            "freeSeats": free, "paused": bool(paused),
            "opensAt": iso_ms(opens_at) if opens_at else None}


def _instant(date: str) -> float:
    """An RFC 3339 date with its offset (the catalogue checks it has one) as epoch seconds."""
    try:
        return datetime.fromisoformat(date).timestamp()
    except ValueError:
        return 0.0


class _Kept:
    """A worker's list: when it was read, the answer, and the read under way (one at a
    time: the first caller reads, the others wait for it)."""

    __slots__ = ("answer", "at", "reading")

    def __init__(self) -> None:
        self.at, self.answer, self.reading = -KEEP_SECONDS, {}, None


_KEPT: weakref.WeakKeyDictionary[Store, _Kept] = weakref.WeakKeyDictionary()


async def concerts_on_sale(store: Store) -> dict:
    """The concerts with a performance to come, by their next performance: name, the next
    and last dates, performances to come, free seats, paused, opening."""
    kept = _KEPT.get(store)
    if kept is None:
        kept = _KEPT[store] = _Kept()
    if time.monotonic() - kept.at < KEEP_SECONDS:
        return kept.answer
    if kept.reading is None:
        kept.reading = asyncio.ensure_future(_read(store, kept))
    return await asyncio.shield(kept.reading)


async def _read(store: Store, kept: _Kept) -> dict:
    try:
        ids = sorted(int(c) for c in await store.execute("SMEMBERS", CONCERTS))
        cards = []
        for first in range(0, len(ids), BATCH):  # a bounded number of calls in flight
            cards += await asyncio.gather(*(_card_or_none(store, c)
                                            for c in ids[first:first + BATCH]))
    finally:
        kept.reading = None
    now = time.time()
    listed = []
    for card in cards:
        if card is None:
            continue
        to_come = [d for d in card["dates"] if _instant(d["date"]) >= now]
        if not to_come:
            continue
        listed.append({"concertId": card["concertId"], "name": card["name"],
                       "nextDate": to_come[0]["date"], "lastDate": card["dates"][-1]["date"],
                       "performances": len(to_come), "freeSeats": card["freeSeats"],
                       "paused": card["paused"], "opensAt": card["opensAt"]})
    listed.sort(key=lambda c: (_instant(c["nextDate"]), c["concertId"]))
    kept.at, kept.answer = time.monotonic(), {"concerts": listed[:MAX_LISTED]}
    return kept.answer


async def _card_or_none(store: Store, concert_id: int) -> dict | None:
    try:
        return await concert_card(store, concert_id)
    except ConcertNotFound:  # in the set, but its load never got as far as its name
        return None
