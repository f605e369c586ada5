"""The operators' API, a thin door onto the engine functions the CLI calls too: load a
catalogue, the settings of a concert on sale, revoke a token, refund a sale, export the sales,
live stats. Declared like every operation (api/contract.py), under the tag ``admin`` and the
security scheme ``adminToken``: they exist only when ADMIN_TOKEN is set (else 404, like any
unknown path; api/app.py) and want ``Authorization: Bearer <ADMIN_TOKEN>``, compared in
constant time (else 401). Every change is logged with what changed (logger "admin")."""

from __future__ import annotations

import hmac
import logging

from starlette.types import Scope

from api import schemas
from api.asgi import Streamed
from api.contract import (
    FLAG,
    ID,
    RESERVATION_ID,
    WHOLE,
    Document,
    Field,
    Operation,
    Reply,
    obj,
)
from api.problems import ApiError
from engine import concert_settings, operator, queue, venue
from engine.ids import parse_reservation
from engine.keys import CONCERTS
from engine.store import Store

log = logging.getLogger("admin")

DOCUMENT_LIMIT = 8 * 1024 * 1024  # a 100,000-seat venue in rows of 20 is ~250 KB


class AdminToken:
    """The security of the admin routes: ``Authorization: Bearer <ADMIN_TOKEN>``."""

    def schemes(self, auth: object) -> dict[str, dict]:
        return {"adminToken": {"type": "http", "scheme": "bearer",
                               "description": "The ADMIN_TOKEN the API was started with."}}

    def requirement(self, auth: object) -> list[dict[str, list[str]]]:
        return [{"adminToken": []}]

    def codes(self, auth: object) -> tuple[str, ...]:
        return ("ADMIN_UNAUTHORIZED",)

    def gate(self, auth: object, inputs: tuple[Field, ...]) -> _AdminGate:
        return _AdminGate()


class _AdminGate:
    passes = False
    authorize = None

    @staticmethod
    def authenticate(scope: Scope) -> None:
        expected = _store(scope).settings.admin_token.encode()
        given = b""
        for k, v in scope["headers"]:
            if k == b"authorization":
                given = v[7:] if v[:7].lower() == b"bearer " else b""
                break
        if not expected or not hmac.compare_digest(given, expected):
            raise ApiError(401, "ADMIN_UNAUTHORIZED",
                           "This needs Authorization: Bearer <ADMIN_TOKEN>.", "Unauthorized",
                           headers=[(b"www-authenticate", b"Bearer")])


ADMIN = AdminToken()


def _store(scope: Scope) -> Store:
    return scope["state"]["store"]


async def load_catalog(scope: Scope, concert_id: int, document: object) -> dict:
    try:
        parsed = venue.parse(document)
        if parsed.concert_id != concert_id:
            raise venue.DocumentError("concertId", f"is {parsed.concert_id}, the path says "
                                      f"{concert_id}")
        return await venue.load(_store(scope), parsed)
    except venue.DocumentError as e:
        raise ApiError(400, "INVALID_DOCUMENT", f"{e.path}: {e.message}") from None


async def get_settings(scope: Scope, concert_id: int) -> dict:
    return await concert_settings.get(_store(scope), concert_id)


async def patch_settings(scope: Scope, concert_id: int, changes: object) -> dict:
    try:
        return await concert_settings.patch(_store(scope), concert_id, changes)
    except concert_settings.SettingError as e:
        raise ApiError(400, "INVALID_SETTING", f"{e.field}: {e.message}") from None


async def revoke_token(scope: Scope, concert_id: int, customer_id: int) -> dict:
    answer = await operator.revoke(_store(scope), concert_id, customer_id)
    log.info("token revoked: %s", answer)
    return answer


async def refund(scope: Scope, rid: str, force: bool) -> dict:
    parsed = parse_reservation(rid)
    assert parsed is not None  # the rule checked its shape
    answer = await operator.refund_sale(_store(scope), *parsed, force=force)
    log.info("reservation refunded%s: %s", " (forced)" if force else "", answer)
    return answer


async def sales(scope: Scope, concert_id: int) -> Streamed:
    return Streamed(b"text/csv; charset=utf-8", operator.sales_csv(_store(scope), concert_id))


