"""The lean path from bytes to JSON: each route is a bare ASGI callable under Starlette's
router, with no Request/Response objects and no exception crossing a middleware. Measured
here: Starlette's Request/Response cost ~11 µs and its two middlewares ~13 µs a request,
against ~27 µs for a whole bare-ASGI request."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.exceptions import HTTPException
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from api import parsing, problems
from api.contract import UNSHED_PATHS
from api.metrics import RouteMetrics, route_metrics
from api.problems import ApiError
from engine.errors import EngineError, StoreUnavailable

if TYPE_CHECKING:
    from api.auth import Auth
    from api.contract import Operation

log = logging.getLogger("api")

MAX_BODY = 64 * 1024
# uvicorn's httptools parser takes headers of any size (seen here: 500 KB) and number; granian
# (hyper) refuses more than 100 headers or ~408 KiB itself, with a bare 431. Refuse past this.
MAX_HEADER_BYTES = 16 * 1024
JSON = b"application/json"
Handler = Callable[[Scope, bytes], Awaitable[Any]]


async def respond(send: Send, status: int, body: bytes, content_type: bytes = JSON,
                  headers: problems.Headers | None = None) -> None:
    raw = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if headers:
        raw += headers
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The request body, at most ``limit`` bytes (413 past it, without reading the rest).

    Once Content-Length bytes have come, the body is whole: granian hands a small body over
    with ``more_body`` set and the end in a second ``receive()``, each a hop between its Rust
    thread and the event loop (~50 µs here, and ~25 % of a charge's CPU); uvicorn's first
    message already ends the body."""
    length = -1
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit() or int(value) > limit:
                raise _too_large(limit)
            length = int(value)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "INVALID_JSON", "The client went away before the body ended.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if size == length or not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def drain(scope: Scope, receive: Receive) -> None:
    """Read and drop a body the answer does not need (a shed request's): granian closes a
    keep-alive connection whose request body was left unread, and a client reconnecting
    costs more than the read. A body past MAX_BODY is left, and the connection with it."""
    for name, value in scope["headers"]:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            with contextlib.suppress(ApiError):
                await read_body(scope, receive)
            return


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "BODY_TOO_LARGE", f"The body exceeds {limit} bytes.",
                    "Content too large")


class Endpoint:
    """A route: ``handler(scope, body) -> JSON-able`` answered as 200 JSON; every refusal and
    failure answered here as problem+json (4xx for the client's mistakes, 503 for Redis).
    Each answer is counted and timed under ``route``."""

    __slots__ = ("body_limit", "handler", "metrics", "wants_body")

    def __init__(self, handler: Handler, route: str, method: str, *, body: bool = False,
                 body_limit: int = MAX_BODY) -> None:
        self.handler = handler
        self.wants_body = body
        self.body_limit = body_limit
        self.metrics = route_metrics(route, method)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await read_body(scope, receive, self.body_limit) if self.wants_body else b""
            result = await self.handler(scope, body)
            if type(result) is Streamed:
                await result.send_to(send)
                self.metrics.observe(200, started)
                return
            if type(result) is Cached:
                self.metrics.observe(await result.send_to(send), started)
                return
            payload = orjson.dumps(result)
        except StreamBroken:
            raise  # the answer has begun: the server cuts the connection
        except Exception as e:
            status, payload, headers = failure(e, scope)
        else:
            await respond(send, 200, payload)
            self.metrics.observe(200, started)
            return
        await respond(send, status, payload, problems.PROBLEM_JSON, headers)
        self.metrics.observe(status, started)


def failure(e: Exception, scope: Scope) -> tuple[int, bytes, problems.Headers]:
    """The problem+json answer to a failed request: 4xx for the client's mistakes and the
    engine's refusals, 503 for Redis, a logged 500 for anything else."""
    if isinstance(e, EngineError):
        return problems.for_engine_error(e)
    if isinstance(e, ApiError):
        return problems.for_api_error(e)
    if isinstance(e, StoreUnavailable):
        return problems.for_store_unavailable(e)
    log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=e)
    return problems.internal()


