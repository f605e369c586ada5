"""A small HTTP/1.1 keep-alive client on uvloop for what wrk cannot tell: the latency of each
answer *by status* (the overload benchmark's probe) and thousands of connections held open
(the connection benchmark). One request at a time per connection, written as bytes; answers
are read by Content-Length (the API always sends it).

``python -m loadtests.http_bench.rawclient probe --port P ...`` runs the probe and prints one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

import uvloop

from loadtests.generator.stats import percentile


@dataclass
class Answer:
    status: int
    seconds: float
    retry_after: float | None = None


class Conn(asyncio.Protocol):
    """One connection; ``await conn.send(request)`` -> the Answer (raises ConnectionError if
    the server closed it first)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.started = 0.0
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        length, retry = 0, None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry = float(value)
        if len(rest) < length:
            return
        self.buf = rest[length:]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Answer(int(head[9:12]), time.perf_counter() - self.started,
                                          retry))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed by the server"))

    async def send(self, request: bytes) -> Answer:
        if self.closed or self.transport is None:
            raise ConnectionError("closed by the server")
        self.waiter = asyncio.get_running_loop().create_future()
        self.started = time.perf_counter()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, host: str = "127.0.0.1") -> Conn:
    _, conn = await asyncio.get_running_loop().create_connection(Conn, host, port)
    return conn


def request_bytes(path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Tally:
    """Answers by status: count and latencies (s); connection errors apart."""

    latencies: dict[int, list[float]] = field(default_factory=dict)
    errors: int = 0

    def add(self, a: Answer) -> None:
        self.latencies.setdefault(a.status, []).append(a.seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        return {str(st): {"n": len(xs), "p50_ms": percentile(xs, 0.5) * 1000,
                          "p99_ms": percentile(xs, 0.99) * 1000, "max_ms": max(xs) * 1000}
                for st, xs in sorted(self.latencies.items())}


async def probe(port: int, request: bytes, conns: int, period: float, seconds: float,
                honor_retry: bool) -> Tally:
    """``conns`` users, each sending ``request`` every ``period`` s on its own keep-alive
    connection (the next one only after the answer), after a 503 waiting its Retry-After
    when ``honor_retry``; for ``seconds``."""
    tally = Tally()
    end = time.perf_counter() + seconds

    async def user(i: int) -> None:
        conn = await connect(port)
        await asyncio.sleep(period * i / conns)  # spread over the period
        due = time.perf_counter()
        while time.perf_counter() < end:
            try:
                a = await conn.send(request)
            except ConnectionError:
                tally.errors += 1
                await asyncio.sleep(0.01)
                conn = await connect(port)
                continue
            tally.add(a)
            due += period
            if honor_retry and a.status == 503:
                due = time.perf_counter() + (a.retry_after or 1)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn.close()

    await asyncio.gather(*(user(i) for i in range(conns)))
    return tally


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="the probe: latency by status, one JSON line")
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe")
    pr.add_argument("--port", type=int, required=True)
    pr.add_argument("--path", default="/api/point?customerId=7")
    pr.add_argument("--token", default="")
    pr.add_argument("--conns", type=int, default=16)
    pr.add_argument("--period", type=float, default=0.02, help="seconds between a user's requests")
    pr.add_argument("--seconds", type=float, default=5)
    pr.add_argument("--honor-retry", action="store_true")
    args = p.parse_args(argv)
    headers = {"Authorization": args.token} if args.token else {}
    tally = uvloop.run(probe(args.port, request_bytes(args.path, headers), args.conns,
                             args.period, args.seconds, args.honor_retry))
    print(json.dumps({"statuses": tally.summary(), "errors": tally.errors}))


if __name__ == "__main__":
    main()
