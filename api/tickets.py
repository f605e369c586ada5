"""Tickets and check-in (engine/tickets.py): a customer's ticket for a paid reservation, with
its QR code; the key that verifies tickets; and the door's check-in, an operator's call
(api/admin.py's security). Served only with a signing key (TICKET_SIGNING_KEY, api/app.py);
the lifespan hands the loaded key to requests as ``scope["state"]["ticket_key"]``."""

from __future__ import annotations

import io
from functools import lru_cache

import segno
from starlette.types import Scope

from api import schemas
from api.admin import ADMIN
from api.auth import CUSTOMER
from api.contract import ID, RESERVATION_ID, Field, Operation, Reply, Text, obj
from engine import tickets
from engine.store import Store

TICKET_RULE = Text(tickets.PATTERN, "must be a ticket: TK1.<concertId>.<32 hex>."
                   "<concertOptionId>.<seatId>.<signature>", code="TICKET_INVALID")
EXAMPLE_TICKET = ("TK1.2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e.41150.4115001."
                  "O7Eu2jwpjbXeJVl_VNkk8uF-eKJq2JU-2CGO5oLwu76QIeLzAJ0VLJEb8fJexoOpAnFBZnZ6-9jlvQ-"
                  "wEk7Lig")


def _key(scope: Scope) -> tickets.TicketKey:
    return scope["state"]["ticket_key"]


def _store(scope: Scope) -> Store:
    return scope["state"]["store"]


@lru_cache(maxsize=4096)
def qr_svg(ticket: str) -> str:
    """The ticket as a QR code, an SVG document (no XML declaration: it also goes inline in
    HTML). Error correction M (15 % of the code may be smudged or creased). ~8 ms of CPU here
    (segno tries the eight masks): kept by the ticket, which is the same string every time
    (Ed25519 signs deterministically), so a customer's second look costs nothing."""
    out = io.BytesIO()
    segno.make(ticket, error="m").save(out, kind="svg", xmldecl=False, scale=4)
    return out.getvalue().decode()


async def get_ticket(scope: Scope, rid: str, customer_id: int) -> dict:
    concert, _, secret = rid.partition(".")
    answer = await tickets.ticket(_store(scope), _key(scope), int(concert), secret, customer_id)
    answer["qrSvg"] = qr_svg(answer["ticket"])
    return answer


async def public_key(scope: Scope) -> dict:
    key = _key(scope)
    return {"algorithm": "Ed25519", "publicKey": key.public_pem, "jwk": key.jwk,
            "format": "TK1.<concertId>.<32 hex>.<concertOptionId>.<seatId>.<signature>: the "
                      "signature is Ed25519 over the text before the last dot, in unpadded "
                      "base64url"}


async def check_in(scope: Scope, ticket: str) -> dict:
    return await tickets.check_in(_store(scope), _key(scope), ticket)


TICKET = obj({
    "reservationId": RESERVATION_ID.schema(), "concertId": ID.schema(),
    "concertOptionId": ID.schema(), "seatId": ID.schema(),
    "section": {"type": ["string", "null"]}, "row": {"type": ["string", "null"]},
    "number": {"type": ["integer", "null"], "minimum": 0},
    "ticket": TICKET_RULE.schema() | {"description": "The signed ticket: what the QR code "
                                                     "holds and the door scans."},
    "qrSvg": {"type": "string", "description": "The ticket as a QR code: an SVG document."},
    "checkedInAt": {"type": ["string", "null"], "format": "date-time",
                    "description": "When the ticket was checked in at the door; null before."},
})
CHECKED_IN = obj({"status": {"const": "CHECKED_IN"}, "reservationId": RESERVATION_ID.schema(),
                  "seatId": ID.schema(), "at": schemas.TIME})

# The customer's side: served with a signing key.
OPERATIONS = [
    Operation("GET", "/api/tickets/public-key", public_key, "ticketPublicKey", tag="tickets",
              summary="The key that verifies tickets, to check them offline",
              description="Ed25519, as PEM (SubjectPublicKeyInfo) and as a JWK (RFC 8037). A "
                          "ticket is TK1.<concertId>.<32 hex>.<concertOptionId>.<seatId>."
                          "<signature>, the signature over the text before its last dot.",
              store=False,
              ok=Reply(obj({"algorithm": {"const": "Ed25519"},
                            "publicKey": {"type": "string"},
                            "jwk": obj({"kty": {"const": "OKP"}, "crv": {"const": "Ed25519"},
                                        "x": {"type": "string"}}),
                            "format": {"type": "string"}}), "The public key.")),
    Operation("GET", "/api/tickets/{reservationId}", get_ticket, "getTicket", tag="tickets",
              summary="Your ticket for a paid reservation, with its QR code",
              description="Another customer's reservation is 404, as everywhere; one not paid "
                          "(held, being paid, expired, cancelled) 409 NOT_PAID; a refunded one "
                          "409 RESERVATION_REFUNDED. The ticket is the same string every time.",
              inputs=(Field("reservationId", RESERVATION_ID, "A paid reservation of yours.",
                            where="path", example="2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"),
                      Field("customerId", ID, "You (in jwt mode, your JWT's sub).",
                            where="query", example=7)),
              security=CUSTOMER,
              codes=("RESERVATION_NOT_FOUND", "NOT_PAID", "RESERVATION_REFUNDED"),
              ok=Reply(TICKET, "The ticket.")),
]

# The door's: an operator's call, served with a signing key and ADMIN_TOKEN.
ADMIN_OPERATIONS = [
    Operation("POST", "/admin/checkin", check_in, "checkIn", tag="admin",
              summary="Check a ticket in at the door (once)",
              description="The first scan of a paid ticket answers CHECKED_IN; any later one "
                          "409 ALREADY_CHECKED_IN with the first scan's time (checkedInAt); a "
                          "refunded sale 409 TICKET_REFUNDED; a forged, altered or malformed "
                          "ticket 400 TICKET_INVALID. Of concurrent scans of one ticket "
                          "exactly one checks in.",
              inputs=(Field("ticket", TICKET_RULE, "The scanned ticket (its QR code's text).",
                            example=EXAMPLE_TICKET),),
              security=ADMIN, writes=True,
              codes=("TICKET_INVALID", "ALREADY_CHECKED_IN", "TICKET_REFUNDED"),
              ok=Reply(CHECKED_IN, "Checked in: let the holder in.")),
]