async def stats(scope: Scope, concert_id: int) -> dict:
    answer = await queue.concert_stats(_store(scope), concert_id)
    if not await _store(scope).execute("SISMEMBER", CONCERTS, concert_id):
        raise ApiError(404, "CONCERT_NOT_FOUND", "No such concert.", "Not found")
    return answer


CONCERT = Field("concertId", ID, "The concert.", where="path", example=7)
CUSTOMER = Field("customerId", ID, "The customer.", where="path", example=7)
RESERVATION = Field("reservationId", RESERVATION_ID, "A paid reservation.", where="path",
                    example="7.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
FORCE = Field("force", FLAG, "Refund a ticket checked in at the door too (else 409 "
              "ALREADY_CHECKED_IN).", required=False, default=False, where="query",
              example=False)
def _knob_schema(knob: concert_settings.Knob) -> dict:
    """A setting's schema from its knob (engine/concert_settings.py): the bounds it checks."""
    if knob.kind in ("count", "ratio", "seconds"):
        return {"type": ["integer" if knob.kind == "count" else "number", "null"],
                "minimum": knob.low, "maximum": knob.high}
    if knob.kind == "flag":
        return {"type": ["boolean", "null"]}
    if knob.kind == "choice":
        return {"enum": [*knob.choices, None]}
    return {"type": ["string", "null"], "format": "date-time"}


SETTINGS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "description": "The settings to change; null puts one back to its default.",
    "properties": {k.name: _knob_schema(k) for k in concert_settings.KNOBS}}
SETTINGS = Field(WHOLE, Document({**SETTINGS_SCHEMA, "minProperties": 1},
                                 code="INVALID_SETTING"), example={"paused": True})

VENUE = Field(WHOLE, Document({
    "type": "object", "required": ["concertId", "name", "options"],
    "additionalProperties": False,
    "description": "A catalogue document (docs/operators.md): the concert, its performances "
                   "and their sections, rows and price tiers; a row may override its "
                   "section's price; optionally its settings, set before the concert takes "
                   "tokens (so it can go on sale paused or with its opening).",
    "properties": {
        "concertId": ID.schema(), "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "settings": SETTINGS_SCHEMA,
        "options": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["concertOptionId", "date", "sections"],
            "additionalProperties": False, "properties": {
                "concertOptionId": ID.schema(), "date": {"type": "string",
                                                         "format": "date-time"},
                "sections": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["name", "price", "rows"],
                    "additionalProperties": False, "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 64},
                        "price": {"type": "number", "exclusiveMinimum": 0,
                                  "multipleOf": 0.01},
                        "rows": {"type": "array", "minItems": 1, "items": {
                            "type": "object", "required": ["name", "seats"],
                            "additionalProperties": False, "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                                "seats": {"type": "integer", "minimum": 1, "maximum": 10000},
                                "price": {"type": "number", "exclusiveMinimum": 0,
                                          "multipleOf": 0.01}}}}}}}}}}}},
    code="INVALID_DOCUMENT"),
    example={"concertId": 7, "name": "Stadium night", "options": [
        {"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00", "sections": [
            {"name": "A", "price": 150000, "rows": [{"name": "1", "seats": 40}]}]}]})
SETTINGS_BODY = obj({"concertId": ID.schema(), "settings": {"type": "object"},
                     "overridden": {"type": "array", "items": {"type": "string"}}})
