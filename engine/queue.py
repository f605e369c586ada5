"""Queue tokens: issue, status, and the per-concert background tick (issue.lua, status.lua,
admit.lua, sweep.lua)."""

from __future__ import annotations

import logging
import math

from engine.errors import EngineError
from engine.ids import Token, iso_ms, new_secret, reservation_id
from engine.keys import CONCERTS, CustomerKeys, concert_keys
from engine.pay import recover
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
        (customer_id, new_secret(), *_queue_args(store), store.settings.max_waiting),
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


# The idle sweep looks at this many waiters per script call (about 0.8 ms of Redis), and at
# most this many calls per tick: a queue at MAX_WAITING is walked about twice per idle limit.
SWEEP_SLICE = 1000
SWEEP_CALLS = 100


async def tick(store: Store, concert_id: int) -> dict:
    """One background tick of a concert: sweeps, admission, stale pays to finish, and the pay
    records of long-closed reservations to forget."""
    s = store.settings
    k = concert_keys(concert_id)
    _, admitted, dropped, released, stale, forget = await store.run(
        "admit",
        (k.tokens, k.waiting, k.active, k.held, k.rate,
         k.holds, k.paying, k.res, k.taken, k.free, k.gone),
        (*_queue_args(store), s.stale_ms, s.keep_ms),
    )
    dropped += await sweep_idle(store, concert_id)
    recovered = 0
    for i in range(0, len(stale), 3):
        secret, customer, attempt = stale[i].decode(), int(stale[i + 1]), int(stale[i + 2])
        try:
            await recover(store, concert_id, secret, customer, attempt)
            recovered += 1
        except EngineError as e:  # one odd reservation must not stop the others
            log.error("recovering pay %s.%s failed: %s", concert_id, secret, e.detail)
    await _forget(store, concert_id, forget)
    return {"admitted": admitted, "dropped": dropped, "released": released,
            "recovered": recovered}


async def sweep_idle(store: Store, concert_id: int) -> int:
    """Drop idle WAITING tokens. The walk covers the whole queue about twice per idle limit
    (in calls of SWEEP_SLICE), so it keeps up with any issue rate the queue's cap allows."""
    s = store.settings
    k = concert_keys(concert_id)
    budget, dropped, calls = SWEEP_SLICE, 0, 0
    while calls < SWEEP_CALLS and budget > 0:
        _, gone, looked, waiting = await store.run(
            "sweep", (k.tokens, k.waiting, k.held, k.rate), (s.idle_ms, SWEEP_SLICE))
        if calls == 0:  # waiters to look at this tick: the queue twice per idle limit
            share = 2 * s.tick_seconds * 1000 / s.idle_ms
            budget = max(SWEEP_SLICE, math.ceil((waiting + gone) * share))
        dropped, calls, budget = dropped + gone, calls + 1, budget - looked
        if looked < SWEEP_SLICE:  # the walk reached the end of the queue
            break
    return dropped


async def _forget(store: Store, concert_id: int, pairs: list) -> None:
    """Drop the customers' pay records of reservations purged by admit.lua."""
    by_customer: dict[int, list[str]] = {}
    for i in range(0, len(pairs), 2):
        rid = reservation_id(concert_id, pairs[i].decode())
        by_customer.setdefault(int(pairs[i + 1]), []).append(rid)
    for customer, rids in by_customer.items():
        await store.run("forget", (CustomerKeys(customer).debits,), rids)


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
