"""A local Redis Cluster for tests and benchmarks: ``masters * (1 + replicas)`` redis-server
processes from the repo's redis.conf, each with its own data directory ``<workdir>/<port>``,
formed with ``redis-cli --cluster create`` (by hand below three masters, which redis-cli
refuses). Every node listens on 127.0.0.1 only (redis.conf's ``bind``).

``daemon=True`` leaves the nodes running after this process exits (``make cluster``); a later
process finds them again from the state file with ``RedisCluster.attach(workdir)``.
``python -m loadtests cluster start|stop|status`` is the command line (``cluster_command``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from loadtests.stack import REPO

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
STATE_FILE = "cluster.json"
HOST = "127.0.0.1"
# For `extra`: a master's first sync of a replica otherwise waits 5 s (Redis's default) for
# more replicas to share its fork; locally that only slows every start and rejoin.
QUICK_SYNC = ("--repl-diskless-sync-delay", "0")


# --- ports -------------------------------------------------------------------------------------
def port_free(port: int) -> bool:
    """Whether redis-server could listen on ``port`` on loopback. SO_REUSEADDR as Redis sets
    it, so a port left in TIME_WAIT by a node just stopped counts as free."""
    for family, addr in ((socket.AF_INET, HOST), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((addr, port))
        except OSError as e:
            # redis.conf binds "-::1": a machine without IPv6 loopback is fine.
            if family == socket.AF_INET6 and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            return False
    return True


def busy_ports(ports: list[int]) -> list[int]:
    """The ports among ``ports`` and their bus ports that are taken (or out of range)."""
    return [q for p in ports for q in (p, p + BUS_OFFSET) if q > 65535 or not port_free(q)]


def free_base_port(count: int, low: int = 20000, high: int = 29000, tries: int = 20) -> int:
    """A random base in [low, high] with ``count`` ports and their bus ports free. The range
    stays below the ephemeral ports, whose bus ports would pass 65535 (NOTES.md)."""
    for _ in range(tries):
        base = random.randint(low, high)
        if not busy_ports(list(range(base, base + count))):
            return base
    raise RuntimeError(f"no {count} free ports (and bus ports) found in {low}-{high}")


# --- CLUSTER NODES -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """One line of ``CLUSTER NODES``: one node as the node asked sees it."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    link: str  # "connected" or "disconnected"
    slots: tuple[tuple[int, int], ...]  # inclusive ranges

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr", "handshake"})

    def serves(self, slot: int) -> bool:
        return any(a <= slot <= b for a, b in self.slots)

    @classmethod
    def parse(cls, line: str) -> Node:
        # <id> <ip:port@bus[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...
        f = line.split()
        ranges = []
        for s in f[8:]:
            if s.startswith("["):  # a slot being migrated or imported, not served here
                continue
            a, _, b = s.partition("-")
            ranges.append((int(a), int(b or a)))
        return cls(f[0], int(f[1].split("@")[0].rsplit(":", 1)[1]), frozenset(f[2].split(",")),
                   None if f[3] == "-" else f[3], f[7], tuple(ranges))


def slot_ranges(slots: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in slots) or "-"


