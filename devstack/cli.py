"""``python -m devstack cluster start|stop|status``: the local Redis Cluster of ``make
cluster`` (3 masters + 3 replicas in var/cluster/, left running in the background)."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from devstack import REPO
from devstack.cluster_nodes import QUICK_SYNC, STATE_FILE
from devstack.local_cluster import LocalCluster


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
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
    return p


def show(cluster: LocalCluster) -> None:
    print("\n".join(cluster.describe()))
    print(f"REDIS_URL={cluster.url}")


def start(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    if (workdir / STATE_FILE).exists():
        cluster = LocalCluster.attach(workdir)
        asked = (args.base_port, args.masters, args.replicas)
        have = (cluster.ports[0], cluster.master_count, cluster.replicas_per_master)
        if any(a is not None and a != h for a, h in zip(asked, have, strict=True)):
            print(f"{workdir} holds a cluster of {have[1]} masters, {have[2]} replica(s) "
                  f"each, on ports {cluster.ports[0]}-{cluster.ports[-1]}: start it with "
                  "those, or remove it with `cluster stop --wipe`")
            return 2
        if cluster.running():
            print(f"already running ({workdir}):")
            show(cluster)
            return 0
    else:
        cluster = LocalCluster(workdir, args.masters or 3,
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
    show(cluster)
    return 0


def status(cluster: LocalCluster) -> int:
    if not cluster.running():
        print(f"not running (data in {cluster.workdir}; `cluster start` starts it again)")
        return 1
    info = cluster.cluster_info(cluster.live_ports()[0])
    print(f"cluster_state:{info['cluster_state']} cluster_slots_ok:"
          f"{info['cluster_slots_ok']} known nodes {info['cluster_known_nodes']}")
    show(cluster)
    return 0 if len(cluster.live_ports()) == len(cluster.ports) else 1


def stop(cluster: LocalCluster, wipe: bool) -> int:
    running = len(cluster.live_ports())
    cluster.stop()
    print(f"stopped {running} node(s)" if running else "not running")
    if wipe:
        shutil.rmtree(cluster.workdir)
        print(f"removed {cluster.workdir}")
    else:
        print(f"data kept in {cluster.workdir} (--wipe removes it)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "start":
        return start(args)
    if not (args.dir / STATE_FILE).exists():
        print(f"no cluster in {args.dir}")
        return 0 if args.action == "stop" else 1
    cluster = LocalCluster.attach(args.dir)
    return status(cluster) if args.action == "status" else stop(cluster, args.wipe)

