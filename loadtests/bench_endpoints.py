"""``make bench-endpoints``: each API endpoint under wrk, every figure a ratio to a bare
Starlette hello measured right next to it (hello, endpoint, hello, endpoint, ..., hello).

Starts its own redis-server (the repo's redis.conf), the API (1 uvicorn worker, uvloop,
httptools) and the hello app, prepares fresh data for the write endpoints (customers, seats,
holds), prints a table and writes it to loadtests/results/. Non-2xx answers are reported.
Everything targets 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from engine import booking, queue
from engine.config import Settings
from engine.ids import parse_token
from engine.seed import Option, Seat, create_concert, fund_customers, seed_demo
from engine.store import Store, connect
from loadtests.stack import REPO, RedisServer, Uvicorn, cpu_seconds

WRK_SCRIPT = REPO / "loadtests" / "wrk" / "endpoint.lua"
RESULTS = REPO / "loadtests" / "results"
BENCH_CONCERT = 9  # reserve and pay run on their own big concert
SEATS_PER_OPTION = 1000
RESERVE_CUSTOMER, PAY_CUSTOMER = 900_001, 900_002
ENDPOINTS = ["issue", "status", "dates", "seats", "point", "charge", "reserve", "pay"]
LABELS = {
    "issue": "POST /api/token/issue", "status": "GET /api/token/status",
    "dates": "GET /api/2/available-dates", "seats": "GET /api/41150/available-seats",
    "point": "GET /api/point", "charge": "PATCH /api/point/charge",
    "reserve": "POST /api/reserve", "pay": "POST /api/pay", "hello": "hello (baseline)",
}


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
    redis_cpu: float


def wrk(url: str, mode: str, seconds: float, connections: int, env: dict[str, str],
        server_pids: list[int], redis_pid: int) -> Run:
    cpu0, rcpu0, t0 = cpu_seconds(server_pids), cpu_seconds([redis_pid]), time.monotonic()
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
        redis_cpu=(cpu_seconds([redis_pid]) - rcpu0) / wall,
    )


def prepare(url: str, pay_holds: int, reserve_seats: int) -> dict[str, str]:
    """Demo data plus a big concert for reserve/pay, the tokens, and the holds pay will pay."""
    r = redis.Redis.from_url(url)
    seed_demo(r)
    options = -(-(reserve_seats + pay_holds) // SEATS_PER_OPTION)
    create_concert(r, BENCH_CONCERT, "Bench Concert", [
        Option(o, "2027-06-01T19:00:00+09:00", tuple(
            Seat(o * SEATS_PER_OPTION + n, n, 100) for n in range(1, SEATS_PER_OPTION + 1)))
        for o in range(1, options + 1)
    ])
    fund_customers(r, RESERVE_CUSTOMER, PAY_CUSTOMER, 10**11 * 100)
    settings = replace(Settings.from_env(), redis_url=url, redis_command_timeout=30,
                       redis_connect_timeout=10)
    pay_first_option = -(-reserve_seats // SEATS_PER_OPTION) + 1

    async def go() -> dict[str, str]:
        store = Store(connect(settings), settings)
        status_tok = (await queue.issue_token(store, 1, 2))["tokenValue"]
        reserve_tok = (await queue.issue_token(store, RESERVE_CUSTOMER, BENCH_CONCERT))[
            "tokenValue"]
        pay_tok = (await queue.issue_token(store, PAY_CUSTOMER, BENCH_CONCERT))["tokenValue"]
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

    return asyncio.run(go())


def mode_env(mode: str, prep: dict[str, str]) -> dict[str, str]:
    env = {"BENCH_SEATS_PER_OPTION": str(SEATS_PER_OPTION)}
    if mode in ("status", "dates", "seats"):
        env["BENCH_TOKEN"] = prep["status"]
    elif mode == "reserve":
        env |= {"BENCH_TOKEN": prep["reserve"], "BENCH_CONCERT": str(BENCH_CONCERT)}
    elif mode == "pay":
        env |= {"BENCH_TOKEN": prep["pay"], "BENCH_IDS": prep["ids"]}
    elif mode == "issue":
        env["BENCH_START"] = "1000000"  # fresh customers: every issue creates a token
    return env


def table(rows: list[tuple[Run, float | None]], title: str) -> str:
    head = (f"### {title}\n\n| endpoint | req/s | p50 ms | p99 ms | max ms | ratio to hello | "
            "non-2xx | socket errors | server CPU | Redis CPU |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = [
        f"| {LABELS.get(run.name, run.name)} | {run.rps:,.0f} | {run.p50_ms:.2f} | "
        f"{run.p99_ms:.2f} | {run.max_ms:.1f} | "
        f"{'' if ratio is None else f'{ratio:.2f}'} | {run.non2xx} | {run.socket_errors} | "
        f"{run.server_cpu:.0%} | {run.redis_cpu:.0%} |"
        for run, ratio in rows
    ]
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="each wrk run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--only", nargs="*", choices=ENDPOINTS, help="a subset of endpoints")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="also measure this many uvicorn workers (0 to skip)")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not on PATH: apt-get install wrk", file=sys.stderr)
        return 2
    endpoints = args.only or ENDPOINTS
    expected_rps = 30_000
    env = {"ACTIVE_TTL_SECONDS": "3600", "HOLD_TTL_SECONDS": "3600",
           "WAITING_IDLE_SECONDS": "3600"}
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, \
            RedisServer(Path(tmp)) as rs:
        env["REDIS_URL"] = rs.url
        os.environ.update(env)
        print(f"preparing data on {rs.url} ...", flush=True)
        prep = prepare(rs.url, pay_holds=int(args.seconds * expected_rps) if "pay" in endpoints
                       else 0, reserve_seats=int(args.seconds * expected_rps))
        with Uvicorn("loadtests.hello:app") as hello, Uvicorn("api.app:app", env) as api:
            hello_pids, api_pids = hello.pids(), api.pids()
            redis_pid = rs.proc.pid

            def hello_run() -> Run:
                return wrk(hello.base, "hello", args.seconds, args.connections, {}, hello_pids,
                           redis_pid)

            # Warm both servers (imports, JIT-free but caches, connections).
            wrk(hello.base, "hello", 1, args.connections, {}, hello_pids, redis_pid)
            wrk(api.base, "point", 1, args.connections, {}, api_pids, redis_pid)
            rows: list[tuple[Run, float | None]] = []
            before = hello_run()
            rows.append((before, None))
            for mode in endpoints:
                print(f"  {mode} ...", flush=True)
                run = wrk(api.base, mode, args.seconds, args.connections, mode_env(mode, prep),
                          api_pids, redis_pid)
                after = hello_run()
                ratio = run.rps / ((before.rps + after.rps) / 2)
                rows += [(run, ratio), (after, None)]
                before = after
            out.append(table(rows, "One uvicorn worker (wrk -t1 -c"
                                   f"{args.connections}, {args.seconds:g} s per run)"))
        if args.workers > 1:
            with Uvicorn("loadtests.hello:app", workers=args.workers) as hello, \
                    Uvicorn("api.app:app", env, workers=args.workers) as api:
                rows = []
                for mode in ("point", "status"):
                    h = wrk(hello.base, "hello", args.seconds, args.connections * 2, {},
                            hello.pids(), rs.proc.pid)
                    run = wrk(api.base, mode, args.seconds, args.connections * 2,
                              mode_env(mode, prep), api.pids(), rs.proc.pid)
                    rows += [(h, None), (run, run.rps / h.rps)]
                out.append(table(rows, f"{args.workers} uvicorn workers (wrk -t1 -c"
                                       f"{args.connections * 2})"))
    Path(prep["ids"]).unlink(missing_ok=True)
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
