"""The API's contract, declared once: each operation's method, path, inputs, security and
answers. The same declarations check requests (api/parsing.py binds an operation's inputs
from the ASGI scope, api/asgi.py serves it) and describe them (api/openapi.py builds
``GET /openapi.json`` from a list of operations), so the document cannot drift from the API.

How to declare a route, e.g. in a module ``api/admin.py``::

    from api.contract import ID, Field, Operation, Reply, Security, obj
    from api.schemas import COUNT

    class AdminToken(Security):  # a scheme of its own (api/auth.py has three to copy)
        def schemes(self, auth): return {"adminToken": {"type": "http", "scheme": "bearer"}}
        def requirement(self, auth): return [{"adminToken": []}]
        def codes(self, auth): return ("AUTH_REQUIRED", "AUTH_INVALID")
        def gate(self, auth, inputs): return AdminGate(...)  # .authenticate(scope): 401s

    CONCERT = Field("concertId", ID, "The concert.", example=2)

    async def concert_stats(scope: Scope, concert_id: int) -> dict:
        return await queue.concert_stats(store_of(scope), concert_id)

    OPERATIONS = [
        Operation("GET", "/admin/concerts/{concertId}/stats", concert_stats, "concertStats",
                  tag="admin", summary="A concert's queue and seats",
                  inputs=(CONCERT.at("path"),), security=AdminToken(),
                  ok=Reply(obj({"concertId": ID.schema(), "waiting": COUNT})),
                  codes=("CONCERT_NOT_FOUND",)),
    ]

then add ``*admin.OPERATIONS`` to ``OPERATIONS`` in api/app.py: it is served and documented
(tests/test_contract.py fails on a served route that is not). The handler is called with the
scope, then the credential when the security passes one (the queue token), then each input's
value in the order of ``inputs``, each already checked by its rule. The document lists by
itself every refusal the inputs, the security and Redis imply; ``codes`` adds the engine's
refusals (engine/errors.py names); a new code of the API's own goes in
``problems.API_STATUS`` with its status.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from api.problems import ApiError
from engine.ids import MAX_ID
from engine.money import MAX_CHARGE, MINOR_PER_UNIT, to_minor

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Scope

    from api.auth import Auth

_DIGITS = re.compile(r"[1-9][0-9]{0,15}")


def bad(code: str, detail: str) -> ApiError:
    return ApiError(400, code, detail)


# --- rules: how one value is checked and described ------------------------------------------
class Rule:
    """A value's rule: ``schema()`` describes it; ``json`` checks a value from a JSON body and
    ``text`` one from a path, query or header, each returning what the handler gets or raising
    a 400 that names the input."""

    code = "INVALID_FIELD"  # a JSON value that breaks the rule
    text_code = "INVALID_FIELD"  # a path, query or header value that breaks it

    def schema(self) -> dict:
        raise NotImplementedError

    def json(self, value: object, name: str) -> Any:
        raise bad(self.code, f"'{name}' cannot be given in a body.")

    def text(self, raw: str, name: str) -> Any:
        raise bad(self.text_code, f"'{name}' cannot be given as text.")


class Integer(Rule):
    """A JSON integer from ``minimum`` to ``maximum`` (not a string, a fraction or a boolean);
    as text, plain digits without sign or leading zero."""

    text_code = "INVALID_ID"

    def __init__(self, minimum: int = 1, maximum: int = MAX_ID) -> None:
        assert 1 <= minimum <= maximum <= MAX_ID  # the text form has no sign, zero or 17 digits
        self.minimum, self.maximum = minimum, maximum
        self.must = f"must be an integer from {minimum} to {maximum}"

    def schema(self) -> dict:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def json(self, value: object, name: str) -> int:
        if type(value) is int and self.minimum <= value <= self.maximum:  # bool is not an int here
            return value
        # JSON has one number type: 7.0 is the integer 7, as JSON Schema (and every JavaScript
        # client) reads it; 7.5 is not. Below 2^53 a whole float is exact.
        if type(value) is float and value.is_integer() and self.minimum <= value <= self.maximum:
            return int(value)
        raise bad(self.code, f"'{name}' {self.must}.")

    def text(self, raw: str, name: str) -> int:
        if _DIGITS.fullmatch(raw) is not None:
            value = int(raw)
            if self.minimum <= value <= self.maximum:
                return value
        raise bad(self.text_code, f"'{name}' {self.must}.")


class Amount(Rule):
    """Points: a JSON number > 0 with at most two decimals, at most MAX_CHARGE; the handler gets
    integer minor units (x100)."""

    code = "INVALID_AMOUNT"

    def schema(self) -> dict:
        return {"type": "number", "exclusiveMinimum": 0,
                "maximum": MAX_CHARGE // MINOR_PER_UNIT, "multipleOf": 0.01}

    def json(self, value: object, name: str) -> int:
        try:
            minor = to_minor(value)
        except ValueError as e:
            raise bad(self.code, f"'{name}': {e}.") from e
        if not 0 < minor <= MAX_CHARGE:
            raise bad(self.code, f"'{name}' must be > 0 and at most "
                                 f"{MAX_CHARGE // MINOR_PER_UNIT}.")
        return minor


class Text(Rule):
    """A string matching ``pattern`` whole (a pattern that means the same in Python and in
    ECMA-262, the dialect of JSON Schema)."""

    def __init__(self, pattern: str, must: str, code: str = "INVALID_FIELD",
                 max_length: int | None = None) -> None:
        self.pattern, self.must, self.max_length = pattern, must, max_length
        self.regex = re.compile(pattern)
        self.code = self.text_code = code

    def schema(self) -> dict:
        s: dict = {"type": "string", "pattern": f"^{self.pattern}$"}
        if self.max_length is not None:
            s |= {"minLength": 1, "maxLength": self.max_length}
        return s

    def json(self, value: object, name: str) -> str:
        if type(value) is str and self.regex.fullmatch(value) is not None:
            return value
        if not isinstance(value, str):
            raise bad(self.code, f"'{name}' must be a string.")
        raise bad(self.code, f"'{name}' {self.must}.")

    def text(self, raw: str, name: str) -> str:
        if self.regex.fullmatch(raw) is not None:
            return raw
        raise bad(self.text_code, f"'{name}' {self.must}.")


class Flag(Rule):
    """A boolean: JSON true or false; as text (a query), ``true`` or ``false``."""

    text_code = "INVALID_PARAMETER"

    def schema(self) -> dict:
        return {"type": "boolean"}

    def json(self, value: object, name: str) -> bool:
        if type(value) is bool:
            return value
        raise bad(self.code, f"'{name}' must be true or false.")

    def text(self, raw: str, name: str) -> bool:
        if raw in ("true", "false"):
            return raw == "true"
        raise bad(self.text_code, f"'{name}' must be true or false.")


class Document(Rule):
    """The whole JSON body as one value, described by ``schema`` (an operator's catalogue
    document or settings): the engine checks it whole, naming the bad field's path. Declared
    as a body Field named ``WHOLE``."""

    def __init__(self, schema: dict, code: str) -> None:
        self._schema, self.code = schema, code  # code: the engine's refusal of a bad document

    def schema(self) -> dict:
        return dict(self._schema)

    def json(self, value: object, name: str) -> object:
        return value


WHOLE = "*"  # the name of a body Field that is the whole body (a Document)

ID = Integer()
AMOUNT = Amount()
FLAG = Flag()
# A section or row name, a concert's name: printable, 1-64 characters (the same pattern in
# Python and in ECMA-262).
NAME = Text(r"[^\x00-\x1f\x7f]{1,64}", "must be 1-64 printable characters", max_length=64)
RESERVATION_ID = Text(r"[1-9][0-9]{0,15}\.[0-9a-f]{32}",
                      "must be a reservation id: <concertId>.<32 lowercase hex>")
QUEUE_TOKEN = Text(r"[1-9][0-9]{0,15}\.[1-9][0-9]{0,15}\.[1-9][0-9]{0,15}\.[0-9a-f]{32}",
                   "must be a queue token: <concertId>.<customerId>.<seq>.<32 lowercase hex>")
# Visible ASCII: what a header carries unchanged through every proxy.
IDEMPOTENCY_KEY = Text(r"[!-~]{1,255}", "must be one value of 1-255 visible ASCII characters",
                       code="INVALID_IDEMPOTENCY_KEY", max_length=255)

LOCATIONS = ("body", "path", "query", "header")
# Never refused past MAX_IN_FLIGHT (api/asgi.py Guard): a probe must see a busy worker alive.
UNSHED_PATHS = frozenset(("/healthz", "/metrics"))


@dataclass(frozen=True, slots=True)
class Field:
    """One named input: its rule, where it travels, and what the document says of it."""

    name: str
    rule: Rule
    description: str = ""
    example: object = None
    required: bool = True
    default: object = None  # what the handler gets when an optional input is absent
    where: str = "body"  # body (a JSON property) | path | query | header

    def __post_init__(self) -> None:
        assert self.where in LOCATIONS, self.where
        assert self.required or self.where != "path", "a path parameter is always required"

    def at(self, where: str, **changes: Any) -> Field:
        return replace(self, where=where, **changes)

    def schema(self) -> dict:
        s = self.rule.schema()
        if self.description:
            s["description"] = self.description
        if self.default is not None:
            s["default"] = self.default
        if self.example is not None:
            s["examples"] = [self.example]
        return s


# --- security: who may call an operation ----------------------------------------------------
class Gate(Protocol):
    """A security's per-request work: ``authenticate(scope)`` (401) runs before the inputs are
    read, ``authorize(credential, values)`` (403, or None: nothing to check) after, with their
    values; the credential is the handler's first argument when ``passes``."""

    passes: bool
    authenticate: Callable[[Scope], Any]
    authorize: Callable[[Any, list], None] | None


