"""devstack/local_cluster.py against real redis-server nodes: a 3-master cluster with a replica
each (the ``redis_cluster`` fixture) starts healthy, maps keys to slots and owners as Redis
does, fails a killed master over to its replica without losing a WAITed write, and takes the
old master back as a replica; a one-master cluster serves every slot; the CLI's cluster
outlives the command that started it, and runs from a bare Python."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from devstack import REPO
from devstack.cluster_nodes import SLOTS, free_base_port
from devstack.local_cluster import LocalCluster

KEYS = ["foo", "", "tk:{c:2}:concert", "tk:{c:2}:taken", "tk:{u:7}:balance", "{}x", "a{b}c{d}",
        "{user1000}.following", "\u00e9\u00e8", "x" * 300]


def node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)


def test_starts_healthy_with_three_masters_and_their_replicas(
        redis_cluster: LocalCluster) -> None:
    assert redis_cluster.wait_healthy(timeout=5) < 5
    masters, replicas = redis_cluster.masters(), redis_cluster.replicas()
    assert len(masters) == 3 and len(replicas) == 3
    assert sorted(masters + replicas) == redis_cluster.ports
    assert redis_cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in masters)
    served = [n for n in redis_cluster.nodes() if n.is_master]
    assert sum(b - a + 1 for n in served for a, b in n.slots) == SLOTS
    for p in redis_cluster.ports:
        info = node(p).cluster("info")
        assert info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == SLOTS


def test_slot_of_matches_cluster_keyslot(redis_cluster: LocalCluster) -> None:
    r = node(redis_cluster.ports[0])
    for key in KEYS:
        assert redis_cluster.slot_of(key) == r.execute_command("CLUSTER KEYSLOT", key), key
    assert redis_cluster.slot_of(b"\xff\x00") == r.execute_command("CLUSTER KEYSLOT", b"\xff\x00")
    assert redis_cluster.slot_of("tk:{c:2}:concert") == redis_cluster.slot_of("tk:{c:2}:taken")


def test_owner_serves_the_key_the_client_wrote(redis_cluster: LocalCluster) -> None:
    client = redis_cluster.client()
    try:
        for key in KEYS:
            client.set(key, f"v:{key}")
    finally:
        client.close()
    for key in KEYS:
        owner = redis_cluster.owner(redis_cluster.slot_of(key))
        assert owner in redis_cluster.masters()
        assert node(owner).get(key) == f"v:{key}".encode()  # no MOVED: it is the owner
        other = next(p for p in redis_cluster.masters() if p != owner)
        with pytest.raises(redis.exceptions.MovedError):
            node(other).get(key)
    redis_cluster.flushall()
    assert all(node(p).dbsize() == 0 for p in redis_cluster.ports)  # replicas too (WAIT)


def test_killed_master_fails_over_and_rejoins_as_a_replica(redis_cluster: LocalCluster) -> None:
    key = "tk:{u:42}:balance"
    client = redis_cluster.client()
    try:
        client.set(key, "12345")
    finally:
        client.close()
    master = redis_cluster.owner(redis_cluster.slot_of(key))
    assert node(master).execute_command("WAIT", 1, 1000) == 1  # the replica has it
    replica = next(n.port for n in redis_cluster.nodes()
                   if n.master_id == next(m.id for m in redis_cluster.nodes()
                                          if m.port == master))

    redis_cluster.kill(master)
    try:
        took = redis_cluster.wait_promoted(master, timeout=20)
        assert 1 < took < 15  # node timeout 1 s + election
        assert redis_cluster.owner(redis_cluster.slot_of(key)) == replica
        assert master not in redis_cluster.masters() + redis_cluster.replicas()
        assert replica in redis_cluster.masters()
        client = redis_cluster.client()
        try:
            assert client.get(key) == b"12345"
        finally:
            client.close()
    finally:
        redis_cluster.restart(master)  # healthy again for the tests after this one
    assert master in redis_cluster.replicas()
    assert next(n for n in redis_cluster.nodes() if n.port == master).master_id == next(
        n.id for n in redis_cluster.nodes() if n.port == replica)
    r = node(master)
    r.execute_command("READONLY")
    assert r.get(key) == b"12345"  # synced from its successor


def test_one_master_without_replicas_serves_every_slot(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, masters=1, replicas=0, node_timeout_ms=1000) as cluster:
        (port,) = cluster.ports
        assert cluster.masters() == [port] and cluster.replicas() == []
        assert cluster.url == f"redis+cluster://127.0.0.1:{port}"
        assert int(node(port).cluster("info")["cluster_slots_ok"]) == SLOTS
        assert cluster.owner(0) == cluster.owner(SLOTS - 1) == port
        client = cluster.client()
        try:
            keys = [f"k{i}" for i in range(2000)]
            assert len({cluster.slot_of(k) for k in keys}) > 1500
            for k in keys:
                client.set(k, k)
            assert [client.get(k) for k in keys[:3]] == [b"k0", b"k1", b"k2"]
        finally:
            client.close()
        # Unlike a single redis-server, it still refuses a command across slots.
        with pytest.raises(redis.ResponseError, match="same slot"):
            node(port).mget("k0", "k1")
    assert not cluster.running()


@pytest.mark.parametrize("offset", [0, 10000], ids=["port", "bus port"])
def test_a_taken_port_or_bus_port_is_a_clear_error(tmp_path: Path, offset: int) -> None:
    base = free_base_port(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + offset))
        s.listen()
        with pytest.raises(RuntimeError, match=f"ports in use.*{base + offset}"):
            LocalCluster(tmp_path, masters=1, replicas=0, base_port=base).start()


def test_cli_cluster_outlives_the_command_and_stops_from_another(tmp_path: Path) -> None:
    base, workdir = free_base_port(1), tmp_path / "cluster"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devstack", "cluster", *args,
                               "--dir", str(workdir)], cwd=REPO, capture_output=True,
                              text=True, timeout=60)

    started = cli("start", "--masters", "1", "--replicas", "0", "--base-port", str(base),
                  "--node-timeout", "1000")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"REDIS_URL=redis+cluster://127.0.0.1:{base}\n" in started.stdout
        assert node(base).ping()  # still there after the command returned
        status = cli("status")
        assert status.returncode == 0 and "master   slots 0-16383" in status.stdout
        again = cli("start")
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped 1 node(s)" in stopped.stdout
    with pytest.raises(redis.ConnectionError):
        node(base).ping()
    assert cli("status").returncode == 1
    assert (workdir / str(base) / "nodes.conf").exists()  # data kept
    assert cli("stop", "--wipe").returncode == 0 and not workdir.exists()


def test_cli_runs_from_a_python_without_the_project_dependencies(tmp_path: Path) -> None:
    """A fresh shell's bare ``python`` has none of the venv's packages (``-S`` here: no
    site-packages, no venv on PATH): the command runs itself again under .venv/bin/python
    instead of stopping at ``import redis``."""
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if not d.startswith(str(REPO / ".venv")))
    out = subprocess.run([sys.executable, "-S", "-m", "devstack", "cluster", "status",
                          "--dir", str(tmp_path / "none")], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PATH": path})
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1 and f"no cluster in {tmp_path / 'none'}" in out.stdout
