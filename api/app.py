"""The Starlette app: one route per engine operation, a lifespan that owns the Redis client,
and a background tick that admits from the queues and sweeps expired state every second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import parsing
from api.problems import (
    ApiError,
    on_api_error,
    on_engine_error,
    on_http_error,
    on_store_unavailable,
    on_unexpected,
    problem,
)
from engine import booking, catalog, queue, wallet
from engine.config import Settings
from engine.errors import EngineError, StoreUnavailable
from engine.store import Store, connect

log = logging.getLogger("api")


def ok(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def store_of(request: Request) -> Store:
    return request.state.store


# --- queue tokens ---------------------------------------------------------------------------
async def token_issue(request: Request) -> Response:
    body = await parsing.read_json(request)
    customer_id = parsing.id_field(body, "customerId")
    concert_id = parsing.id_field(body, "concertId")
    return ok(await queue.issue_token(store_of(request), customer_id, concert_id))


async def token_status(request: Request) -> Response:
    return ok(await queue.token_status(store_of(request), parsing.token(request)))


# --- catalog --------------------------------------------------------------------------------
async def available_dates(request: Request) -> Response:
    tok = parsing.token(request)
    concert_id = parsing.path_id(request, "concertId")
    return ok(await catalog.available_dates(store_of(request), tok, concert_id))


async def available_seats(request: Request) -> Response:
    tok = parsing.token(request)
    option_id = parsing.path_id(request, "concertOptionId")
    return ok(await catalog.available_seats(store_of(request), tok, option_id))


# --- points ---------------------------------------------------------------------------------
async def point_balance(request: Request) -> Response:
    customer_id = parsing.query_int(request, "customerId")
    return ok(await wallet.balance(store_of(request), customer_id))


async def point_charge(request: Request) -> Response:
    key = parsing.idempotency_key(request)
    body = await parsing.read_json(request)
    customer_id = parsing.id_field(body, "customerId")
    amount = parsing.amount_field(body)
    return ok(await wallet.charge(store_of(request), customer_id, amount, key))


async def point_history(request: Request) -> Response:
    customer_id = parsing.query_int(request, "customerId")
    limit = parsing.query_int(request, "limit", default=20)
    return ok(await wallet.history(store_of(request), customer_id, limit))


# --- holds and payment ----------------------------------------------------------------------
async def reserve(request: Request) -> Response:
    tok = parsing.token(request)
    body = await parsing.read_json(request)
    option_id = parsing.id_field(body, "concertOptionId")
    seat_id = parsing.id_field(body, "seatId")
    return ok(await booking.reserve(store_of(request), tok, option_id, seat_id))


async def cancel(request: Request) -> Response:
    tok = parsing.token(request)
    secret = parsing.reservation(request.path_params["reservationId"], tok)
    return ok(await booking.cancel(store_of(request), tok, secret))


async def pay(request: Request) -> Response:
    tok = parsing.token(request)
    body = await parsing.read_json(request)
    if "reservationId" not in body:
        raise parsing.bad("MISSING_FIELD", "'reservationId' is required.")
    secret = parsing.reservation(body["reservationId"], tok)
    return ok(await booking.pay(store_of(request), tok, secret))


# --- health ---------------------------------------------------------------------------------
async def healthz(_: Request) -> Response:
    return ok({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await store_of(request).execute("PING")
    except Exception:  # any failure to answer means not ready
        return problem(503, "STORE_UNAVAILABLE", "Service unavailable",
                       "Redis does not answer.", {"Retry-After": "1"})
    return ok({"status": "ready"})


ROUTES = [
    Route("/api/token/issue", token_issue, methods=["POST"]),
    Route("/api/token/status", token_status, methods=["GET"]),
    Route("/api/point", point_balance, methods=["GET"]),
    Route("/api/point/charge", point_charge, methods=["PATCH"]),
    Route("/api/point/history", point_history, methods=["GET"]),
    Route("/api/reserve", reserve, methods=["POST"]),
    Route("/api/reserve/{reservationId}", cancel, methods=["DELETE"]),
    Route("/api/pay", pay, methods=["POST"]),
    Route("/api/{concertId}/available-dates", available_dates, methods=["GET"]),
    Route("/api/{concertOptionId}/available-seats", available_seats, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]


async def _tick_forever(store: Store) -> None:
    """Admission and sweeps without a scheduler process: every worker ticks; the scripts are
    atomic, so several workers ticking at once only share the work."""
    while True:
        await asyncio.sleep(store.settings.tick_seconds)
        try:
            await queue.tick_all(store)
        except StoreUnavailable as e:
            log.warning("tick skipped: %s", e.detail)
        except Exception:
            log.exception("tick failed")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Store]]:
        store = Store(connect(settings), settings)
        ticker = asyncio.create_task(_tick_forever(store))
        try:
            yield {"store": store}
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await store.aclose()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ApiError: on_api_error,
            EngineError: on_engine_error,
            StoreUnavailable: on_store_unavailable,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )


app = create_app()
