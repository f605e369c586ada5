"""engine/transport.py against a real redis-server: pipelining, dropped connections,
cancelled callers, a Redis that accepts and drops at once, and a hung Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis
import uvloop

from devstack.redis_server import RedisServer
from engine.transport import (
    PipelinedRedis,
    ReplicationTimeout,
    ReplyError,
    ReplyTimeout,
    TransportError,
    pack,
)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest):
    return asyncio.run if request.param == "asyncio" else uvloop.run


def test_replies_match_their_callers_under_concurrency(run, redis_server, r) -> None:
    async def go() -> None:
        client = PipelinedRedis(redis_server.url)
        replies = await asyncio.gather(*[client.execute("ECHO", str(i)) for i in range(2000)])
        assert replies == [str(i).encode() for i in range(2000)]
        await client.aclose()

    run(go())


def test_a_dropped_connection_after_a_cancelled_connect_does_not_hang(run, redis_server,
                                                                      r) -> None:
    async def go() -> None:
        client = PipelinedRedis(redis_server.url)
        first = asyncio.ensure_future(client.execute("PING"))
        await asyncio.sleep(0)  # the connect has started; its only caller gives up
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.sleep(0.05)
        assert await client.execute("PING") == b"PONG"
        r.client_kill_filter(_type="normal", skipme=True)  # Redis drops every client
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(client.execute("PING"), 3) == b"PONG"
        await client.aclose()

    run(go())


def test_a_healthy_connection_that_drops_is_replaced_at_once(run, redis_server, r) -> None:
    """After one dropped connection (a proxy's idle timeout, CLIENT KILL) of a healthy Redis,
    the next call reconnects; calls used to fail for 100 ms without trying."""
    async def go() -> tuple[int, int]:
        client = PipelinedRedis(redis_server.url)
        assert await client.execute("PING") == b"PONG"
        r.client_kill_filter(_type="normal", skipme=True)
        await asyncio.sleep(0.01)  # the loss is noticed
        ok = failed = 0
        for _ in range(50):
            try:
                await client.execute("PING")
                ok += 1
            except TransportError:
                failed += 1
        await client.aclose()
        return ok, failed

    assert run(go()) == (50, 0)


def test_a_redis_that_drops_every_connection_fails_fast(run, tmp_path: Path) -> None:
    """maxclients 1, held by another client: Redis accepts, says so, and closes."""
    with RedisServer(tmp_path, "--maxclients", "1") as rs:
        holder = redis.Redis(port=rs.port)
        holder.ping()

        async def go() -> None:
            client = PipelinedRedis(rs.url)
            t0 = time.monotonic()
            results = await asyncio.wait_for(asyncio.gather(
                *[client.execute("PING") for _ in range(50)], return_exceptions=True), 3)
            assert all(isinstance(x, TransportError) for x in results), results[:3]
            assert time.monotonic() - t0 < 1
            await client.aclose()

        run(go())
        holder.close()


def test_a_hung_redis_fails_waiting_calls_within_the_timeout(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as rs:
        async def go() -> float:
            client = PipelinedRedis(rs.url, command_timeout=0.3)
            assert await client.execute("PING") == b"PONG"
            os.kill(rs.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                with pytest.raises(ReplyTimeout):
                    await asyncio.wait_for(client.execute("PING"), 5)
                took = time.monotonic() - t0
            finally:
                os.kill(rs.proc.pid, signal.SIGCONT)
            await asyncio.sleep(0.2)
            assert await client.execute("PING") == b"PONG"  # and it heals
            await client.aclose()
            return took

        took = asyncio.run(go())
        assert 0.3 <= took < 0.6


def test_packing_round_trip(redis_server, r) -> None:
    async def go() -> None:
        client = PipelinedRedis(redis_server.url)
        assert await client.call(pack(("SET", "k", "é 1"))) == b"OK"
        assert await client.execute("GET", "k") == "é 1".encode()
        await client.aclose()

    asyncio.run(go())


def test_a_busy_event_loop_is_not_taken_for_a_hung_redis(redis_server, r) -> None:
    """The loop busy for longer than the command timeout (big answers being built) while a
    reply waits unread in the socket: the watchdog runs late and must not blame Redis."""
    async def go() -> object:
        client = PipelinedRedis(redis_server.url, command_timeout=0.2)
        assert await client.execute("PING") == b"PONG"
        pending = asyncio.ensure_future(client.execute("PING"))
        await asyncio.sleep(0)  # sent
        time.sleep(0.5)  # the loop does nothing else for 0.5 s: the PONG is in the socket
        try:
            return await asyncio.wait_for(pending, 2)
        except TransportError as e:
            return e
        finally:
            await client.aclose()

    assert asyncio.run(go()) == b"PONG"


def test_an_error_reply_is_not_held_hostage_by_a_short_wait(redis_server, r) -> None:
    """A batch's WAIT saw too few replicas (this Redis has none): its writes fail as 'may have
    been applied', but a call Redis refused (NOSCRIPT, MOVED) wrote nothing and gets its own
    answer, so the Store can send the script or follow the redirect. The node is told."""
    shorts: list[object] = []

    async def go() -> list[object]:
        client = PipelinedRedis(redis_server.url, wait_replicas=1, wait_timeout_ms=50,
                                on_short=shorts.append)
        replies = await asyncio.gather(
            client.call(pack(("EVALSHA", "0" * 40, 0)), 0, True),
            client.call(pack(("INCR", "n")), 0, True), return_exceptions=True)
        await client.aclose()
        return replies

    noscript, incr = asyncio.run(go())
    assert isinstance(noscript, ReplyError) and str(noscript).startswith("NOSCRIPT")
    assert isinstance(incr, ReplicationTimeout)
    assert r.get("n") == b"1" and shorts == [0]


def test_every_transport_is_a_declared_connection() -> None:
    """engine/connection.py declares what the Store uses; the three transports implement it,
    and only the cluster's router has redirects and slot-map refreshes (no empty methods kept
    on a node to match)."""
    from engine.cluster import ClusterRedis
    from engine.connection import Connection, Node, Routed
    from engine.replicated import ReplicatedNode

    one = PipelinedRedis(port=1)
    replicated = ReplicatedNode(port=1, wait_replicas=1, wait_timeout_ms=10)
    cluster = ClusterRedis("redis+cluster://127.0.0.1:1")
    for node in (one, replicated):
        assert isinstance(node, Node) and isinstance(node, Connection)
        assert not isinstance(node, Routed)
        assert not hasattr(node, "redirect") and not hasattr(node, "trouble")
        assert node.masters() == [("127.0.0.1", 1)] and node.node(("127.0.0.1", 1)) is node
    assert isinstance(cluster, Connection) and isinstance(cluster, Routed)