# --- the cluster -------------------------------------------------------------------------------
class RedisCluster:
    """A local Redis Cluster of ``masters`` masters with ``replicas`` replicas each.

    ``base_port``: the nodes use ports base .. base + n - 1 (and those + 10000 for the bus);
    without it a random free base in 20000-29000. ``node_timeout_ms`` is
    ``cluster-node-timeout``: how long a node may be unreachable before its replica takes
    over. ``extra``: more redis-server arguments for every node (after ours, so they win).
    ``daemon``: the nodes run in their own session and outlive this process.
    """

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 1,
                 base_port: int | None = None, node_timeout_ms: int = 5000,
                 extra: tuple[str, ...] = (), *, daemon: bool = False) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and replicas >= 0")
        self.workdir = Path(workdir).resolve()
        self.master_count, self.replicas_per_master = masters, replicas
        count = masters * (1 + replicas)
        base = free_base_port(count) if base_port is None else base_port
        self.ports: list[int] = list(range(base, base + count))
        self.node_timeout_ms = node_timeout_ms
        self.extra = tuple(extra)
        self.daemon = daemon
        self._procs: dict[int, subprocess.Popen] = {}
        self._clients: dict[int, redis.Redis] = {}
        self._killed_at: dict[int, float] = {}

    @classmethod
    def attach(cls, workdir: Path) -> RedisCluster:
        """The cluster whose state file is in ``workdir`` (started by this or another process),
        to stop, inspect or start it again."""
        state = json.loads((Path(workdir) / STATE_FILE).read_text())
        return cls(workdir, state["masters"], state["replicas"], state["ports"][0],
                   state["node_timeout_ms"], tuple(state["extra"]), daemon=state["daemon"])

    # --- where things are ---
    def node_dir(self, port: int) -> Path:
        return self.workdir / str(port)

    def log(self, port: int) -> Path:
        return self.node_dir(port) / "redis.log"

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,...``: the current masters as seeds."""
        return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in self.masters())

    def pid(self, port: int) -> int | None:
        """The pid of the node on ``port`` if it runs, from our child or its pidfile (checked
        to be that node: a stale pidfile after SIGKILL may name another process by now)."""
        proc = self._procs.get(port)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        try:
            pid = int((self.node_dir(port) / "redis.pid").read_text())
            # redis-server sets its title to "/usr/bin/redis-server 127.0.0.1:<port> [cluster]"
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        words = title.replace("\0", " ").split()
        ok = (len(words) >= 2 and Path(words[0]).name == "redis-server"
              and words[1].endswith(f":{port}"))
        return pid if ok else None

    def live_ports(self) -> list[int]:
        return [p for p in self.ports if self.pid(p) is not None]

    def running(self) -> bool:
        return bool(self.live_ports())

    # --- state file ---
    def _state(self) -> dict | None:
        try:
            return json.loads((self.workdir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self, formed: bool) -> None:
        state = {"masters": self.master_count, "replicas": self.replicas_per_master,
                 "ports": self.ports, "node_timeout_ms": self.node_timeout_ms,
                 "extra": list(self.extra), "daemon": self.daemon, "formed": formed}
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")

    # --- talking to one node ---
    def _client(self, port: int) -> redis.Redis:
        if port not in self._clients:
            # No retries: a dead node should fail the poll at once, not after backoffs.
            self._clients[port] = redis.Redis(host=HOST, port=port, socket_timeout=2,
                                              socket_connect_timeout=1, decode_responses=True,
                                              retry=Retry(NoBackoff(), 0))
        return self._clients[port]

    def _drop_client(self, port: int) -> None:
        client = self._clients.pop(port, None)
        if client is not None:
            client.close()

    def _cluster(self, port: int, sub: str, *args: object) -> str:
        # "CLUSTER" and the subcommand as two arguments: redis-py keys its reply parsers by
        # the first one, so this returns Redis's own text.
        return self._client(port).execute_command("CLUSTER", sub, *args)

    def cluster_info(self, port: int) -> dict[str, str]:
        """``CLUSTER INFO`` of the node on ``port``, values as Redis writes them."""
        text = self._cluster(port, "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def nodes(self, port: int | None = None) -> list[Node]:
        """``CLUSTER NODES`` as seen by the node on ``port`` (default: the first live one)."""
        if port is None:
            live = self.live_ports()
            if not live:
                raise RuntimeError(f"no node of the cluster in {self.workdir} is running")
            port = live[0]
        return [Node.parse(line) for line in self._cluster(port, "NODES").splitlines() if line]

    # --- roles and slots (read now: a failover changes them) ---
    def _roles(self, master: bool) -> list[int]:
        live = set(self.live_ports())
        return sorted(n.port for n in self.nodes()
                      if n.is_master == master and not n.failed and n.port in live)

    def masters(self) -> list[int]:
        """Ports of the live nodes that are masters now."""
        return self._roles(master=True)

    def replicas(self) -> list[int]:
        """Ports of the live nodes that are replicas now."""
        return self._roles(master=False)

    def owner(self, slot: int) -> int:
        """Port of the master serving ``slot``, as the first live node sees it."""
        for n in self.nodes():
            if n.is_master and n.serves(slot):
                return n.port
        raise LookupError(f"slot {slot} is not assigned")

    @staticmethod
    def slot_of(key: str | bytes) -> int:
        """The hash slot of ``key`` (CRC16 of the key or its ``{hash tag}``, mod 16384)."""
        return key_slot(key.encode() if isinstance(key, str) else key)

    # --- processes ---
    def _spawn(self, port: int) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH: `make install` installs it")
        d = self.node_dir(port)
        d.mkdir(parents=True, exist_ok=True)
        self._procs[port] = subprocess.Popen(
            [exe, str(REPO / "redis.conf"), "--port", str(port), "--dir", str(d),
             "--logfile", str(d / "redis.log"), "--pidfile", str(d / "redis.pid"),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms), *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=self.daemon)  # own session: Ctrl-C of the caller spares it

    def _wait_ping(self, port: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._client(port).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            if self.pid(port) is None:
                raise RuntimeError(f"redis-server on port {port} exited: see {self.log(port)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not answer within "
                                   f"{timeout} s: see {self.log(port)}")
            time.sleep(0.05)

    def _check_ports(self, ports: list[int]) -> None:
        busy = busy_ports(ports)
        if busy:
            raise RuntimeError(
                f"ports in use or out of range: {', '.join(map(str, busy))} (a node needs its "
                f"port and port + {BUS_OFFSET} for the cluster bus): choose another base port")

    def start(self, timeout: float = 60) -> RedisCluster:
        """Start every node and form the cluster, or, when ``workdir`` holds this cluster
        already (stopped with its data), start its nodes again; then ``wait_healthy``."""
        if self.running():
            raise RuntimeError(f"the cluster in {self.workdir} is running already")
        state = self._state()
        if state is not None and (state["ports"], state["masters"], state["replicas"]) != (
                self.ports, self.master_count, self.replicas_per_master):
            raise RuntimeError(f"{self.workdir} holds another cluster ({state['masters']} "
                               f"masters, {state['replicas']} replicas each, ports "
                               f"{state['ports'][0]}-{state['ports'][-1]}): wipe it or reuse it")
        formed = bool(state and state["formed"])
        self._check_ports(self.ports)
        if not formed:  # a half-made cluster from a failed start: begin again from empty
            for p in self.ports:
                shutil.rmtree(self.node_dir(p), ignore_errors=True)
        self._write_state(formed)
        try:
            for p in self.ports:
                self._spawn(p)
            for p in self.ports:
                self._wait_ping(p)
            if not formed:
                self._create()
                self._write_state(formed=True)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        if self.master_count >= 3:
            cmd = ["redis-cli", "--cluster", "create", *(f"{HOST}:{p}" for p in self.ports),
                   "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{out.stdout}{out.stderr}")
            return
        # redis-cli wants three masters: do what it does by hand. Distinct config epochs
        # first (only allowed while a node knows no other), slots, then the handshake.
        m = self.master_count
        masters, replicas = self.ports[:m], self.ports[m:]
        bounds = [SLOTS * i // m for i in range(m + 1)]
        for i, p in enumerate(masters):
            self._cluster(p, "SET-CONFIG-EPOCH", i + 1)
            self._cluster(p, "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for p in self.ports[1:]:
            self._cluster(self.ports[0], "MEET", HOST, p)
        ids = {p: self._cluster(p, "MYID") for p in masters}
        mine = {p: ids[masters[j % m]] for j, p in enumerate(replicas)}

        def unmet() -> str | None:  # a node still in handshake has a made-up id
            for p, master in mine.items():
                if master not in {n.id for n in self.nodes(p) if not n.failed}:
                    return f"node {p} does not know its master {master} yet"
            return None

        self._wait(unmet, 30, "the nodes to meet")
        for p, master in mine.items():
            self._cluster(p, "REPLICATE", master)

    def _wait(self, problem: Callable[[], str | None], timeout: float, what: str) -> float:
        """Poll ``problem`` (None when all is well) until it is None; the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            try:
                issue = problem()
            except redis.RedisError as e:
                issue = f"{type(e).__name__}: {e}"
            if issue is None:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}: {issue}")
            time.sleep(0.05)

    def _health_problem(self) -> str | None:
        n, masters = len(self.ports), 0
        for p in self.ports:
            where = f"node {HOST}:{p} (log {self.log(p)})"
            if self.pid(p) is None:
                return f"{where} is not running"
            info = self.cluster_info(p)
            for key, want in (("cluster_state", "ok"), ("cluster_slots_ok", str(SLOTS)),
                              ("cluster_known_nodes", str(n))):
                if info.get(key) != want:
                    return f"{where} reports {key}:{info.get(key)}, not {want}"
            repl = self._client(p).info("replication")
            if repl["role"] == "master":
                masters += 1
                online = sum(1 for k, v in repl.items() if k.startswith("slave")
                             and isinstance(v, dict) and v.get("state") == "online")
                if online < self.replicas_per_master:
                    return (f"{where} is a master with {online} of "
                            f"{self.replicas_per_master} replicas online")
            elif repl["master_link_status"] != "up" or repl["master_sync_in_progress"]:
                return (f"{where} is a replica with master_link_status:"
                        f"{repl['master_link_status']}, master_sync_in_progress:"
                        f"{repl['master_sync_in_progress']}")
            # A replica rewrites its AOF right after a full sync and refuses SIGTERM until
            # done ("Writing initial AOF, can't exit"): not settled yet.
            aof = self._client(p).info("persistence")
            if aof["aof_rewrite_in_progress"] or aof["aof_rewrite_scheduled"]:
                return f"{where} is rewriting its AOF"
        if masters != self.master_count:
            return f"{masters} masters, not {self.master_count}"
        return self._views_problem()

    def _views_problem(self) -> str | None:
        """Whether every node sees every other as that one sees itself. Roles spread by gossip
        (a ping to each node within node_timeout / 2): a replica can be up and synced while
        the other masters still list it as an empty master, and a master refuses its
        failover vote to a node it takes for a master."""
        views = {p: self.nodes(p) for p in self.ports}
        own = {n.id: n for view in views.values() for n in view if "myself" in n.flags}
        for p, view in views.items():
            for n in view:
                truth = own.get(n.id)
                if truth is None:
                    return f"node {p} knows a node {n.id} on port {n.port} that is not ours"
                if n.failed or n.link != "connected":
                    return f"node {p} sees {n.port} as {','.join(sorted(n.flags))} {n.link}"
                if (n.is_master, n.master_id, n.slots) != (truth.is_master, truth.master_id,
                                                          truth.slots):
                    return f"node {p} does not see {n.port}'s role and slots as {n.port} does"
        return None

    def wait_healthy(self, timeout: float = 60) -> float:
        """Wait until every node runs and reports ``cluster_state:ok`` with all slots served
        and every node known, there are ``masters`` masters, each with its replicas online,
        every replica's link is up with no sync or AOF rewrite in progress (right after
        creation replicas have not synced: a failover then fails and ``WAIT`` answers 0), and
        every node sees every other's role and slots as that one does. Returns the seconds
        it took."""
        return self._wait(self._health_problem, timeout, "a healthy cluster")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no AOF flush beyond what the OS has)."""
        pid = self.pid(port)
        if pid is None:
            raise RuntimeError(f"no node is running on port {port}")
        os.kill(pid, signal.SIGKILL)
        self._killed_at[port] = time.monotonic()
        self._reap(port, pid, 10)

    def _reap(self, port: int, pid: int, timeout: float) -> bool:
        self._drop_client(port)
        proc = self._procs.get(port)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout  # not our child: its reaper is someone else
        while self.pid(port) == pid:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def restart(self, port: int, timeout: float = 60) -> float:
        """Start the node on ``port`` again on its data directory (its nodes.conf and AOF):
        it rejoins the cluster, a master that was failed over as a replica of its successor.
        Returns the seconds until the whole cluster was healthy again."""
        if self.pid(port) is not None:
            raise RuntimeError(f"the node on port {port} is running")
        self._check_ports([port])
        t0 = time.monotonic()
        self._spawn(port)
        self._wait_ping(port)
        self.wait_healthy(timeout)
        return time.monotonic() - t0

    def wait_promoted(self, dead_port: int, timeout: float = 30) -> float:
        """Wait until no live node assigns a slot to the dead master on ``dead_port`` any more
        and every live node reports ``cluster_state:ok`` (its replica took over). Returns the
        seconds since ``kill(dead_port)`` (since this call if it was not killed here). The
        replica needs the votes of a majority of masters: below three masters none wins."""
        if self.pid(dead_port) is not None:
            raise RuntimeError(f"the node on port {dead_port} is running")
        t0 = self._killed_at.get(dead_port, time.monotonic())

        def problem() -> str | None:
            for p in self.live_ports():
                state = self.cluster_info(p)["cluster_state"]
                if state != "ok":
                    return f"node {p} reports cluster_state:{state}"
                if any(n.port == dead_port and n.slots for n in self.nodes(p)):
                    return f"node {p} still sees slots served by {dead_port}"
            return None

        self._wait(problem, timeout, f"a replica to take over from {dead_port} (replicas: "
                   f"{self.replicas_per_master} a master)")
        return time.monotonic() - t0

    def migrate_slot(self, slot: int, to_port: int, batch: int = 10,
                     pause: float = 0.0) -> int:
        """Move ``slot`` to the master on ``to_port`` the way ``redis-cli --cluster reshard``
        does: IMPORTING on the target, MIGRATING on the source, MIGRATE its keys ``batch`` at
        a time (``pause`` seconds between batches, so that load meets a half-moved slot and
        its ASK and TRYAGAIN answers), then SETSLOT NODE on every master. Returns the keys
        moved."""
        src_port = self.owner(slot)
        if src_port == to_port:
            return 0
        ids = {n.port: n.id for n in self.nodes()}
        src, dst = self._client(src_port), self._client(to_port)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src_port])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to_port])
        moved = 0
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            src.execute_command("MIGRATE", HOST, to_port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if pause:
                time.sleep(pause)
        for port in [to_port, src_port, *(m for m in self.masters()
                                          if m not in (src_port, to_port))]:
            self._client(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
        return moved

    def flushall(self) -> None:
        """FLUSHALL on every master, then WAIT until its replicas have it too."""
        for p in self.masters():
            client = self._client(p)
            client.flushall()
            replicas = int(client.info("replication")["connected_slaves"])
            if replicas:
                client.execute_command("WAIT", replicas, 5000)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client seeded with every live node; ``kwargs`` go to it."""
        nodes = [redis.cluster.ClusterNode(HOST, p) for p in self.live_ports()]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM every node (Redis flushes its AOF and exits) and wait; SIGKILL a node that
        takes longer than ``timeout``. The data stays in ``workdir``."""
        pids = {p: pid for p in self.ports if (pid := self.pid(p)) is not None}
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            # Again every second: a replica writing its first AOF after a sync ignores it.
            for pid in pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            resend = min(time.monotonic() + 1, deadline)
            while pids and time.monotonic() < resend:
                time.sleep(0.02)
                pids = {p: pid for p, pid in pids.items() if self.pid(p) == pid}
        for p, pid in pids.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._reap(p, pid, 5)
        for p in list(self._clients):
            self._drop_client(p)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- a human summary ---
    def describe(self) -> list[str]:
        """One line per node: address, role, slots or master, link state, pid, log."""
        view = {n.port: n for n in self.nodes()} if self.running() else {}
        by_id = {n.id: n.port for n in view.values()}
        lines = []
        for p in self.ports:
            pid, node = self.pid(p), view.get(p)
            if pid is None or node is None:
                lines.append(f"{HOST}:{p}  down      log {self.log(p)}")
                continue
            repl = self._client(p).info("replication")
            if node.is_master:
                online = [str(v.get("port")) for k, v in repl.items() if k.startswith("slave")
                          and isinstance(v, dict) and v.get("state") == "online"]
                what = (f"master   slots {slot_ranges(node.slots):<12}  replicas "
                        f"{','.join(online) or 'none'}")
            else:
                master = by_id.get(node.master_id or "", "?")
                sync = ", syncing" if repl.get("master_sync_in_progress") else ""
                what = f"replica  of {master:<18}  link {repl.get('master_link_status')}{sync}"
            flags = ",".join(sorted(node.flags - {"myself", "master", "slave"}))
            lines.append(f"{HOST}:{p}  {what}  pid {pid}  log {self.log(p)}"
                         + (f"  flags {flags}" if flags else ""))
        return lines


# --- python -m loadtests cluster start|stop|status --------------------------------------------
def add_cluster_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cluster", help="a local Redis Cluster that keeps running (make cluster)",
                       description="start: 3 masters + 3 replicas in var/cluster/ (ports from "
                       "CLUSTER_BASE_PORT, default 7000, and those + 10000), left running; "
                       "prints REDIS_URL. stop: stops them, keeping the data unless --wipe. "
                       "status: roles, slots and links (exit code 1 unless all nodes run).")
    c.add_argument("action", choices=["start", "stop", "status"])
    c.add_argument("--dir", type=Path, default=REPO / "var" / "cluster",
                   help="data and state directory (default var/cluster)")
    env_port = os.environ.get("CLUSTER_BASE_PORT")
    c.add_argument("--base-port", type=int, default=int(env_port) if env_port else None,
                   help="first node's port (default $CLUSTER_BASE_PORT or 7000)")
    c.add_argument("--masters", type=int, help="default 3")
    c.add_argument("--replicas", type=int, help="replicas a master (default 1)")
    c.add_argument("--node-timeout", type=int, default=5000,
                   help="cluster-node-timeout in ms (default 5000)")
    c.add_argument("--wipe", action="store_true", help="stop: remove the data directory too")


def cluster_command(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    known = (workdir / STATE_FILE).exists()
    if args.action == "start":
        if known:
            cluster = RedisCluster.attach(workdir)
            asked = (args.base_port, args.masters, args.replicas)
            have = (cluster.ports[0], cluster.master_count, cluster.replicas_per_master)
            if any(a is not None and a != h for a, h in zip(asked, have, strict=True)):
                print(f"{workdir} holds a cluster of {have[1]} masters, {have[2]} replica(s) "
                      f"each, on ports {cluster.ports[0]}-{cluster.ports[-1]}: start it with "
                      "those, or remove it with `cluster stop --wipe`")
                return 2
            if cluster.running():
                print(f"already running ({workdir}):")
                print("\n".join(cluster.describe()))
                print(f"REDIS_URL={cluster.url}")
                return 0
        else:
            cluster = RedisCluster(workdir, args.masters or 3,
                                   1 if args.replicas is None else args.replicas,
                                   args.base_port or 7000, args.node_timeout, QUICK_SYNC,
                                   daemon=True)
        t0 = time.monotonic()
        try:
            cluster.start()
        except (RuntimeError, TimeoutError) as e:
            print(f"cluster start failed: {e}")
            return 1
        print(f"{cluster.master_count} masters, {cluster.replicas_per_master} replica(s) each, "
              f"healthy in {time.monotonic() - t0:.1f} s (data in {workdir}):")
        print("\n".join(cluster.describe()))
        print(f"REDIS_URL={cluster.url}")
        return 0
    if not known:
        print(f"no cluster in {workdir}")
        return 0 if args.action == "stop" else 1
    cluster = RedisCluster.attach(workdir)
    if args.action == "status":
        if not cluster.running():
            print(f"not running (data in {workdir}; `cluster start` starts it again)")
            return 1
        info = cluster.cluster_info(cluster.live_ports()[0])
        print(f"cluster_state:{info['cluster_state']} cluster_slots_ok:"
              f"{info['cluster_slots_ok']} known nodes {info['cluster_known_nodes']}")
        print("\n".join(cluster.describe()))
        print(f"REDIS_URL={cluster.url}")
        return 0 if len(cluster.live_ports()) == len(cluster.ports) else 1
    running = len(cluster.live_ports())
    cluster.stop()
    print(f"stopped {running} node(s)" if running else "not running")
    if args.wipe:
        shutil.rmtree(workdir)
        print(f"removed {workdir}")
    else:
        print(f"data kept in {workdir} (--wipe removes it)")
    return 0
