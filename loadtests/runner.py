"""``python -m loadtests run <scenario|all>``: the report's locust scenarios, headless, each
against a fresh Redis + API of its own (or ``--host``), into a report folder with locust's
CSVs, PNG charts and a ``report.md`` that puts every figure beside the report's."""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from devstack import REPO
from devstack.api_server import default_server
from devstack.cpu import TreeCpu, cores, cpu_model, cpu_seconds, peaks
from devstack.demo_stack import DemoStack
from loadtests.generator.locust_csv import HistoryTail, num, read_stats
from loadtests.generator.processes import interrupt
from loadtests.reporting import RESULTS
from loadtests.scenarios import SOAK_LONGEST_TTL, Load, Scenario, resolve

SATURATED = 0.90  # a generator above this share of its cores is the bottleneck
PROGRESS_EVERY_NON_TTY = 10.0
LOCUST_CPU_WARNING = "CPU usage above"  # locust's own warning when one of its processes saturates


# --- options ---------------------------------------------------------------------------------
def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h30m`` -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 90s, 5m, 1h30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenarios and write a report folder",
                         description="Run one scenario or all seven. Defaults are the report's "
                         "own users, spawn rate and duration; the flags scale them (the report "
                         "says so).")
    run.add_argument("scenario", help="all, s1..s7 (or 1..7, or a name like available_dates), "
                     "or soak")
    run.add_argument("-u", "--users", type=int, help="peak users (default: the report's)")
    run.add_argument("-r", "--spawn-rate", type=float, help="users started per second")
    run.add_argument("-t", "--time", type=parse_duration,
                     help="run time per scenario: 90, 90s, 5m (default: the report's)")
    run.add_argument("--scale", choices=["report", "small"], default="report",
                     help="small: every scenario scaled to finish `all` in about 4 minutes on "
                     "2 cores (explicit -u/-r/-t still win)")
    run.add_argument("-p", "--processes", type=int, default=1,
                     help="locust processes (fork); -1 = one per core. Default 1")
    run.add_argument("--host", help="target this API instead of starting Redis + API here")
    run.add_argument("--cluster", action="store_true",
                     help="start a local 3-master cluster (a replica each, REDIS_WAIT_REPLICAS=1) "
                     "instead of one redis-server")
    run.add_argument("--api-workers", type=int, default=1,
                     help="workers of the API started here (default 1)")
    run.add_argument("--server", choices=["granian", "uvicorn"],
                     help="the API's server (default: $SERVER, else api/serve.py's)")
    run.add_argument("--out", type=Path, help="report folder (default "
                     "loadtests/results/<timestamp>/)")
    run.add_argument("--sample-every", type=float, default=5.0,
                     help="soak: seconds between samples (default 5)")
    run.add_argument("--warmup", type=parse_duration,
                     help="soak: seconds not judged at the start (default: half the run)")
    run.add_argument("--redis-url", help="soak with --host: the Redis to sample")
    run.add_argument("--api-pid", type=int, action="append", default=[],
                     help="soak with --host: a process of the API whose RSS to sample "
                     "(repeatable)")
    charts = sub.add_parser("charts", help="PNG charts from a locust *_stats_history.csv "
                            "(e.g. of a distributed run)")
    charts.add_argument("history", type=Path, help="a locust <prefix>_stats_history.csv")
    charts.add_argument("--title", help="chart title (default: the file's name)")
    charts.add_argument("--window", type=float, default=3.0,
                        help="seconds per requests/s point (default 3: workers report every 3 s)")
    return p


def charts_command(args: argparse.Namespace) -> int:
    from loadtests import charts

    history: Path = args.history
    stem = history.name.removesuffix("_stats_history.csv")
    if stem == history.name:
        print(f"{history} is not a locust *_stats_history.csv", file=sys.stderr)
        return 2
    for png in charts.history_charts(history, args.title or stem, history.parent, stem,
                                     args.window):
        print(png)
    return 0


