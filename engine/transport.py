"""A thin pipelined Redis connection for the API's hot path, on hiredis (the official parser).

Why not redis.asyncio: measured here, its per-call Python work (pool checkout and release,
retry wrappers, command packing, ``wait_for``) cost ~36 µs of CPU per call and held the API to
a quarter of a bare Starlette hello. This module does only what one worker needs:

- **one connection, auto-pipelined**: commands of concurrent requests are appended to one
  buffer and written with a single ``send`` per event-loop tick; replies are matched to their
  callers in order (Redis answers in order on a connection);
- **no per-call timers**: one watchdog per connection notices when Redis stops making
  progress (no reply for ``command_timeout`` while commands wait), fails every waiting call
  and drops the connection; the next call reconnects;
- **connect timeout and fail-fast**: a failed connect is not retried for a short while, so a
  dead Redis costs each request a fast error, not a connect attempt each; a connection that
  served and then dropped (a proxy's idle timeout, CLIENT KILL) is replaced at once;
- **backpressure**: at most ``max_pending`` commands wait on the connection; past that a call
  fails at once instead of queueing without bound;
- **replicated acknowledgements as a group commit**: with ``wait_replicas`` set, a write call
  (``waited=True``) gets its reply only after a ``WAIT`` that the connection appends to each
  batch it writes; one WAIT covers every write of the batch (WAIT waits for all earlier writes
  of its connection), so it costs one replication round trip per batch, not per request.
  Redis runs nothing else of a connection while its WAIT blocks, so writes that arrive while
  a WAIT is out wait for its answer here and then go out together, under one WAIT; when it
  saw too few replicas they are refused unsent instead of each waiting out a timeout of its
  own behind it. engine/replicated.py gives the waited writes a connection of their own, so
  that nothing else waits behind a WAIT.

This is one connection to one node; engine/cluster.py routes calls over the nodes of a Redis
Cluster with one node client per master. redis-py stays for the CLI, seeding and tests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis

ReplyError = hiredis.ReplyError
pack = hiredis.pack_command


class TransportError(Exception):
    """Redis could not be reached or did not answer. ``maybe_sent``: the command may have
    reached Redis (and been applied) before the failure."""

    maybe_sent = False


class ConnectFailed(TransportError):
    pass


class Overloaded(TransportError):
    pass


class ConnectionLost(TransportError):
    maybe_sent = True


class ReplyTimeout(TransportError):
    maybe_sent = True


class NotSent(TransportError):
    """The connection closed before the command was written."""


class ReplicationTimeout(TransportError):
    """The write was applied on the master, but WAIT saw fewer replicas take it than asked
    within its timeout: acknowledging it could lose it on a failover."""

    maybe_sent = True


class ReplicasMissing(TransportError):
    """Refused before it was sent: the master has fewer replicas than a write must wait for
    (engine/replicated.py), so it could not be acknowledged. Nothing was applied."""


# Stands in the FIFO of a connection for the WAIT appended to a batch of writes.
_WAIT = object()
_ASKING = pack(("ASKING",))


def _retrieved(fut: asyncio.Future) -> None:
    """For a reply nobody reads (ASKING's OK): a failure of it is not an error of its own."""
    if not fut.cancelled():
        fut.exception()

# Write at once when this many commands wait in the buffer, not only at the end of the loop
# tick: Redis starts on the first ones while Python still prepares the rest (measured here:
# reserve 0.62 -> 0.74 of hello, pay 0.43 -> 0.52, with 4; point read unchanged).
FLUSH_EVERY = 8


class _Connection(asyncio.Protocol):
    """One socket: a write buffer flushed once per loop tick and a FIFO of waiting calls."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_lost: Callable[[_Connection, TransportError], None] | None = None,
                 wait: tuple[int, int] = (0, 0),
                 on_short: Callable[[Any], None] | None = None,
                 max_queued: int = 20_000) -> None:
        self.loop = loop
        self.on_lost = on_lost
        self.on_short = on_short  # on_short(WAIT's answer) when it is fewer than asked
        # WAIT <replicas> <timeout ms> after each batch with a write in it (replicas 0: never).
        self.wait_replicas = wait[0]
        self.wait_command = pack(("WAIT", *wait))
        self.unwaited = False  # a write is in the buffer, not yet followed by a WAIT
        self.held: list[tuple[asyncio.Future, Any]] = []  # writes' replies until their WAIT
        self.waiting = False  # a WAIT is out: writes are queued until it answers
        self.queued: list[tuple[asyncio.Future, bytes]] = []  # those writes, not yet sent
        self.max_queued = max_queued
        # Set by the first reply that is not an error: the connection worked. One that is
        # lost before (a Redis at maxclients answers an error and closes) counts as a failed
        # connect.
        self.served = False
        self.reader = hiredis.Reader()
        # A future per command in flight, in order; a write's is wrapped in a tuple (its reply
        # waits for the WAIT, which is _WAIT here).
        self.pending: deque[Any] = deque()
        self.buffer: list[bytes] = []
        self.flush_scheduled = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_progress = loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(self, packed: bytes, waited: bool = False) -> asyncio.Future:
        fut = self.loop.create_future()
        if self.closed:  # nothing would ever answer it
            fut.set_exception(NotSent("the connection to Redis is closed"))
            return fut
        if not self.pending:
            self.last_progress = self.loop.time()
        if waited and self.wait_replicas:
            if self.waiting:  # the next group: sent when the WAIT out now answers
                if len(self.queued) < self.max_queued:
                    self.queued.append((fut, packed))
                else:
                    fut.set_exception(Overloaded(f"{self.max_queued} writes wait for a WAIT"))
                return fut
            self.pending.append((fut,))
            self.unwaited = True
        else:
            self.pending.append(fut)
        self.buffer.append(packed)
        if len(self.buffer) >= FLUSH_EVERY:
            self.flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush_at_tick_end)
        return fut

    def _flush_at_tick_end(self) -> None:
        self.flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        if self.unwaited and not self.closed:  # one WAIT for every write of the batch
            self.unwaited = False
            self.waiting = True
            self.buffer.append(self.wait_command)
            self.pending.append(_WAIT)
        if self.buffer and not self.closed:
            data = b"".join(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
            self.buffer.clear()
            self.transport.write(data)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.reader.feed(data)
        pending = self.pending
        while True:
            reply = self.reader.gets()
            if reply is False:
                break
            if not pending:  # a reply nobody asked for (e.g. "max number of clients")
                self.fail(ConnectionLost(f"Redis sent an unsolicited reply: {reply!r}"))
                return
            if (not self.served and type(reply) is ReplyError
                    and str(reply).startswith("ERR max number of clients")):
                # Said on accept, before any command: not the answer to ours (whether it came
                # before they were written or after).
                self.fail(ConnectionLost(f"Redis refused the connection: {reply}"))
                return
            fut = pending.popleft()
            if type(fut) is tuple:  # a write: its answer waits for the batch's WAIT
                self.held.append((fut[0], reply))
            elif fut is _WAIT:
                self._release(reply)
            elif not fut.done():  # a caller that gave up (request cancelled) is skipped
                fut.set_result(reply)
            if not self.served and type(reply) is not ReplyError:
                self.served = True
        self.last_progress = self.loop.time()

    def _release(self, acked: Any) -> None:
        """The batch's WAIT answered: its writes are answered, or fail when fewer replicas
        than asked took them (they were applied on the master: 'may have been'). An error
        reply is given as it is: that call wrote nothing to wait for (NOSCRIPT, MOVED, OOM).
        The writes queued meanwhile go out as the next group, or are refused unsent."""
        held, self.held = self.held, []
        queued, self.queued = self.queued, []
        self.waiting = False
        if type(acked) is int and acked >= self.wait_replicas:
            for fut, reply in held:
                if not fut.done():
                    fut.set_result(reply)
            for fut, packed in queued:
                self.pending.append((fut,))
                self.buffer.append(packed)
                self.unwaited = True
            self.flush()  # the next group, if any, under its WAIT
            return
        error = ReplicationTimeout(f"WAIT saw {acked!r} of {self.wait_replicas} replicas take "
                                   "the write in time")
        for fut, reply in held:
            if not fut.done():
                if type(reply) is ReplyError:
                    fut.set_result(reply)
                else:
                    fut.set_exception(error)
        refused = ReplicasMissing(f"WAIT saw {acked!r} of {self.wait_replicas} replicas take "
                                  "the writes before: refused before it was sent")
        for fut, _ in queued:
            if not fut.done():
                fut.set_exception(refused)
        if self.on_short is not None:
            self.on_short(acked)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionLost(f"connection to Redis lost ({exc or 'closed'})"))

    def fail(self, error: TransportError) -> None:
        """Fail every waiting call and close: the reply stream can no longer be trusted."""
        if not self.closed and self.on_lost is not None:
            self.on_lost(self, error)
        self.closed = True
        self.buffer.clear()
        self.unwaited = False
        unsent = NotSent(f"the connection to Redis closed before it was sent ({error})")
        for fut, _ in self.queued:
            if not fut.done():
                fut.set_exception(unsent)
        self.queued = []
        waiting = [f for f, _ in self.held]
        self.held = []
        while self.pending:
            fut = self.pending.popleft()
            if type(fut) is tuple:
                waiting.append(fut[0])
            elif fut is not _WAIT:
                waiting.append(fut)
        for fut in waiting:
            if not fut.done():
                fut.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    """One Redis node: an ``engine.connection.Node``, and a ``Connection`` of one node.
    ``await r.call(pack(...))`` or ``await r.execute(*args)``: one command, one reply (a
    ``ReplyError`` is returned, not raised). Raises ``TransportError``. ``call(packed, slot,
    waited)`` has the cluster router's signature; one node ignores the slot."""

    RECONNECT_PAUSE = 0.1  # after a failed connect, fail fast this long before trying again

    def __init__(self, url: str = "", *, host: str = "127.0.0.1", port: int = 6379,
                 db: int = 0, username: str | None = None, password: str | None = None,
                 connect_timeout: float = 0.25, command_timeout: float = 0.5,
                 max_pending: int = 20_000, wait_replicas: int = 0,
                 wait_timeout_ms: int = 0,
                 on_short: Callable[[Any], None] | None = None) -> None:
        if url:
            u = urlparse(url)
            if u.scheme not in ("redis", ""):
                raise ValueError(f"only redis:// URLs are supported here, not {url!r}")
            host, port = u.hostname or host, u.port or port
            db = int(u.path.strip("/") or 0)
            username = unquote(u.username) if u.username else None
            password = unquote(u.password) if u.password else None
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        # A WAIT holds the connection up to its timeout: that is progress, not a hang.
        self.command_timeout = command_timeout + (wait_timeout_ms / 1000 if wait_replicas else 0)
        self.max_pending = max_pending
        self.wait = (wait_replicas, wait_timeout_ms)
        self.on_short = on_short  # called with a batch's WAIT answer when it is short
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future | None = None
        self._failed_at = -1e9
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_due = 0.0
        self._closed = False

    def call(self, packed: bytes, slot: int = 0, waited: bool = False) -> Any:
        """Send one packed command; returns an awaitable of its reply. ``waited``: a write
        whose reply waits for the replicas (when ``wait_replicas`` is set)."""
        conn = self._conn
        if conn is None or conn.closed:
            return self._call_after_connect(packed, waited)
        if len(conn.pending) >= self.max_pending:
            raise Overloaded(f"{self.max_pending} commands already wait on Redis")
        return conn.send(packed, waited)

    async def execute(self, *args: Any) -> Any:
        return await self.call(pack(args))

    async def call_asking(self, packed: bytes, waited: bool = False) -> Any:
        """``ASKING`` then the command, back to back on this connection (a cluster's ASK
        redirect during a slot migration). ASKING holds for the next command only, so a
        waited write is not queued for the group commit: it gets a WAIT of its own."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        conn.send(_ASKING).add_done_callback(_retrieved)
        reply = await conn.send(packed)
        if waited and self.wait[0] and type(reply) is not ReplyError:
            acked = await conn.send(conn.wait_command)
            if not (type(acked) is int and acked >= self.wait[0]):
                if self.on_short is not None:
                    self.on_short(acked)
                raise ReplicationTimeout(f"WAIT saw {acked!r} of {self.wait[0]} replicas take "
                                         "the write in time")
        return reply

    @property
    def connected(self) -> bool:  # the next call is sent without connecting first
        return self._conn is not None and not self._conn.closed

    def node_of(self, slot: int) -> tuple[str, int]:
        return self.host, self.port

    def masters(self) -> list[tuple[str, int]]:
        return [(self.host, self.port)]

    def node(self, address: tuple[str, int]) -> PipelinedRedis:
        return self

    async def _call_after_connect(self, packed: bytes, waited: bool = False) -> Any:
        conn = await self._connect()
        return await conn.send(packed, waited)  # a connection closed meanwhile fails at once

    async def _connect(self) -> _Connection:
        if self._closed:
            raise ConnectFailed("the Redis client is closed")
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            if loop.time() - self._failed_at < self.RECONNECT_PAUSE:
                raise ConnectFailed(f"Redis at {self.host}:{self.port} failed just now")
            self._connecting = loop.create_task(self._open(loop))
            # Cleared when done, whether or not anyone still waits for it.
            self._connecting.add_done_callback(self._connected)
        # shield: one caller giving up must not cancel the connect others wait for
        return await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Task) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved: a failed connect nobody awaited is not an error

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, self._lost, self.wait, self.on_short,
                                        self.max_pending), self.host, self.port)
                handshake = []
                if self.password is not None:
                    auth = ("AUTH", self.username, self.password) if self.username else (
                        "AUTH", self.password)
                    handshake.append(conn.send(pack(auth)))
                if self.db:
                    handshake.append(conn.send(pack(("SELECT", self.db))))
                for reply in await asyncio.gather(*handshake):
                    if isinstance(reply, ReplyError):
                        conn.fail(ConnectFailed(f"Redis refused the handshake: {reply}"))
                        raise ConnectFailed(f"Redis refused the handshake: {reply}")
        except (OSError, TimeoutError, TransportError) as e:
            self._failed_at = loop.time()
            if conn is not None:
                conn.fail(ConnectFailed("handshake failed"))  # no socket left behind
            if isinstance(e, ConnectFailed):
                raise
            raise ConnectFailed(f"cannot connect to Redis at {self.host}:{self.port}: "
                                f"{type(e).__name__} {e}") from e
        if self._closed:
            conn.fail(ConnectionLost("the Redis client was closed"))
            raise ConnectFailed("the Redis client is closed")
        self._conn = conn
        self._arm_watchdog(loop)
        return conn

    def _lost(self, conn: _Connection, error: TransportError) -> None:
        """A connection died. One that had served and dropped is replaced by the next call at
        once. One that never served (a Redis that accepts and drops at once, e.g. at
        maxclients, would be hammered) or whose Redis stopped answering fails fast for a
        moment, like a failed connect."""
        if not conn.served or isinstance(error, ReplyTimeout):
            self._failed_at = asyncio.get_running_loop().time()

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watchdog is None:
            self._watch_due = loop.time() + self.command_timeout / 4
            self._watchdog = loop.call_later(self.command_timeout / 4, self._watch, loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the connection when commands wait and Redis made no progress for the command
        timeout (hung, stopped, or a network black hole). When the watchdog itself runs late,
        the event loop was busy (big answers being built), and replies may wait unread in the
        socket: the silence is counted again from now rather than blamed on Redis (measured:
        16 concurrent 100,000-seat lists made false 503s)."""
        self._watchdog = None
        conn = self._conn
        if conn is None or conn.closed or self._closed:
            return
        if loop.time() - self._watch_due > self.command_timeout / 4:
            conn.last_progress = loop.time()
        elif conn.pending and loop.time() - conn.last_progress > self.command_timeout:
            conn.fail(ReplyTimeout(f"Redis gave no reply for {self.command_timeout} s"))
            return
        self._arm_watchdog(loop)

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._conn is not None and not self._conn.closed:
            self._conn.fail(ConnectionLost("the Redis client was closed"))
        self._conn = None
