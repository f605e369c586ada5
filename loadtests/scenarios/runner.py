"""``python -m loadtests run <scenario|all>``: the report's locust scenarios, headless, each
against a fresh Redis + API of its own (or ``--host``), into a report folder with locust's
CSVs, PNG charts and a ``report.md`` that puts every figure beside the report's."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devstack import REPO
from devstack.cpu import TreeCpu, cores, cpu_seconds, peaks
from devstack.demo_stack import DemoStack
from loadtests.generator.locust_csv import HistoryTail, num, read_stats
from loadtests.generator.processes import interrupt
from loadtests.reporting import report_folder
from loadtests.scenarios import charts
from loadtests.scenarios.registry import (
    SOAK_LONGEST_TTL,
    Load,
    Scenario,
    describe,
    resolve,
    stack_env,
)
from loadtests.scenarios.report import report_md, summary_line
from loadtests.scenarios.result import Result, add_warnings
from loadtests.scenarios.soak import Sampler, judge

PROGRESS_EVERY_NON_TTY = 10.0
LOCUST_CPU_WARNING = "CPU usage above"  # locust's own warning when one of its processes saturates


class CpuWatch:
    """CPU seconds of a process tree (locust and the workers it forks), the last value of a
    process that has exited kept; and of a fixed list of processes (the API and Redis)."""

    def __init__(self, root: int, fixed: list[int]) -> None:
        self.tree, self.fixed = TreeCpu([root]), fixed
        self.fixed0 = cpu_seconds(fixed)

    def read(self) -> tuple[float, float]:
        """(locust CPU seconds so far, API + Redis CPU seconds since the start)."""
        return self.tree.read(), cpu_seconds(self.fixed) - self.fixed0


def effective_load(s: Scenario, args: argparse.Namespace) -> Load:
    base = s.small if args.scale == "small" else s.load
    return Load(args.users or base.users, args.spawn_rate or base.spawn_rate,
                args.time or base.seconds)


def locust_command(s: Scenario, load: Load, host: str, prefix: Path, processes: int,
                   as_printed: bool = False) -> list[str]:
    path = s.printed if as_printed else s.path
    cmd = [sys.executable, "-m", "locust", "-f", str(path), "--headless", "--host", host,
           "--csv", str(prefix), "--csv-full-history", "--only-summary",
           "--exit-code-on-error", "1"]
    if not s.shape:  # §2's LoadTestShape takes its figures from LOADTEST_* (see locust_env)
        cmd += ["-u", str(load.users), "-r", f"{load.spawn_rate:g}",
                "-t", f"{max(1, round(load.seconds))}s"]
    if processes != 1:
        cmd += ["--processes", str(processes)]
    return cmd


def locust_env(load: Load, processes: int, prefix: Path) -> dict[str, str]:
    stride = cores() if processes < 0 else max(1, processes)
    # Locust starts floor(rate) users at once every floor(rate)/rate s; each spreads its first
    # request over that interval (locustfiles/common.py, LOADTEST_SPAWN_JITTER).
    jitter = max(1, math.floor(load.spawn_rate)) / load.spawn_rate
    return {"LOADTEST_SPAWN_JITTER": f"{jitter:.3f}", **os.environ,
            "LOADTEST_FINAL_CSV": str(prefix),
            "LOADTEST_ID_STRIDE": str(stride), "LOADTEST_USERS": str(load.users),
            "LOADTEST_SPAWN_RATE": f"{load.spawn_rate:g}",
            "LOADTEST_RUN_TIME": f"{load.seconds:g}", "PYTHONUNBUFFERED": "1"}


def progress_line(s: Scenario, elapsed: float, load: Load, row: dict[str, str] | None,
                  cpu_share: float) -> str:
    if row is None:
        return f"[{s.key} {s.title}] {elapsed:4.0f}/{load.seconds:g} s  starting"
    p99 = row.get("99%", "N/A")
    return (f"[{s.key} {s.title}] {elapsed:4.0f}/{load.seconds:g} s  users {row['User Count']:>5}"
            f"  req/s {num(row['Requests/s']) or 0:7.1f}  requests {row['Total Request Count']}"
            f"  failures {row['Total Failure Count']}  p99 {p99} ms"
            f"  locust CPU {cpu_share:4.0%}")


def shared_token(host: str) -> str:
    """An ACTIVE token of concert 2 (customer 1), as the report's own service handed its
    scripts one: issued until the queue admits it."""
    deadline = time.monotonic() + 30
    while True:
        req = urllib.request.Request(f"{host}/api/token/issue", method="POST",
                                     data=json.dumps({"customerId": 1, "concertId": 2}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
        if body["status"] == "ACTIVE" or time.monotonic() > deadline:
            return body["tokenValue"]
        time.sleep(1)


def run_scenario(s: Scenario, args: argparse.Namespace, out: Path) -> Result:
    load = effective_load(s, args)
    scaled = load != s.load
    res = Result(s, load, scaled, out / s.file, as_printed=args.as_printed)
    res.out_dir.mkdir(parents=True, exist_ok=True)
    prefix = res.out_dir / s.file
    res.locust_cores = min(cores(), cores() if args.processes < 0 else args.processes)

    if args.as_printed and s.printed is None:
        raise ValueError(f"{s.key} has no printed script in the report")
    # As printed: every setting at its default (the queue's limits included), as a user runs it.
    env = {} if args.as_printed else stack_env(s, load)
    stack = None if args.host else DemoStack(env, args.api_workers, args.server, args.cluster)
    sampler = None
    try:
        if stack is not None:
            print(f"[{s.key} {s.title}] starting Redis + API ({args.api_workers} {stack.kind} "
                  f"worker{'s' if args.api_workers > 1 else ''}), seeding the demo data",
                  flush=True)
            stack.start()
        assert stack is None or stack.api is not None
        host = args.host or stack.api.base
        if s.key == "soak":
            sampler = Sampler(stack.redis.url if stack else args.redis_url,
                              stack.api.pids() if stack else args.api_pid,
                              args.sample_every).start()
        cmd = locust_command(s, load, host, prefix, args.processes, args.as_printed)
        penv = locust_env(load, args.processes, prefix)
        if args.as_printed and s.shared_token:  # the one token every user of §2-§4 sends
            penv["REPORT_TOKEN"] = shared_token(host)
        with open(res.out_dir / "locust.log", "w") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=REPO, env=penv,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                watch(proc, s, load, res, stack.pids() if stack else [], prefix, t0)
            finally:
                interrupt(proc)
            res.wall = time.monotonic() - t0
    finally:
        samples = sampler.stop() if sampler is not None else None
        if stack is not None:
            stack.stop()

    rows = read_stats(Path(f"{prefix}_final_stats.csv")) or read_stats(Path(f"{prefix}_stats.csv"))
    res.total = next((r for r in rows if r["Name"] == "Aggregated"), {})
    res.rows = [r for r in rows if r["Name"] != "Aggregated"]
    res.failures_csv = (read_stats(Path(f"{prefix}_final_failures.csv"))
                        or read_stats(Path(f"{prefix}_failures.csv")))
    log_text = (res.out_dir / "locust.log").read_text(errors="replace")
    res.locust_cpu_warnings = log_text.count(LOCUST_CPU_WARNING)
    history = Path(f"{prefix}_stats_history.csv")
    if history.exists():
        res.charts = charts.history_charts(history, f"{s.title} ({describe(load)})",
                                           res.out_dir, s.file,
                                           window=1.0 if args.processes == 1 else 3.0)
    if samples is not None:
        warmup = args.warmup if args.warmup is not None else load.seconds / 2
        min_window = 2 * SOAK_LONGEST_TTL if stack is not None else 0.0
        verdict, series, sentence = judge(samples, warmup, min_window)
        samples_csv = res.out_dir / "soak_samples.csv"
        keys = sorted({k for sample in samples for k in sample}, key=lambda k: k != "t")
        with open(samples_csv, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(samples)
        chart = None
        if samples and len(samples[0]) > 1:
            chart = charts.soak_chart(samples, warmup, f"{s.title}: Redis and API memory "
                                      f"({describe(load)})", res.out_dir / "soak_memory.png",
                                      series)
        res.soak = (verdict, series, sentence, warmup, samples_csv, chart)
    add_warnings(res)
    return res


def watch(proc: subprocess.Popen, s: Scenario, load: Load, res: Result, server_pids: list[int],
          prefix: Path, t0: float) -> None:
    """Wait for locust, printing a progress line and sampling CPU once a second."""
    tty = sys.stdout.isatty()
    tail = HistoryTail(Path(f"{prefix}_stats_history.csv"))
    cpu = CpuWatch(proc.pid, server_pids)
    deadline = t0 + load.seconds + 120  # start-up, the last requests, the CSVs
    points: list[tuple[float, float, float]] = []  # (t, locust s, server s)
    last_print = 0.0
    try:
        while proc.poll() is None:
            time.sleep(1)
            now = time.monotonic()
            points.append((now, *cpu.read()))
            share = 0.0
            if len(points) > 1:
                (ta, la, _), (tb, lb, _) = points[-2], points[-1]
                share = (lb - la) / (tb - ta) / res.locust_cores
            line = progress_line(s, now - t0, load, tail.poll(), share)
            if tty:
                print(f"\r{line[:150]:<150}", end="", flush=True)
            elif now - last_print >= PROGRESS_EVERY_NON_TTY:
                print(line, flush=True)
                last_print = now
            if now > deadline:
                res.warnings.append(f"locust ran {load.seconds + 120:.0f} s past its start and "
                                    "was stopped")
                break
    except KeyboardInterrupt:
        res.warnings.append("interrupted (Ctrl-C): figures are partial")
        interrupt(proc)
        raise
    finally:
        if tty:
            print(flush=True)
        if proc.poll() is None:
            interrupt(proc)
        res.exit_code = proc.returncode
        if points:
            points.append((time.monotonic(), *cpu.read()))
            # From the first sample on: locust's start-up (imports) is not load generation.
            span = max(points[-1][0] - points[0][0], 1e-9)
            res.locust_cpu = (points[-1][1] - points[0][1]) / span
            if server_pids:
                res.server_cpu = (points[-1][2] - points[0][2]) / span
            res.locust_peak, res.machine_peak = peaks(points)


def run_scenarios(args: argparse.Namespace, argv: list[str]) -> int:
    """``run <scenario|all>``: each scenario in turn, the report rewritten after each."""
    try:
        scenarios = resolve(args.scenario)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.host is None and shutil.which("redis-server") is None:
        print("redis-server is not on PATH: `make install` installs it, or use --host",
              file=sys.stderr)
        return 2
    out, started = report_folder(args.out)
    results: list[Result] = []
    try:
        for s in scenarios:
            res = run_scenario(s, args, out)
            results.append(res)
            print(summary_line(res), flush=True)
            for w in res.warnings:
                print(f"  warning: {w}", flush=True)
            (out / "report.md").write_text(report_md(results, args, argv, started))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        if results:
            (out / "report.md").write_text(report_md(results, args, argv, started))
        return 130
    print(f"report: {out / 'report.md'}")
    return 0 if all(r.ok for r in results) else 1