# --- CPU ---------------------------------------------------------------------------------------
class CpuWatch:
    """CPU seconds of a process tree (locust and the workers it forks), the last value of a
    process that has exited kept; and of a fixed list of processes (the API and Redis)."""

    def __init__(self, root: int, fixed: list[int]) -> None:
        self.tree, self.fixed = TreeCpu([root]), fixed
        self.fixed0 = cpu_seconds(fixed)

    def read(self) -> tuple[float, float]:
        """(locust CPU seconds so far, API + Redis CPU seconds since the start)."""
        return self.tree.read(), cpu_seconds(self.fixed) - self.fixed0


# --- one scenario ----------------------------------------------------------------------------
@dataclass
class Result:
    scenario: Scenario
    load: Load
    scaled: bool
    out_dir: Path
    exit_code: int | None = None
    wall: float = 0.0
    total: dict[str, str] = field(default_factory=dict)  # locust's Aggregated row
    rows: list[dict[str, str]] = field(default_factory=list)  # one per request name
    failures_csv: list[dict[str, str]] = field(default_factory=list)
    locust_cpu: float = 0.0  # average cores
    locust_peak: float = 0.0  # highest 5 s average, cores
    locust_cores: int = 1
    server_cpu: float | None = None  # average cores of API + Redis (own stack only)
    machine_peak: float = 0.0  # highest 5 s average of locust + API + Redis, cores
    locust_cpu_warnings: int = 0
    charts: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    soak: tuple | None = None  # (verdict, per-series, sentence, warmup, samples csv, chart)

    def figure(self, column: str) -> float | None:
        return num(self.total.get(column))

    @property
    def requests(self) -> int:
        return int(self.figure("Request Count") or 0)

    @property
    def failures(self) -> int:
        return int(self.figure("Failure Count") or 0)

    def count(self, marker: str) -> int:
        return sum(int(num(r["Request Count"]) or 0) for r in self.rows if marker in r["Name"])

    @property
    def ok(self) -> bool:
        return (self.exit_code in (0, 1) and self.requests > 0 and self.failures == 0
                and (self.soak is None or self.soak[0] != "fail"))


def effective_load(s: Scenario, args: argparse.Namespace) -> Load:
    base = s.small if args.scale == "small" else s.load
    return Load(args.users or base.users, args.spawn_rate or base.spawn_rate,
                args.time or base.seconds)


def describe(load: Load, ref: Load | None = None, rate_ours: bool = False) -> str:
    def part(value: str, ref_value: str | None) -> str:
        return f"{value} (report {ref_value})" if ref_value and ref_value != value else value

    users = f"{load.users:,} users"
    rate = f"{load.spawn_rate:g}/s"
    secs = f"{load.seconds:g} s"
    if ref is None:
        return f"{users}, {rate}{' (ours)' if rate_ours else ''}, {secs}"
    return ", ".join([part(users, f"{ref.users:,} users"),
                      part(rate, f"{ref.spawn_rate:g}/s") if not rate_ours else rate,
                      part(secs, f"{ref.seconds:g} s")])


def stack_env(s: Scenario, load: Load) -> dict[str, str]:
    """Our API's settings for a scenario: enough ACTIVE room and admissions that the queue
    never holds the scenario's users back, tokens that outlive the run; the soak's short TTLs."""
    env = {"ACTIVE_LIMIT": str(max(20_000, 2 * load.users)), "ADMIT_PER_SECOND": "2000",
           "ACTIVE_TTL_SECONDS": str(int(max(600, load.seconds + 300)))}
    return {**env, **s.env}


def locust_command(s: Scenario, load: Load, host: str, prefix: Path, processes: int) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(s.path), "--headless", "--host", host,
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