class Streamed:
    """What a handler returns for a body sent in chunks (the admin's CSV export): a content
    type and an async iterator of bytes. A failure before the first chunk is a problem
    answer; after it, the connection is cut (the client sees a truncated body)."""

    __slots__ = ("chunks", "content_type", "first")

    def __init__(self, content_type: bytes, chunks: AsyncIterator[bytes]) -> None:
        self.content_type, self.chunks = content_type, chunks

    async def send_to(self, send: Send) -> None:
        first = await anext(self.chunks)  # before the status line: a failure is still a 4xx
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", self.content_type)]})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except Exception as e:
            raise StreamBroken("a streamed answer failed half-way") from e
        await send({"type": "http.response.body", "body": b""})


class Cached:
    """What a handler returns for JSON a client may keep (a seat map's layout): sent with its
    ETag and Cache-Control, or as 304 Not Modified without the body when the request's
    If-None-Match (``given``) names that ETag."""

    __slots__ = ("body", "cache_control", "etag", "given")

    def __init__(self, etag: str, body: bytes, given: str | None,
                 cache_control: str = "private, no-cache") -> None:
        self.etag, self.body, self.given, self.cache_control = etag, body, given, cache_control

    def fresh(self) -> bool:
        """If-None-Match names this ETag (weak comparison, as RFC 9110 wants for it)."""
        if self.given is None:
            return False
        tags = {t.strip().removeprefix("W/") for t in self.given.split(",")}
        return "*" in tags or self.etag.removeprefix("W/") in tags

    async def send_to(self, send: Send) -> int:
        headers = [(b"etag", self.etag.encode()), (b"cache-control", self.cache_control.encode())]
        if self.fresh():
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return 304
        await respond(send, 200, self.body, JSON, headers)
        return 200


class StreamBroken(Exception):
    """A streamed answer failed after its first chunk: no clean answer can follow."""


def bound(op: Operation, auth: Auth) -> Handler:
    """``op.handler`` as an Endpoint's ``handler(scope, body)``: security, then the inputs by
    their rules, then the call. It returns the handler's coroutine without awaiting it (one
    coroutine a request, as before); whatever is refused raises before, inside Endpoint's try."""
    bind = parsing.binder(op.inputs)
    gate = op.security.gate(auth, op.inputs)
    handler = op.handler
    assert handler is not None
    if gate is None:
        def run(scope: Scope, body: bytes) -> Awaitable[Any]:
            return handler(scope, *bind(scope, body))
    elif gate.authorize is None and gate.passes:  # the queue token: checked, then passed on
        authenticate = gate.authenticate

        def run(scope: Scope, body: bytes) -> Awaitable[Any]:
            return handler(scope, authenticate(scope), *bind(scope, body))  # in this order
    elif gate.authorize is None:  # who asks, and nothing more (an admin token, say)
        authenticate = gate.authenticate

        def run(scope: Scope, body: bytes) -> Awaitable[Any]:
            authenticate(scope)
            return handler(scope, *bind(scope, body))
    else:
        authenticate, authorize, passes = gate.authenticate, gate.authorize, gate.passes

        def run(scope: Scope, body: bytes) -> Awaitable[Any]:
            credential = authenticate(scope)
            values = bind(scope, body)
            authorize(credential, values)
            return handler(scope, credential, *values) if passes else handler(scope, *values)
    return run


