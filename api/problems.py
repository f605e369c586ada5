"""RFC 9457 problem details for every error, with a machine-readable ``code``: the body,
status and headers of the answer to each kind of failure."""

from __future__ import annotations

import orjson

from engine.errors import (
    AlreadyCheckedIn,
    ChallengeRefused,
    Code,
    EngineError,
    RateLimited,
    StoreUnavailable,
)
from engine.ids import iso_ms

PROBLEM_JSON = b"application/problem+json"
Headers = list[tuple[bytes, bytes]]

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
    Code.PAY_ORPHANED: (409, "Payment interrupted"),
    Code.PAID_EARLIER: (409, "Already paid"),
    Code.QUEUE_FULL: (503, "Queue full"),
    Code.RATE_LIMITED: (429, "Too many requests"),
    Code.TICKET_LIMIT: (409, "Ticket limit reached"),
    Code.NO_ADJACENT_SEATS: (409, "No seats together"),
    Code.CATALOG_CHANGED: (409, "Seat list changed"),
    Code.RESERVATION_REFUNDED: (409, "Reservation refunded"),
    Code.NOT_PAID: (409, "Not paid"),
    Code.LOAD_IN_PROGRESS: (409, "Load in progress"),
    Code.SEATS_TAKEN: (409, "Seats held or sold"),
    Code.SECTION_NOT_FOUND: (404, "Not found"),
    Code.QUEUE_STANDING: (409, "A queue stands"),
    Code.CANCEL_LIMIT: (409, "Cancel limit reached"),
    Code.TICKET_INVALID: (400, "Invalid ticket"),
    Code.ALREADY_CHECKED_IN: (409, "Already checked in"),
    Code.TICKET_REFUNDED: (409, "Ticket refunded"),
    Code.ACCESS_CODE_REQUIRED: (403, "Presale code required"),
    Code.ACCESS_CODE_INVALID: (403, "Presale code refused"),
    Code.CHALLENGE_REQUIRED: (403, "Proof of work required"),
    Code.CHALLENGE_INVALID: (403, "Proof of work refused"),
    Code.ACCESS_CODE_LIMIT: (409, "Too many presale codes"),
    Code.INSUFFICIENT_BALANCE: (402, "Insufficient balance"),
    Code.BALANCE_LIMIT: (409, "Balance limit"),
    Code.IDEMPOTENCY_KEY_REUSED: (422, "Idempotency key reused"),
}

# Engine codes that never reach a client (the pay protocol handles them inside engine/pay.py).
INTERNAL_ENGINE_CODES = frozenset({Code.PAY_ORPHANED, Code.PAID_EARLIER,
                                   Code.CATALOG_CHANGED})

# The API's own codes (input, authentication, routing, limits, Redis) and their statuses.
API_STATUS: dict[str, int] = {
    "INVALID_JSON": 400, "MISSING_FIELD": 400, "INVALID_FIELD": 400, "INVALID_AMOUNT": 400,
    "INVALID_ID": 400, "MISSING_PARAMETER": 400, "DUPLICATE_PARAMETER": 400,
    "INVALID_IDEMPOTENCY_KEY": 400, "INVALID_PARAMETER": 400, "INVALID_DOCUMENT": 400,
    "INVALID_SETTING": 400,
    "AUTH_REQUIRED": 401, "AUTH_INVALID": 401, "ADMIN_UNAUTHORIZED": 401,
    "FORBIDDEN_CUSTOMER": 403, "FORBIDDEN_SCOPE": 403,
    "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405, "BODY_TOO_LARGE": 413,
    "HEADERS_TOO_LARGE": 431, "INTERNAL": 500, "STORE_UNAVAILABLE": 503, "STORE_FULL": 503,
    "OVERLOADED": 503,
}


def status_of(code: str) -> int:
    """The HTTP status a code is answered with (KeyError for a code nobody gives)."""
    if code in API_STATUS:
        return API_STATUS[code]
    engine = Code[code]
    if engine in INTERNAL_ENGINE_CODES:
        raise KeyError(code)
    return ENGINE_STATUS[engine][0]


HTTP_CODES = {
    404: ("NOT_FOUND", "Not found", "No such resource."),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed", "This resource does not take that method."),
}
_BEARER: Headers = [(b"www-authenticate", b"Bearer")]
_RETRY: Headers = [(b"retry-after", b"1")]
# A full queue drains as waiters are admitted or go idle: seconds, not a moment.
QUEUE_FULL_RETRY_SECONDS = 5
_RETRY_QUEUE: Headers = [(b"retry-after", b"%d" % QUEUE_FULL_RETRY_SECONDS)]


class ApiError(Exception):
    """A request the API refuses before it reaches the engine (bad input)."""

    def __init__(self, status: int, code: str, detail: str, title: str = "Bad request",
                 headers: Headers | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.title = status, code, detail, title
        self.headers = headers  # None: the default for the status (WWW-Authenticate on 401)


def problem(status: int, code: str, title: str, detail: str,
            headers: Headers | None = None, **extensions: object) -> tuple[int, bytes, Headers]:
    """The answer; ``extensions``: RFC 9457 extension members, for a program to read."""
    body = orjson.dumps({
        "type": f"/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extensions,
    })
    return status, body, headers or []


def for_api_error(exc: ApiError) -> tuple[int, bytes, Headers]:
    headers = exc.headers if exc.headers is not None else _BEARER if exc.status == 401 else None
    return problem(exc.status, exc.code, exc.title, exc.detail, headers)


def for_engine_error(exc: EngineError) -> tuple[int, bytes, Headers]:
    status, title = ENGINE_STATUS[exc.code]
    headers = _BEARER if status == 401 else _RETRY_QUEUE if status == 503 else None
    if isinstance(exc, RateLimited):  # whole seconds, rounded up: never "0"
        headers = [(b"retry-after", b"%d" % max(1, -(-exc.retry_after_ms // 1000)))]
    if isinstance(exc, AlreadyCheckedIn) and exc.reply:  # the first scan's time, for a program
        return problem(status, exc.code.name, title, exc.detail, headers,
                       checkedInAt=iso_ms(exc.at))
    if isinstance(exc, ChallengeRefused) and exc.challenge:  # a fresh one to solve
        return problem(status, exc.code.name, title, exc.detail, headers,
                       challenge=exc.challenge)
    return problem(status, exc.code.name, title, exc.detail, headers)


def for_store_unavailable(exc: StoreUnavailable) -> tuple[int, bytes, Headers]:
    detail = exc.detail
    if exc.maybe_applied:
        detail += (". Retry safely: pay is idempotent by reservation;"
                   " send an Idempotency-Key to charge.")
    code = "STORE_FULL" if exc.full else "STORE_UNAVAILABLE"
    return problem(503, code, "Service unavailable", detail, _RETRY)


def for_http_status(status: int, headers: dict[str, str] | None) -> tuple[int, bytes, Headers]:
    code, title, detail = HTTP_CODES.get(status, ("HTTP_ERROR", "HTTP error", "HTTP error."))
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return problem(status, code, title, detail, extra)


def internal() -> tuple[int, bytes, Headers]:
    return problem(500, "INTERNAL", "Internal error", "An unexpected error; it was logged.")
