"""The nodes of a local Redis Cluster (``local_cluster.py`` forms them into one): their
ports, data directories and state file, their processes (start, SIGKILL, reap, stop), a client
per node, and what ``CLUSTER NODES`` and ``CLUSTER INFO`` say of them. Every node listens on
127.0.0.1 only (redis.conf's ``bind``).

``daemon=True`` leaves the nodes running after this process exits (``make cluster``); a later
process finds them again from the state file with ``LocalCluster.attach(workdir)``.
"""

from __future__ import annotations

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
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from devstack import REPO

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


# --- the nodes ---------------------------------------------------------------------------------
class ClusterNodes:
    """The nodes of a local Redis Cluster of ``masters`` masters with ``replicas`` replicas
    each (``LocalCluster`` forms them and waits for them).

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
        self.killed_at: dict[int, float] = {}

    @classmethod
    def attach(cls, workdir: Path) -> Self:
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

    def pids(self) -> list[int]:
        """The pids of the nodes that run."""
        return [pid for p in self.ports if (pid := self.pid(p)) is not None]

    def live_ports(self) -> list[int]:
        return [p for p in self.ports if self.pid(p) is not None]

    def running(self) -> bool:
        return bool(self.live_ports())

    # --- state file ---
    def read_state(self) -> dict | None:
        try:
            return json.loads((self.workdir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def write_state(self, formed: bool) -> None:
        state = {"masters": self.master_count, "replicas": self.replicas_per_master,
                 "ports": self.ports, "node_timeout_ms": self.node_timeout_ms,
                 "extra": list(self.extra), "daemon": self.daemon, "formed": formed}
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")

    # --- talking to one node ---
    def node_client(self, port: int) -> redis.Redis:
        if port not in self._clients:
            # No retries: a dead node should fail the poll at once, not after backoffs.
            self._clients[port] = redis.Redis(host=HOST, port=port, socket_timeout=2,
                                              socket_connect_timeout=1, decode_responses=True,
                                              retry=Retry(NoBackoff(), 0))
        return self._clients[port]

    def drop_client(self, port: int) -> None:
        client = self._clients.pop(port, None)
        if client is not None:
            client.close()

    def cluster_cmd(self, port: int, sub: str, *args: object) -> str:
        # "CLUSTER" and the subcommand as two arguments: redis-py keys its reply parsers by
        # the first one, so this returns Redis's own text.
        return self.node_client(port).execute_command("CLUSTER", sub, *args)

    def cluster_info(self, port: int) -> dict[str, str]:
        """``CLUSTER INFO`` of the node on ``port``, values as Redis writes them."""
        text = self.cluster_cmd(port, "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def nodes(self, port: int | None = None) -> list[Node]:
        """``CLUSTER NODES`` as seen by the node on ``port`` (default: the first live one)."""
        if port is None:
            live = self.live_ports()
            if not live:
                raise RuntimeError(f"no node of the cluster in {self.workdir} is running")
            port = live[0]
        return [Node.parse(line) for line in self.cluster_cmd(port, "NODES").splitlines() if line]

    # --- roles and slots (read now: a failover changes them) ---
    def roles(self, master: bool) -> list[int]:
        live = set(self.live_ports())
        return sorted(n.port for n in self.nodes()
                      if n.is_master == master and not n.failed and n.port in live)

    def masters(self) -> list[int]:
        """Ports of the live nodes that are masters now."""
        return self.roles(master=True)

    def replicas(self) -> list[int]:
        """Ports of the live nodes that are replicas now."""
        return self.roles(master=False)

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
    def spawn(self, port: int) -> None:
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

    def wait_ping(self, port: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.node_client(port).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            if self.pid(port) is None:
                raise RuntimeError(f"redis-server on port {port} exited: see {self.log(port)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not answer within "
                                   f"{timeout} s: see {self.log(port)}")
            time.sleep(0.05)

    def check_ports(self, ports: list[int]) -> None:
        busy = busy_ports(ports)
        if busy:
            raise RuntimeError(
                f"ports in use or out of range: {', '.join(map(str, busy))} (a node needs its "
                f"port and port + {BUS_OFFSET} for the cluster bus): choose another base port")

    def wait_for(self, problem: Callable[[], str | None], timeout: float, what: str) -> float:
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

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no AOF flush beyond what the OS has)."""
        pid = self.pid(port)
        if pid is None:
            raise RuntimeError(f"no node is running on port {port}")
        os.kill(pid, signal.SIGKILL)
        self.killed_at[port] = time.monotonic()
        self.reap(port, pid, 10)

    def reap(self, port: int, pid: int, timeout: float) -> bool:
        self.drop_client(port)
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
            self.reap(p, pid, 5)
        for p in list(self._clients):
            self.drop_client(p)

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
            repl = self.node_client(p).info("replication")
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
