"""``make bench-connections``: 10,000 concurrent keep-alive connections (the report's user
count) against one API worker under each server, in one run.

For each server (flags from api/serve.py) a client process (``rawclient.py``, uvloop)
opens the connections 1,000 at a time, each sending one point read and keeping the connection
open; after each step the server's RSS and open file descriptors are read from /proc. Then
every connection sends a point read every ``--period`` seconds for ``--seconds`` (the report's
users wait 1-5 s between requests), then all of them at the same moment, once.

``--limits`` (default on) also shows what binds first without api/serve.py's settings: each
server with the open-file limit at Debian's default soft 1,024 (``ulimit -n``), and granian
with its default ``--backpressure`` (1,024 connections per worker), 2,000 connections each.

Writes loadtests/results/connections.md. All on 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import uvloop

from api import serve
from devstack import REPO
from devstack.api_server import SERVER_CLASSES, Server, server, server_kinds
from devstack.demo_stack import demo_redis
from loadtests.generator.stats import percentile
from loadtests.http_bench.rawclient import Conn, Tally, connect, request_bytes
from loadtests.reporting import bench_report, publish

REQUEST = request_bytes("/api/point?customerId=7")


# --- the client (a process of its own: the server's RSS is measured from outside) -----------
async def _open(port: int, n: int, timeout: float, tally: Tally) -> list[Conn]:
    """n connections, 500 connecting at a time, each answered once (or counted an error)."""
    conns: list[Conn] = []

    async def one() -> None:
        try:
            conn = await asyncio.wait_for(connect(port), timeout)
            tally.add(await asyncio.wait_for(conn.send(REQUEST), timeout))
            conns.append(conn)
        except (OSError, TimeoutError, ConnectionError):
            tally.errors += 1

    for lo in range(0, n, 500):
        await asyncio.gather(*(one() for _ in range(min(500, n - lo))))
    return conns


async def _client(port: int, total: int, step: int, period: float, seconds: float,
                  timeout: float) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def report(**kw: object) -> None:
        print(json.dumps(kw), flush=True)

    conns: list[Conn] = []
    opened = Tally()
    t0 = time.perf_counter()
    while len(conns) + opened.errors < total:
        conns += await _open(port, min(step, total - len(conns) - opened.errors), timeout,
                             opened)
        report(phase="open", open=len(conns), errors=opened.errors,
               seconds=time.perf_counter() - t0)
        await reader.readline()  # the orchestrator has measured the server
    report(phase="opened", open=len(conns), errors=opened.errors, answers=opened.summary())
    if period > 0 and conns:
        steady = Tally()
        end = time.perf_counter() + seconds

        async def user(i: int, conn: Conn) -> None:
            await asyncio.sleep(period * i / len(conns))
            due = time.perf_counter()
            while time.perf_counter() < end and not conn.closed:
                try:
                    steady.add(await asyncio.wait_for(conn.send(REQUEST), timeout))
                except (TimeoutError, ConnectionError):
                    steady.errors += 1
                    return
                due += period
                await asyncio.sleep(max(0.0, due - time.perf_counter()))

        await asyncio.gather(*(user(i, c) for i, c in enumerate(conns)))
        alive = sum(not c.closed for c in conns)
        n = sum(len(v) for v in steady.latencies.values())
        p99 = percentile([x for v in steady.latencies.values() for x in v], 0.99)
        report(phase="steady", answers=steady.summary(), errors=steady.errors, rps=n / seconds,
               alive=alive, p99_ms=float("nan") if p99 is None else p99 * 1000)
        await reader.readline()
        burst = Tally()

        async def once(conn: Conn) -> None:
            try:
                burst.add(await asyncio.wait_for(conn.send(REQUEST), timeout))
            except (TimeoutError, ConnectionError):
                burst.errors += 1

        t1 = time.perf_counter()
        await asyncio.gather(*(once(c) for c in conns if not c.closed))
        report(phase="burst", answers=burst.summary(), errors=burst.errors,
               seconds=time.perf_counter() - t1)
    for c in conns:
        c.close()


# --- the orchestrator -------------------------------------------------------------------------
def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def fds(pids: list[int]) -> int:
    n = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            n += len(os.listdir(f"/proc/{pid}/fd"))
    return n


def run_client(api: Server, total: int, step: int, period: float, seconds: float,
               timeout: float) -> tuple[list[dict], list[tuple[int, int, int]]]:
    """The client's reports, and (open connections, server RSS KiB, server fds) per step."""
    cmd = [sys.executable, "-m", "loadtests.http_bench.connections", "client", "--port",
           str(api.port), "--connections", str(total), "--step", str(step), "--period",
           f"{period:g}", "--seconds", f"{seconds:g}", "--timeout", f"{timeout:g}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    pids = api.all_pids()
    steps = [(0, rss_kib(pids), fds(pids))]
    reports = []
    try:
        for line in proc.stdout:
            r = json.loads(line)
            reports.append(r)
            if r["phase"] == "open":
                time.sleep(0.5)  # let the server settle what it allocated
                steps.append((r["open"], rss_kib(pids), fds(pids)))
            if r["phase"] in ("open", "steady"):
                proc.stdin.write("go\n")
                proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return reports, steps


def answers(r: dict) -> str:
    parts = []
    for status, s in r["answers"].items():
        parts.append(f"{s['n']:,} x {status} (p50 {s['p50_ms']:.1f}, p99 {s['p99_ms']:.1f}, "
                     f"max {s['max_ms']:.0f} ms)")
    return "; ".join(parts) or "none"


class LimitedServer(Server):
    """A server started under a lower open-file limit (``nofile``: prlimit's ``soft:hard``),
    or granian with its own backlog and --backpressure."""

    def __init__(self, kind: str, app: str, env: dict[str, str], nofile: str | None,
                 granian_defaults: bool) -> None:
        super().__init__(app, env)
        self.kind, self.nofile, self.granian_defaults = kind, nofile, granian_defaults

    def command(self) -> list[str]:
        cmd = super().command()
        if self.granian_defaults:
            for flag in ("--backlog", "--backpressure"):
                i = cmd.index(flag)
                del cmd[i:i + 2]
        if self.nofile:
            cmd = ["prlimit", f"--nofile={self.nofile}", "--", *cmd]
        return cmd


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "client":
        c = argparse.ArgumentParser()
        for name, kind in (("--port", int), ("--connections", int), ("--step", int),
                           ("--period", float), ("--seconds", float), ("--timeout", float)):
            c.add_argument(name, type=kind, required=True)
        a = c.parse_args(argv[1:])
        serve.raise_nofile(a.connections + 1024)
        uvloop.run(_client(a.port, a.connections, a.step, a.period, a.seconds, a.timeout))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=server_kinds, default=list(SERVER_CLASSES))
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--period", type=float, default=2.0, help="seconds between a user's requests")
    p.add_argument("--seconds", type=float, default=10.0, help="of requests every --period")
    p.add_argument("--limits", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)
    servers = args.servers
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = [f"Open-file limit of this shell: soft {soft}, hard {hard}; api/serve.py raises the "
           f"soft one to min(hard, {serve.WANT_NOFILE}). Kernel: net.core.somaxconn "
           f"{Path('/proc/sys/net/core/somaxconn').read_text().strip()}, ephemeral ports "
           f"{Path('/proc/sys/net/ipv4/ip_local_port_range').read_text().split()}.\n"]
    env = {"TICK_SECONDS": "1"}
    with contextlib.ExitStack() as stack:
        rs = stack.enter_context(demo_redis(prefix="bench-conns-"))
        env["REDIS_URL"] = rs.url
        rows, mem = [], []
        for k in servers:
            print(f"{k}: {args.connections:,} connections ...", flush=True)
            with server(k, "api.app:app", env) as api:
                reports, steps = run_client(api, args.connections, 1000, args.period,
                                            args.seconds, 10)
            by = {r["phase"]: r for r in reports}
            base_rss = steps[0][1]
            top = steps[-1]
            per_k = (top[1] - base_rss) / max(1, top[0]) * 1000
            mem.append(f"| {k} | {base_rss / 1024:.1f} | {top[0]:,} | {top[1] / 1024:.1f} | "
                       f"{per_k / 1024:.2f} MiB ({per_k:,.0f} KiB) | {top[2]:,} |")
            opened = by["opened"]
            steady, burst = by.get("steady"), by.get("burst")
            took = [r for r in reports if r["phase"] == "open"][-1]["seconds"]
            rows.append(
                f"| {k} | {opened['open']:,} open, {opened['errors']} failed, in {took:.1f} s | "
                + (f"{steady['rps']:,.0f} req/s: {answers(steady)}; {steady['errors']} errors, "
                   f"{steady['alive']:,} still open" if steady else "-") + " | "
                + (f"{answers(burst)}; {burst['errors']} errors, all answered in "
                   f"{burst['seconds']:.2f} s" if burst else "-") + " |")
        out.append(f"### {args.connections:,} keep-alive connections, one worker\n\n"
                   "| server | connect (each answered once) | every connection a request every "
                   f"{args.period:g} s for {args.seconds:g} s | all at once |\n|---|---|---|---|\n"
                   + "\n".join(rows) + "\n")
        out.append("### Memory: server RSS (all its processes) with the connections open and "
                   "idle\n\n| server | RSS before, MiB | connections | RSS, MiB | per 1,000 "
                   "connections | open fds |\n|---|---:|---:|---:|---:|---:|\n"
                   + "\n".join(mem) + "\n")
        if args.limits:
            lines = ["| setting | connections | answered | failed or unanswered within 5 s |",
                     "|---|---:|---:|---:|"]
            # Debian's default soft limit is 1,024 (the hard one much higher); importing
            # granian raises its soft limit to the hard one (its native module calls
            # setrlimit), uvicorn does not.
            cases = [(k, "1024:", False, f"{k}, soft open-file limit 1,024") for k in servers]
            if "granian" in servers:
                cases += [("granian", "1024:1024", False, "granian, hard limit 1,024 too"),
                          ("granian", None, True, "granian, its default backlog and "
                           "`--backpressure` (backlog / workers = 1,024 connections)")]
            for kind, nofile, defaults, label in cases:
                print(f"limits: {label} ...", flush=True)
                with LimitedServer(kind, "api.app:app", env, nofile, defaults) as api:
                    reports, _ = run_client(api, 2000, 2000, 0, 0, 5)
                opened = next(r for r in reports if r["phase"] == "opened")
                lines.append(f"| {label} | 2,000 | {opened['open']:,} | {opened['errors']:,} |")
            out.append("### What binds first without api/serve.py's settings\n\n"
                       + "\n".join(lines) + "\n")
    publish(bench_report("Connection benchmark", "\n".join(out)), "connections.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
