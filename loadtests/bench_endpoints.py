"""``make bench-endpoints``: each API endpoint under wrk on each backend, in one run, every
figure beside a bare Starlette hello measured right next to it (hello, the endpoint on every
backend, hello, the next endpoint, ...).

Backends (``--backends``): ``single`` (one redis-server), ``cluster1`` (a one-master cluster:
the cost of cluster routing alone), ``cluster3`` and ``cluster3-wait1`` (three masters with a
replica each; the second acknowledges a change once a replica has it). Each backend has its
own uvicorn worker (uvloop, httptools) and fresh data for the write endpoints. Prints a table
and writes it to loadtests/results/endpoints.md. Everything targets 127.0.0.1 and stops by
itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine import booking, queue
from engine.config import Settings
from engine.ids import parse_token
from engine.seed import Option, Seat, create_concert, fund_customers, seed_demo
from engine.store import Store, connect
from engine.sync import sync_client
from loadtests.cluster import QUICK_SYNC, RedisCluster
from loadtests.stack import REPO, RedisServer, Uvicorn, cpu_seconds

WRK_SCRIPT = REPO / "loadtests" / "wrk" / "endpoint.lua"
RESULTS = REPO / "loadtests" / "results"
SEATS_PER_OPTION = 1000
ENDPOINTS = ["issue", "status", "dates", "seats", "point", "charge", "reserve", "pay"]
LABELS = {
    "issue": "POST /api/token/issue", "status": "GET /api/token/status",
    "dates": "GET /api/2/available-dates", "seats": "GET /api/41150/available-seats",
    "point": "GET /api/point", "charge": "PATCH /api/point/charge",
    "reserve": "POST /api/reserve", "pay": "POST /api/pay", "hello": "hello (baseline)",
}
BACKENDS = ["single", "cluster1", "cluster3", "cluster3-wait1"]
TITLES = {"single": "single node", "cluster1": "cluster, 1 master",
          "cluster3": "cluster, 3 masters", "cluster3-wait1": "3 masters, WAIT 1"}


@dataclass
class Run:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    server_cpu: float  # fraction of one core used by the server process(es)
    redis_cpu: float  # fraction of one core used by the Redis processes (all nodes)


def wrk(url: str, mode: str, seconds: float, connections: int, env: dict[str, str],
        server_pids: list[int], redis_pids: list[int]) -> Run:
    cpu0, rcpu0, t0 = cpu_seconds(server_pids), cpu_seconds(redis_pids), time.monotonic()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(WRK_SCRIPT),
         url],
        capture_output=True, text=True, env={**os.environ, "BENCH_MODE": mode, **env},
        timeout=seconds + 60, check=True,
    )
    wall = time.monotonic() - t0
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    d = json.loads(line)
    return Run(
        name=mode, rps=d["requests"] / (d["duration_us"] / 1e6),
        p50_ms=d["p50_us"] / 1000, p99_ms=d["p99_us"] / 1000, max_ms=d["max_us"] / 1000,
        requests=d["requests"], non2xx=d["non2xx"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        server_cpu=(cpu_seconds(server_pids) - cpu0) / wall,
        redis_cpu=(cpu_seconds(redis_pids) - rcpu0) / wall,
    )


@dataclass
class Backend:
    """One backend under test: its Redis, its data and its API worker."""

    name: str
    index: int  # keeps the data of backends that share a Redis apart
    url: str = ""
    redis_pids: list[int] = field(default_factory=list)
    prep: dict[str, str] = field(default_factory=dict)
    api: Uvicorn | None = None

    @property
    def concert(self) -> int:
        return 9 + self.index  # reserve and pay run on a big concert of their own

    @property
    def customers(self) -> tuple[int, int]:
        return 900_001 + 2 * self.index, 900_002 + 2 * self.index

    @property
    def issue_start(self) -> int:
        return 1_000_000 * (self.index + 1)  # fresh customers: every issue a new token

    def env(self, mode: str) -> dict[str, str]:
        env = {"BENCH_SEATS_PER_OPTION": str(SEATS_PER_OPTION)}
        if mode in ("status", "dates", "seats"):
            env["BENCH_TOKEN"] = self.prep["status"]
        elif mode == "reserve":
            env |= {"BENCH_TOKEN": self.prep["reserve"], "BENCH_CONCERT": str(self.concert)}
        elif mode == "pay":
            env |= {"BENCH_TOKEN": self.prep["pay"], "BENCH_IDS": self.prep["ids"]}
        elif mode == "issue":
            env["BENCH_START"] = str(self.issue_start)
        return env


def prepare(b: Backend, pay_holds: int, reserve_seats: int) -> None:
    """Demo data plus the backend's big concert for reserve/pay, its tokens, and the holds
    that pay will pay."""
    r = sync_client(b.url)
    seed_demo(r)
    options = -(-(reserve_seats + pay_holds) // SEATS_PER_OPTION)
    create_concert(r, b.concert, "Bench Concert", [
        Option(o, "2027-06-01T19:00:00+09:00", tuple(
            Seat(o * SEATS_PER_OPTION + n, n, 100) for n in range(1, SEATS_PER_OPTION + 1)))
        for o in range(1, options + 1)
    ])
    reserve_customer, pay_customer = b.customers
    fund_customers(r, reserve_customer, pay_customer, 10**11 * 100)
    r.close()
    settings = replace(Settings.from_env(), redis_url=b.url, redis_command_timeout=30,
                       redis_connect_timeout=10)
    pay_first_option = -(-reserve_seats // SEATS_PER_OPTION) + 1

    async def go() -> dict[str, str]:
        store = Store(connect(settings), settings)
        status_tok = (await queue.issue_token(store, 1, 2))["tokenValue"]
        reserve_tok = (await queue.issue_token(store, reserve_customer, b.concert))[
            "tokenValue"]
        pay_tok = (await queue.issue_token(store, pay_customer, b.concert))["tokenValue"]
        tok = parse_token(pay_tok)
        ids: list[str] = []
        for lo in range(0, pay_holds, 500):
            batch = [
                booking.reserve(store, tok, o, o * SEATS_PER_OPTION + n)
                for i in range(lo, min(lo + 500, pay_holds))
                for o, n in [(pay_first_option + i // SEATS_PER_OPTION, i % SEATS_PER_OPTION + 1)]
            ]
            ids += [h["reservationId"] for h in await asyncio.gather(*batch)]
        await store.aclose()
        ids_file = Path(tempfile.mkstemp(prefix="bench-pay-", suffix=".txt")[1])
        ids_file.write_text("\n".join(ids) + "\n")
        return {"status": status_tok, "reserve": reserve_tok, "pay": pay_tok,
                "ids": str(ids_file)}

    b.prep = asyncio.run(go())


def start_backends(names: list[str], tmp: Path, stack: contextlib.ExitStack) -> list[Backend]:
    """The Redis deployments the backends need (the two 3-master ones share one cluster)."""
    backends = [Backend(name, i) for i, name in enumerate(names)]
    single = cluster1 = cluster3 = None
    for sub in ("single", "cluster1", "cluster3"):
        (tmp / sub).mkdir()
    for b in backends:
        if b.name == "single":
            single = single or stack.enter_context(RedisServer(tmp / "single"))
            b.url, b.redis_pids = single.url, [single.proc.pid]
        elif b.name == "cluster1":
            cluster1 = cluster1 or stack.enter_context(RedisCluster(
                tmp / "cluster1", masters=1, replicas=0, extra=QUICK_SYNC))
            b.url, b.redis_pids = cluster1.url, [cluster1.pid(p) for p in cluster1.ports]
        else:
            cluster3 = cluster3 or stack.enter_context(RedisCluster(
                tmp / "cluster3", masters=3, replicas=1, extra=QUICK_SYNC))
            b.url, b.redis_pids = cluster3.url, [cluster3.pid(p) for p in cluster3.ports]
    return backends


def matrix(endpoints: list[str], runs: dict[tuple[str, str], Run],
           hellos: dict[str, float], backends: list[Backend]) -> str:
    """Per endpoint: hello's req/s, then each backend's req/s, p99 and ratio to the first
    backend (and to hello)."""
    first = backends[0].name
    head = "| endpoint | hello req/s |" + "".join(
        f" {TITLES[b.name]}: req/s · p99 ms · x {TITLES[first] if i else 'hello'} |"
        for i, b in enumerate(backends))
    lines = [head, "|---|---:|" + "---:|" * len(backends)]
    for mode in endpoints:
        cells = [LABELS[mode], f"{hellos[mode]:,.0f}"]
        for i, b in enumerate(backends):
            run = runs[(mode, b.name)]
            base = runs[(mode, first)].rps if i else hellos[mode]
            flag = "" if not (run.non2xx or run.socket_errors) else \
                f" ({run.non2xx} non-2xx, {run.socket_errors} errors)"
            cells.append(f"{run.rps:,.0f} · {run.p99_ms:.2f} · {run.rps / base:.2f}{flag}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cpu_table(endpoints: list[str], runs: dict[tuple[str, str], Run],
              backends: list[Backend]) -> str:
    lines = ["| endpoint |" + "".join(f" {TITLES[b.name]}: API · Redis CPU |" for b in backends),
             "|---|" + "---:|" * len(backends)]
    for mode in endpoints:
        lines.append(f"| {LABELS[mode]} | " + " | ".join(
            f"{runs[(mode, b.name)].server_cpu:.0%} · {runs[(mode, b.name)].redis_cpu:.0%}"
            for b in backends) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="each wrk run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--only", nargs="*", choices=ENDPOINTS, help="a subset of endpoints")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma-separated, first is the reference ({', '.join(BACKENDS)})")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="also measure this many uvicorn workers on the first backend (0: skip)")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not on PATH: apt-get install wrk", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    if not names or any(n not in BACKENDS for n in names):
        p.error(f"--backends takes some of {', '.join(BACKENDS)}")
    endpoints = args.only or ENDPOINTS
    expected_rps = 30_000
    env = {"ACTIVE_TTL_SECONDS": "3600", "HOLD_TTL_SECONDS": "3600",
           "WAITING_IDLE_SECONDS": "3600"}
    os.environ.update(env)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, \
            contextlib.ExitStack() as stack:
        backends = start_backends(names, Path(tmp), stack)
        for b in backends:
            print(f"preparing {b.name} on {b.url} ...", flush=True)
            prepare(b, pay_holds=int(args.seconds * expected_rps) if "pay" in endpoints else 0,
                    reserve_seats=int(args.seconds * expected_rps))
            b.api = stack.enter_context(Uvicorn("api.app:app", {
                **env, "REDIS_URL": b.url,
                "REDIS_WAIT_REPLICAS": "1" if b.name.endswith("wait1") else "0"}))
        hello = stack.enter_context(Uvicorn("loadtests.hello:app"))
        hello_pids = hello.pids()
        redis_pids = sorted({pid for b in backends for pid in b.redis_pids})

        def run(b: Backend | None, mode: str, seconds: float) -> Run:
            if b is None:
                return wrk(hello.base, "hello", seconds, args.connections, {}, hello_pids,
                           redis_pids)
            assert b.api is not None
            return wrk(b.api.base, mode, seconds, args.connections, b.env(mode), b.api.pids(),
                       b.redis_pids)

        run(None, "hello", 1)  # warm every server: imports, caches, connections
        for b in backends:
            run(b, "point", 1)
        runs: dict[tuple[str, str], Run] = {}
        hellos: dict[str, float] = {}
        before = run(None, "hello", args.seconds)
        hello_runs = [before]
        for mode in endpoints:
            print(f"  {mode} ...", flush=True)
            for b in backends:
                runs[(mode, b.name)] = run(b, mode, args.seconds)
            after = run(None, "hello", args.seconds)
            hello_runs.append(after)
            hellos[mode] = (before.rps + after.rps) / 2
            before = after
        span = (f"hello runs {min(h.rps for h in hello_runs):,.0f}-"
                f"{max(h.rps for h in hello_runs):,.0f} req/s, p99 "
                f"{min(h.p99_ms for h in hello_runs):.2f}-{max(h.p99_ms for h in hello_runs):.2f}"
                " ms")
        out.append(f"### One uvicorn worker per backend (wrk -t1 -c{args.connections}, "
                   f"{args.seconds:g} s per run; {span})\n\n"
                   + matrix(endpoints, runs, hellos, backends)
                   + "\nCPU (share of one core) during each run:\n\n"
                   + cpu_table(endpoints, runs, backends))
        if args.workers > 1:
            b = backends[0]
            with Uvicorn("loadtests.hello:app", workers=args.workers) as hello_n, \
                    Uvicorn("api.app:app", {**env, "REDIS_URL": b.url},
                            workers=args.workers) as api_n:
                lines = ["| endpoint | hello req/s | API req/s | ratio |", "|---|---:|---:|---:|"]
                for mode in ("point", "status"):
                    h = wrk(hello_n.base, "hello", args.seconds, args.connections * 2, {},
                            hello_n.pids(), b.redis_pids)
                    r = wrk(api_n.base, mode, args.seconds, args.connections * 2, b.env(mode),
                            api_n.pids(), b.redis_pids)
                    lines.append(f"| {LABELS[mode]} | {h.rps:,.0f} | {r.rps:,.0f} | "
                                 f"{r.rps / h.rps:.2f} |")
                out.append(f"### {args.workers} uvicorn workers on {TITLES[b.name]} (wrk -t1 "
                           f"-c{args.connections * 2})\n\n" + "\n".join(lines) + "\n")
        for b in backends:
            Path(b.prep["ids"]).unlink(missing_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    report = (f"## Endpoint benchmark, {stamp}\n\n{platform.node()}: {os.cpu_count()} cores, "
              f"Python {platform.python_version()}\n\n" + "\n".join(out))
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "endpoints.md"
    path.write_text(report)
    print(f"written to {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
