"""Input validation at the edge, straight from the ASGI scope and body bytes, by the rules
declared in api/contract.py: an operation's inputs are bound here (``binder``), each checked
by its field's rule, the one that also describes it in the OpenAPI document. Everything
failing here is a 4xx ApiError and nothing reaches Redis."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope

from api.contract import WHOLE, Field, bad
from api.problems import ApiError
from engine.ids import Token

_MISSING = object()


def json_object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad("INVALID_JSON", "The body is not valid JSON.") from e
    if type(data) is not dict:
        raise bad("INVALID_JSON", "The body must be a JSON object.")
    return data


def query_values(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


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


def _from_body(f: Field, data: dict) -> object:
    if f.name == WHOLE:  # the body itself, checked whole by the engine
        return f.rule.json(data, f.name)
    value = data.get(f.name, _MISSING)
    if value is _MISSING:
        if f.required:
            raise bad("MISSING_FIELD", f"'{f.name}' is required.")
        return f.default
    return f.rule.json(value, f.name)


def _from_query(f: Field, query: dict[str, list[str]]) -> object:
    values = query.get(f.name)
    if values is None:
        if f.required:
            raise bad("MISSING_PARAMETER", f"'{f.name}' is required.")
        return f.default
    if len(values) > 1:
        raise bad("DUPLICATE_PARAMETER", f"'{f.name}' is given more than once.")
    return f.rule.text(values[0], f.name)


def _from_header(f: Field, name: bytes, scope: Scope) -> object:
    values = headers(scope, name)
    if not values:
        if f.required:
            raise bad("MISSING_PARAMETER", f"The {f.name} header is required.")
        return f.default
    if len(values) > 1:
        raise bad(f.rule.text_code, f"'{f.name}' must be given once.")
    return f.rule.text(values[0].decode("latin-1"), f.name)


def binder(inputs: tuple[Field, ...]) -> Callable[[Scope, bytes], list]:
    """``bind(scope, body) -> values`` of ``inputs`` in their order. The body is parsed once,
    when its first field is read (so a header declared first is checked first), and so is the
    query string."""
    plan = [(f.where, f, f.name.lower().encode()) for f in inputs]

    def bind(scope: Scope, body: bytes) -> list:
        data = query = None
        values = []
        for where, f, header in plan:
            if where == "body":
                if data is None:
                    data = json_object(body)
                values.append(_from_body(f, data))
            elif where == "query":
                if query is None:
                    query = query_values(scope)
                values.append(_from_query(f, query))
            elif where == "path":
                values.append(f.rule.text(scope["path_params"][f.name], f.name))
            else:
                values.append(_from_header(f, header, scope))
        return values

    return bind


def reservation(rid: str, tok: Token) -> str:
    """The res_id (32 hex) of a reservationId "<concertId>.<res_id>" (already checked by
    contract.RESERVATION_ID) of the token's concert; another concert's is 404 like any
    reservation that is not yours."""
    concert, _, res_id = rid.partition(".")
    if int(concert) != tok.concert_id:
        raise ApiError(404, "RESERVATION_NOT_FOUND", "No such reservation.", "Not found")
    return res_id
