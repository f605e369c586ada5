"""The ticket drop's PNG charts: the concert's stats over time, admissions a second,
requests a second by step, response times, estimated against actual waits, admission
against arrival, and the CPU of the generator, the stack and the machine."""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from pathlib import Path

from loadtests.drop.buyer import STEPS
from loadtests.drop.run import ETA_GOAL, Run
from loadtests.generator.stats import percentile
from loadtests.reporting import pyplot


def _fig(plt, title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    ax.set_title(title, fontsize=13)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _marks(ax, a: dict) -> None:
    ax.axvline(0, color="black", lw=1, ls="--", label="opening")
    if a.get("sold_out_s") is not None:
        ax.axvline(a["sold_out_s"], color="tab:red", lw=1, ls="--",
                   label=f"sold out ({a['sold_out_s']:.1f} s)")


def _save(plt, fig, ax, path: Path, legend: str | None = "best") -> Path:
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend, fontsize=9, framealpha=0.85)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def charts(run: Run, buyers: list[dict], requests: list, events: list, a: dict) -> list[Path]:
    plt = pyplot()
    cfg, out, paths = run.cfg, run.out, []
    title = f"Ticket drop ({run.generator}): {cfg.buyers:,} buyers, {run.seats:,} seats"
    xs = [s["t"] for s in run.samples]

    # 1. Queue, active, holds, sold over time (stats every second).
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), dpi=110, sharex=True)
    fig.suptitle(f"{title}: the concert's stats (GET /admin/.../stats every second)",
                 fontsize=12)
    ax1.plot(xs, [s["waiting"] for s in run.samples], color="tab:blue", lw=2,
             label="waiting (queue length)")
    ax1.plot(xs, [s["active"] for s in run.samples], color="tab:green", lw=2,
             label="active tokens")
    ax1.axhline(run.active_limit, color="tab:green", lw=1, ls=":",
                label=f"activeLimit {run.active_limit:,}")
    ax1.set_ylabel("tokens")
    ax2.plot(xs, [s["sold"] for s in run.samples], color="tab:red", lw=2, label="sold")
    ax2.plot(xs, [s["holds"] for s in run.samples], color="tab:orange", lw=2,
             label="holds open")
    ax2.plot(xs, [s["free"] for s in run.samples], color="tab:gray", lw=1.5, label="free")
    ax2.axhline(run.seats, color="black", lw=1, ls=":", label=f"seats {run.seats:,}")
    ax2.set_ylabel("seats")
    ax2.set_xlabel("seconds since the opening")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        _marks(ax, a)
        ax.set_ylim(bottom=0)
        ax.legend(loc="center right", fontsize=9, framealpha=0.85)
    fig.tight_layout()
    p = out / "drop_stats.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)

    # 2. Admissions a second against the configured rate.
    fig, ax = _fig(plt, f"{title}: admissions per second", "seconds since the opening",
                   "tokens admitted")
    per = a["admissions_per_second"]
    if per:
        ax.bar([s + 0.5 for s, _ in per], [n for _, n in per], width=0.9, color="tab:blue",
               alpha=0.7, label="admitted that second (ADMITTED events)")
    ax.plot(xs, [s["admissions_avg"] for s in run.samples], color="tab:purple", lw=1.5,
            label="the rate the engine estimates with (stats: max(minute average, this second))")
    ax.axhline(run.admit, color="tab:red", lw=1.5, ls="--",
               label=f"admitPerSecond {run.admit}")
    _marks(ax, a)
    ax.set_ylim(bottom=0)
    paths.append(_save(plt, fig, ax, out / "drop_admissions.png"))

    # 3. Requests a second by step, and failures.
    fig, ax = _fig(plt, f"{title}: requests per second by step", "seconds since the opening",
                   "requests/s")
    per_step: dict[str, Counter] = defaultdict(Counter)
    fails: Counter = Counter()
    off = cfg.t_start - cfg.opens_at
    for t, step, _, _, _, ok, _ in requests:
        sec = math.floor(t + off)
        per_step[step][sec] += 1
        if not ok:
            fails[sec] += 1
    for step in STEPS:
        if step in per_step:
            ser = sorted(per_step[step].items())
            ax.plot([s for s, _ in ser], [n for _, n in ser], lw=1.2, label=step)
    if fails:
        ser = sorted(fails.items())
        ax.plot([s for s, _ in ser], [n for _, n in ser], color="black", lw=2,
                label="failures")
    _marks(ax, a)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    paths.append(_save(plt, fig, ax, out / "drop_requests.png", None))

    # 4. Response times per second: p50 and p99 of all requests, and of the holds and pays.
    fig, ax = _fig(plt, f"{title}: response times (per second)", "seconds since the opening",
                   "ms")
    groups: dict[str, dict[int, list[float]]] = {"all": defaultdict(list),
                                                 "reserve + pay": defaultdict(list)}
    for t, step, _, _, ms, _, _ in requests:
        sec = math.floor(t + off)
        groups["all"][sec].append(ms)
        if step in ("reserve", "reserve-best", "pay"):
            groups["reserve + pay"][sec].append(ms)
    for name, color in (("all", "tab:blue"), ("reserve + pay", "tab:red")):
        ser = sorted(groups[name].items())
        if not ser:
            continue
        secs = [s for s, _ in ser]
        ax.plot(secs, [percentile(v, 0.5) for _, v in ser], color=color, lw=1,
                ls="--", label=f"{name}: p50")
        ax.plot(secs, [percentile(v, 0.99) for _, v in ser], color=color, lw=1.5,
                label=f"{name}: p99")
    _marks(ax, a)
    ax.set_yscale("log")
    paths.append(_save(plt, fig, ax, out / "drop_latency.png", "upper right"))

    # 5. ETA: first estimate against the actual wait.
    fig, ax = _fig(plt, f"{title}: estimatedWaitSeconds (first) against the actual wait",
                   "actual wait to ACTIVE (s, from that answer to the admission)",
                   "first estimatedWaitSeconds (s)")
    pts = a["eta_points"]
    if pts:
        for pre, color, label in ((True, "tab:orange", "arrived before the opening"),
                                  (False, "tab:blue", "arrived after the opening")):
            sel = [(act, est) for est, act, p in pts if p == pre]
            if sel:
                ax.scatter(*zip(*sel, strict=True), s=5, alpha=0.4, color=color, label=label)
        top = max(max(act for _, act, _ in pts), max(est for est, _, _ in pts), 1)
        ax.plot([0, top], [0, top], color="black", lw=1, label="exact")
        ax.fill_between([0, top], [0, top * (1 - ETA_GOAL)], [0, top * (1 + ETA_GOAL)],
                        color="tab:green", alpha=0.12, label="±20 %")
        ax.set_xlim(0, top * 1.02)
        ax.set_ylim(0, top * 1.02)
    paths.append(_save(plt, fig, ax, out / "drop_eta.png", "upper left"))

    # 6. Fairness: admission order against arrival order.
    fig, ax = _fig(plt, f"{title}: admission against arrival",
                   "arrival (s since the opening)", "admitted (s since the opening)")
    for pre, color, label in ((True, "tab:orange", "arrived before the opening (shuffled)"),
                              (False, "tab:blue", "arrived after it (FIFO)")):
        sel = [(b["arrived"] - cfg.opens_at, b["admitted"] - cfg.opens_at) for b in buyers
               if b["admitted"] and b["pre"] == pre]
        if sel:
            ax.scatter(*zip(*sel, strict=True), s=4, alpha=0.4, color=color, label=label)
    ax.axvline(0, color="black", lw=1, ls="--", label="opening")
    paths.append(_save(plt, fig, ax, out / "drop_fairness.png", "upper left"))

    # 7. CPU: the generator, the API + Redis.
    fig, ax = _fig(plt, f"{title}: CPU (cores)", "seconds since the opening", "cores busy")
    cpu_x, gen_y, srv_y, all_y = [], [], [], []
    for s0, s1 in zip(run.samples, run.samples[1:], strict=False):
        dt = s1["epoch"] - s0["epoch"]
        if dt > 0:
            cpu_x.append(s1["t"])
            gen_y.append((s1["gen_cpu_s"] - s0["gen_cpu_s"]) / dt)
            srv_y.append((s1["server_cpu_s"] - s0["server_cpu_s"]) / dt)
            all_y.append((s1["machine_cpu_s"] - s0["machine_cpu_s"]) / dt)
    ax.plot(cpu_x, all_y, color="black", lw=1, ls="--",
            label="the whole machine (every process, other work included)")
    ax.plot(cpu_x, gen_y, color="tab:purple", lw=1.5,
            label=f"generator ({run.generator}, {run.processes} process(es))")
    ax.plot(cpu_x, srv_y, color="tab:gray", lw=1.5, label="API + Redis")
    ax.axhline(os.cpu_count() or 2, color="black", lw=1, ls=":", label="the machine's cores")
    _marks(ax, a)
    ax.set_ylim(bottom=0)
    paths.append(_save(plt, fig, ax, out / "drop_cpu.png"))
    return paths
