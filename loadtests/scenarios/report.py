"""The scenarios' ``report.md``: each scenario's figures beside the report's, the CPU of
locust and of the stack, the warnings, each request's figures and charts, the soak's verdict;
and the one line a scenario prints when it ends."""

from __future__ import annotations

import argparse
import platform
import shlex
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from devstack import REPO
from devstack.api_server import default_server
from devstack.cpu import cores
from loadtests.generator.locust_csv import num
from loadtests.reporting import machine
from loadtests.scenarios.registry import describe
from loadtests.scenarios.result import SATURATED, Result


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


def cpu_cell(res: Result) -> str:
    cell = (f"{res.locust_cpu / res.locust_cores:.0%} avg, {res.locust_peak / res.locust_cores:.0%}"
            f" peak of {res.locust_cores} core{'s' if res.locust_cores > 1 else ''}")
    return cell + (" ⚠" if res.locust_peak >= SATURATED * res.locust_cores else "")


def report_md(results: list[Result], args: argparse.Namespace, argv: list[str],
              started: datetime) -> str:
    lines = [f"# Load test report, {started:%Y-%m-%d %H:%M:%S}", ""]
    lines += [f"`python -m loadtests {shlex.join(argv)}`", ""]
    lines += [f"Machine: {machine()}, Python {platform.python_version()}, "
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
              "`loadtests/scenarios/locustfiles/common.py`).", ""]
    if any(r.as_printed for r in results):
        lines += ["*As printed*: the report's own scripts (`loadtests/scenarios/as_printed/`), "
                  "which check no body and read no problem code, against an API with every "
                  "default setting; §2-§4 send one ACTIVE token for every user, as the "
                  "report's did. A reserve's 409 counts as a *seat conflict* (the script cannot "
                  "tell a contested seat from the ticket limit), every other non-2xx as a "
                  "failure.", ""]
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
        if res.as_printed:  # the printed script reads no code: its reserve 409s, all of them
            conflicts, limits = res.reserve_conflicts, 0
        lines.append("| " + " | ".join([
            s.title + (" (as printed)" if res.as_printed else ""), "this run", label,
            fmt(res.requests), fmt(res.unexpected),
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
        path = s.printed if res.as_printed and s.printed else s.path
        lines += [f"## {s.title}", "", f"`{path.relative_to(REPO)}`, {describe(res.load)}, "
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
        return version("locust")
    except PackageNotFoundError:  # pragma: no cover - locust is a dev dependency
        return "?"


def summary_line(res: Result) -> str:
    return (f"{res.scenario.key:<5} {res.scenario.title:<22} requests {res.requests:>8,}  "
            f"failures {res.unexpected:>5,}  p99 {ms(res.figure('99%')):>6} ms  max "
            f"{ms(res.figure('Max Response Time')):>7} ms  locust CPU {cpu_cell(res)}  "
            f"{target(res)}")


def target(res: Result) -> str:
    p99, mx = res.figure("99%"), res.figure("Max Response Time")
    misses = []
    if res.unexpected:
        misses.append(f"{res.unexpected:,} failures")
    if p99 is None or p99 >= 50:
        misses.append(f"p99 {ms(p99)} ms")
    if mx is None or mx >= 1000:
        misses.append(f"max {ms(mx)} ms")
    return "✗ " + ", ".join(misses) if misses else "✓"
