"""The stress ramp's report: ``report.md`` (each scenario's knee and every step) and a chart a
scenario (requests/s and p50/p99 against users, the CPU below)."""

from __future__ import annotations

import argparse
import os
import shlex
from datetime import datetime
from pathlib import Path

from devstack.api_server import default_server
from loadtests.reporting import machine, pyplot
from loadtests.stress.steps import Ramp


def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def chart(ramp: Ramp) -> Path | None:
    if not ramp.steps:
        return None
    plt = pyplot()
    fig, (ax1, ax3) = plt.subplots(2, 1, figsize=(11, 7.5), dpi=110, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    fig.suptitle(f"Stress ramp, {ramp.scenario} ({ramp.generator} generator): requests/s and "
                 f"p99 per step", fontsize=12)
    users = [s.users for s in ramp.steps]
    ax1.plot(users, [s.req_s for s in ramp.steps], "o-", color="tab:blue", lw=2,
             label="requests/s (judged part of the step)")
    ax1.set_ylabel("requests/s", color="tab:blue")
    ax1.set_ylim(bottom=0)
    ax1.grid(True, alpha=0.3)
    ax2 = ax1.twinx()
    ax2.plot(users, [s.p99 or 0 for s in ramp.steps], "s-", color="tab:red", lw=1.5,
             label="p99 (ms)")
    ax2.plot(users, [s.p50 or 0 for s in ramp.steps], "^--", color="tab:orange", lw=1,
             label="p50 (ms)")
    ax2.axhline(ramp.bound, color="tab:red", ls=":", lw=1, label=f"bound {ramp.bound:g} ms")
    ax2.set_ylabel("ms", color="tab:red")
    ax2.set_yscale("log")
    if ramp.knee is not None:
        ax1.axvline(ramp.knee.users, color="black", ls="--", lw=1,
                    label=f"knee: {ramp.knee.users:,} users, {ramp.knee.req_s:,.0f} req/s, "
                    f"p99 {fmt(ramp.knee.p99)} ms")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=9, framealpha=0.85)
    ax3.plot(users, [s.gen_cpu for s in ramp.steps], "o-", color="tab:purple",
             label=f"generator ({ramp.processes} process(es))")
    ax3.plot(users, [s.server_cpu for s in ramp.steps], "o-", color="tab:gray",
             label="API + Redis")
    ax3.plot(users, [s.machine_cpu for s in ramp.steps], "o-", color="black", alpha=0.6,
             label="the whole machine (other work included)")
    ax3.axhline(os.cpu_count() or 2, color="black", ls=":", lw=1, label="cores")
    ax3.set_ylabel("cores busy")
    ax3.set_xlabel("users (step)")
    ax3.set_ylim(bottom=0)
    ax3.grid(True, alpha=0.3)
    ax3.legend(loc="upper left", fontsize=9, framealpha=0.85)
    if max(users) / max(1, min(users)) > 8:
        ax3.set_xscale("log")
    fig.tight_layout()
    path = ramp.out / f"stress_{ramp.scenario}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def report_md(ramps: list[Ramp], argv: list[str], started: datetime,
              args: argparse.Namespace) -> str:


    lines = [f"# Stress ramp, {started:%Y-%m-%d %H:%M:%S}", "",
             f"`python -m loadtests run stress {shlex.join(argv)}`", "",
             f"Machine: {machine()}, shared with other work running at the "
             "same time (the *machine* column: every process on the box). A fresh redis-server "
             f"and the API ({args.api_workers} {default_server()} worker(s)) per scenario, "
             "seeded with the demo data, per-customer rate limits off. Each step holds its users "
             f"{args.step_seconds:g} s; the first {args.warmup:g} s are not judged. Bound: p99 "
             f"≤ {args.p99:g} ms and no failures.", "",
             "| scenario | generator | knee: users | req/s | p50 ms | p99 ms | the ramp stopped "
             "at | because |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in ramps:
        k = r.knee
        last = r.steps[-1] if r.steps else None
        lines.append(
            f"| {r.scenario} | {r.generator} | {f'{k.users:,}' if k else '-'} | "
            f"{fmt(k.req_s, 0) if k else '-'} | {fmt(k.p50) if k else '-'} | "
            f"{fmt(k.p99) if k else '-'} | "
            f"{f'{last.users:,} users' if last and last.verdict else '-'} | {r.stop_reason} |")
    lines.append("")
    for r in ramps:
        lines += [f"## {r.scenario}", "",
                  "| step | users | req/s | p50 ms | p99 ms | failures | generator cores | "
                  "generator loop lag p99 ms | API + Redis cores | machine cores | |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for s in r.steps:
            codes = ", ".join(f"{c} x{n}" for c, n in s.codes.most_common(3))
            mark = f"**{s.verdict}**" if s.verdict else ("knee" if s is r.knee else "")
            lines.append(f"| {s.k + 1} | {s.users:,} | {s.req_s:,.0f} | {fmt(s.p50)} | "
                         f"{fmt(s.p99)} | {s.failures:,}{' (' + codes + ')' if codes else ''} "
                         f"| {s.gen_cpu:.2f} | {fmt(s.lag_p99)} | {s.server_cpu:.2f} | "
                         f"{s.machine_cpu:.2f} | "
                         f"{mark} |")
        lines.append("")
        if r.warnings:
            lines += [f"- {w}" for w in r.warnings] + [""]
        if r.chart is not None:
            rel = r.chart.relative_to(r.out.parent) if r.out.parent != r.chart.parent \
                else Path(r.chart.name)
            lines += [f"![stress {r.scenario}]({rel})", ""]
    return "\n".join(lines) + "\n"
