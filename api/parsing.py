"""Input validation at the edge, straight from the ASGI scope and body bytes: JSON objects,
strict integer ids, exact amounts, tokens and reservation ids that are ours. Everything
failing here is a 4xx ApiError and nothing reaches Redis."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope

from api.problems import ApiError
from engine.ids import MAX_ID, Token, parse_reservation, parse_token
from engine.money import MAX_CHARGE, to_minor

_DIGITS = re.compile(r"[1-9][0-9]{0,15}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def bad(code: str, detail: str) -> ApiError:
    return ApiError(400, code, detail)


def json_object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad("INVALID_JSON", "The body is not valid JSON.") from e
    if type(data) is not dict:
        raise bad("INVALID_JSON", "The body must be a JSON object.")
    return data


def id_field(data: dict, name: str) -> int:
    """A required JSON integer id, 1 <= id <= 2^53-1 (not a string, float or boolean)."""
    value = data.get(name)
    if type(value) is int and 1 <= value <= MAX_ID:  # type() is: bool is not an id
        return value
    if name not in data:
        raise bad("MISSING_FIELD", f"'{name}' is required.")
    raise bad("INVALID_FIELD", f"'{name}' must be an integer from 1 to {MAX_ID}.")


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


def path_id(scope: Scope, name: str) -> int:
    return _digits_id(scope["path_params"][name], f"'{name}'")


def query_int(scope: Scope, name: str, default: int | None = None) -> int:
    """A query parameter given at most once (a duplicate is 400), as a positive integer."""
    values = [v for k, v in parse_qsl(scope["query_string"].decode("latin-1"),
                                      keep_blank_values=True) if k == name]
    if len(values) > 1:
        raise bad("DUPLICATE_PARAMETER", f"'{name}' is given more than once.")
    if not values:
        if default is None:
            raise bad("MISSING_PARAMETER", f"'{name}' is required.")
        return default
    return _digits_id(values[0], f"'{name}'")


def query_text(scope: Scope, name: str, most: int = 64) -> str | None:
    """An optional text query parameter given at most once, 1..most printable characters."""
    values = [v for k, v in parse_qsl(scope["query_string"].decode("latin-1"),
                                      keep_blank_values=True) if k == name]
    if len(values) > 1:
        raise bad("DUPLICATE_PARAMETER", f"'{name}' is given more than once.")
    if not values:
        return None
    value = values[0].encode("latin-1").decode("utf-8", "replace")
    if not 1 <= len(value) <= most or not value.isprintable():
        raise bad("INVALID_PARAMETER", f"'{name}' must be 1 to {most} printable characters.")
    return value


def quantity_field(data: dict, name: str = "quantity", most: int = 8) -> int:
    value = data.get(name)
    if type(value) is int and 1 <= value <= most:
        return value
    raise bad("INVALID_FIELD", f"'{name}' must be an integer from 1 to {most}.")


def text_field(data: dict, name: str, most: int = 64) -> str | None:
    """An optional string field, 1..most printable characters."""
    if name not in data or data[name] is None:
        return None
    value = data[name]
    if not isinstance(value, str) or not 1 <= len(value) <= most or not value.isprintable():
        raise bad("INVALID_FIELD", f"'{name}' must be a string of 1 to {most} printable "
                  "characters.")
    return value


def client_address(scope: Scope, trusted: frozenset[str]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the rightmost
    address in X-Forwarded-For that is not one of the trusted proxies."""
    peer = (scope.get("client") or ("", 0))[0]
    if peer not in trusted:
        return peer
    forwarded = b",".join(headers(scope, b"x-forwarded-for")).decode("latin-1")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if hop not in trusted:
            return hop[:64]
    return peer


def headers(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of one (lowercase) header."""
    return [v for k, v in scope["headers"] if k == name]


def token(scope: Scope) -> Token:
    """The queue token from ``Authorization`` (bare, or ``Bearer <value>``); 401 otherwise."""
    raw = b""
    for k, v in scope["headers"]:
        if k == b"authorization":
            raw = v
            break
    if raw[:7].lower() == b"bearer ":
        raw = raw[7:]
    parsed = parse_token(raw.strip().decode("latin-1")) if len(raw) <= 128 else None
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


def idempotency_key(scope: Scope) -> str | None:
    values = headers(scope, b"idempotency-key")
    if not values:
        return None
    key = values[0].decode("latin-1")
    if len(values) > 1 or _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise bad("INVALID_IDEMPOTENCY_KEY",
                  "Idempotency-Key must be one value of 1-255 visible ASCII characters.")
    return key
