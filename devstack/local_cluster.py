"""A local Redis Cluster for tests and benchmarks: ``masters * (1 + replicas)`` redis-server
processes from the repo's redis.conf (``cluster_nodes.py``: ports, data directories, state
file, processes), formed with ``redis-cli --cluster create`` (by hand below three masters,
which redis-cli refuses), then waited for until healthy; and the faults the tests inject: a
node killed and restarted, a replica's promotion, a slot migrated. ``python -m devstack
cluster start|stop|status`` is the command line (``devstack/cli.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import redis
import redis.cluster

from devstack.cluster_nodes import HOST, SLOTS, ClusterNodes


class LocalCluster(ClusterNodes):
    """A local Redis Cluster: its nodes (``ClusterNodes``, which takes the parameters) formed
    into one, waited for until healthy, and the faults the tests inject."""

    def start(self, timeout: float = 60) -> LocalCluster:
        """Start every node and form the cluster, or, when ``workdir`` holds this cluster
        already (stopped with its data), start its nodes again; then ``wait_healthy``."""
        if self.running():
            raise RuntimeError(f"the cluster in {self.workdir} is running already")
        state = self.read_state()
        if state is not None and (state["ports"], state["masters"], state["replicas"]) != (
                self.ports, self.master_count, self.replicas_per_master):
            raise RuntimeError(f"{self.workdir} holds another cluster ({state['masters']} "
                               f"masters, {state['replicas']} replicas each, ports "
                               f"{state['ports'][0]}-{state['ports'][-1]}): wipe it or reuse it")
        formed = bool(state and state["formed"])
        self.check_ports(self.ports)
        if not formed:  # a half-made cluster from a failed start: begin again from empty
            for p in self.ports:
                shutil.rmtree(self.node_dir(p), ignore_errors=True)
        self.write_state(formed)
        try:
            for p in self.ports:
                self.spawn(p)
            for p in self.ports:
                self.wait_ping(p)
            if not formed:
                self._create()
                self.write_state(formed=True)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        if self.master_count >= 3:
            exe = shutil.which("redis-cli")
            if exe is None:
                raise RuntimeError("redis-cli is not on PATH: `make install` installs Redis")
            cmd = [exe, "--cluster", "create", *(f"{HOST}:{p}" for p in self.ports),
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
            self.cluster_cmd(p, "SET-CONFIG-EPOCH", i + 1)
            self.cluster_cmd(p, "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for p in self.ports[1:]:
            self.cluster_cmd(self.ports[0], "MEET", HOST, p)
        ids = {p: self.cluster_cmd(p, "MYID") for p in masters}
        mine = {p: ids[masters[j % m]] for j, p in enumerate(replicas)}

        def unmet() -> str | None:  # a node still in handshake has a made-up id
            for p, master in mine.items():
                if master not in {n.id for n in self.nodes(p) if not n.failed}:
                    return f"node {p} does not know its master {master} yet"
            return None

        self.wait_for(unmet, 30, "the nodes to meet")
        for p, master in mine.items():
            self.cluster_cmd(p, "REPLICATE", master)

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
            repl = self.node_client(p).info("replication")
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
            aof = self.node_client(p).info("persistence")
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
        return self.wait_for(self._health_problem, timeout, "a healthy cluster")

    def restart(self, port: int, timeout: float = 60) -> float:
        """Start the node on ``port`` again on its data directory (its nodes.conf and AOF):
        it rejoins the cluster, a master that was failed over as a replica of its successor.
        Returns the seconds until the whole cluster was healthy again."""
        if self.pid(port) is not None:
            raise RuntimeError(f"the node on port {port} is running")
        self.check_ports([port])
        t0 = time.monotonic()
        self.spawn(port)
        self.wait_ping(port)
        self.wait_healthy(timeout)
        return time.monotonic() - t0

    def wait_promoted(self, dead_port: int, timeout: float = 30) -> float:
        """Wait until no live node assigns a slot to the dead master on ``dead_port`` any more
        and every live node reports ``cluster_state:ok`` (its replica took over). Returns the
        seconds since ``kill(dead_port)`` (since this call if it was not killed here). The
        replica needs the votes of a majority of masters: below three masters none wins."""
        if self.pid(dead_port) is not None:
            raise RuntimeError(f"the node on port {dead_port} is running")
        t0 = self.killed_at.get(dead_port, time.monotonic())

        def problem() -> str | None:
            for p in self.live_ports():
                state = self.cluster_info(p)["cluster_state"]
                if state != "ok":
                    return f"node {p} reports cluster_state:{state}"
                if any(n.port == dead_port and n.slots for n in self.nodes(p)):
                    return f"node {p} still sees slots served by {dead_port}"
            return None

        self.wait_for(problem, timeout, f"a replica to take over from {dead_port} (replicas: "
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
        src, dst = self.node_client(src_port), self.node_client(to_port)
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
            self.node_client(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
        return moved

    def flushall(self) -> None:
        """FLUSHALL on every master, then WAIT until its replicas have it too."""
        for p in self.masters():
            client = self.node_client(p)
            client.flushall()
            replicas = int(client.info("replication")["connected_slaves"])
            if replicas:
                client.execute_command("WAIT", replicas, 5000)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client seeded with every live node; ``kwargs`` go to it."""
        nodes = [redis.cluster.ClusterNode(HOST, p) for p in self.live_ports()]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
