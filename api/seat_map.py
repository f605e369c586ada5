"""The seat map's and the concerts' routes (engine/seat_map.py, engine/on_sale.py): a
performance's layout once, cacheable by ETag (api/asgi.py's ``Cached``), its taken seats as
bits, and the concerts on sale, public. Declared like every operation (api/contract.py);
api/app.py lists them with the catalogue's."""

from __future__ import annotations

from starlette.types import Scope

from api.asgi import Cached
from api.auth import ACTIVE
from api.contract import ID, NAME, Field, Operation, Reply, Text, obj
from api.schemas import COUNT, POINTS
from engine import on_sale, seat_map
from engine.ids import Token
from engine.store import Store

OPTION = Field("concertOptionId", ID, "A concert option (one performance).", where="path",
               example=41150)
CONCERT = Field("concertId", ID, "A concert.", where="path", example=2)
SECTION = Field("section", NAME, "Only this section.", required=False, where="query",
                example="A")
IF_NONE_MATCH = Field("If-None-Match", Text(r"[ -~]{1,1024}", "must be 1-1024 visible ASCII "
                                             "characters"),
                      "Optional. The ETag of the layout you have: 304 without a body while it "
                      "is current.", required=False, where="header", example='"map1.9f2c41"')


def _store(scope: Scope) -> Store:
    return scope["state"]["store"]


async def seat_map_route(scope: Scope, tok: Token, option_id: int, section: str | None,
                         given: str | None) -> Cached:
    tag, body = await seat_map.seat_map(_store(scope), tok, option_id, section)
    return Cached(tag, body, given)


async def taken_seats(scope: Scope, tok: Token, option_id: int, section: str | None) -> dict:
    return await seat_map.taken_seats(_store(scope), tok, option_id, section)


async def concerts(scope: Scope) -> dict:
    return await on_sale.concerts_on_sale(_store(scope))


async def concert_card(scope: Scope, concert_id: int) -> dict:
    return await on_sale.concert_card(_store(scope), concert_id)


# --- the answers ----------------------------------------------------------------------------
CACHE_HEADERS = {
    "ETag": {"required": True, "schema": {"type": "string"},
             "description": "Names the layout's version: send it back in If-None-Match."},
    "Cache-Control": {"required": True, "schema": {"type": "string"},
                      "description": "`private, no-cache`: kept, and asked again each time."}}
PLACE = COUNT | {"description": "A seat's offset in the performance's listing (sections, "
                                "rows, numbers), which is also its bit in the taken seats."}
NAME_OR_NULL = {"type": ["string", "null"]}
MAP_SECTION = obj({
    "name": NAME_OR_NULL, "place": PLACE | {"description": "Its first seat's place."},
    "count": COUNT, "rowCount": COUNT,
    "prices": {"type": "array", "items": POINTS, "description": "Its prices, dearest first."},
    "rows": {"type": "array", "description": "Only in one section's answer (?section=).",
             "items": obj({"name": NAME_OR_NULL, "runs": {
                 "type": "array", "description": "Seats next to each other: seat i of a run "
                 "(from 0) is at place + i, with number + i and id + i, at its price.",
                 "items": obj({"place": PLACE, "count": COUNT, "number": COUNT,
                               "id": ID.schema(), "price": POINTS})}})},
}, optional=("rows",))
SEAT_MAP = obj({
    "concertOptionId": ID.schema(),
    "version": {"type": "string", "description": "The seat list's version: it changes when "
                                                 "a reload reprices free seats."},
    "seats": COUNT,
    "prices": {"type": "array", "items": POINTS, "description": "Every price, dearest first "
                                                               "(a legend's tiers)."},
    "sections": {"type": "array", "items": MAP_SECTION},
})
SEAT_MAP_EXAMPLE = {"concertOptionId": 70001, "version": "9f2c41d07ab3e815", "seats": 80,
                    "prices": [150000, 120000], "sections": [
                        {"name": "A", "place": 0, "count": 80, "rowCount": 2,
                         "prices": [150000, 120000], "rows": [
                             {"name": "1", "runs": [{"place": 0, "count": 40, "number": 1,
                                                     "id": 70001001, "price": 150000}]},
                             {"name": "2", "runs": [{"place": 40, "count": 40, "number": 1,
                                                     "id": 70001041, "price": 120000}]}]}]}
