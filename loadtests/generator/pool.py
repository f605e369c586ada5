"""The generators' lean HTTP client: raw asyncio (uvloop in the generators) over a pool of
keep-alive HTTP/1.1 connections, one request at a time on each, answers parsed by httptools.
The drop's buyers (``loadtests/drop/``) and the stress ramp's users (``loadtests/stress/``)
send their requests through it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httptools
import orjson


@dataclass(slots=True)
class Req:
    method: str
    path: str
    body: dict | None
    auth: str | None
    name: str  # the step (STEPS)
    expect: tuple[tuple[int, str], ...] = ()  # non-2xx answers that are not failures
    headers: tuple[tuple[str, str], ...] = ()



class PooledConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, parsed by httptools."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.fut: asyncio.Future | None = None
        self.chunks: list[bytes] = []
        self.retry_after: bytes | None = None
        self.got_bytes = False
        self.alive = True

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except Exception as e:  # a malformed answer: this connection is done
            self._fail(e)
            self.alive = False
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._fail(exc or ConnectionResetError("connection closed"))

    # httptools
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self.retry_after = value

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        fut, self.fut = self.fut, None
        status = self.parser.get_status_code()
        body = b"".join(self.chunks)
        retry = self.retry_after
        self.chunks, self.retry_after = [], None
        if not self.parser.should_keep_alive():
            self.alive = False
        if fut is not None and not fut.done():
            fut.set_result((status, body, retry))

    def _fail(self, exc: BaseException) -> None:
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))

    def send(self, data: bytes) -> asyncio.Future:
        self.fut = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        assert self.transport is not None
        self.transport.write(data)
        return self.fut


class Pool:
    """Up to ``size`` keep-alive connections shared by every buyer of the process; a request
    takes an idle one (or opens one, or waits its turn)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.idle: list[PooledConn] = []
        self.open = 0
        self.waiters: deque[asyncio.Future] = deque()
        self.host_header = f"{host}:{port}".encode()
        self.reconnects = 0

    async def _take(self) -> PooledConn:
        while True:
            while self.idle:
                c = self.idle.pop()
                if c.alive:
                    return c
                self.open -= 1
            if self.open < self.size:
                self.open += 1
                try:
                    loop = asyncio.get_running_loop()
                    _, conn = await loop.create_connection(lambda: PooledConn(self), self.host,
                                                           self.port)
                except BaseException:
                    self.open -= 1
                    raise
                return conn
            fut = asyncio.get_running_loop().create_future()
            self.waiters.append(fut)
            conn = await fut
            if conn is not None and conn.alive:
                return conn

    def _give(self, conn: PooledConn) -> None:
        if not conn.alive:
            self.open -= 1
            conn = None
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                if conn is None:
                    fut.set_result(None)  # it will open one
                else:
                    fut.set_result(conn)
                return
        if conn is not None:
            self.idle.append(conn)

    async def request(self, data: bytes) -> tuple[int, bytes, bytes | None, float]:
        """(status, body, Retry-After, seconds spent waiting for a connection)."""
        t0 = time.perf_counter()
        for attempt in (0, 1):
            conn = await self._take()
            waited = time.perf_counter() - t0
            try:
                status, body, retry = await conn.send(data)
            except (ConnectionError, OSError):
                # An idle keep-alive connection the server closed just now: the request never
                # reached it (no byte of an answer), so sending it again is safe.
                fresh = not conn.got_bytes
                conn.alive = False
                self._give(conn)
                if attempt == 0 and fresh:
                    self.reconnects += 1
                    continue
                raise
            self._give(conn)
            return status, body, retry, waited
        raise AssertionError("unreachable")

    def build(self, req: Req) -> bytes:
        lines = [f"{req.method} {req.path} HTTP/1.1".encode(), b"Host: " + self.host_header]
        if req.auth:
            lines.append(b"Authorization: " + req.auth.encode())
        for k, v in req.headers:
            lines.append(f"{k}: {v}".encode())
        payload = b""
        if req.body is not None:
            payload = orjson.dumps(req.body)
            lines.append(b"Content-Type: application/json")
            lines.append(b"Content-Length: %d" % len(payload))
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload

    def close(self) -> None:
        for c in self.idle:
            if c.transport is not None:
                c.transport.close()
        self.idle.clear()


def parse_answer(status: int, raw: bytes, retry: bytes | None) -> tuple[Any, str, float | None]:
    """(JSON body or None, problem code or '', Retry-After seconds or None)."""
    body: Any = None
    if raw:
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(raw)
    code = str(body.get("code", "")) if status >= 300 and isinstance(body, dict) else ""
    after = None
    if retry is not None:
        with contextlib.suppress(ValueError):
            after = float(retry)
    return body, code, after
