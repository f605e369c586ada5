"""Catalogue documents: a concert, its performances and their seat maps (sections, rows, price
tiers), validated strictly and loaded as "create what is missing": ``python -m engine catalog
load FILE.json`` and ``PUT /admin/concerts/{concertId}`` take the same document.

    {"concertId": 7, "name": "Stadium night",
     "options": [{"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00",
       "sections": [{"name": "A", "price": 150000,
                     "rows": [{"name": "1", "seats": 40},
                              {"name": "2", "seats": 40, "price": 120000}]}]}]}

A row may override its section's price; seat numbers run 1..seats within a row. The engine
assigns seat ids: ``optionId * 10^k + ordinal`` in listing order (sections, rows, numbers),
10^k the smallest power of ten above the option's seat count (so 50 seats of option 41150 are
4115001..4115050); a performance's seat map never changes once it exists, so ids are stable
across reloads. A reload never resets a hold, a sale or a balance: missing performances are
created, the prices of free seats may change, and anything else that differs (a seat map, a
date, the price of a held or sold seat) refuses the whole document, naming what.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from engine.concert_settings import SettingError, configure_keys, parse_time, stored
from engine.errors import EngineError, SeatsTaken, raise_for
from engine.ids import MAX_ID
from engine.keys import CONCERTS, concert_keys
from engine.money import MAX_CHARGE, from_minor, to_minor
from engine.scripts import load_sources
from engine.store import Store
from engine.sync import SyncRedis

log = logging.getLogger("admin")

MAX_SEATS_PER_OPTION = 100_000
MAX_OPTIONS, MAX_SECTIONS, MAX_ROWS, MAX_ROW_SEATS = 500, 200, 5000, 10_000
CHUNK = 5000  # seats per create_option.lua call: each call stays short
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


class DocumentError(ValueError):
    """A catalogue document refused; ``path`` names the field (options[0].sections[2]...)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


@dataclass(frozen=True, slots=True)
class Seat:
    id: int
    number: int
    price: int  # minor units
    section: str = ""
    row: str = ""

    def json(self) -> bytes:
        """The seat as the API lists it (what the seat view keeps)."""
        return orjson.dumps({"id": self.id, "number": self.number,
                             "price": from_minor(self.price),
                             "section": self.section or None, "row": self.row or None})


@dataclass(frozen=True, slots=True)
class Option:
    id: int
    date: str
    seats: tuple[Seat, ...]


@dataclass(frozen=True, slots=True)
class Venue:
    concert_id: int
    name: str
    options: tuple[Option, ...]
    # The document's "settings" (their names) and configure.lua's (field, value, ...) for
    # them, set before the concert exists: a concert can go on sale paused or with its
    # opening.
    settings: tuple[str, ...] = ()
    stored_settings: tuple[str, ...] = ()


# --- the document ---------------------------------------------------------------------------
def _fields(obj: object, path: str, required: set[str], optional: set[str] = frozenset()
            ) -> dict:
    if not isinstance(obj, dict):
        raise DocumentError(path or "(document)", "must be an object")
    for name in obj:
        if name not in required | optional:
            raise DocumentError(f"{path}.{name}".lstrip("."), "is not a field of this object")
    for name in sorted(required):
        if name not in obj:
            raise DocumentError(f"{path}.{name}".lstrip("."), "is required")
    return obj


