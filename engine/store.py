"""The engine's one door to Redis: run a registered script in one round trip, turn transport
trouble into ``StoreUnavailable`` and script refusals into engine exceptions."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.config import Settings
from engine.errors import StoreUnavailable, raise_for
from engine.scripts import READ_ONLY, load_sources
from engine.transport import PipelinedRedis, ReplyError, TransportError, pack


def connect(settings: Settings) -> PipelinedRedis:
    """The API's Redis connection: pipelined, fail-fast (see engine/transport.py)."""
    return PipelinedRedis(
        settings.redis_url,
        connect_timeout=settings.redis_connect_timeout,
        command_timeout=settings.redis_command_timeout,
        max_pending=settings.redis_max_pending,
    )


class Script:
    """A Lua file as EVALSHA, falling back to EVAL (which also caches it) on NOSCRIPT, after
    a Redis restart or SCRIPT FLUSH."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name, self.source = name, source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class Store:
    """Redis plus the script registry. ``run`` is one EVALSHA: one round trip."""

    def __init__(self, redis: PipelinedRedis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        # observe(script, seconds) after each script call, when set (the API's metrics).
        self.observe: Callable[[str, float], None] | None = None
        self._scripts = {name: Script(name, src) for name, src in load_sources().items()}

    async def run(self, name: str, keys: Sequence[Any], args: Sequence[Any] = ()) -> list:
        """Run script ``name``; return its reply when its code is OK, else raise the code's
        ``EngineError``. Redis down, slow or full raises ``StoreUnavailable``."""
        script = self._scripts[name]
        started = time.perf_counter()
        try:
            reply = await self.redis.call(pack(("EVALSHA", script.sha, len(keys), *keys, *args)))
            if type(reply) is ReplyError and str(reply).startswith("NOSCRIPT"):
                reply = await self.redis.call(
                    pack(("EVAL", script.source, len(keys), *keys, *args)))
            if self.observe is not None:
                self.observe(name, time.perf_counter() - started)
        except TransportError as e:
            maybe = e.maybe_sent and name not in READ_ONLY
            raise StoreUnavailable(
                f"Redis did not answer: {e}"
                + ("; the change may or may not have been applied" if maybe else ""),
                maybe_applied=maybe,
            ) from e
        if type(reply) is ReplyError:
            raise _reply_error(name, reply)
        return raise_for(reply)

    async def execute(self, *args: Any) -> Any:
        """One plain command (PING, SMEMBERS), with the same error mapping."""
        try:
            reply = await self.redis.call(pack(args))
        except TransportError as e:
            raise StoreUnavailable(f"Redis did not answer: {e}") from e
        if type(reply) is ReplyError:
            raise _reply_error(str(args[0]), reply)
        return reply

    async def aclose(self) -> None:
        await self.redis.aclose()


def _reply_error(name: str, reply: ReplyError) -> Exception:
    text = str(reply)
    if text.startswith("OOM"):
        return StoreUnavailable("Redis is out of memory: writes are refused", full=True)
    if text.startswith(("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "MISCONF", "READONLY",
                        "NOAUTH", "ERR max number of clients")):
        # MISCONF: Redis cannot write its AOF (disk full): every write fails until fixed.
        return StoreUnavailable(f"Redis cannot serve now: {text}")
    return RuntimeError(f"Redis refused {name}: {text}")
