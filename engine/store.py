"""The engine's one door to Redis: run a registered script in one round trip, on one node or
on the master of its slot in a Redis Cluster; turn transport trouble into
``StoreUnavailable`` and script refusals into engine exceptions."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.cluster import SCHEME, ClusterRedis, key_slot
from engine.config import Settings
from engine.connection import Connection
from engine.errors import StoreUnavailable, raise_for
from engine.replicated import node_client
from engine.scripts import READ_ONLY, WRITES, load_sources
from engine.transport import (
    ReplicasMissing,
    ReplicationTimeout,
    ReplyError,
    TransportError,
    pack,
)

MAX_REDIRECTS = 5  # MOVED/ASK answers followed for one call (a slot moves once at a time)


def connect(settings: Settings) -> Connection:
    """The API's Redis: one pipelined, fail-fast connection (engine/transport.py), two when
    changes wait for replicas (engine/replicated.py), or that for each master of a Redis
    Cluster for a ``redis+cluster://`` URL (engine/cluster.py)."""
    options = {"connect_timeout": settings.redis_connect_timeout,
               "command_timeout": settings.redis_command_timeout,
               "max_pending": settings.redis_max_pending,
               "wait_replicas": settings.redis_wait_replicas,
               "wait_timeout_ms": settings.redis_wait_timeout_ms}
    if settings.redis_url.startswith(SCHEME):
        return ClusterRedis(settings.redis_url, **options)
    return node_client(settings.redis_url, **options)


class Script:
    """A Lua file as EVALSHA, falling back to EVAL (which also caches it) on NOSCRIPT, after
    a Redis restart or SCRIPT FLUSH."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name, self.source = name, source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


# key -> slot: a drop touches a few concerts' keys over and over.
_SLOT_OF: dict[str, int] = {}


def slot_of(key: str) -> int:
    slot = _SLOT_OF.get(key)
    if slot is None:
        if len(_SLOT_OF) > 100_000:
            _SLOT_OF.clear()
        slot = _SLOT_OF[key] = key_slot(key)
    return slot


class Store:
    """Redis plus the script registry. ``run`` is one EVALSHA: one round trip (on a cluster,
    to the master of the keys' slot; a MOVED or ASK answer costs one more)."""

    def __init__(self, redis: Connection, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        # A cluster's router (MOVED/ASK, a new slot map after trouble); None on one node.
        self.router = redis if isinstance(redis, ClusterRedis) else None
        self.cluster = self.router is not None
        # Writes whose answer waits for REDIS_WAIT_REPLICAS replicas to take them.
        self.waited = WRITES if settings.redis_wait_replicas else frozenset()
        # observe(script, seconds) after each script call, when set (the API's metrics).
        self.observe: Callable[[str, float], None] | None = None
        # event(name) on a WAIT timeout, a write refused for want of replicas or a redirect,
        # when set (the API's metrics).
        self.event: Callable[[str], None] | None = None
        # The masters past MEMORY_WATERMARK, as the API's last read found them (engine/memory.py):
        # while it is not empty, a charge that would add a customer or a key checks first.
        self.crowded: frozenset[tuple[str, int]] = frozenset()
        self._scripts = {name: Script(name, src) for name, src in load_sources().items()}

    async def run(self, name: str, keys: Sequence[Any], args: Sequence[Any] = ()) -> list:
        """Run script ``name``; return its reply when its code is OK, else raise the code's
        ``EngineError``. Redis down, slow or full raises ``StoreUnavailable``."""
        script = self._scripts[name]
        slot = slot_of(keys[0]) if self.cluster else 0
        waited = name in self.waited
        started = time.perf_counter()
        try:
            packed = pack(("EVALSHA", script.sha, len(keys), *keys, *args))
            reply = await self.redis.call(packed, slot, waited)
            if type(reply) is ReplyError:
                reply = await self._recover(reply, script, keys, args, slot, waited)
            if self.observe is not None:
                self.observe(name, time.perf_counter() - started)
        except ReplicasMissing as e:  # the node answers, but cannot acknowledge a change now
            if self.router is not None:  # a replica just promoted has none: is the map current?
                self.router.trouble(slot)
            if self.event is not None:
                self.event("replicas_missing")
            raise StoreUnavailable(f"Redis cannot take changes now: {e}; nothing was applied",
                                   maybe_applied=False) from e
        except TransportError as e:
            if self.router is not None:
                self.router.trouble(slot)
            if isinstance(e, ReplicationTimeout) and self.event is not None:
                self.event("wait_timeout")
            maybe = e.maybe_sent and name not in READ_ONLY
            raise StoreUnavailable(
                f"Redis did not answer: {e}"
                + ("; the change may or may not have been applied" if maybe else ""),
                maybe_applied=maybe,
            ) from e
        if type(reply) is ReplyError:
            raise _reply_error(name, reply)
        return raise_for(reply)

    async def _recover(self, reply: ReplyError, script: Script, keys: Sequence[Any],
                       args: Sequence[Any], slot: int, waited: bool) -> Any:
        """The answers a call gets past on its own: NOSCRIPT (send the source) and, on a
        cluster, MOVED and ASK (follow them)."""
        packed = pack(("EVALSHA", script.sha, len(keys), *keys, *args))
        for _ in range(MAX_REDIRECTS):
            text = str(reply)
            if text.startswith("NOSCRIPT"):
                packed = pack(("EVAL", script.source, len(keys), *keys, *args))
                reply = await self.redis.call(packed, slot, waited)
            elif text.startswith(("MOVED ", "ASK ")) and self.router is not None:
                if self.event is not None:
                    self.event("redirect")
                reply = await self.router.redirect(reply, packed, slot, waited)
            else:
                return reply
            if type(reply) is not ReplyError:
                return reply
        return reply

    async def execute(self, *args: Any) -> Any:
        """One plain command (PING, SMEMBERS), with the same error mapping; on a cluster,
        routed by its first key."""
        try:
            reply = await self.redis.execute(*args)
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
                        "NOAUTH", "ERR max number of clients", "CLUSTERDOWN", "MOVED", "ASK",
                        "NOREPLICAS")):
        # MISCONF: Redis cannot write its AOF (disk full): every write fails until fixed.
        # NOREPLICAS: min-replicas-to-write is set and too few replicas are in sync.
        # TRYAGAIN: a multi-key call during a slot migration; CLUSTERDOWN: the cluster is not
        # serving this slot (no master for it yet); MOVED/ASK: still moving after redirects.
        return StoreUnavailable(f"Redis cannot serve now: {text}")
    return RuntimeError(f"Redis refused {name}: {text}")
