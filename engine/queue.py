"""Queue tokens: issue, status, and the per-concert background tick (issue.lua, status.lua,
admit.lua)."""

from __future__ import annotations

import logging

from engine.booking import recover_pay
from engine.errors import EngineError
from engine.ids import Token, iso_ms, new_secret
from engine.keys import CONCERTS, concert_keys
from engine.store import Store

log = logging.getLogger(__name__)


def _queue_args(store: Store) -> tuple[int, int, int, int]:
    s = store.settings
    return s.active_limit, s.admit_per_second, s.active_ttl_ms, s.idle_ms


def _token_view(token: Token, active: int, position: int, wait: int, until: int) -> dict:
    return {
        "tokenValue": token.value,
        "concertId": token.concert_id,
        "customerId": token.customer_id,
        "status": "ACTIVE" if active else "WAITING",
        "position": int(position),
        "estimatedWaitSeconds": int(wait),
        "expiresAt": iso_ms(int(until)) if active else None,
    }


async def issue_token(store: Store, customer_id: int, concert_id: int) -> dict:
    """The customer's live token for the concert, or a new one at the end of the queue."""
    k = concert_keys(concert_id)
    reply = await store.run(
        "issue",
        (k.concert, k.tokens, k.waiting, k.active, k.held, k.rate),
        (customer_id, new_secret(), *_queue_args(store)),
    )
    _, secret, active, position, wait, until = reply
    token = Token(concert_id, customer_id, secret.decode())
    return _token_view(token, active, position, wait, until)


async def token_status(store: Store, token: Token) -> dict:
    """Where a token stands; polling keeps a WAITING token in the queue."""
    k = concert_keys(token.concert_id)
    _, active, position, wait, until = await store.run(
        "status",
        (k.tokens, k.waiting, k.active, k.held, k.rate),
        (token.customer_id, token.secret, *_queue_args(store)),
    )
    return _token_view(token, active, position, wait, until)


async def tick(store: Store, concert_id: int) -> dict:
    """One background tick of a concert: sweeps, admission, and stale pays to finish."""
    s = store.settings
    k = concert_keys(concert_id)
    _, admitted, dropped, released, stale = await store.run(
        "admit",
        (k.tokens, k.waiting, k.active, k.held, k.rate,
         k.holds, k.paying, k.res, k.taken, k.free, k.gone),
        (*_queue_args(store), s.stale_ms, s.idempotency_ttl_seconds * 1000),
    )
    recovered = 0
    for i in range(0, len(stale), 3):
        secret, customer, attempt = stale[i].decode(), int(stale[i + 1]), int(stale[i + 2])
        try:
            await recover_pay(store, concert_id, secret, customer, attempt)
            recovered += 1
        except EngineError as e:  # one odd reservation must not stop the others
            log.error("recovering pay %s.%s failed: %s", concert_id, secret, e.detail)
    return {"admitted": admitted, "dropped": dropped, "released": released, "recovered": recovered}


async def concert_stats(store: Store, concert_id: int) -> dict:
    """Waiting, active, holds (of which paying), sold and free seats of one concert."""
    k = concert_keys(concert_id)
    _, waiting, active, holds, paying, sold, free = await store.run(
        "stats", (k.waiting, k.active, k.holds, k.paying, k.concert, k.free))
    return {"concertId": concert_id, "waiting": waiting, "active": active,
            "holds": holds + paying, "paying": paying, "sold": sold, "freeSeats": free}


async def concerts(store: Store) -> list[int]:
    return sorted(int(c) for c in await store.execute("SMEMBERS", CONCERTS))


async def tick_all(store: Store) -> None:
    """Tick every known concert (the API runs this about once a second). A concert whose
    tick fails is logged and the next one goes on."""
    for concert_id in await concerts(store):
        try:
            await tick(store, concert_id)
        except EngineError as e:
            log.error("tick of concert %s failed: %s", concert_id, e.detail)
