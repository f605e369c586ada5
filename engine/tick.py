"""The background tick: every API worker runs ``tick_all`` about once a second, and each
concert is ticked about once a second in all, by whichever worker takes the concert's short
lease first (a key in the concert's own slot, taken with SET NX PX: a worker that finds it
taken costs Redis ~2 µs, against ~25 µs for a script call). The concerts of a pass are
ticked concurrently (their calls pipeline, on every master at once), in a new random order
each pass, each bounded by its own timeout: a slow or unreachable concert holds up none of
the others, and none is always last.

When Redis is full the lease is taken by lua/lease.lua (allow-oom) instead, and the tick's
scripts that free memory (admit, sweep, forget) are allow-oom too: a full Redis still
releases expired holds, drops expired tokens and admits.

One concert's tick: admit.lua (expired tokens and holds, admission, stale pays and refunds
listed, long-closed reservations purged, full rate-limit buckets dropped), sweep.lua as often
as the queue's size asks, the stale pays and the operators' refunds cut short finished
(engine/pay.py, engine/operator.py), and the purged reservations' pay records forgotten
(forget.lua).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets

from engine.errors import EngineError, PaySuperseded, StoreUnavailable
from engine.ids import order_key, reservation_id
from engine.keys import CustomerKeys, concert_keys
from engine.operator import refund_sale
from engine.pay import recover
from engine.queue import concerts, queue_args, seed
from engine.store import Store

log = logging.getLogger(__name__)

WORKER = secrets.token_hex(8)  # this process, as the holder of a concert's lease
TICK_CONCURRENCY = 64  # concerts ticked at once in a pass
# The idle sweep looks at this many waiters per script call (about 0.8 ms of Redis), and at
# most this many calls per tick: a queue at MAX_WAITING is walked about twice per idle limit.
SWEEP_SLICE = 5000  # seqs a sweep.lua call looks at (a byte of bits at a time: ~0.3 ms)
SWEEP_CALLS = 100


async def tick(store: Store, concert_id: int, lease: int = 0) -> dict | None:
    """One tick of a concert: sweeps, admission, stale pays to finish, and the pay records of
    long-closed reservations to forget. With ``lease`` (ms), only when no other worker holds
    the concert's lease (else None); without, at once (tests, the CLI)."""
    s = store.settings
    k = concert_keys(concert_id)
    if lease and not await _take_lease(store, k.lease, lease):
        return None
    _, admitted, dropped, released, stale, forget, refunds = await store.run(
        "admit",
        (k.tokens, k.seqs, k.active, k.rate, k.holds, k.paying, k.res, k.taken,
         k.free, k.gone, k.settings, k.tickets, k.buckets, k.refunding, k.events, k.concert,
         k.layout, k.offers, k.seen0, k.seen1, k.seen2, k.left, k.departed),
        (*queue_args(store), s.stale_ms, s.keep_ms, seed(), s.events_maxlen,
         s.bucket_idle_ms, order_key(concert_id), s.closed_keep_ms),
    )
    # First what admit.lua handed over: it is listed once (a stale pay is listed again).
    await _forget(store, concert_id, forget)
    dropped += await sweep_idle(store, concert_id)
    recovered = 0
    for i in range(0, len(stale), 3):
        res_id, customer, attempt = stale[i].decode(), int(stale[i + 1]), int(stale[i + 2])
        try:
            await recover(store, concert_id, res_id, customer, attempt)
            recovered += 1
        except PaySuperseded:  # done: the safety net refunded a debit without a seat (logged)
            recovered += 1
        except (EngineError, StoreUnavailable) as e:  # the next tick lists it again
            log.error("recovering pay %s.%s failed: %s", concert_id, res_id, e.detail)
    for res_id in refunds:  # an operator's refund cut short: finish it
        try:
            await refund_sale(store, concert_id, res_id.decode())
            recovered += 1
        except (EngineError, StoreUnavailable) as e:
            log.error("finishing refund %s.%s failed: %s", concert_id, res_id, e.detail)
    return {"admitted": admitted, "dropped": dropped, "released": released,
            "recovered": recovered}


async def sweep_idle(store: Store, concert_id: int) -> int:
    """Drop idle WAITING tokens. The walk covers the whole queue about twice per idle limit
    (in calls of SWEEP_SLICE), so it keeps up with any issue rate the queue's cap allows."""
    s = store.settings
    k = concert_keys(concert_id)
    budget, dropped, calls = SWEEP_SLICE, 0, 0
    while calls < SWEEP_CALLS and budget > 0:
        _, gone, looked, span = await store.run(
            "sweep", (k.concert, k.tokens, k.seqs, k.seen0, k.seen1, k.seen2, k.rate,
                      k.settings, k.left, k.departed), (s.idle_ms, SWEEP_SLICE))
        if calls == 0:  # seqs to look at this tick: the queue twice per idle limit
            share = 2 * s.tick_seconds * 1000 / s.idle_ms
            budget = max(SWEEP_SLICE, math.ceil(span * share))
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



async def _take_lease(store: Store, key: str, ms: int) -> bool:
    """A plain SET, not a script: the workers that find the lease taken cost Redis ~2 µs
    each. Redis refuses that SET when it is full; lease.lua (allow-oom) takes the lease then,
    so that the tick, which frees memory, goes on."""
    try:
        return await store.execute("SET", key, WORKER, "NX", "PX", ms) is not None
    except StoreUnavailable as e:
        if not e.full:
            raise
    _, taken = await store.run("lease", (key,), (WORKER, ms))
    return bool(taken)


def lease_ms(store: Store) -> int:
    """A concert's lease outlives most of one tick period, so that of W workers ticking each
    second only the first takes it, and it has lapsed by the next period."""
    return max(1, int(store.settings.tick_seconds * 800))


async def tick_all(store: Store) -> int:
    """Tick every known concert that no other worker ticked this period. Returns how many
    this worker ticked. A concert whose tick fails or runs late is logged; the others go
    on."""
    ids = await concerts(store)
    random.shuffle(ids)  # a pass cut short does not always leave out the same concerts
    gate = asyncio.Semaphore(TICK_CONCURRENCY)
    limit = max(5.0, 5 * store.settings.tick_seconds)
    lease = lease_ms(store)

    async def one(concert_id: int) -> bool:
        async with gate:
            try:
                async with asyncio.timeout(limit):
                    return (await tick(store, concert_id, lease)) is not None
            except (EngineError, StoreUnavailable) as e:
                log.warning("tick of concert %s failed: %s", concert_id, e.detail)
            except TimeoutError:
                log.warning("tick of concert %s took over %.0f s", concert_id, limit)
            except Exception:  # a script error in one concert must not stop the others
                log.exception("tick of concert %s failed", concert_id)
            return False

    return sum(await asyncio.gather(*(one(c) for c in ids)))
