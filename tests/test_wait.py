"""Replicated acknowledgements (REDIS_WAIT_REPLICAS): a change is answered once a replica has
it, one WAIT covers a whole batch of writes, and a replica that does not answer turns the
answer into a 503 that says the change may have been applied, then the next changes into a
fast 503 that says nothing was; reads never wait behind a WAIT (engine/replicated.py). A real
master and replica, a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.api_server import api_server
from devstack.cluster_nodes import QUICK_SYNC
from devstack.redis_server import RedisServer
from engine.config import Settings
from engine.keys import CustomerKeys
from engine.replicated import ReplicatedNode
from engine.store import connect
from engine.transport import PipelinedRedis, ReplicasMissing, ReplicationTimeout, pack
from tests.http import fire

HOST = "127.0.0.1"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    master = RedisServer(tmp_path / "m", *QUICK_SYNC).start()
    replica = RedisServer(tmp_path / "r", "--replicaof", HOST, str(master.port)).start()
    replica_client = redis.Redis(port=replica.port)
    deadline = time.monotonic() + 10
    while replica_client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)
    # Synced is not yet acking at once (it may be rewriting its first AOF): wait until it is.
    master_client = redis.Redis(port=master.port)
    master_client.set("warm", 1)
    assert master_client.execute_command("WAIT", 1, 5000) == 1
    master_client.delete("warm")
    yield master, replica
    if replica.proc and replica.proc.poll() is None:
        os.kill(replica.proc.pid, signal.SIGCONT)
    replica.stop()
    master.stop()


def test_an_acknowledged_charge_is_on_the_replica_and_waits_are_batched(pair) -> None:
    master, replica = pair
    api = api_server({"REDIS_URL": master.url, "REDIS_WAIT_REPLICAS": "1",
                      "TICK_SECONDS": "3600"}).start()
    m, rep = redis.Redis(port=master.port), redis.Redis(port=replica.port)
    try:
        m.config_resetstat()
        batches = [[("PATCH", "/api/point/charge", {"customerId": c, "amount": 1}, {})
                    for _ in range(25)] for c in range(1, 41)]
        seen_on_replica = []
        for batch in fire(HOST, api.port, batches):
            assert all(status == 200 for status, _ in batch)
        for c in range(1, 41):  # read from the replica right after the last answer
            seen_on_replica.append(int(rep.get(CustomerKeys(c).balance) or 0))
        waits = int(m.info("commandstats")["cmdstat_wait"]["calls"])
    finally:
        api.stop()
    assert seen_on_replica == [25 * 100] * 40
    assert waits < 1000, f"{waits} WAITs for 1000 charges: one per batch, not per charge"
    print(f"\n1,000 charges from 40 connections: {waits} WAIT commands")


def test_a_replica_that_does_not_answer_makes_a_fast_503_that_may_have_applied(pair) -> None:
    master, replica = pair
    api = api_server({"REDIS_URL": master.url, "REDIS_WAIT_REPLICAS": "1",
                      "REDIS_WAIT_TIMEOUT_MS": "200",
                      "TICK_SECONDS": "3600"}).start()
    m = redis.Redis(port=master.port)
    try:
        # A first charge loads the script: an EVALSHA answered NOSCRIPT wrote nothing, and
        # its EVAL would be refused unsent once the WAIT after it came back short.
        [[(warm, _)]] = fire(HOST, api.port, [[(
            "PATCH", "/api/point/charge", {"customerId": 4, "amount": 7}, {})]])
        assert warm == 200
        os.kill(replica.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        [[(status, body)]] = fire(HOST, api.port, [[(
            "PATCH", "/api/point/charge", {"customerId": 5, "amount": 7},
            {"Idempotency-Key": "k-5"})]])
        took = time.monotonic() - t0
        [[(read_status, _)]] = fire(HOST, api.port, [[("GET", "/api/point?customerId=5", None,
                                                       {})]])
        t0 = time.monotonic()  # the master is known to be short now: refused unsent, at once
        [[(refused, refusal)]] = fire(HOST, api.port, [[(
            "PATCH", "/api/point/charge", {"customerId": 6, "amount": 7}, {})]])
        refused_took = time.monotonic() - t0
        os.kill(replica.proc.pid, signal.SIGCONT)
        time.sleep(0.2)
        [[(again, replay)]] = fire(HOST, api.port, [[(
            "PATCH", "/api/point/charge", {"customerId": 5, "amount": 7},
            {"Idempotency-Key": "k-5"})]])
        metrics = urllib.request.urlopen(f"{api.base}/metrics", timeout=5).read().decode()
    finally:
        api.stop()
    assert status == 503 and body["code"] == "STORE_UNAVAILABLE"
    assert "may or may not have been applied" in body["detail"], body
    assert 0.2 <= took < 1.0
    assert read_status == 200  # reads are not held up
    assert refused == 503 and "nothing was applied" in refusal["detail"], refusal
    assert refused_took < 0.1 and m.get(CustomerKeys(6).balance) is None
    assert int(m.get(CustomerKeys(5).balance)) == 700  # applied on the master, once
    assert again == 200 and replay["balance"] == 7  # the retry with the key: its first answer
    assert 'ticketing_redis_events_total{event="wait_timeout"} 1.0' in metrics
    assert 'ticketing_redis_events_total{event="replicas_missing"} 1.0' in metrics


# --- engine/replicated.py: waited writes on a connection of their own -----------------------
async def waited(node: ReplicatedNode, *args: object) -> object:
    return await node.call(pack(args), 0, True)


def test_a_master_without_replicas_refuses_waited_writes_unsent_and_serves_reads(
        tmp_path: Path) -> None:
    """No replica: the writes connection's first probe says so, the waited writes are refused
    without being sent while reads are answered at once; a replica that joins clears it."""
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    master = RedisServer(tmp_path / "m", *QUICK_SYNC).start()
    # No AOF on it: a replica rewriting its first AOF after a sync ignores SIGTERM a while.
    replica = RedisServer(tmp_path / "r", "--replicaof", HOST, str(master.port),
                          "--appendonly", "no")
    m = redis.Redis(port=master.port)

    async def go() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        node = ReplicatedNode(master.url, wait_replicas=1, wait_timeout_ms=200)
        t0 = loop.time()
        first = asyncio.ensure_future(waited(node, "INCR", "n"))
        assert await node.execute("PING") == b"PONG"
        read = loop.time() - t0
        with pytest.raises(ReplicasMissing):
            await first
        probed = loop.time() - t0
        t0 = loop.time()
        for _ in range(100):
            with pytest.raises(ReplicasMissing):
                await waited(node, "INCR", "n")
        refused = (loop.time() - t0) / 100
        assert m.get("n") is None  # nothing was sent
        replica.start()
        t0 = loop.time()
        while True:
            try:
                acknowledged = await waited(node, "INCR", "n")
                break
            # Online for the master is not yet acking (it may still load what it was sent):
            # a write then meets the WAIT timeout, and the probe waits for that write.
            except (ReplicasMissing, ReplicationTimeout):
                assert loop.time() - t0 < 10, "the probe did not see the replica"
                await asyncio.sleep(0.02)
        back = loop.time() - t0
        await node.aclose()
        return {"read": read, "probed": probed, "refused": refused, "back": back,
                "acknowledged": acknowledged}

    try:
        took = asyncio.run(go())
        on_replica = redis.Redis(port=replica.port).get("n")
    finally:
        replica.stop()
        master.stop()
    print(f"\nno replica: read {took['read'] * 1000:.1f} ms, first write refused after the "
          f"probe {took['probed'] * 1000:.0f} ms, then {took['refused'] * 1e6:.0f} µs each; "
          f"acknowledged {took['back']:.2f} s after a replica was started")
    # A read is not held up by the probe (a WAIT: 200-300 ms); a refusal costs microseconds.
    assert took["read"] < 0.15 and 0.2 <= took["probed"] < 0.6 and took["refused"] < 0.005
    assert int(on_replica) == took["acknowledged"]  # acknowledged: the replica has it


def test_a_stopped_replica_turns_waits_into_fast_refusals_until_it_catches_up(pair) -> None:
    master, replica = pair
    m = redis.Redis(port=master.port)

    async def go() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        node = ReplicatedNode(master.url, wait_replicas=1, wait_timeout_ms=200)
        assert await waited(node, "INCR", "n") == 1
        os.kill(replica.proc.pid, signal.SIGSTOP)
        t0 = loop.time()
        late = asyncio.ensure_future(waited(node, "INCR", "n"))
        reads = [await node.execute("GET", "n") for _ in range(20)]
        read = loop.time() - t0
        with pytest.raises(ReplicationTimeout):  # sent, applied, not acknowledged
            await late
        t0 = loop.time()
        with pytest.raises(ReplicasMissing):
            await waited(node, "INCR", "n")
        refused = loop.time() - t0
        os.kill(replica.proc.pid, signal.SIGCONT)
        t0 = loop.time()
        while True:
            try:
                assert await waited(node, "INCR", "n") == 3
                break
            except ReplicasMissing:
                assert loop.time() - t0 < 2, "the probe did not see the replica catch up"
                await asyncio.sleep(0.01)
        back = loop.time() - t0
        await node.aclose()
        assert reads[-1] == b"2"  # the write that waits is applied; its reads see it
        return {"read": read, "refused": refused, "back": back}

    took = asyncio.run(go())
    print(f"\nreplica stopped: 20 reads in {took['read'] * 1000:.1f} ms behind a waiting write, "
          f"the next write refused in {took['refused'] * 1e6:.0f} µs; acknowledged again "
          f"{took['back'] * 1000:.0f} ms after SIGCONT")
    assert took["read"] < 0.15 and took["refused"] < 0.05 and took["back"] < 0.5
    assert int(m.get("n")) == 3


def test_without_wait_a_node_is_one_connection(redis_server, r) -> None:
    """REDIS_WAIT_REPLICAS=0 (the default): the single-node transport as it was."""
    async def go() -> tuple[object, int]:
        redis_client = connect(Settings(redis_url=redis_server.url))
        assert await redis_client.execute("PING") == b"PONG"
        clients = len(r.client_list(_type="normal"))
        await redis_client.aclose()
        return redis_client, clients

    client, clients = asyncio.run(go())
    assert type(client) is PipelinedRedis and client.wait[0] == 0
    assert clients == 2  # ours and the test's


def test_writes_sent_as_a_replica_stops_wait_for_one_wait_timeout_not_one_each(pair) -> None:
    """Redis runs a connection's commands in order and a WAIT blocks the rest: writes sent
    behind a WAIT that will time out each wait out a WAIT of their own after it (30 batches:
    6-9 s for the last). Writes that arrive while a WAIT is out wait for its answer in the
    client and go out together with the next one, or are refused unsent when it is short."""
    master, replica = pair
    m = redis.Redis(port=master.port)

    async def go() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        node = ReplicatedNode(master.url, wait_replicas=1, wait_timeout_ms=200)
        assert await waited(node, "INCR", "n") == 1

        async def one() -> tuple[str, float]:
            t0 = loop.time()
            try:
                await waited(node, "INCR", "n")
                outcome = "acknowledged"
            except ReplicationTimeout:
                outcome = "late"
            except ReplicasMissing:
                outcome = "refused"
            return outcome, loop.time() - t0

        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            calls = []
            for _ in range(30):  # one every 5 ms: a batch of its own each
                calls.append(asyncio.ensure_future(one()))
                await asyncio.sleep(0.005)
            results = await asyncio.wait_for(asyncio.gather(*calls), 20)
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        await node.aclose()
        return results

    results = asyncio.run(go())
    outcomes = [o for o, _ in results]
    longest = max(t for _, t in results)
    print(f"\n30 writes as the replica stopped: {outcomes.count('late')} late, "
          f"{outcomes.count('refused')} refused unsent; the longest answered in "
          f"{longest * 1000:.0f} ms")
    assert longest < 0.7
    assert outcomes.count("refused") >= 25 and "acknowledged" not in outcomes
    assert int(m.get("n")) == 1 + outcomes.count("late")  # the refused ones were not applied


def test_min_replicas_to_write_acknowledges_what_no_replica_has_for_a_second(pair) -> None:
    """The server-side way, compared on the same pair: with ``min-replicas-to-write 1`` and
    ``min-replicas-max-lag 1`` (its tightest), a master goes on acknowledging writes for 1-2 s
    after its replica stopped (replicas ack once a second), writes a failover then loses; a
    ReplicatedNode acknowledges none sent after the stop and refuses them after one WAIT."""
    master, replica = pair
    m = redis.Redis(port=master.port)
    m.config_set("min-replicas-to-write", 1)
    m.config_set("min-replicas-max-lag", 1)

    async def go() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        node = ReplicatedNode(master.url, wait_replicas=1, wait_timeout_ms=200)
        assert await waited(node, "INCR", "b") == 1
        plain = redis.asyncio.Redis(port=master.port)
        os.kill(replica.proc.pid, signal.SIGSTOP)
        t0 = loop.time()
        try:
            accepted = acked = 0
            refused_at = noreplicas_at = None
            while noreplicas_at is None or refused_at is None:
                assert loop.time() - t0 < 5
                if noreplicas_at is None:
                    try:
                        await plain.incr("a")
                        accepted += 1
                    except redis.ResponseError as e:
                        assert str(e).startswith("NOREPLICAS")
                        noreplicas_at = loop.time() - t0
                if refused_at is None:
                    try:
                        await waited(node, "INCR", "b")
                        acked += 1
                    except ReplicationTimeout:
                        pass
                    except ReplicasMissing:
                        refused_at = loop.time() - t0
                await asyncio.sleep(0.002)
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        await plain.aclose()
        await node.aclose()
        return {"accepted": accepted, "noreplicas_at": noreplicas_at, "acked": acked,
                "refused_at": refused_at}

    got = asyncio.run(go())
    print(f"\nreplica stopped: min-replicas-to-write 1 (max lag 1 s) acknowledged "
          f"{got['accepted']} writes no replica had, for {got['noreplicas_at']:.2f} s; "
          f"ReplicatedNode acknowledged {got['acked']}, refusing from "
          f"{got['refused_at'] * 1000:.0f} ms")
    assert got["accepted"] > 0 and got["noreplicas_at"] > 1.0
    assert got["acked"] == 0 and got["refused_at"] < 0.5
