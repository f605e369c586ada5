"""What every API worker runs beside its requests: reading the queue token key, and the tick
that admits from the queues and sweeps expired state (engine/tick.py)."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from api import metrics
from engine import queue, tick
from engine.errors import StoreUnavailable
from engine.store import Store

log = logging.getLogger("api")


async def load_token_key(store: Store) -> None:
    """The queue token key (engine/queue.py token_key), asked of Redis until it answers: until
    then a request that carries or asks for a queue token is a 503 (api/auth.py)."""
    while True:
        try:
            await queue.use_deployment_key(store)
            return
        except (StoreUnavailable, OSError) as e:
            log.warning("queue token key not read yet: %s", e)
        except Exception:  # this task must not die: the worker would never tick
            log.exception("reading the queue token key failed")
        await asyncio.sleep(0.5)


async def tick_forever(store: Store, key: asyncio.Task) -> None:
    """Admission and sweeps without a scheduler process: every worker runs a pass each
    TICK_SECONDS, and a concert's lease lets one worker tick it per period (engine/tick.py).
    Passes come just after each whole period of the clock: admissions are counted by Redis's
    whole seconds, and most polls are answered without Redis (engine/queue_view.py), so the
    tick is what admits; one early in each second admits that second's share, where a pass at
    a random phase could miss a second and crowd the next."""
    await key  # admission needs the pre-queue's order, made from the token key
    period = store.settings.tick_seconds

    def until_next() -> float:  # a few ms past the next boundary, a little apart per worker
        return period - time.time() % period + random.uniform(0.002, 0.02) * min(period, 1)

    await asyncio.sleep(until_next())
    while True:
        metrics.flush()
        try:
            await tick.tick_all(store)
        except StoreUnavailable as e:  # the concert list itself could not be read
            log.warning("tick skipped: %s", e.detail)
        except Exception:
            log.exception("tick failed")
        await asyncio.sleep(until_next())
