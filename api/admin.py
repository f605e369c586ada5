"""The operators' API, a thin door onto the engine functions the CLI calls too: load a
catalogue, the settings of a concert on sale, revoke a token, refund a sale, export the sales,
live stats. The routes exist only when ADMIN_TOKEN is set (else 404, like any unknown path)
and take ``Authorization: Bearer <ADMIN_TOKEN>``, compared in constant time (else 401). Every
change is logged with what changed (logger "admin")."""

from __future__ import annotations

import hmac
import logging

import orjson
from starlette.types import Scope

from api import parsing
from api.asgi import Streamed, route
from api.problems import ApiError
from engine import concert_settings, operator, queue, venue
from engine.keys import CONCERTS
from engine.store import Store

log = logging.getLogger("admin")

DOCUMENT_LIMIT = 8 * 1024 * 1024  # a 100,000-seat venue in rows of 20 is ~250 KB


def _store(scope: Scope) -> Store:
    return scope["state"]["store"]


def _authorized(scope: Scope) -> None:
    expected = _store(scope).settings.admin_token.encode()
    given = b""
    for k, v in scope["headers"]:
        if k == b"authorization":
            given = v[7:] if v[:7].lower() == b"bearer " else b""
            break
    if not hmac.compare_digest(given, expected):
        raise ApiError(401, "ADMIN_UNAUTHORIZED",
                       "This needs Authorization: Bearer <ADMIN_TOKEN>.", "Unauthorized")


def _document(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise parsing.bad("INVALID_JSON", "The body is not valid JSON.") from None


async def load_catalog(scope: Scope, body: bytes) -> dict:
    _authorized(scope)
    concert_id = parsing.path_id(scope, "concertId")
    doc = _document(body)
    try:
        parsed = venue.parse(doc)
        if parsed.concert_id != concert_id:
            raise venue.DocumentError("concertId", f"is {parsed.concert_id}, the path says "
                                      f"{concert_id}")
        return await venue.load(_store(scope), parsed)
    except venue.DocumentError as e:
        raise ApiError(400, "INVALID_DOCUMENT", f"{e.path}: {e.message}") from None


async def get_settings(scope: Scope, _: bytes) -> dict:
    _authorized(scope)
    return await concert_settings.get(_store(scope), parsing.path_id(scope, "concertId"))


async def patch_settings(scope: Scope, body: bytes) -> dict:
    _authorized(scope)
    concert_id = parsing.path_id(scope, "concertId")
    try:
        return await concert_settings.patch(_store(scope), concert_id, _document(body))
    except concert_settings.SettingError as e:
        raise ApiError(400, "INVALID_SETTING", f"{e.field}: {e.message}") from None


async def revoke_token(scope: Scope, _: bytes) -> dict:
    _authorized(scope)
    concert_id = parsing.path_id(scope, "concertId")
    customer_id = parsing.path_id(scope, "customerId")
    answer = await operator.revoke(_store(scope), concert_id, customer_id)
    log.info("token revoked: %s", answer)
    return answer


async def refund(scope: Scope, _: bytes) -> dict:
    _authorized(scope)
    parsed = parsing.parse_reservation(scope["path_params"]["reservationId"])
    if parsed is None:
        raise parsing.bad("INVALID_ID", "'reservationId' is not a reservation id.")
    answer = await operator.refund_sale(_store(scope), *parsed)
    log.info("reservation refunded: %s", answer)
    return answer


async def sales(scope: Scope, _: bytes) -> Streamed:
    _authorized(scope)
    concert_id = parsing.path_id(scope, "concertId")
    return Streamed(b"text/csv; charset=utf-8", operator.sales_csv(_store(scope), concert_id))


async def stats(scope: Scope, _: bytes) -> dict:
    _authorized(scope)
    concert_id = parsing.path_id(scope, "concertId")
    answer = await queue.concert_stats(_store(scope), concert_id)
    if not await _store(scope).execute("SISMEMBER", CONCERTS, concert_id):
        raise ApiError(404, "CONCERT_NOT_FOUND", "No such concert.", "Not found")
    return answer


ROUTES = [
    route("PUT", "/admin/concerts/{concertId}", load_catalog, body=True,
           body_limit=DOCUMENT_LIMIT),
    route("GET", "/admin/concerts/{concertId}/settings", get_settings),
    route("PATCH", "/admin/concerts/{concertId}/settings", patch_settings, body=True),
    route("DELETE", "/admin/concerts/{concertId}/tokens/{customerId}", revoke_token),
    route("POST", "/admin/reservations/{reservationId}/refund", refund),
    route("GET", "/admin/concerts/{concertId}/sales.csv", sales),
    route("GET", "/admin/concerts/{concertId}/stats", stats),
]