class ByMethod:
    """The operations of one path, by method: one Route, so that a method none of them takes
    is a 405 whose Allow lists them all (a Route each would list only the first's)."""

    __slots__ = ("apps",)

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps
        if "GET" in apps:
            apps.setdefault("HEAD", apps["GET"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.apps[scope["method"]](scope, receive, send)


def routes(operations: list[Operation], auth: Auth) -> list[Route]:
    """One Starlette Route per path, its operations bound to the running auth mode."""
    by_path: dict[str, dict[str, ASGIApp]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method] = op.app if op.app is not None else \
            Endpoint(bound(op, auth), op.path, op.method, body=op.takes_body,
                     body_limit=op.body_limit)
    return [Route(path, apps[next(iter(apps))] if len(apps) == 1 else ByMethod(apps),
                  methods=list(apps)) for path, apps in by_path.items()]


def _problem(p: tuple[int, bytes, problems.Headers]) -> tuple[int, bytes, bytes,
                                                                problems.Headers]:
    status, body, headers = p
    return status, body, problems.PROBLEM_JSON, headers


# Answers given before any route: unknown paths, wrong methods, oversized headers. One fixed
# label set, whatever the client sent (a client-chosen label would be unbounded).
UNMATCHED = RouteMetrics("(unmatched)", "ANY")
# Requests shed for overload, whatever their route.
SHED = RouteMetrics("(overloaded)", "ANY")
# Never shed: liveness must not fail because the worker is busy, and a scrape should see it.
OVERLOADED_RETRY_SECONDS = 1


def overloaded(limit: int) -> tuple[int, bytes, bytes, problems.Headers]:
    return _problem(problems.problem(
        503, "OVERLOADED", "Service overloaded",
        f"This worker has {limit} requests in progress, its limit; nothing was done.",
        [(b"retry-after", b"%d" % OVERLOADED_RETRY_SECONDS)]))


class Guard:
    """Stands where Starlette's two middlewares would: the router's own 404/405 become
    problem+json, and anything unexpected a logged 500; nothing else runs per request.

    It also bounds the requests in progress in this worker to ``max_in_flight`` (0: no
    bound): past it a request is answered 503 ``OVERLOADED`` at once, before any route and
    without a word to Redis, so that offered more than it can serve the worker sheds instead
    of letting every answer wait behind an unbounded queue (loadtests/http_bench/overload.py)."""

    __slots__ = ("app", "in_flight", "max_in_flight", "shed")

    def __init__(self, app: ASGIApp, max_in_flight: int = 0) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # one event loop per worker: a plain counter is exact
        self.shed = overloaded(max_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if self.in_flight >= self.max_in_flight > 0 and scope["path"] not in UNSHED_PATHS:
            await drain(scope, receive)
            await respond(send, *self.shed)
            SHED.observe(503, started)
            return
        if sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            await respond(send, *_problem(problems.problem(
                431, "HEADERS_TOO_LARGE", "Request header fields too large",
                f"The request's headers exceed {MAX_HEADER_BYTES} bytes.")))
            UNMATCHED.observe(431, started)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        except HTTPException as e:
            await respond(send, *_problem(problems.for_http_status(e.status_code, e.headers)))
            UNMATCHED.observe(e.status_code, started)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await respond(send, *_problem(problems.internal()))
        finally:
            self.in_flight -= 1


class FastRouter:
    """An index over Starlette's routes: the path is looked up in a dict (or, for the three
    templated paths, matched against their regexes) instead of Starlette's walk that computes
    the route path and runs a regex for every route in turn (~1-2 µs a route, measured).
    Whatever it does not find (404, 405, HEAD, lifespan) goes to Starlette's router."""

    __slots__ = ("exact", "router", "templated")

    def __init__(self, router: Router) -> None:
        self.router = router
        self.exact: dict[str, dict[str, ASGIApp]] = {}
        self.templated: list[tuple[re.Pattern[str], dict[str, ASGIApp]]] = []
        for route in router.routes:
            if not isinstance(route, Route) or not route.methods:
                continue
            by_method = {m: route.app for m in route.methods if m != "HEAD"}
            if route.param_convertors:  # one path, several methods: one entry
                for regex, methods in self.templated:
                    if regex.pattern == route.path_regex.pattern:
                        methods.update(by_method)
                        break
                else:
                    self.templated.append((route.path_regex, by_method))
            else:
                self.exact.setdefault(route.path, {}).update(by_method)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path = scope["path"]
            by_method = self.exact.get(path)
            if by_method is None:
                for regex, methods in self.templated:
                    m = regex.match(path)
                    if m is not None:
                        scope["path_params"] = m.groupdict()
                        by_method = methods
                        break
            if by_method is not None:
                app = by_method.get(scope["method"])
                if app is not None:
                    await app(scope, receive, send)
                    return
        await self.router(scope, receive, send)
