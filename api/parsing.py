"""Input validation at the edge: bounded JSON bodies, strict integer ids, exact amounts,
tokens and reservation ids that are ours. Everything failing here is a 4xx ApiError."""

from __future__ import annotations

import re

import orjson
from starlette.requests import Request

from api.problems import ApiError
from engine.ids import MAX_ID, Token, parse_reservation, parse_token
from engine.money import MAX_CHARGE, to_minor

MAX_BODY = 64 * 1024
_DIGITS = re.compile(r"[1-9][0-9]{0,15}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def bad(code: str, detail: str) -> ApiError:
    return ApiError(400, code, detail)


async def read_json(request: Request) -> dict:
    """The body as a JSON object, at most MAX_BODY bytes (413 past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise ApiError(413, "BODY_TOO_LARGE", f"The body exceeds {MAX_BODY} bytes.",
                       "Content too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, "BODY_TOO_LARGE", f"The body exceeds {MAX_BODY} bytes.",
                           "Content too large")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad("INVALID_JSON", "The body is not valid JSON.") from e
    if not isinstance(data, dict):
        raise bad("INVALID_JSON", "The body must be a JSON object.")
    return data


def id_field(data: dict, name: str) -> int:
    """A required JSON integer id, 1 <= id <= 2^53-1 (not a string, float or boolean)."""
    if name not in data:
        raise bad("MISSING_FIELD", f"'{name}' is required.")
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise bad("INVALID_FIELD", f"'{name}' must be an integer from 1 to {MAX_ID}.")
    return value


def amount_field(data: dict, name: str = "amount") -> int:
    """A required positive amount with at most two decimals, as minor units."""
    if name not in data:
        raise bad("MISSING_FIELD", f"'{name}' is required.")
    try:
        minor = to_minor(data[name])
    except ValueError as e:
        raise bad("INVALID_AMOUNT", f"'{name}': {e}.") from e
    if not 0 < minor <= MAX_CHARGE:
        raise bad("INVALID_AMOUNT", f"'{name}' must be > 0 and at most {MAX_CHARGE // 100}.")
    return minor


def _digits_id(raw: str, what: str) -> int:
    if _DIGITS.fullmatch(raw) is None or int(raw) > MAX_ID:
        raise bad("INVALID_ID", f"{what} must be an integer from 1 to {MAX_ID}.")
    return int(raw)


def path_id(request: Request, name: str) -> int:
    return _digits_id(request.path_params[name], f"'{name}'")


def query_int(request: Request, name: str, default: int | None = None) -> int:
    """A query parameter given at most once (a duplicate is 400), as a positive integer."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise bad("DUPLICATE_PARAMETER", f"'{name}' is given more than once.")
    if not values:
        if default is None:
            raise bad("MISSING_PARAMETER", f"'{name}' is required.")
        return default
    return _digits_id(values[0], f"'{name}'")


def token(request: Request) -> Token:
    """The queue token from ``Authorization`` (bare, or ``Bearer <value>``); 401 otherwise."""
    raw = request.headers.get("authorization", "")
    if raw[:7].lower() == "bearer ":
        raw = raw[7:]
    parsed = parse_token(raw.strip()) if len(raw) <= 128 else None
    if parsed is None:
        raise ApiError(401, "TOKEN_UNKNOWN", "A queue token is required in Authorization.",
                       "Unauthorized")
    return parsed


def reservation(value: object, tok: Token) -> str:
    """A reservation id of the token's concert, as its secret; a foreign one is 404."""
    if not isinstance(value, str):
        raise bad("INVALID_FIELD", "'reservationId' must be a string.")
    parsed = parse_reservation(value)
    if parsed is None:
        raise bad("INVALID_FIELD", "'reservationId' is not a reservation id.")
    concert_id, secret = parsed
    if concert_id != tok.concert_id:
        raise ApiError(404, "RESERVATION_NOT_FOUND", "No such reservation.", "Not found")
    return secret


def idempotency_key(request: Request) -> str | None:
    values = request.headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1 or _IDEMPOTENCY_KEY.fullmatch(values[0]) is None:
        raise bad("INVALID_IDEMPOTENCY_KEY",
                  "Idempotency-Key must be one value of 1-255 visible ASCII characters.")
    return values[0]
