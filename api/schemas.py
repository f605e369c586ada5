"""JSON Schemas of the answers' bodies (the engine builds them: engine/queue.py, catalog.py,
wallet.py, booking.py, pay.py). Objects allow properties beyond those listed: the engine may
add fields, and a client ignores what it does not know. Ids and strings reuse the request
rules of api/contract.py, so an id means the same going in and coming out."""

from __future__ import annotations

from api.contract import ID, QUEUE_TOKEN, RESERVATION_ID, obj

COUNT = {"type": "integer", "minimum": 0}
# A number of points with at most two decimals (5000.5); a balance is never negative.
POINTS = {"type": "number", "minimum": 0, "maximum": 10**12,
          "description": "Points, at most two decimals."}
TIME = {"type": "string", "format": "date-time",
        "description": "RFC 3339 UTC with milliseconds, e.g. 2026-11-25T09:30:00.123Z."}

TOKEN = obj({
    "tokenValue": QUEUE_TOKEN.schema() | {"description": "The queue token: send it back in "
                                                         "X-Queue-Token (or, in open mode, "
                                                         "Authorization)."},
    "concertId": ID.schema(),
    "customerId": ID.schema(),
    "status": {"enum": ["ACTIVE", "WAITING"]},
    "position": {"type": ["integer", "null"], "minimum": 0,
                 "description": "0 when ACTIVE, 1-based in the queue when WAITING (with "
                                "queueing random: the expected rank); null in the pre-queue, "
                                "before the concert's opening."},
    "estimatedWaitSeconds": COUNT | {"description": "0 when ACTIVE; before the opening, "
                                                   "the seconds to it."},
    "expiresAt": {"type": ["string", "null"], "format": "date-time",
                  "description": "When the ACTIVE token ends; null while WAITING."},
    "pollAfterSeconds": {"type": ["integer", "null"], "minimum": 1,
                         "description": "How long to wait before polling again (null when "
                                        "ACTIVE): a quarter of the wait, at most 30 s, drawn "
                                        "from the top fifth below that, so that a surge of "
                                        "pollers slows and spreads itself."},
    "opensAt": TIME | {"description": "The concert's opening, when it has one."},
}, optional=("pollAfterSeconds", "opensAt"))
TOKEN_EXAMPLE = {"tokenValue": "2.7.4f0c2a9e8b7d6c5a4f3e2d1c0b9a8f7e", "concertId": 2,
                 "customerId": 7, "status": "WAITING", "position": 42,
                 "estimatedWaitSeconds": 1, "expiresAt": None}

DATES = obj({
    "concertId": ID.schema(),
    "dates": {"type": "array", "description": "The concert's performances, by date.",
              "items": obj({"concertOptionId": ID.schema(),
                            "date": {"type": "string", "format": "date-time"},
                            "availableSeats": COUNT})},
})
DATES_EXAMPLE = {"concertId": 2, "dates": [
    {"concertOptionId": 41150, "date": "2027-01-10T19:00:00+09:00", "availableSeats": 48}]}

SEAT = obj({"id": ID.schema(), "number": COUNT, "price": POINTS,
            "section": {"type": ["string", "null"]}, "row": {"type": ["string", "null"]}},
           optional=("section", "row"))

SEATS = obj({
    "concertOptionId": ID.schema(),
    "seats": {"type": "array", "description": "Free seats (neither held nor sold), in "
                                            "listing order: sections, rows, numbers.",
              "items": SEAT},
})
SEATS_EXAMPLE = {"concertOptionId": 41150, "seats": [
    {"id": 4115001, "number": 1, "price": 1500}, {"id": 4115002, "number": 2, "price": 1500}]}

BALANCE = obj({"customerId": ID.schema(), "balance": POINTS})
BALANCE_EXAMPLE = {"customerId": 7, "balance": 5000.5}

HISTORY = obj({
    "customerId": ID.schema(),
    "entries": {"type": "array", "description": "Newest first.",
                "items": obj({"type": {"enum": ["CHARGE", "PAYMENT", "REFUND"]},
                              "amount": POINTS, "balance": POINTS, "at": TIME,
                              "reservationId": RESERVATION_ID.schema()},
                             optional=("reservationId",))},
})
HISTORY_EXAMPLE = {"customerId": 7, "entries": [
    {"type": "PAYMENT", "amount": 1500, "balance": 3500.5, "at": "2026-11-25T09:31:00.000Z",
     "reservationId": "2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"},
    {"type": "CHARGE", "amount": 5000.5, "balance": 5000.5, "at": "2026-11-25T09:30:00.123Z"}]}

HOLD = obj({"reservationId": RESERVATION_ID.schema(), "concertOptionId": ID.schema(),
            "seatId": ID.schema(), "price": POINTS, "status": {"const": "HELD"},
            "expiresAt": TIME})
HOLD_EXAMPLE = {"reservationId": "2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "concertOptionId": 41150,
                "seatId": 4115001, "price": 1500, "status": "HELD",
                "expiresAt": "2026-11-25T09:35:00.000Z"}

GROUP_HOLD = obj({
    "concertOptionId": ID.schema(), "quantity": COUNT, "status": {"const": "HELD"},
    "expiresAt": TIME,
    "seats": {"type": "array", "description": "Next to each other in one row, each its own "
                                            "reservation.",
              "items": obj({"id": ID.schema(), "section": {"type": ["string", "null"]},
                            "row": {"type": ["string", "null"]}, "number": COUNT,
                            "price": POINTS, "reservationId": RESERVATION_ID.schema()})},
    "reservationIds": {"type": "array", "items": RESERVATION_ID.schema()},
})

CANCELLED = obj({"reservationId": RESERVATION_ID.schema(), "status": {"const": "CANCELLED"}})
PAID = obj({"reservationId": RESERVATION_ID.schema(), "status": {"const": "PAID"},
            "amount": POINTS, "balance": POINTS})
PAID_EXAMPLE = {"reservationId": "2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "status": "PAID",
                "amount": 1500, "balance": 3500.5}


def status(value: str) -> dict:
    return obj({"status": {"const": value}})


PROBLEM = {
    "type": "object", "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
    "description": "RFC 9457 problem details with a machine-readable code.",
    "properties": {
        "type": {"type": "string", "format": "uri-reference",
                 "examples": ["/problems/seat-taken"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What was wrong, for a person."},
        "code": {"type": "string", "description": "What was wrong, for a program."},
    },
}
