"""One wrk run against a server, with the CPU of everything around it: the server's
processes, Redis's, wrk's own and the whole machine's (a shared box runs other work beside a
benchmark, which the 'others' figure shows). The Lua scripts are in ``wrk/``: ``endpoint.lua``
(one endpoint, or the multi-concert mix) and ``overload.lua`` (users who think between
requests); each prints one JSON line of figures at the end."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.cpu import cpu_seconds, machine_cpu_seconds, wait_for_quiet

SCRIPTS = Path(__file__).resolve().parent / "wrk"
ENDPOINT_LUA = SCRIPTS / "endpoint.lua"
OVERLOAD_LUA = SCRIPTS / "overload.lua"


@dataclass
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non2xx: int
    statuses: dict[str, int]  # answers by status (overload.lua counts them; else 200/other)
    socket_errors: int
    seconds: float  # wrk's own duration
    server_cpu: float  # cores used by the server's processes (supervisor and workers)
    redis_cpu: float  # cores used by the Redis processes (all nodes)
    wrk_cpu: float
    machine_cpu: float  # cores busy on the whole machine: this run and anything else

    @property
    def others_cpu(self) -> float:
        """Cores busy with anything but the server, Redis and wrk."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.redis_cpu - self.wrk_cpu)

    @property
    def per_cpu_second(self) -> float:
        """Requests answered per second of the server's CPU."""
        return self.rps / self.server_cpu if self.server_cpu else 0.0

    def per_second(self, status: str) -> float:
        return self.statuses.get(status, 0) / self.seconds


def run_wrk(url: str, script: Path, connections: int, seconds: float, env: dict[str, str],
            server_pids: list[int], redis_pids: list[int] | None = None, threads: int = 1,
            timeout: str | None = None) -> WrkRun:
    """``wrk -t<threads> -c<connections> -d<seconds>s --latency -s <script> <url>`` with ``env``
    added (the script's knobs), once the machine is quiet."""
    wait_for_quiet()  # a shared machine: let other work pass first (the 'others' column)
    redis_pids = redis_pids or []
    cpu0, rcpu0, t0 = cpu_seconds(server_pids), cpu_seconds(redis_pids), time.monotonic()
    all0, ru0 = machine_cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
         *(["--timeout", timeout] if timeout else []), "--latency", "-s", str(script), url],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=seconds + 60,
        check=True)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    d = json.loads([x for x in out.stdout.splitlines() if x.startswith("{")][-1])
    secs = d["duration_us"] / 1e6
    return WrkRun(
        rps=d["requests"] / secs, p50_ms=d["p50_us"] / 1000, p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000, requests=d["requests"], non2xx=d["non2xx"],
        statuses=d.get("statuses", {"200": d["requests"] - d["non2xx"]}),
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"], seconds=secs,
        server_cpu=(cpu_seconds(server_pids) - cpu0) / wall,
        redis_cpu=(cpu_seconds(redis_pids) - rcpu0) / wall,
        wrk_cpu=(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall,
        machine_cpu=(machine_cpu_seconds() - all0) / wall)


def median_run(runs: list[WrkRun]) -> WrkRun:
    """The run of median req/s (of an even number, the lower middle one)."""
    return sorted(runs, key=lambda r: r.rps)[(len(runs) - 1) // 2]


def wrk_missing() -> bool:
    """Whether wrk is not installed (and says so)."""
    if shutil.which("wrk") is None:
        print("wrk is not on PATH: apt-get install wrk", file=sys.stderr)
        return True
    return False


def endpoint_run(url: str, mode: str, seconds: float, connections: int, env: dict[str, str],
                 server_pids: list[int], redis_pids: list[int]) -> WrkRun:
    """``endpoint.lua`` in ``mode`` (an endpoint, ``hello`` or ``mix``) on one wrk thread."""
    return run_wrk(url, ENDPOINT_LUA, connections, seconds, {"BENCH_MODE": mode, **env},
                   server_pids, redis_pids)