def run_scenario(s: Scenario, args: argparse.Namespace, out: Path) -> Result:
    from loadtests import charts
    from loadtests.sampler import Sampler, judge

    load = effective_load(s, args)
    scaled = load != s.load
    res = Result(s, load, scaled, out / s.file)
    res.out_dir.mkdir(parents=True, exist_ok=True)
    prefix = res.out_dir / s.file
    res.locust_cores = min(cores(), cores() if args.processes < 0 else args.processes)

    stack = None if args.host else DemoStack(stack_env(s, load), args.api_workers, args.server,
                                             args.cluster)
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
        cmd = locust_command(s, load, host, prefix, args.processes)
        with open(res.out_dir / "locust.log", "w") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=REPO, env=locust_env(load, args.processes, prefix),
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


def add_warnings(res: Result) -> None:
    w = res.warnings
    if res.exit_code not in (0, 1):
        w.append(f"locust exited with {res.exit_code}: see {res.out_dir.name}/locust.log")
    if not res.total:
        w.append("locust wrote no statistics")
    if res.locust_peak >= SATURATED * res.locust_cores:
        w.append(f"the load generator saturated: locust used {res.locust_peak:.2f} of its "
                 f"{res.locust_cores} core{'s' if res.locust_cores > 1 else ''} at its peak "
                 "(5 s average), so response times include locust's own queueing; use "
                 "--processes or fewer users, or workers on other machines")
    elif res.locust_cpu_warnings:
        w.append(f"locust logged {res.locust_cpu_warnings} 'CPU usage above 90%' warning(s): "
                 "one of its processes saturated")
    if res.server_cpu is not None and res.machine_peak >= SATURATED * cores():
        w.append(f"the machine's {cores()} cores were saturated ({res.machine_peak:.2f} cores "
                 "busy at the peak between locust, the API and Redis): the figures are the "
                 "box's, not the engine's alone")
    if res.scenario.shape is False and res.load.users / res.load.spawn_rate > res.load.seconds:
        w.append(f"the ramp ({res.load.users / res.load.spawn_rate:.0f} s) is longer than the "
                 "run: the peak user count was never reached")
    if res.soak and res.soak[0] != "pass":
        w.append(f"soak {res.soak[0]}: {res.soak[2]}")


# --- the report --------------------------------------------------------------------------------
def fmt(value: float | int | str | None, digits: int = 0) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def ms(value: float | None) -> str:
    """Milliseconds: whole numbers as such (locust's percentiles are whole), else 3 digits."""
    if value is None:
        return ""
    if float(value).is_integer():
        return fmt(value)
    return fmt(value, 2 if value < 10 else 1 if value < 100 else 0)


def published(value: float | None) -> str:
    """A figure of the report as the report gives it (1,647.22 stays 1,647.22)."""
    if value is None:
        return ""
    return fmt(value) if float(value).is_integer() else fmt(value, 2)


def target(res: Result) -> str:
    p99, mx = res.figure("99%"), res.figure("Max Response Time")
    misses = []
    if res.failures:
        misses.append(f"{res.failures:,} failures")
    if p99 is None or p99 >= 50:
        misses.append(f"p99 {ms(p99)} ms")
    if mx is None or mx >= 1000:
        misses.append(f"max {ms(mx)} ms")
    return "✗ " + ", ".join(misses) if misses else "✓"


def cpu_cell(res: Result) -> str:
    cell = (f"{res.locust_cpu / res.locust_cores:.0%} avg, {res.locust_peak / res.locust_cores:.0%}"
            f" peak of {res.locust_cores} core{'s' if res.locust_cores > 1 else ''}")
    return cell + (" ⚠" if res.locust_peak >= SATURATED * res.locust_cores else "")


