"""``make bench-cluster``: what more masters buy, on this box.

1. **A multi-concert mix** (status, seats and dates of 30 concerts in turn, point reads and
   charges of 10,000 customers) under wrk against the API on a one-master and on a
   three-master cluster, in the same run: req/s, p99, and the Redis CPU of each master.
2. **The background tick of 1,000 concerts on 3 masters with 4 workers** (4 stores in one
   process, each running the API's tick loop): how often each concert is ticked, and the
   Redis CPU it costs, with each concert's lease (one tick a period in all) and without it
   (every worker ticking every concert, as before).

Writes loadtests/results/cluster.md. Everything on 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from devstack.api_server import Uvicorn
from devstack.cluster_nodes import QUICK_SYNC
from devstack.cpu import cpu_seconds
from devstack.demo_stack import issue_tokens, seed
from devstack.local_cluster import LocalCluster
from engine import queue, tick
from engine.config import Settings
from engine.keys import concert_keys
from engine.seed import Option, Seat, create_concert
from engine.store import Store, connect
from engine.sync import sync_client
from loadtests.http_bench.wrk import endpoint_run
from loadtests.reporting import bench_report, publish

MIX_CONCERTS = 30


def concerts(url: str, ids: range, seats: int) -> None:
    r = sync_client(url)
    for c in ids:
        create_concert(r, c, f"Concert {c}", [Option(c * 10, "2027-05-01T19:00:00+09:00", tuple(
            Seat(c * 100_000 + n, n, 100) for n in range(1, seats + 1)))])
    r.close()


def mix_tokens(url: str, ids: range) -> Path:
    """A file of ``concert option token`` lines, an ACTIVE token for each concert."""
    tokens = issue_tokens(url, [(7, c) for c in ids], active_limit=10**6)
    path = Path(tempfile.mkstemp(prefix="bench-mix-", suffix=".txt")[1])
    path.write_text("".join(f"{c} {c * 10} {t}\n" for c, t in zip(ids, tokens, strict=True)))
    return path


def mix_run(masters: int, tmp: Path, seconds: float, connections: int, workers: int) -> str:
    with LocalCluster(tmp / f"mix{masters}", masters=masters, replicas=0,
                      extra=QUICK_SYNC) as cluster:
        seed(cluster.url)
        ids = range(100, 100 + MIX_CONCERTS)
        concerts(cluster.url, ids, 200)
        mix = mix_tokens(cluster.url, ids)
        env = {"REDIS_URL": cluster.url, "ACTIVE_TTL_SECONDS": "3600"}
        with Uvicorn("api.app:app", env, workers=workers) as api:
            pids = {p: cluster.pid(p) for p in cluster.masters()}
            endpoint_run(api.base, "point", 1, connections, {}, api.pids(), list(pids.values()))
            per_master = {p: cpu_seconds([pid]) for p, pid in pids.items()}
            t0 = time.monotonic()
            run = endpoint_run(api.base, "mix", seconds, connections, {"BENCH_MIX": str(mix)},
                      api.pids(), list(pids.values()))
            wall = time.monotonic() - t0
            cpu = {p: (cpu_seconds([pid]) - per_master[p]) / wall for p, pid in pids.items()}
        mix.unlink()
    shares = ", ".join(f"{p}: {c:.0%}" for p, c in sorted(cpu.items()))
    return (f"| {masters} | {run.rps:,.0f} | {run.p99_ms:.2f} | {run.non2xx} | "
            f"{run.server_cpu:.0%} | {sum(cpu.values()):.0%} ({shares}) |")


async def tick_workers(url: str, workers: int, seconds: float, lease: bool) -> int:
    """``workers`` stores running the tick loop for ``seconds``: ticks done in all."""
    settings = replace(Settings.from_env(), redis_url=url, tick_seconds=1.0)
    stores = [Store(connect(settings), settings) for _ in range(workers)]
    done = 0

    async def loop(store: Store) -> None:
        nonlocal done
        await asyncio.sleep(random.uniform(0, 1))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            if lease:
                done += await tick.tick_all(store)
            else:  # as before the lease: every worker ticks every concert
                ids = await queue.concerts(store)
                await asyncio.gather(*(tick.tick(store, c) for c in ids))
                done += len(ids)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    await asyncio.gather(*(loop(s) for s in stores))
    for s in stores:
        await s.aclose()
    return done


def tick_run(tmp: Path, n_concerts: int, workers: int, seconds: float) -> list[str]:
    rows = []
    with LocalCluster(tmp / "tick", masters=3, replicas=0, extra=QUICK_SYNC) as cluster:
        concerts(cluster.url, range(1, n_concerts + 1), 10)
        r = sync_client(cluster.url)
        spread: dict[int, int] = {}
        for c in range(1, n_concerts + 1):
            port = r.get_node_from_key(concert_keys(c).concert).port
            spread[port] = spread.get(port, 0) + 1
        pids = [cluster.pid(p) for p in cluster.masters()]
        c0, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(min(seconds, 5))  # the masters' own idle work (cron, cluster bus)
        idle = (cpu_seconds(pids) - c0) / (time.monotonic() - t0)
        for lease in (True, False):
            c0, t0 = cpu_seconds(pids), time.monotonic()
            done = asyncio.run(tick_workers(cluster.url, workers, seconds, lease))
            wall = time.monotonic() - t0
            cpu = cpu_seconds(pids) - c0 - idle * wall
            rows.append(f"| {'lease (now)' if lease else 'every worker (before)'} | "
                        f"{done / n_concerts / wall:.2f} | {cpu / wall:.1%} | "
                        f"{cpu / done * 1e6:.0f} |")
        r.close()
    where = ", ".join(f"{p}: {n}" for p, n in sorted(spread.items()))
    rows.append(f"\nRedis CPU net of the masters' idle {idle:.1%}; concerts per master: {where}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="each wrk run and tick run")
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="API workers")
    p.add_argument("--concerts", type=int, default=1000, help="for the tick")
    p.add_argument("--tick-workers", type=int, default=4)
    args = p.parse_args(argv)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        print("multi-concert mix ...", flush=True)
        rows = [mix_run(m, Path(tmp), args.seconds, args.connections, args.workers)
                for m in (1, 3)]
        out += [f"### A mix over {MIX_CONCERTS} concerts and 10,000 customers ({args.workers} "
                f"API workers, wrk -t1 -c{args.connections}, {args.seconds:g} s)\n",
                "| masters | req/s | p99 ms | non-2xx | API CPU | Redis CPU (per master) |",
                "|---:|---:|---:|---:|---:|---|", *rows, ""]
        print("tick ...", flush=True)
        out += [f"### The tick: {args.concerts:,} concerts, 3 masters, {args.tick_workers} "
                f"workers, {args.seconds:g} s\n",
                "| who ticks | ticks per concert per second | Redis CPU (3 masters) | "
                "Redis µs per tick |", "|---|---:|---:|---:|",
                *tick_run(Path(tmp), args.concerts, args.tick_workers, args.seconds), ""]
    publish(bench_report("Cluster benchmark", "\n".join(out)), "cluster.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