OPERATIONS = [
    Operation("PUT", "/admin/concerts/{concertId}", load_catalog, "loadCatalog", tag="admin",
              summary="Load a catalogue document (create what is missing)",
              description="Loading again never resets a hold, a sale or a balance; a document "
                          "that would change a seat map, a date or the price of a held or "
                          "sold seat is refused whole (400 INVALID_DOCUMENT naming it).",
              inputs=(CONCERT, VENUE), security=ADMIN, writes=True, body_limit=DOCUMENT_LIMIT,
              codes=("QUEUE_STANDING",),
              ok=Reply(obj({"concertId": ID.schema(), "created": {"type": "array"},
                            "repriced": schemas.COUNT, "unchanged": {"type": "array"},
                            "settings": {"type": "array", "items": {"type": "string"}},
                            "seats": schemas.COUNT}), "What the load did.")),
    Operation("GET", "/admin/concerts/{concertId}/settings", get_settings, "getSettings",
              tag="admin", summary="A concert's settings in force",
              inputs=(CONCERT,), security=ADMIN, codes=("CONCERT_NOT_FOUND",),
              ok=Reply(SETTINGS_BODY, "The settings, and which an operator set.")),
    Operation("PATCH", "/admin/concerts/{concertId}/settings", patch_settings,
              "changeSettings", tag="admin", summary="Change a concert's settings, live",
              description="Every worker takes a change with its next call. An opening "
                          "(opensAt) in the future is refused (409 QUEUE_STANDING) while "
                          "tokens wait in a queue formed after an opening: it would put "
                          "every later arrival ahead of them.",
              inputs=(CONCERT, SETTINGS), security=ADMIN, writes=True,
              codes=("CONCERT_NOT_FOUND", "QUEUE_STANDING"),
              ok=Reply(SETTINGS_BODY, "The settings now in force.")),
    Operation("DELETE", "/admin/concerts/{concertId}/tokens/{customerId}", revoke_token,
              "revokeToken", tag="admin", summary="Revoke a customer's token",
              description="Its next use is 401; its open holds are released.",
              inputs=(CONCERT, CUSTOMER), security=ADMIN,
              ok=Reply(obj({"concertId": ID.schema(), "customerId": ID.schema(),
                            "revoked": {"type": "boolean"}, "holdsReleased": schemas.COUNT,
                            "holdsBeingPaid": schemas.COUNT}), "Revoked.")),
    Operation("POST", "/admin/reservations/{reservationId}/refund", refund, "refundSale",
              tag="admin", summary="Refund a paid reservation",
              description="Points back (a REFUND in the history), the seat on sale again. "
                          "Idempotent: a second refund changes nothing and answers the same. "
                          "A ticket checked in at the door is refunded only with force=true "
                          "(else 409 ALREADY_CHECKED_IN, nothing changed).",
              inputs=(RESERVATION, FORCE), security=ADMIN, writes=True,
              codes=("RESERVATION_NOT_FOUND", "NOT_PAID", "ALREADY_CHECKED_IN"),
              ok=Reply(obj({"reservationId": RESERVATION_ID.schema(),
                            "status": {"const": "REFUNDED"}, "amount": schemas.POINTS,
                            "customerId": ID.schema()}), "Refunded.")),
    Operation("GET", "/admin/concerts/{concertId}/sales.csv", sales, "exportSales",
              tag="admin", summary="The paid reservations as CSV (streamed)",
              inputs=(CONCERT,), security=ADMIN,
              ok=Reply({"type": "string"}, "reservationId, concertOptionId, seatId, section, "
                       "row, number, price, customerId, paidAt, checkedInAt (empty until "
                       "checked in).", media_type="text/csv")),
    Operation("GET", "/admin/concerts/{concertId}/stats", stats, "concertStats", tag="admin",
              summary="Live numbers: waiting, active, holds, sold, free, checked in, "
                      "admissions a second",
              description="active: admitted and still shopping; seats: on sale in all; "
                          "offered: seats that came back, on offer to the queue; soldOut: "
                          "every seat sold (no free seat, no hold that could come back).",
              inputs=(CONCERT,), security=ADMIN, codes=("CONCERT_NOT_FOUND",),
              ok=Reply(obj({"concertId": ID.schema(), "waiting": schemas.COUNT,
                            "active": schemas.COUNT, "holds": schemas.COUNT,
                            "paying": schemas.COUNT, "sold": schemas.COUNT,
                            "freeSeats": schemas.COUNT, "seats": schemas.COUNT,
                            "offered": schemas.COUNT, "checkedIn": schemas.COUNT,
                            "soldOut": {"type": "boolean"},
                            "soldOutSince": {"type": ["string", "null"],
                                             "format": "date-time"},
                            "admissionsPerSecond": {"type": "number"},
                            "paused": {"type": "boolean"},
                            "opensAt": {"type": ["string", "null"], "format": "date-time"}}),
                       "The numbers.")),
]
