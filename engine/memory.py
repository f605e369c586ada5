"""The memory watermark: what keeps an anonymous flood from filling Redis.

In open mode anyone may charge 0.01 to a made-up customer (a balance and a history, kept for
ever: they are money) or send a fresh Idempotency-Key (a record kept IDEMPOTENCY_TTL_SECONDS),
as often as they like. Once Redis reached its maxmemory it would refuse every write that
needs memory, token issue included, and the queue would stop. So each API worker reads
``INFO memory`` of each master five times a second (``watch``), and while a master is past
MEMORY_WATERMARK of its maxmemory, a charge that would create there what only such a flood
grows without bound (a new customer's balance, a new Idempotency-Key record) is refused with
503 STORE_FULL, nothing applied (``refuse_growth``). The rest of maxmemory stays for the
queue, holds and pays; charges to known customers go on (their history is capped).

The hot path pays one truth test of ``Store.crowded`` (empty while every master is below the
mark); the EXISTS that tells a new customer or key from a known one is sent only while a
master is past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from engine.connection import Address, Node
from engine.errors import StoreUnavailable
from engine.store import Store, slot_of
from engine.transport import ReplyError, TransportError

log = logging.getLogger(__name__)

# Each worker reads each master's memory this often: an INFO memory costs Redis ~5 µs, so 5
# reads a second are ~0.003 % of it, and a flood outruns the mark by at most 0.2 s of itself.
CHECK_SECONDS = 0.2
# A master past the mark is taken as below it again only once it uses this share of its
# maxmemory less: used_memory moves a little either way of itself (buffers, a rewrite, the
# tick), and a flood held at the mark would otherwise get through in bursts each time.
HYSTERESIS = 0.02
REFUSED = ("Redis is past its memory watermark: a charge that would add a new customer's "
           "balance or a new Idempotency-Key record is refused; nothing was applied")


async def _used(node: Node) -> float | None:
    """The share of its maxmemory ``node`` uses (0: no limit; None: it did not say)."""
    try:
        reply = await node.execute("INFO", "memory")
    except TransportError:
        return None
    if type(reply) is ReplyError:
        return None
    info = dict(line.split(b":", 1) for line in reply.splitlines() if b":" in line)
    limit = int(info.get(b"maxmemory", 0))  # 0: no limit, never full
    return int(info[b"used_memory"]) / limit if limit > 0 else 0.0


def _past(used: float | None, share: float, was: bool) -> bool:
    if used is None:
        return was
    return used > (share - HYSTERESIS if was else share)


async def refresh(store: Store) -> frozenset[Address]:
    """Read every master's memory once and set ``store.crowded`` to those past the mark. A
    master past it stays so until it falls HYSTERESIS below it; one that does not answer
    keeps what it was."""
    share = store.settings.memory_watermark
    redis = store.redis
    nodes = [redis.node(a) for a in redis.masters()]
    used = await asyncio.gather(*(_used(n) for n in nodes))
    was = store.crowded
    crowded = frozenset(
        (n.host, n.port) for n, u in zip(nodes, used, strict=True)
        if _past(u, share, (n.host, n.port) in was))
    for host, port in crowded ^ was:
        now_past = (host, port) in crowded
        log.warning("Redis %s:%d is %s MEMORY_WATERMARK (%.0f %% of its maxmemory): new "
                    "customers' balances and new Idempotency-Keys are %s there", host, port,
                    "past" if now_past else "back below", share * 100,
                    "refused" if now_past else "taken again")
    store.crowded = crowded
    return crowded


async def watch(store: Store) -> None:
    """``refresh`` about once a CHECK_SECONDS, for ever (the API's lifespan runs it)."""
    if not store.settings.memory_watermark:
        return
    while True:
        try:
            await refresh(store)
        except Exception:  # a bug here must not stop the watch: charges would go unchecked
            log.exception("reading Redis's memory failed")
        await asyncio.sleep(CHECK_SECONDS)


async def refuse_growth(store: Store, keys: Sequence[str]) -> None:
    """Raise StoreUnavailable (503 STORE_FULL) when ``keys`` (of one slot) live on a master
    past the watermark and one of them does not exist yet; else return. Called only while
    ``store.crowded`` is not empty."""
    slot = slot_of(keys[0]) if store.cluster else 0
    if store.redis.node_of(slot) not in store.crowded:
        return
    if await store.execute("EXISTS", *keys) != len(keys):
        raise StoreUnavailable(REFUSED, full=True)
