"""``make bench-overload``: one API worker offered about twice what it serves, with Guard's
MAX_IN_FLIGHT bound on and off, under each server, in one run.

1. **Capacity**: wrk ``-c64`` on the endpoint (a point read, or ``--endpoint status``) with
   the bound off: req/s (X) and p99, the "unloaded" figures of ``make bench-endpoints``;
   and a light load (the probe alone, ~800 req/s) for its p99.
2. **Twice that**: ``--connections`` wrk connections (2,048: many more than MAX_IN_FLIGHT),
   each a user that sends a request, waits for the answer, thinks and sends the next
   (``wrk/overload.lua``), the think time ``connections / (factor x X)`` so that, answered at
   once, they would send ``factor x X`` req/s. Two kinds of users: ones that wait out a 503's
   Retry-After (as the booking page does) and ones that come back after their think time
   regardless. Beside wrk, a probe (``rawclient.py``: 16 users, 800 req/s, never backing
   off, so that it meets 503s as often as anyone) times each answer *by status*: wrk cannot
   tell a served request's latency from a shed one's. Without the bound every user waits
   behind all the others (about connections / X); with it a served request waits behind at
   most MAX_IN_FLIGHT (about MAX_IN_FLIGHT / X).

Each server has two API processes, bound off (MAX_IN_FLIGHT=0) and on, measured one after
the other, interleaved. With two cores or more the API runs on CPU 0 alone and wrk, the
probe and Redis on the others (``--no-pin`` shares them: then wrk's CPU is the API's loss).
Writes loadtests/results/overload.md. All on 127.0.0.1, bounded in time; other work on the
machine shows as noise (the 'machine' cores), so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from devstack import REPO
from devstack.api_server import SERVER_CLASSES, Server, server, server_kinds
from devstack.demo_stack import demo_redis, issue_tokens
from engine.config import Settings
from loadtests.http_bench.wrk import ENDPOINT_LUA, OVERLOAD_LUA, WrkRun, run_wrk, wrk_missing
from loadtests.reporting import bench_report, publish

PATHS = {"point": "/api/point?customerId=7", "status": "/api/token/status"}
# wrk scans all its timers (one per user thinking) on every turn of its loop: two threads
# halve that work.
WRK_THREADS = 2


class PinnedServer(Server):
    """A server held to some CPUs (``taskset``), away from the load generator's."""

    def __init__(self, kind: str, app: str, env: dict[str, str], cpus: str) -> None:
        super().__init__(app, env)
        self.kind, self.cpus = kind, cpus

    def command(self) -> list[str]:
        return ["taskset", "-c", self.cpus, *super().command()]


def overload_run(api: Server, script: Path, connections: int, seconds: float,
                 env: dict[str, str]) -> WrkRun:
    return run_wrk(api.base, script, connections, seconds, env, api.all_pids(),
                   threads=WRK_THREADS, timeout="10s")


def start_probe(api: Server, endpoint: str, token: str, seconds: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "loadtests.http_bench.rawclient", "probe", "--port",
           str(api.port), "--path", PATHS[endpoint], "--token", token, "--seconds", f"{seconds:g}"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)


def read_probe(proc: subprocess.Popen) -> tuple[dict[str, dict[str, float]], int]:
    out, _ = proc.communicate(timeout=60)
    d = json.loads(out.strip().splitlines()[-1])
    return d["statuses"], d["errors"]