class Security:
    """Who may call an operation, for the running mode (``Auth``): in the document
    (``schemes``, ``requirement``, ``codes``) and per request (``gate``, None: nothing to
    check). This base is public access."""

    def schemes(self, auth: Auth) -> dict[str, dict]:
        return {}

    def requirement(self, auth: Auth) -> list[dict[str, list[str]]] | None:
        return None

    def codes(self, auth: Auth) -> tuple[str, ...]:
        return ()

    def gate(self, auth: Auth, inputs: tuple[Field, ...]) -> Gate | None:
        return None


PUBLIC = Security()


# --- answers and operations -----------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """The 200 answer: its body's schema, an example, its media type."""

    schema: dict
    description: str = "OK"
    example: object = None
    media_type: str = "application/json"
    headers: dict[str, dict] = field(default_factory=dict)  # the 200's, as OpenAPI has them
    not_modified: str = ""  # a 304 answer's description, when the operation gives one


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler | None  # (scope, [credential,] *inputs) -> JSON-able; None with ``app``
    operation_id: str
    tag: str
    summary: str
    ok: Reply
    description: str = ""
    inputs: tuple[Field, ...] = ()
    security: Security = PUBLIC
    codes: tuple[str, ...] = ()  # the engine's refusals it may answer (engine/errors.py names)
    store: bool = True  # reaches Redis: 503 STORE_UNAVAILABLE when Redis does not answer
    writes: bool = False  # a write Redis refuses when out of memory: 503 STORE_FULL
    links: dict[str, dict] = field(default_factory=dict)  # OpenAPI links from the 200 answer
    app: ASGIApp | None = None  # a raw ASGI endpoint whose answer is its own (e.g. /metrics)
    body_limit: int = 64 * 1024  # bytes of body at most (413 past it)
    body_one_of: tuple[str, ...] = ()  # optional body fields of which one must be given

    def __post_init__(self) -> None:
        assert (self.handler is None) != (self.app is None), self.operation_id
        in_path = set(re.findall(r"{(\w+)}", self.path))
        declared = {f.name for f in self.inputs if f.where == "path"}
        assert in_path == declared, f"{self.operation_id}: path {in_path} vs inputs {declared}"

    @property
    def takes_body(self) -> bool:
        return any(f.where == "body" for f in self.inputs)

    def error_codes(self, auth: Auth) -> set[str]:
        """Every problem code this operation can answer in this mode."""
        codes = {"HEADERS_TOO_LARGE", "INTERNAL", *self.security.codes(auth), *self.codes}
        if self.path not in UNSHED_PATHS:
            codes.add("OVERLOADED")
        for f in self.inputs:
            if f.where == "body":
                codes |= {"INVALID_JSON", "BODY_TOO_LARGE", f.rule.code}
                if f.required:
                    codes.add("MISSING_FIELD")
            else:
                codes.add(f.rule.text_code)
                if f.where == "query":
                    codes.add("DUPLICATE_PARAMETER")
                if f.required and f.where in ("query", "header"):
                    codes.add("MISSING_PARAMETER")
        if self.store:
            codes.add("STORE_UNAVAILABLE")
        if self.writes:
            codes.add("STORE_FULL")
        return codes


def obj(properties: dict[str, dict], optional: tuple[str, ...] = (), **extra: Any) -> dict:
    """A response object's schema: every property required but ``optional``, and others
    allowed (the engine may add fields; a client ignores what it does not know)."""
    return {"type": "object", "required": [p for p in properties if p not in optional],
            "properties": properties, "additionalProperties": True, **extra}
