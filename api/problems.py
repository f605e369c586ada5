"""RFC 9457 problem details for every error, with a machine-readable ``code``."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from engine.errors import Code, EngineError, StoreUnavailable

log = logging.getLogger("api")

PROBLEM_JSON = "application/problem+json"

# HTTP status and title of each engine refusal.
ENGINE_STATUS: dict[Code, tuple[int, str]] = {
    Code.TOKEN_UNKNOWN: (401, "Unauthorized"),
    Code.TOKEN_WAITING: (403, "Still waiting in the queue"),
    Code.CONCERT_NOT_FOUND: (404, "Not found"),
    Code.OPTION_NOT_FOUND: (404, "Not found"),
    Code.SEAT_NOT_FOUND: (404, "Not found"),
    Code.RESERVATION_NOT_FOUND: (404, "Not found"),
    Code.SEAT_TAKEN: (409, "Seat taken"),
    Code.ALREADY_PAID: (409, "Already paid"),
    Code.HOLD_EXPIRED: (409, "Hold expired"),
    Code.HOLD_CANCELLED: (409, "Hold cancelled"),
    Code.PAYMENT_IN_PROGRESS: (409, "Payment in progress"),
    Code.PAY_SUPERSEDED: (409, "Payment interrupted"),
    Code.PAY_STALE: (409, "Payment interrupted"),
    Code.INSUFFICIENT_BALANCE: (402, "Insufficient balance"),
    Code.BALANCE_LIMIT: (409, "Balance limit"),
    Code.IDEMPOTENCY_KEY_REUSED: (422, "Idempotency key reused"),
}

HTTP_CODES = {
    404: ("NOT_FOUND", "Not found", "No such resource."),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed", "This resource does not take that method."),
}


class ApiError(Exception):
    """A request the API refuses before it reaches the engine (bad input)."""

    def __init__(self, status: int, code: str, detail: str, title: str = "Bad request") -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.title = status, code, detail, title


def problem(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "type": f"/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


async def on_api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem(exc.status, exc.code, exc.title, exc.detail, headers)


async def on_engine_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    status, title = ENGINE_STATUS[exc.code]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(status, exc.code.name, title, exc.detail, headers)


async def on_store_unavailable(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreUnavailable)
    code = "STORE_FULL" if exc.full else "STORE_UNAVAILABLE"
    detail = exc.detail
    if exc.maybe_applied:
        detail += (". Retry safely: pay is idempotent by reservation;"
                   " send an Idempotency-Key to charge.")
    return problem(503, code, "Service unavailable", detail, {"Retry-After": "1"})


async def on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, title, detail = HTTP_CODES.get(
        exc.status_code, ("HTTP_ERROR", "HTTP error", str(exc.detail))
    )
    return problem(exc.status_code, code, title, detail, exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "INTERNAL", "Internal error", "An unexpected error; it was logged.")
