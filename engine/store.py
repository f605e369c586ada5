"""The engine's one door to Redis: run a registered script, turn transport trouble into
``StoreUnavailable`` and script refusals into engine exceptions."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.config import Settings
from engine.errors import StoreUnavailable, raise_for
from engine.scripts import READ_ONLY, load_sources


def connect(settings: Settings) -> aioredis.Redis:
    """A client that fails fast: no retries (a retry stretches a hung Redis past the answer
    deadline) and a blocking pool sized on purpose (the default raises at once when full)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_command_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        socket_timeout=settings.redis_command_timeout,
        health_check_interval=0,
    )
    return aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))


class Store:
    """Redis plus the script registry. ``run`` is one EVALSHA: one round trip."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._scripts = {
            name: client.register_script(src) for name, src in load_sources().items()
        }

    async def run(self, name: str, keys: Sequence[str], args: Sequence[object] = ()) -> list:
        """Run script ``name``; return its reply when its code is OK, else raise the code's
        ``EngineError``. Redis down, slow or full raises ``StoreUnavailable``."""
        try:
            reply = await self._scripts[name](keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            maybe = name not in READ_ONLY
            raise StoreUnavailable(
                f"Redis did not answer ({type(e).__name__})"
                + ("; the change may or may not have been applied" if maybe else ""),
                maybe_applied=maybe,
            ) from e
        except ResponseError as e:
            if str(e).startswith("OOM"):
                raise StoreUnavailable("Redis is out of memory", full=True) from e
            raise
        return raise_for(reply)

    async def aclose(self) -> None:
        await self.client.aclose()