def _id(value: object, path: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise DocumentError(path, f"must be an integer from 1 to {MAX_ID}")
    return value


def _name(value: object, path: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value.strip() != value:
        raise DocumentError(path, "must be 1-64 printable characters, no spaces around")
    return value


def _price(value: object, path: str) -> int:
    try:
        minor = to_minor(value)
    except ValueError as e:
        raise DocumentError(path, str(e)) from None
    if not 0 < minor <= MAX_CHARGE:
        raise DocumentError(path, f"must be > 0 and at most {MAX_CHARGE // 100}")
    return minor


def _list(value: object, path: str, most: int) -> list:
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        raise DocumentError(path, f"must be a list of 1 to {most}")
    return value


def id_span(count: int) -> int:
    """The power of ten a performance's seat ids are counted in (above its seat count)."""
    return 10 ** max(2, len(str(count)))


def parse(doc: object) -> Venue:
    """The document as a Venue, or DocumentError naming the first bad field."""
    top = _fields(doc, "", {"concertId", "name", "options"}, {"settings"})
    concert_id = _id(top["concertId"], "concertId")
    name = _name(top["name"], "name")
    options, seen = [], set()
    for i, o in enumerate(_list(top["options"], "options", MAX_OPTIONS)):
        at = f"options[{i}]"
        o = _fields(o, at, {"concertOptionId", "date", "sections"})
        option_id = _id(o["concertOptionId"], f"{at}.concertOptionId")
        if option_id in seen:
            raise DocumentError(f"{at}.concertOptionId", f"{option_id} is listed twice")
        seen.add(option_id)
        try:
            parse_time(f"{at}.date", o["date"])
        except SettingError as e:
            raise DocumentError(e.field, e.message) from None
        tiers = _seat_map(o["sections"], f"{at}.sections")
        total = sum(n for _, _, n, _ in tiers)
        if total > MAX_SEATS_PER_OPTION:
            raise DocumentError(f"{at}.sections", f"{total} seats: at most "
                                f"{MAX_SEATS_PER_OPTION} a performance")
        span = id_span(total)
        if option_id * span + total > MAX_ID:
            raise DocumentError(f"{at}.concertOptionId", "too large for its seat ids "
                                f"({option_id} x {span} + seat)")
        seats, ordinal = [], 0
        for section, row, count, price in tiers:
            for number in range(1, count + 1):
                ordinal += 1
                seats.append(Seat(option_id * span + ordinal, number, price, section, row))
        options.append(Option(option_id, o["date"], tuple(seats)))
    settings: list[str] = []
    if top.get("settings", {}) != {}:
        try:
            settings = stored(top["settings"])
        except SettingError as e:
            raise DocumentError(f"settings.{e.field}".replace("settings.(body)", "settings"),
                                e.message) from None
    return Venue(concert_id, name, tuple(options), tuple(top.get("settings", ())),
                 tuple(settings))


def _seat_map(sections: object, path: str) -> list[tuple[str, str, int, int]]:
    """(section, row, seats, price) per row, in listing order."""
    out, names = [], set()
    for j, s in enumerate(_list(sections, path, MAX_SECTIONS)):
        at = f"{path}[{j}]"
        s = _fields(s, at, {"name", "price", "rows"})
        section = _name(s["name"], f"{at}.name")
        if section in names:
            raise DocumentError(f"{at}.name", f"section {section!r} is listed twice")
        names.add(section)
        price = _price(s["price"], f"{at}.price")
        rows = set()
        for r_i, r in enumerate(_list(s["rows"], f"{at}.rows", MAX_ROWS)):
            r_at = f"{at}.rows[{r_i}]"
            r = _fields(r, r_at, {"name", "seats"}, {"price"})
            row = _name(r["name"], f"{r_at}.name")
            if row in rows:
                raise DocumentError(f"{r_at}.name", f"row {row!r} is listed twice")
            rows.add(row)
            count = r["seats"]
            if type(count) is not int or not 1 <= count <= MAX_ROW_SEATS:
                raise DocumentError(f"{r_at}.seats", f"must be an integer from 1 to "
                                    f"{MAX_ROW_SEATS}")
            row_price = _price(r["price"], f"{r_at}.price") if "price" in r else price
            out.append((section, row, count, row_price))
    return out


def _where(option_index: int, seat: Seat) -> str:
    return (f"options[{option_index}] seat {seat.id} (section {seat.section!r} row "
            f"{seat.row!r} number {seat.number})")


# --- loading --------------------------------------------------------------------------------
# The load is written once, as a generator of Redis calls (a script's name, keys and args, or
# "" and a plain command), and driven by the API's store (``load``) or by redis-py for seeding,
# tests and benchmarks (``load_sync``). Each reply comes back through ``raise_for``.
Call = tuple[str, Sequence[object], Sequence[object]]


def _steps(venue: Venue) -> Generator[Call, Any, dict]:
    """Create what is missing, reprice free seats, refuse anything else that differs."""
    k = concert_keys(venue.concert_id)
    dates = yield ("", (), ("HMGET", k.options, *(o.id for o in venue.options)))
    create, reprice, same = [], [], []
    for i, (option, date) in enumerate(zip(venue.options, dates, strict=True)):
        if date is None:
            create.append(option)
            continue
        if date.decode() != option.date:
            raise DocumentError(f"options[{i}].date", f"performance {option.id} is on "
                                f"{date.decode()}: a performance's date does not change")
        reply = yield ("catalog", (k.layout, k.seat_view(option.id)), (option.id,))
        changed = _price_changes(venue, i, option, [orjson.loads(v) for v in reply[3:]])
        (reprice.append((option, changed)) if changed else same.append(option.id))
    # The settings before anything else changes (an opening refused while a queue stands
    # refuses the whole document), and before the concert exists: it takes tokens once it
    # has a name.
    if venue.stored_settings:
        yield ("configure", configure_keys(venue.concert_id), ("load", 0, *venue.stored_settings))
    repriced = 0
    if reprice:
        keys: list[object] = [k.layout, k.taken]
        args: list[object] = []
        for option, changes in reprice:
            keys += [k.seats(option.id), k.seat_view(option.id)]
            args += [option.id, secrets.token_hex(8), len(changes)]
            for offset, seat in changes:
                args += [seat.id, offset, seat.price, seat.json()]
        try:
            _, repriced = yield ("reprice", keys, args)
        except SeatsTaken as e:
            taken = ", ".join(x.decode() for x in e.reply[1:])
            raise DocumentError("options", f"the price of held or sold seats cannot change: "
                                f"seats {taken}") from None
    # A new concert's queue is of this version (qv 2): lua/include/admission.lua takes over a
    # queue the former version left only on a concert without it.
    qv = () if (yield ("", (), ("EXISTS", k.concert))) else ("qv", 2)
    yield ("", (), ("HSET", k.concert, "name", venue.name, *qv))
    for option in create:
        keys = (k.concert, k.options, k.free, k.layout, k.seats(option.id),
                k.seat_view(option.id))
        version = secrets.token_hex(8)
        for first in range(0, len(option.seats), CHUNK):
            args = [option.id, option.date, venue.name, version, len(option.seats), first]
            for seat in option.seats[first:first + CHUNK]:
                args += [seat.id, seat.number, seat.price, seat.json()]
            yield ("create_option", keys, args)
    yield ("", (), ("SADD", CONCERTS, venue.concert_id))
    report = {"concertId": venue.concert_id, "created": [o.id for o in create],
              "repriced": repriced, "unchanged": same,
              "settings": sorted(venue.settings),
              "seats": sum(len(o.seats) for o in venue.options)}
    log.info("catalogue of concert %s loaded: %s", venue.concert_id, report)
    return report


def _price_changes(venue: Venue, i: int, option: Option, stored: list[dict]
                   ) -> list[tuple[int, Seat]]:
    """(offset, seat) of the seats whose price changes; DocumentError if the map differs."""
    if len(stored) != len(option.seats):
        raise DocumentError(f"options[{i}].sections", f"performance {option.id} has "
                            f"{len(stored)} seats, the document {len(option.seats)}: a "
                            "performance's seat map does not change")
    changes = []
    for offset, (now, seat) in enumerate(zip(stored, option.seats, strict=True)):
        if (now["id"], now["number"], now.get("section") or "", now.get("row") or "") != (
                seat.id, seat.number, seat.section, seat.row):
            raise DocumentError(f"options[{i}].sections", f"{_where(i, seat)} differs from "
                                "the one on sale: a performance's seat map does not change")
        if round(now["price"] * 100) != seat.price:
            changes.append((offset, seat))
    return changes


async def load(store: Store, venue: Venue) -> dict:
    """The load through the API's store (either Redis mode)."""
    steps = _steps(venue)
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            name, keys, args = steps.throw(error) if error else steps.send(reply)
        except StopIteration as done:
            return done.value
        error = None
        try:
            reply = await (store.execute(*args) if not name else store.run(name, keys, args))
        except EngineError as e:  # the loader may answer it (a refused reprice)
            error = e


def load_sync(r: SyncRedis, venue: Venue) -> dict:
    """The load through redis-py: seeding, tests, benchmarks."""
    sources = load_sources()
    steps = _steps(venue)
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            name, keys, args = steps.throw(error) if error else steps.send(reply)
        except StopIteration as done:
            return done.value
        error = None
        if not name:
            reply = r.execute_command(*args)
            continue
        try:
            reply = raise_for(r.register_script(sources[name])(keys=list(keys), args=list(args)))
        except EngineError as e:
            error = e
