"""Replicated acknowledgements (REDIS_WAIT_REPLICAS): a change is answered once a replica has
it, one WAIT covers a whole batch of writes, and a replica that does not answer turns the
answer into a 503 that says the change may have been applied. A real master and replica, a
real server."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.api_server import api_server
from devstack.redis_server import RedisServer
from engine.keys import CustomerKeys
from tests.http import fire

HOST = "127.0.0.1"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    master = RedisServer(tmp_path / "m").start()
    replica = RedisServer(tmp_path / "r", "--replicaof", HOST, str(master.port)).start()
    replica_client = redis.Redis(port=replica.port)
    deadline = time.monotonic() + 10
    while replica_client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)
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
        os.kill(replica.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        [[(status, body)]] = fire(HOST, api.port, [[(
            "PATCH", "/api/point/charge", {"customerId": 5, "amount": 7},
            {"Idempotency-Key": "k-5"})]])
        took = time.monotonic() - t0
        [[(read_status, _)]] = fire(HOST, api.port, [[("GET", "/api/point?customerId=5", None,
                                                       {})]])
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
    assert int(m.get(CustomerKeys(5).balance)) == 700  # applied on the master, once
    assert again == 200 and replay["balance"] == 7  # the retry with the key: its first answer
    assert 'ticketing_redis_events_total{event="wait_timeout"} 1.0' in metrics
