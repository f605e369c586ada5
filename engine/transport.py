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
  fails at once instead of queueing without bound.

redis-py stays for the CLI, seeding and tests.
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


# Write at once when this many commands wait in the buffer, not only at the end of the loop
# tick: Redis starts on the first ones while Python still prepares the rest (measured here:
# reserve 0.62 -> 0.74 of hello, pay 0.43 -> 0.52, with 4; point read unchanged).
FLUSH_EVERY = 8


class _Connection(asyncio.Protocol):
    """One socket: a write buffer flushed once per loop tick and a FIFO of waiting calls."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_lost: Callable[[_Connection, TransportError], None] | None = None,
                 ) -> None:
        self.loop = loop
        self.on_lost = on_lost
        # Set by the first reply that is not an error: the connection worked. One that is
        # lost before (a Redis at maxclients answers an error and closes) counts as a failed
        # connect.
        self.served = False
        self.reader = hiredis.Reader()
        self.pending: deque[asyncio.Future] = deque()
        self.buffer: list[bytes] = []
        self.flush_scheduled = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_progress = loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(self, packed: bytes) -> asyncio.Future:
        fut = self.loop.create_future()
        if self.closed:  # nothing would ever answer it
            fut.set_exception(NotSent("the connection to Redis is closed"))
            return fut
        if not self.pending:
            self.last_progress = self.loop.time()
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
            fut = pending.popleft()
            if not fut.done():  # a caller that gave up (request cancelled) is skipped
                fut.set_result(reply)
            if not self.served and type(reply) is not ReplyError:
                self.served = True
        self.last_progress = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionLost(f"connection to Redis lost ({exc or 'closed'})"))

    def fail(self, error: TransportError) -> None:
        """Fail every waiting call and close: the reply stream can no longer be trusted."""
        if not self.closed and self.on_lost is not None:
            self.on_lost(self, error)
        self.closed = True
        self.buffer.clear()
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    """``await r.call(pack(...))`` or ``await r.execute(*args)``: one command, one reply
    (a ``ReplyError`` is returned, not raised). Raises ``TransportError``."""

    RECONNECT_PAUSE = 0.1  # after a failed connect, fail fast this long before trying again

    def __init__(self, url: str, *, connect_timeout: float = 0.25, command_timeout: float = 0.5,
                 max_pending: int = 20_000) -> None:
        u = urlparse(url)
        if u.scheme not in ("redis", ""):
            raise ValueError(f"only redis:// URLs are supported, not {url!r}")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        self.db = int(u.path.strip("/") or 0)
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_pending = max_pending
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future | None = None
        self._failed_at = -1e9
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    def call(self, packed: bytes) -> Any:
        """Send one packed command; returns an awaitable of its reply."""
        conn = self._conn
        if conn is None or conn.closed:
            return self._call_after_connect(packed)
        if len(conn.pending) >= self.max_pending:
            raise Overloaded(f"{self.max_pending} commands already wait on Redis")
        return conn.send(packed)

    async def execute(self, *args: Any) -> Any:
        return await self.call(pack(args))

    async def _call_after_connect(self, packed: bytes) -> Any:
        conn = await self._connect()
        return await conn.send(packed)  # a connection closed meanwhile fails it at once

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
                    lambda: _Connection(loop, self._lost), self.host, self.port)
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
            self._watchdog = loop.call_later(self.command_timeout / 4, self._watch, loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the connection when commands wait and Redis made no progress for the command
        timeout (hung, stopped, or a network black hole)."""
        self._watchdog = None
        conn = self._conn
        if conn is None or conn.closed or self._closed:
            return
        if conn.pending and loop.time() - conn.last_progress > self.command_timeout:
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
