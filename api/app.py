"""The Starlette app: one operation per engine call, declared in ``OPERATIONS``
(api/contract.py: inputs, security, answers), served and described from that one list
(``GET /openapi.json``, ``/docs``); a lifespan that owns the Redis connection; and a
background tick that admits from the queues and sweeps expired state.

Each handler takes the scope, then the queue token where its security passes one, then its
inputs already checked, and returns what becomes the JSON answer (api/asgi.py serves it)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from importlib import metadata

import orjson
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Scope

from api import admin, background, docs, gates, metrics, pages, parsing, schemas, seat_map, tickets
from api.asgi import FastRouter, Guard, routes
from api.auth import ACTIVE, CHARGE, CUSTOMER, QUEUE, Auth
from api.contract import (
    AMOUNT,
    ID,
    IDEMPOTENCY_KEY,
    NAME,
    RESERVATION_ID,
    Field,
    Integer,
    Operation,
    Reply,
)
from api.gc_tuning import freeze_heap
from api.metrics import MetricsEndpoint
from api.openapi import document
from engine import booking, catalog, challenge, memory, pay, queue, wallet
from engine.config import Settings
from engine.ids import Token
from engine.queue_view import QueueViews
from engine.store import Store, connect
from engine.tickets import TicketKey

log = logging.getLogger("api")


def store_of(scope: Scope) -> Store:
    return scope["state"]["store"]


@functools.cache
def _trusted(spec: str) -> frozenset[str]:
    return frozenset(a.strip() for a in spec.split(",") if a.strip())


def trusted_proxies(store: Store) -> frozenset[str]:
    """TRUSTED_PROXIES: the peers whose X-Forwarded-For is believed."""
    return _trusted(store.settings.trusted_proxies)


# --- inputs: each rule once, for validation and for the document ----------------------------
CUSTOMER_ID = Field("customerId", ID, "A customer: any id from 1; one never seen has balance 0.",
                    example=7)
CONCERT_ID = Field("concertId", ID, "A concert.", example=2)
OPTION_ID = Field("concertOptionId", ID, "A concert option (one performance).", example=41150)
SEAT_ID = Field("seatId", ID, "A seat of that option.", example=4115001)
AMOUNT_FIELD = Field("amount", AMOUNT, "Points to add: > 0, at most two decimals, at most "
                     "10,000,000.", example=5000.5)
RESERVATION = Field("reservationId", RESERVATION_ID, "A reservationId from POST /api/reserve.",
                    example="2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
KEY = Field("Idempotency-Key", IDEMPOTENCY_KEY,
            "Optional. A retry with the same key and body answers the first answer again and "
            "charges at most once; the same key with another body is 422. Scoped to the "
            "customer, kept IDEMPOTENCY_TTL_SECONDS.", example="top-up-1", required=False,
            where="header")
SEAT_ID_OR_NOT = Field("seatId", ID, "The seat to hold (or `quantity` instead, for the best "
                        "seats together).", example=4115001, required=False)
QUANTITY = Field("quantity", Integer(1, booking.MAX_TOGETHER), "Best available: this many "
                 "seats next to each other in one row (instead of seatId).", required=False,
                 example=2)
SECTION = Field("section", NAME, "Best available: in this section only.", required=False,
                example="A")
SECTION_QUERY = Field("section", NAME, "Only this section's seats.", required=False,
                      where="query", example="A")
LIMIT = Field("limit", ID, "Entries at most (and at most HISTORY_LIMIT).", required=False,
              default=20, where="query", example=20)


# --- queue tokens ---------------------------------------------------------------------------
async def token_issue(scope: Scope, customer_id: int, concert_id: int, access_code: str | None,
                      altcha: str | None) -> dict:
    store = store_of(scope)
    address = (parsing.client_address(scope, trusted_proxies(store))
               if store.settings.issue_rate_per_address else "")
    views = scope["state"]["views"]
    pace = views.pace(concert_id)
    token = await queue.issue_token(store, customer_id, concert_id, address,
                                    access_code or "", altcha or "", pace)
    if pace is None and token["status"] != "ACTIVE":  # a queue: the next issues use a view
        views.warm(concert_id)
    if token["position"]:  # Redis's answer: the polls this worker answers count it
        views.learn(concert_id, None, token)
    metrics.event("token_issued")
    return token


async def token_status(scope: Scope, tok: Token) -> dict:
    return await scope["state"]["views"].status(tok)


# --- catalog --------------------------------------------------------------------------------
async def available_dates(scope: Scope, tok: Token, concert_id: int) -> dict:
    return await catalog.available_dates(store_of(scope), tok, concert_id)


async def available_seats(scope: Scope, tok: Token, option_id: int,
                          section: str | None) -> dict:
    return await catalog.available_seats(store_of(scope), tok, option_id, section)


# --- points ---------------------------------------------------------------------------------
async def point_balance(scope: Scope, customer_id: int) -> dict:
    return await wallet.balance(store_of(scope), customer_id)


async def point_charge(scope: Scope, key: str | None, customer_id: int, amount: int) -> dict:
    charged, replayed = await wallet.charge(store_of(scope), customer_id, amount, key)
    if not replayed:
        metrics.event("charge")
        metrics.CHARGED.inc(amount / 100)
    return charged


async def point_history(scope: Scope, customer_id: int, limit: int) -> dict:
    return await wallet.history(store_of(scope), customer_id, limit)


# --- holds and payment ----------------------------------------------------------------------
async def reserve(scope: Scope, tok: Token, option_id: int, seat_id: int | None,
                  quantity: int | None, section: str | None) -> dict:
    """One seat by its id, or with ``quantity`` (and an optional ``section``) the best free
    seats next to each other, each its own reservation."""
    if seat_id is None:
        if quantity is None:
            raise parsing.bad("MISSING_FIELD", "'seatId' (or 'quantity') is required.")
        held = await booking.reserve_best(store_of(scope), tok, option_id, quantity, section)
        for _ in range(quantity):
            metrics.event("hold")
        return held
    held = await booking.reserve(store_of(scope), tok, option_id, seat_id)
    metrics.event("hold")
    return held


async def cancel(scope: Scope, tok: Token, rid: str) -> dict:
    cancelled = await booking.cancel(store_of(scope), tok, parsing.reservation(rid, tok))
    metrics.event("cancel")
    return cancelled


async def pay_route(scope: Scope, tok: Token, rid: str) -> dict:
    paid = await pay.pay(store_of(scope), tok, parsing.reservation(rid, tok))
    metrics.event("sale")
    return paid


# --- health ---------------------------------------------------------------------------------
async def healthz(_scope: Scope) -> dict:
    return {"status": "ok"}


async def readyz(scope: Scope) -> dict:
    await store_of(scope).execute("PING")  # StoreUnavailable: 503
    return {"status": "ready"}


HOLD_CODES = ("RESERVATION_NOT_FOUND", "HOLD_EXPIRED", "HOLD_CANCELLED", "PAYMENT_IN_PROGRESS")
OPERATIONS: list[Operation] = [
    Operation(
        "POST", "/api/token/issue", token_issue, "issueToken", tag="queue",
        summary="Join a concert's queue",
        description="Idempotent per (customer, concert): while the customer's token is alive "
                    "this answers it again. ACTIVE at once while the concert has room, else "
                    "WAITING in FIFO order. A full queue takes no one new (503 QUEUE_FULL). "
                    "A new token passes the concert's gates while they are on: a presale code "
                    "(accessCodeRequired: 403 ACCESS_CODE_REQUIRED without one, "
                    "ACCESS_CODE_INVALID for an unknown or used-up one) and a proof of work "
                    "(challengeComplexity: 403 CHALLENGE_REQUIRED, CHALLENGE_INVALID for a "
                    "wrong, expired or spent solution, each problem with a fresh `challenge` "
                    "to solve); a refusal spends nothing, a new token spends one use of the "
                    "code and the solution.",
        inputs=(CUSTOMER_ID, CONCERT_ID, gates.ACCESS_CODE, gates.ALTCHA), security=CUSTOMER,
        writes=True,
        codes=("CONCERT_NOT_FOUND", "QUEUE_FULL", "RATE_LIMITED", "ACCESS_CODE_REQUIRED",
               "ACCESS_CODE_INVALID", "CHALLENGE_REQUIRED", "CHALLENGE_INVALID"),
        ok=Reply(schemas.TOKEN, "The customer's token.", schemas.TOKEN_EXAMPLE),
        links={
            "status": {"operationId": "tokenStatus",
                       "parameters": {"header.X-Queue-Token": "$response.body#/tokenValue"}},
            "dates": {"operationId": "availableDates",
                      "parameters": {"path.concertId": "$response.body#/concertId",
                                     "header.X-Queue-Token": "$response.body#/tokenValue"}},
            "balance": {"operationId": "pointBalance",
                        "parameters": {"query.customerId": "$response.body#/customerId"}},
        }),
    Operation(
        "GET", "/api/token/status", token_status, "tokenStatus", tag="queue",
        summary="Where a token stands",
        description="Polling keeps a WAITING token in the queue (one not polled for "
                    "WAITING_IDLE_SECONDS leaves it).",
        security=QUEUE, ok=Reply(schemas.TOKEN, "The token's state.", schemas.TOKEN_EXAMPLE)),
    Operation(
        "GET", "/api/point", point_balance, "pointBalance", tag="points",
        summary="A customer's balance", inputs=(CUSTOMER_ID.at("query"),), security=CUSTOMER,
        ok=Reply(schemas.BALANCE, "The balance.", schemas.BALANCE_EXAMPLE)),
    Operation(
        "PATCH", "/api/point/charge", point_charge, "chargePoints", tag="points",
        summary="Add points to a customer's balance",
        description="A balance never exceeds 10^12 (409 BALANCE_LIMIT). In jwt mode this is "
                    "the payment back end's call: its JWT needs the scope points:charge. "
                    "While Redis is past MEMORY_WATERMARK of its memory, a charge that would "
                    "add a customer never seen or a new Idempotency-Key is 503 STORE_FULL.",
        inputs=(KEY, CUSTOMER_ID, AMOUNT_FIELD), security=CHARGE, writes=True,
        codes=("BALANCE_LIMIT", "IDEMPOTENCY_KEY_REUSED"),
        ok=Reply(schemas.BALANCE, "The new balance.", schemas.BALANCE_EXAMPLE),
        links={"balance": {"operationId": "pointBalance",
                           "parameters": {"query.customerId": "$response.body#/customerId"}},
               "history": {"operationId": "pointHistory",
                           "parameters": {"query.customerId": "$response.body#/customerId"}}}),
    Operation(
        "GET", "/api/point/history", point_history, "pointHistory", tag="points",
        summary="A customer's charges, payments and refunds, newest first",
        inputs=(CUSTOMER_ID.at("query"), LIMIT), security=CUSTOMER,
        ok=Reply(schemas.HISTORY, "The latest entries.", schemas.HISTORY_EXAMPLE)),
    Operation(
        "POST", "/api/reserve", reserve, "reserve", tag="booking",
        summary="Hold a seat, or the best seats together",
        description="The hold lasts HOLD_TTL_SECONDS. Of concurrent holds of one seat exactly "
                    "one wins; the others get 409 SEAT_TAKEN. With `quantity` instead of "
                    "`seatId`: that many free seats next to each other in one row, the dearest "
                    "rows first (optionally of one `section`), each its own reservation, or 409 "
                    "NO_ADJACENT_SEATS. A customer's open holds and paid seats in a concert "
                    "never pass its maxTicketsPerCustomer (409 TICKET_LIMIT). A queue token's "
                    "cancelled and open holds never pass twice that (at least 8): 409 "
                    "CANCEL_LIMIT (a new token may hold again).",
        inputs=(OPTION_ID, SEAT_ID_OR_NOT, QUANTITY, SECTION), security=ACTIVE, writes=True,
        body_one_of=("seatId", "quantity"),
        codes=("OPTION_NOT_FOUND", "SEAT_NOT_FOUND", "SEAT_TAKEN", "TICKET_LIMIT",
               "CANCEL_LIMIT", "RATE_LIMITED", "NO_ADJACENT_SEATS", "SECTION_NOT_FOUND",
               "MISSING_FIELD"),
        ok=Reply({"anyOf": [schemas.HOLD, schemas.GROUP_HOLD]}, "The hold (or holds).",
                 schemas.HOLD_EXAMPLE),
        links={"pay": {"operationId": "pay",
                       "requestBody": {"reservationId": "$response.body#/reservationId"}},
               "cancel": {"operationId": "cancelReservation",
                          "parameters": {"path.reservationId": "$response.body#/reservationId"}}}),
    Operation(
        "DELETE", "/api/reserve/{reservationId}", cancel, "cancelReservation", tag="booking",
        summary="Cancel your hold", description="The seat is free at once.",
        inputs=(RESERVATION.at("path"),), security=ACTIVE,
        codes=(*HOLD_CODES, "ALREADY_PAID"),
        ok=Reply(schemas.CANCELLED, "Cancelled.")),
    Operation(
        "POST", "/api/pay", pay_route, "pay", tag="booking",
        summary="Pay for your hold",
        description="Deducts the seat's price, marks the seat sold and the reservation PAID. "
                    "A pay of a reservation you paid answers that payment again (200), even "
                    "after the token ended: so a client whose reply was lost learns it paid. "
                    "402 changes nothing and keeps the hold.",
        inputs=(RESERVATION,), security=ACTIVE, writes=True,
        codes=(*HOLD_CODES, "INSUFFICIENT_BALANCE", "PAY_STALE", "PAY_SUPERSEDED",
               "RESERVATION_REFUNDED"),
        ok=Reply(schemas.PAID, "Paid.", schemas.PAID_EXAMPLE)),
    Operation(
        "GET", "/api/{concertId}/available-dates", available_dates, "availableDates",
        tag="catalog", summary="A concert's performances and their free seats, by date",
        description="Another concert than the token's is 404.",
        inputs=(CONCERT_ID.at("path"),), security=ACTIVE, codes=("CONCERT_NOT_FOUND",),
        ok=Reply(schemas.DATES, "The dates.", schemas.DATES_EXAMPLE),
        links={"seats": {"operationId": "availableSeats", "parameters": {
            "path.concertOptionId": "$response.body#/dates/0/concertOptionId"}}}),
    Operation(
        "GET", "/api/{concertOptionId}/available-seats", available_seats, "availableSeats",
        tag="catalog", summary="A performance's free seats, in listing order",
        description="Sections, then rows, then numbers; `?section=` lists one section's. An "
                    "option of another concert than the token's is 404.",
        inputs=(OPTION_ID.at("path"), SECTION_QUERY), security=ACTIVE,
        codes=("OPTION_NOT_FOUND", "SECTION_NOT_FOUND"),
        ok=Reply(schemas.SEATS, "The free seats.", schemas.SEATS_EXAMPLE),
        links={"reserve": {"operationId": "reserve", "requestBody": {
            "concertOptionId": "$response.body#/concertOptionId",
            "seatId": "$response.body#/seats/0/id"}}}),
    *seat_map.OPERATIONS,  # the seat map and the concerts on sale (api/seat_map.py)
    Operation("GET", "/healthz", healthz, "healthz", tag="operations",
              summary="Liveness: the process answers", store=False,
              ok=Reply(schemas.status("ok"), "Alive.")),
    Operation("GET", "/readyz", readyz, "readyz", tag="operations",
              summary="Readiness: Redis answers", ok=Reply(schemas.status("ready"), "Ready.")),
    Operation("GET", "/metrics", None, "metrics", tag="operations",
              summary="Prometheus metrics, summed over the workers", store=False,
              ok=Reply({"type": "string"}, "The Prometheus text format.",
                       media_type="text/plain"), app=MetricsEndpoint()),
]

TAGS = {
    "queue": "The waiting room: a token per (customer, concert).",
    "catalog": "What an ACTIVE token may see (and anyone: the concerts on sale).",
    "booking": "Holds and payment, under an ACTIVE token.",
    "points": "Balances, charges and history.",
    "operations": "Health and metrics.",
    "tickets": "A paid reservation is a ticket (only with TICKET_SIGNING_KEY set).",
    "admin": "The operators' API: only with ADMIN_TOKEN set, as a Bearer token.",
}
OPEN_NOTE = (
    "**Auth mode: open.** Nobody is asked who they are: anyone who can reach this API can read "
    "any customer's balance and history, charge points to any customer and issue a queue "
    "token for any customer. For benchmarks and trusted networks only (AUTH_MODE=jwt "
    "elsewhere). The queue token travels in `X-Queue-Token` or in `Authorization` (bare or "
    "`Bearer <token>`).")
JWT_NOTE = (
    "**Auth mode: jwt.** A request that names a customer needs `Authorization: Bearer <JWT>` "
    "whose `sub` is that customer id; a charge needs a JWT with the scope `points:charge`. The "
    "queue token travels in `X-Queue-Token`.")
COMMON_NOTE = (
    "Ids are JSON integers from 1 to 2^53-1: not strings, fractions or booleans (7.0 is 7, as "
    "JSON Schema reads it); in a path or query, plain digits. "
    "Every error is `application/problem+json` (RFC 9457) with a machine-readable `code`, "
    "listed per status under each operation. A path not listed here is 404 `NOT_FOUND`; a "
    "method a path does not take is 405 `METHOD_NOT_ALLOWED` with `Allow`.")


def _version() -> str:
    try:
        return metadata.version("ticketing-engine")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "0"


def openapi(operations: list[Operation], auth: Auth) -> dict:
    return document(operations, auth, title="Concert ticketing API", version=_version(),
                    description=(OPEN_NOTE if auth.jwt is None else JWT_NOTE) + "\n\n"
                    + COMMON_NOTE, tags=TAGS)


def _ticket_key(settings: Settings, auth: Auth) -> TicketKey | None:
    """The key tickets are signed with (TICKET_SIGNING_KEY). Without one, open mode serves no
    tickets (404, and a line in the log) and jwt mode does not start: a key made up per
    process would sign tickets that another worker, or this one after a restart, refuses at
    the door (TICKET_INVALID for a paid seat) and that no published key verifies; `make run`
    makes one in var/ and every worker loads it."""
    key = TicketKey.from_pem(settings.ticket_signing_key)  # a bad key stops the start
    if key is None:
        if auth.jwt is not None:
            raise ValueError("AUTH_MODE=jwt needs TICKET_SIGNING_KEY (or TICKET_SIGNING_KEY_FILE): "
                             "an Ed25519 private key in PEM, the same for every worker (python "
                             "-m engine ticket-key makes one)")
        log.warning("no TICKET_SIGNING_KEY: tickets and check-in are not served")
    return key


class App(Starlette):
    """Starlette with its router indexed (``FastRouter``) behind ``Guard`` instead of the two
    default middlewares."""

    max_in_flight = 0  # Guard's bound on requests in progress (create_app sets it)

    def build_middleware_stack(self) -> ASGIApp:
        return Guard(FastRouter(self.router), self.max_in_flight)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    auth = Auth(settings)  # a key that cannot work stops the start here
    ticket_key = _ticket_key(settings, auth)
    # Tickets exist only with a signing key, the operators' routes only with ADMIN_TOKEN set
    # (else 404, like any path).
    # The proof of work's challenges only with a key to sign them (engine/challenge.py).
    signs = challenge.hmac_key(settings) is not None
    if not signs:
        log.warning("no CHALLENGE_HMAC_KEY (nor TICKET_SIGNING_KEY to derive one): no "
                    "challenge is served, and a concert whose challengeComplexity is on takes "
                    "no new token")
    operations = (OPERATIONS + (tickets.OPERATIONS if ticket_key else [])
                  + (gates.OPERATIONS if signs else []))
    if settings.admin_token:
        operations += (admin.OPERATIONS + gates.ADMIN_OPERATIONS
                       + (tickets.ADMIN_OPERATIONS if ticket_key else []))
    served: list[BaseRoute] = [
        *routes(operations, auth),
        *docs.routes(orjson.dumps(openapi(operations, auth))),
        *pages.ROUTES,  # the booking page: GET / and /static/...
        *(pages.CONSOLE_ROUTES if settings.admin_token else []),  # GET /console
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, object]]:
        store = Store(connect(settings), settings)
        store.observe = metrics.observe_redis
        store.event = metrics.redis_event
        views = QueueViews(store)
        key = asyncio.create_task(background.load_token_key(store))
        ticker = asyncio.create_task(background.tick_forever(store, key))
        watcher = asyncio.create_task(memory.watch(store))  # MEMORY_WATERMARK, 5 reads a second
        marks = asyncio.create_task(views.flush_forever())  # the polls' seen marks, a second
        freeze_heap()
        try:
            yield {"store": store, "ticket_key": ticket_key, "views": views}
        finally:
            for task in (key, ticker, watcher, marks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await views.aclose()
            metrics.flush()
            await store.aclose()

    app = App(routes=served, lifespan=lifespan)
    app.max_in_flight = settings.max_in_flight
    return app


app = create_app()