def fmt_probe(p: dict[str, dict[str, float]], status: str) -> str:
    s = p.get(status)
    return f"{s['p50_ms']:.2f} · {s['p99_ms']:.2f}" if s else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=server_kinds, default=list(SERVER_CLASSES))
    p.add_argument("--endpoint", choices=list(PATHS), default="point")
    p.add_argument("--limit", type=int, default=Settings().max_in_flight,
                   help="MAX_IN_FLIGHT of the bounded process (default: the setting's)")
    p.add_argument("--factor", type=float, default=2.0, help="offered load / capacity")
    p.add_argument("--connections", type=int, default=2048, help="wrk's users")
    p.add_argument("--think-ms", type=int,
                   help="each user's think time (default: what makes the offered load "
                        "--factor x capacity; 0: none, every user always waiting)")
    p.add_argument("--seconds", type=float, default=5.0, help="each run")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction,
                   default=(os.cpu_count() or 1) >= 2,
                   help="the API on CPU 0, wrk, the probe and Redis on the others (default on "
                        "with 2+ cores: else wrk takes the API's CPU and the server looks slow)")
    args = p.parse_args(argv)
    if wrk_missing():
        return 2
    servers = args.servers
    env = {"ACTIVE_TTL_SECONDS": "3600", "TICK_SECONDS": "1"}
    out: list[str] = []
    if args.pin:
        others = set(range(1, os.cpu_count() or 2))
        os.sched_setaffinity(0, others)  # wrk, the probe and Redis inherit it
    with contextlib.ExitStack() as stack:
        rs = stack.enter_context(demo_redis(prefix="bench-overload-"))
        (token,) = issue_tokens(rs.url, [(1, 2)])  # ACTIVE: for the status poll
        wenv = {"BENCH_MODE": args.endpoint, "BENCH_TOKEN": token}
        apis: dict[tuple[str, str], Server] = {}
        for k in servers:
            for bound, limit in (("off", 0), ("on", args.limit)):
                api_env = {**env, "REDIS_URL": rs.url, "MAX_IN_FLIGHT": str(limit)}
                apis[(k, bound)] = stack.enter_context(
                    PinnedServer(k, "api.app:app", api_env, "0") if args.pin
                    else server(k, "api.app:app", api_env))
        for api in apis.values():  # warm up
            overload_run(api, ENDPOINT_LUA, 64, 1, wenv)
        print("capacity ...", flush=True)
        cap: dict[tuple[str, str], WrkRun] = {}
        light: dict[str, dict[str, dict[str, float]]] = {}
        for k in servers:
            for bound in ("off", "on"):
                cap[(k, bound)] = overload_run(apis[(k, bound)], ENDPOINT_LUA, 64, args.seconds,
                                               wenv)
            light[k] = read_probe(start_probe(apis[(k, "on")], args.endpoint, token, 3))[0]
        lines = ["| server | req/s at -c64, bound off · on | p99 ms at -c64, off · on | "
                 "p99 ms at ~800 req/s (probe) | cores at -c64: server · machine |",
                 "|---|---:|---:|---:|---:|"]
        for k in servers:
            off, on = cap[(k, "off")], cap[(k, "on")]
            lines.append(f"| {k} | {off.rps:,.0f} · {on.rps:,.0f} | {off.p99_ms:.2f} · "
                         f"{on.p99_ms:.2f} | {fmt_probe(light[k], '200')} (p50 · p99) | "
                         f"{off.server_cpu:.2f} · {off.machine_cpu:.2f} |")
        out.append(f"### Capacity of one worker ({args.endpoint}, wrk -t{WRK_THREADS} -c64, "
                   f"{args.seconds:g} s)\n\n" + "\n".join(lines) + "\n")
        for honor in (True, False):
            who = ("users who wait out a 503's Retry-After" if honor else
                   "users who come back after their think time, 503 or not")
            print(f"twice capacity, {who} ...", flush=True)
            lines = ["| server | MAX_IN_FLIGHT | think ms | answered req/s | 200/s | "
                     "503/s | 200 p50 · p99 ms (probe) | 200 p99 x unloaded p99 | "
                     "503 p50 · p99 ms (probe) | all answers p99 ms (wrk) | cores: server · wrk "
                     "· machine | errors |",
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for k in servers:
                # The less disturbed of the two -c64 runs (other work only slows a run down).
                x = max(cap[(k, "off")].rps, cap[(k, "on")].rps)
                think = (args.think_ms if args.think_ms is not None else
                         max(1, round(args.connections / (args.factor * x) * 1000)))
                conns = args.connections
                unloaded = min(cap[(k, "off")].p99_ms, cap[(k, "on")].p99_ms)
                for bound in ("off", "on"):
                    api = apis[(k, bound)]
                    prober = start_probe(api, args.endpoint, token, args.seconds - 1)
                    time.sleep(0.3)
                    load = overload_run(api, OVERLOAD_LUA, conns, args.seconds, {
                        **wenv, "BENCH_THINK_MS": str(think),
                        "BENCH_HONOR_RETRY": "1" if honor else "0"})
                    probe, probe_errors = read_probe(prober)
                    served = probe.get("200")
                    ratio = f"{served['p99_ms'] / unloaded:.1f}" if served else "-"
                    limit = "off" if bound == "off" else f"{args.limit}"
                    lines.append(
                        f"| {k} | {limit} | {think} | {load.rps:,.0f} | "
                        f"{load.per_second('200'):,.0f} | {load.per_second('503'):,.0f} | "
                        f"{fmt_probe(probe, '200')} | {ratio} | "
                        f"{fmt_probe(probe, '503')} | {load.p99_ms:.1f} | "
                        f"{load.server_cpu:.2f} · {load.wrk_cpu:.2f} · {load.machine_cpu:.2f} | "
                        f"{load.socket_errors + probe_errors} |")
            out.append(f"### {args.factor:g}x capacity: {args.connections:,} {who} "
                       f"({args.seconds:g} s)\n\n" + "\n".join(lines) + "\n")
    note = (". 'unloaded p99': the lower of the two -c64 p99s. "
            + ("The API ran on CPU 0 alone; wrk, the probe and Redis on the rest. "
               if args.pin else "Nothing pinned: wrk shares the API's CPUs. ")
            + "Other work on the machine shows in 'others' (cores).")
    publish(bench_report("Overload benchmark", "\n".join(out), note), "overload.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