def report_md(results: list[Result], args: argparse.Namespace, argv: list[str],
              started: datetime) -> str:
    lines = [f"# Load test report, {started:%Y-%m-%d %H:%M:%S}", ""]
    lines += [f"`python -m loadtests {shlex.join(argv)}`", ""]
    lines += [f"Machine: {cores()} cores ({cpu_model()}), Python {platform.python_version()}, "
              f"locust {locust_version()}. Target: "
              + (f"`{args.host}`." if args.host else
                 f"a fresh redis-server (repo's redis.conf) and the API ({args.api_workers} "
                 f"{args.server or default_server()} worker(s), uvloop, flags of api/serve.py) "
                 "per scenario, seeded with the demo data."),
              ""]
    lines += ["Each scenario's figures beside the report's. *requests* includes every request "
              "locust made: the per-user token set-up (`[setup]`) and expected outcomes counted "
              "apart as successes (a contested seat's 409 in *seat conflicts*, beside the 409s of "
              "customers at the concert's ticket limit; a 401 after a "
              "token expired or a pay finished it). Times are milliseconds. *Target*: 0 "
              "failures, p99 under 50 ms, max under 1 s. Locust starts a second's worth of "
              "users at the same instant; each new user waits a random part of that second "
              "before its first request (`LOADTEST_SPAWN_JITTER`, see "
              "`locustfiles/common.py`).", ""]
    head = ["scenario", "figures of", "load", "requests", "failures", "seat conflicts",
            "avg ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "locust CPU", "target"]
    lines += ["| " + " | ".join(head) + " |",
              "|" + "|".join(["---"] * 3 + ["---:"] * 9 + ["---"] * 2) + "|"]
    for res in results:
        s, load = res.scenario, res.load
        label = describe(load, s.load, not s.rate_from_report)
        if res.scaled:
            label = "scaled: " + label
        conflicts, limits = res.count("[409 seat taken]"), res.count("[409 ticket limit]")
        lines.append("| " + " | ".join([
            s.title, "this run", label, fmt(res.requests), fmt(res.failures),
            (fmt(conflicts) + (f" (+{fmt(limits)} ticket limit)" if limits else ""))
            if s.key in ("s7", "soak") else "",
            ms(res.figure("Average Response Time")), ms(res.figure("50%")),
            ms(res.figure("95%")), ms(res.figure("99%")), ms(res.figure("Max Response Time")),
            fmt(res.figure("Requests/s"), 1), cpu_cell(res), target(res)]) + " |")
        if s.published is not None:
            p = s.published
            ref = describe(s.load, None, not s.rate_from_report).replace(" (ours)", "")
            if not s.rate_from_report:
                ref = ref.replace(f", {s.load.spawn_rate:g}/s", "")
            lines.append("| " + " | ".join([
                "", "report", ref, fmt(p.requests), fmt(p.failures), "", published(p.avg_ms),
                published(p.p50_ms), published(p.p95_ms), published(p.p99_ms),
                published(p.max_ms), "", "", ""]) + " |")
    lines.append("")
    lines += ["Where the report gives no spawn rate (§4, §5, §6) the rate is ours. *locust CPU*: "
              "the generator's own CPU (all its processes, from /proc) as a share of the cores "
              "it can use (one per process), average and highest 5 s average; ⚠ marks a "
              "saturated generator.", ""]

    warnings = [(r.scenario.title, w) for r in results for w in r.warnings]
    if warnings:
        lines += ["## Warnings", ""] + [f"- **{t}**: {w}" for t, w in warnings] + [""]

    server = [r for r in results if r.server_cpu is not None]
    if server:
        lines += ["## CPU", "", "| scenario | locust cores (avg / peak) | API + Redis cores (avg) "
                  "| machine busy at peak |", "|---|---:|---:|---:|"]
        lines += [f"| {r.scenario.title} | {r.locust_cpu:.2f} / {r.locust_peak:.2f} | "
                  f"{r.server_cpu:.2f} | {r.machine_peak:.2f} of {cores()} |" for r in server]
        lines.append("")

    for res in results:
        s = res.scenario
        lines += [f"## {s.title}", "", f"`{s.path.relative_to(REPO)}`, {describe(res.load)}, "
                  f"locust exit code {res.exit_code}, {res.wall:.0f} s. Files: "
                  f"[`{s.file}/`]({s.file}/).", ""]
        if res.rows:
            lines += ["| request | requests | failures | avg ms | p50 ms | p99 ms | max ms |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for r in res.rows:
                lines.append(f"| {r['Type']} {r['Name']} | {fmt(num(r['Request Count']))} | "
                             f"{fmt(num(r['Failure Count']))} | "
                             f"{ms(num(r['Average Response Time']))} | {ms(num(r['50%']))} | "
                             f"{ms(num(r['99%']))} | {ms(num(r['Max Response Time']))} |")
            lines.append("")
        if res.failures_csv:
            lines += ["Failures:", "", "| request | error | occurrences |", "|---|---|---:|"]
            for f in sorted(res.failures_csv, key=lambda f: -int(f["Occurrences"]))[:10]:
                error = f["Error"].replace("|", "\\|").replace("\n", " ")[:160]
                lines.append(f"| {f['Method']} {f['Name']} | {error} | {f['Occurrences']} |")
            lines.append("")
        for chart in res.charts:
            rel = chart.relative_to(res.out_dir.parent)
            lines += [f"![{s.title}: {chart.stem.removeprefix(s.file + '_')}]({rel})", ""]
        if res.soak is not None:
            verdict, series, sentence, warmup, samples_csv, chart = res.soak
            lines += [f"**Soak verdict: {verdict.upper()}**: {sentence}. Rule: after the "
                      f"{warmup:.0f} s warm-up, a least-squares line through each series may "
                      "rise over the judged window by at most max(5 % of its mean, a floor: "
                      "2 MiB used_memory, 100 keys, 100 records, 8 MiB RSS). Samples: "
                      f"[`{samples_csv.name}`]({s.file}/{samples_csv.name}).", ""]
            if series:
                lines += ["| series | samples | mean | slope per minute | rise over the window "
                          "| limit | |", "|---|---:|---:|---:|---:|---:|---|"]
                for v in series:
                    scale, unit = (2**20, " MiB") if v.unit == "bytes" else (1, f" {v.unit}")
                    lines.append(
                        f"| {v.series} | {v.samples} | {v.mean / scale:,.2f}{unit} | "
                        f"{v.slope_per_min / scale:+,.3f}{unit} | {v.rise / scale:+,.2f}{unit} | "
                        f"{v.limit / scale:,.2f}{unit} | {'✓' if v.ok else '✗'} |")
                lines.append("")
            if chart is not None:
                lines += [f"![soak memory]({chart.relative_to(res.out_dir.parent)})", ""]
    return "\n".join(lines)


def locust_version() -> str:
    try:
        from importlib.metadata import version

        return version("locust")
    except Exception:  # pragma: no cover - locust is a dev dependency
        return "?"


def summary_line(res: Result) -> str:
    return (f"{res.scenario.key:<5} {res.scenario.title:<22} requests {res.requests:>8,}  "
            f"failures {res.failures:>5,}  p99 {ms(res.figure('99%')):>6} ms  max "
            f"{ms(res.figure('Max Response Time')):>7} ms  locust CPU {cpu_cell(res)}  "
            f"{target(res)}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "run" and argv[1] in ("drop", "stress"):
        # The ticket drop and the stress ramp have runners (and flags) of their own.
        import importlib

        return importlib.import_module(f"loadtests.{argv[1]}").main(argv[2:])
    args = build_parser().parse_args(argv)
    if args.command == "charts":
        return charts_command(args)
    try:
        scenarios = resolve(args.scenario)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.host is None:
        import shutil

        if shutil.which("redis-server") is None:
            print("redis-server is not on PATH: `make install` installs it, or use --host",
                  file=sys.stderr)
            return 2
    started = datetime.now()
    out = args.out or RESULTS / started.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(f"report folder: {out}", flush=True)
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