TAKEN_SEATS = obj({
    "concertOptionId": ID.schema(),
    "version": {"type": "string", "description": "The seat list's version (as the seat "
                                                 "map's): another one means a new layout."},
    "place": PLACE | {"description": "The first place the bits cover."},
    "count": COUNT | {"description": "The places the bits cover."},
    "free": COUNT,
    "taken": {"type": "string", "contentEncoding": "base64",
              "description": "One bit a seat from `place` on, the most significant bit of "
                             "the first byte first: 1 while the seat is held or sold."},
    "sections": {"type": "array", "description": "The free seats of each section covered.",
                 "items": obj({"name": NAME_OR_NULL, "free": COUNT})},
})
TAKEN_SEATS_EXAMPLE = {"concertOptionId": 70001, "version": "9f2c41d07ab3e815", "place": 0,
                       "count": 80, "free": 78, "taken": "wAAAAAAAAAAAAA==",
                       "sections": [{"name": "A", "free": 78}]}
CONCERT_CARD = obj({
    "concertId": ID.schema(), "name": {"type": "string"},
    "dates": {"type": "array", "description": "Its performances, by date.",
              "items": obj({"concertOptionId": ID.schema(),
                            "date": {"type": "string", "format": "date-time"}})},
    "freeSeats": COUNT, "paused": {"type": "boolean"},
    "opensAt": {"type": ["string", "null"], "format": "date-time"},
})
CONCERT_CARD_EXAMPLE = {"concertId": 7, "name": "Stadium night", "dates": [
    {"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00"}], "freeSeats": 580,
    "paused": False, "opensAt": None}
CONCERTS = obj({"concerts": {
    "type": "array", "description": "By next performance; at most 100.",
    "items": obj({"concertId": ID.schema(), "name": {"type": "string"},
                  "nextDate": {"type": "string", "format": "date-time"},
                  "lastDate": {"type": "string", "format": "date-time"},
                  "performances": COUNT, "freeSeats": COUNT, "paused": {"type": "boolean"},
                  "opensAt": {"type": ["string", "null"], "format": "date-time"}})}})


OPERATIONS = [
    Operation(
        "GET", "/api/{concertOptionId}/seat-map", seat_map_route, "seatMap", tag="catalog",
        summary="A performance's seat map: its sections, or one section's rows",
        description="The layout the booking page draws, without the seats one by one: each "
                    "section's place, seats, rows and prices; with `?section=` that section's "
                    "rows as runs of seats next to each other (seat i of a run is at place + "
                    "i, number + i, id + i). A seat's place is its bit in "
                    "/api/{concertOptionId}/taken-seats. Cacheable: the ETag is the seat "
                    "list's version, which changes only when a reload reprices free seats; "
                    "with If-None-Match naming it the answer is 304 without a body "
                    "(`Cache-Control: private, no-cache`: always asked again, never stale).",
        inputs=(OPTION, SECTION, IF_NONE_MATCH), security=ACTIVE,
        codes=("OPTION_NOT_FOUND", "SECTION_NOT_FOUND"),
        ok=Reply(SEAT_MAP, "The layout.", SEAT_MAP_EXAMPLE, headers=CACHE_HEADERS,
                 not_modified="Not modified: the layout named in If-None-Match is current."),
        links={"taken": {"operationId": "takenSeats", "parameters": {
            "path.concertOptionId": "$response.body#/concertOptionId"}}}),
    Operation(
        "GET", "/api/{concertOptionId}/taken-seats", taken_seats, "takenSeats", tag="catalog",
        summary="Which seats of a performance are taken, as bits, and each section's free",
        description="One bit a seat (held or sold: 1) from `place`, over the whole "
                    "performance (12.5 KB for 100,000 seats) or one `?section=`, with the "
                    "free seats of each section covered and the seat list's `version` (the "
                    "seat map's ETag names it: another one means a reprice).",
        inputs=(OPTION, SECTION), security=ACTIVE,
        codes=("OPTION_NOT_FOUND", "SECTION_NOT_FOUND"),
        ok=Reply(TAKEN_SEATS, "The taken seats.", TAKEN_SEATS_EXAMPLE)),
    Operation(
        "GET", "/api/concerts", concerts, "concertsOnSale", tag="catalog",
        summary="The concerts on sale",
        description="Each concert with a performance to come, by its next one: name, next "
                    "and last dates, free seats, paused, opening; at most 100. Public; each "
                    "worker keeps the list 2 s.",
        ok=Reply(CONCERTS, "The concerts.")),
    Operation(
        "GET", "/api/concerts/{concertId}", concert_card, "concert", tag="catalog",
        summary="A concert: its name, its performances' dates, free seats, paused, opening",
        inputs=(CONCERT,), codes=("CONCERT_NOT_FOUND",),
        ok=Reply(CONCERT_CARD, "The concert.", CONCERT_CARD_EXAMPLE)),
]
