"""The Starlette app: one route per engine operation, a lifespan that owns the Redis
connection, and a background tick that admits from the queues and sweeps expired state.

Each route is ``Endpoint(handler)``: a bare ASGI callable (see api/asgi.py) whose handler
takes the scope and body bytes and returns what becomes the JSON answer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Scope

from api import metrics, pages, parsing
from api.asgi import Endpoint, FastRouter, Guard, Handler
from api.metrics import MetricsEndpoint
from engine import booking, catalog, pay, queue, tick, wallet
from engine.config import Settings
from engine.errors import StoreUnavailable
from engine.store import Store, connect

log = logging.getLogger("api")


def store_of(scope: Scope) -> Store:
    return scope["state"]["store"]


# --- queue tokens ---------------------------------------------------------------------------
async def token_issue(scope: Scope, body: bytes) -> dict:
    data = parsing.json_object(body)
    customer_id = parsing.id_field(data, "customerId")
    concert_id = parsing.id_field(data, "concertId")
    token = await queue.issue_token(store_of(scope), customer_id, concert_id)
    metrics.event("token_issued")
    return token


async def token_status(scope: Scope, _: bytes) -> dict:
    return await queue.token_status(store_of(scope), parsing.token(scope))


# --- catalog --------------------------------------------------------------------------------
async def available_dates(scope: Scope, _: bytes) -> dict:
    tok = parsing.token(scope)
    concert_id = parsing.path_id(scope, "concertId")
    return await catalog.available_dates(store_of(scope), tok, concert_id)


async def available_seats(scope: Scope, _: bytes) -> dict:
    tok = parsing.token(scope)
    option_id = parsing.path_id(scope, "concertOptionId")
    return await catalog.available_seats(store_of(scope), tok, option_id)


# --- points ---------------------------------------------------------------------------------
async def point_balance(scope: Scope, _: bytes) -> dict:
    return await wallet.balance(store_of(scope), parsing.query_int(scope, "customerId"))


async def point_charge(scope: Scope, body: bytes) -> dict:
    key = parsing.idempotency_key(scope)
    data = parsing.json_object(body)
    customer_id = parsing.id_field(data, "customerId")
    amount = parsing.amount_field(data)
    charged, replayed = await wallet.charge(store_of(scope), customer_id, amount, key)
    if not replayed:
        metrics.event("charge")
        metrics.CHARGED.inc(amount / 100)
    return charged


async def point_history(scope: Scope, _: bytes) -> dict:
    customer_id = parsing.query_int(scope, "customerId")
    limit = parsing.query_int(scope, "limit", default=20)
    return await wallet.history(store_of(scope), customer_id, limit)


# --- holds and payment ----------------------------------------------------------------------
async def reserve(scope: Scope, body: bytes) -> dict:
    tok = parsing.token(scope)
    data = parsing.json_object(body)
    option_id = parsing.id_field(data, "concertOptionId")
    seat_id = parsing.id_field(data, "seatId")
    held = await booking.reserve(store_of(scope), tok, option_id, seat_id)
    metrics.event("hold")
    return held


async def cancel(scope: Scope, _: bytes) -> dict:
    tok = parsing.token(scope)
    secret = parsing.reservation(scope["path_params"]["reservationId"], tok)
    cancelled = await booking.cancel(store_of(scope), tok, secret)
    metrics.event("cancel")
    return cancelled


async def pay_route(scope: Scope, body: bytes) -> dict:
    tok = parsing.token(scope)
    data = parsing.json_object(body)
    if "reservationId" not in data:
        raise parsing.bad("MISSING_FIELD", "'reservationId' is required.")
    secret = parsing.reservation(data["reservationId"], tok)
    paid = await pay.pay(store_of(scope), tok, secret)
    metrics.event("sale")
    return paid


# --- health ---------------------------------------------------------------------------------
async def healthz(_scope: Scope, _: bytes) -> dict:
    return {"status": "ok"}


async def readyz(scope: Scope, _: bytes) -> dict:
    await store_of(scope).execute("PING")  # StoreUnavailable: 503
    return {"status": "ready"}


def route(method: str, path: str, handler: Handler, *, body: bool = False) -> Route:
    return Route(path, Endpoint(handler, path, method, body=body), methods=[method])


ROUTES = [
    route("POST", "/api/token/issue", token_issue, body=True),
    route("GET", "/api/token/status", token_status),
    route("GET", "/api/point", point_balance),
    route("PATCH", "/api/point/charge", point_charge, body=True),
    route("GET", "/api/point/history", point_history),
    route("POST", "/api/reserve", reserve, body=True),
    route("DELETE", "/api/reserve/{reservationId}", cancel),
    route("POST", "/api/pay", pay_route, body=True),
    route("GET", "/api/{concertId}/available-dates", available_dates),
    route("GET", "/api/{concertOptionId}/available-seats", available_seats),
    route("GET", "/healthz", healthz),
    route("GET", "/readyz", readyz),
    Route("/metrics", MetricsEndpoint(), methods=["GET"]),
    *pages.ROUTES,  # the booking page: GET / and /static/...
]


async def _tick_forever(store: Store) -> None:
    """Admission and sweeps without a scheduler process: every worker runs a pass each
    TICK_SECONDS, and a concert's lease lets one worker tick it per period (engine/tick.py).
    The first pass comes at a random moment, so that workers spread over the period."""
    period = store.settings.tick_seconds
    await asyncio.sleep(random.uniform(0, period))
    while True:
        started = asyncio.get_running_loop().time()
        metrics.flush()
        try:
            await tick.tick_all(store)
        except StoreUnavailable as e:  # the concert list itself could not be read
            log.warning("tick skipped: %s", e.detail)
        except Exception:
            log.exception("tick failed")
        await asyncio.sleep(max(0.0, period - (asyncio.get_running_loop().time() - started)))


def _tune_gc() -> None:
    """Move what start-up allocated out of the collector's sight and collect the young
    generation less often: requests make short-lived, acyclic objects that reference counting
    frees, and full collections over the start-up heap were the p99 (measured here: point
    read p99 7.7 -> 3.8 ms, token status 8.6 -> 3.8 ms at the same throughput)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


class App(Starlette):
    """Starlette with its router indexed (``FastRouter``) behind ``Guard`` instead of the two
    default middlewares."""

    max_in_flight = 0  # Guard's bound on requests in progress (create_app sets it)

    def build_middleware_stack(self) -> ASGIApp:
        return Guard(FastRouter(self.router), self.max_in_flight)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Store]]:
        store = Store(connect(settings), settings)
        store.observe = metrics.observe_redis
        store.event = metrics.redis_event
        ticker = asyncio.create_task(_tick_forever(store))
        _tune_gc()
        try:
            yield {"store": store}
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            metrics.flush()
            await store.aclose()

    app = App(routes=ROUTES, lifespan=lifespan)
    app.max_in_flight = settings.max_in_flight
    return app


app = create_app()
