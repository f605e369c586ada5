"""The ticket drop's report (``python -m loadtests run drop``): the verdicts, ``report.md``
with its tables, ``checks.json``'s summary (the charts are ``charts.py``'s)."""

from __future__ import annotations

import os
import shlex
from datetime import datetime
from pathlib import Path

from devstack.api_server import default_server
from loadtests.drop.run import BALANCE_OFF, ETA_GOAL, PAY_TOTAL_OFF, REFRESH_SECONDS, Run
from loadtests.reporting import machine


def f0(v: float | int | None, digits: int = 0) -> str:
    return "" if v is None else f"{v:,.{digits}f}"


def rho(v: float | None) -> str:
    return "n/a (fewer than 3 admitted)" if v is None else f"{v:+.3f}"


def pct(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v * 100:+.{digits}f} %"


def apct(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v * 100:.{digits}f} %"


def verdicts(run: Run) -> list[tuple[str, bool, str]]:
    a = run.analysis
    sold = a.get("sold_out_s")
    lo, hi = a.get("expected_s"), a.get("expected_tail_s")
    m = a["money"]
    out = [
        ("0 oversold", a["oversold"] == 0 and a["books_balance"],
         f"{a['sales_rows']:,} sales rows, {a['seats_sold_twice']} seat(s) sold twice, free + "
         f"sold + holds {'=' if a['books_balance'] else '≠'} {run.seats:,}"),
        ("0 double charged", a["double_charged"] == 0,
         f"{m['reservations paid twice in a history']} reservation(s) paid twice, "
         f"{m[PAY_TOTAL_OFF]} payment total(s) off, {m[BALANCE_OFF]} balance(s) off"),
        ("events = outcomes", all(a["match"].values()),
         ", ".join(k for k, ok in a["match"].items() if not ok) or "all five hold"),
        ("0 failures other than the expected 409/429", a["failures"] == 0,
         f"{a['failures']:,} unexpected answer(s)"),
        ("sold out", sold is not None, f"{sold:.1f} s after the opening" if sold is not None
         else "not sold out"),
        ("99 % sold within a few seconds of what the admission rate allows",
         a.get("sold_99_s") is not None and abs(a["sold_99_s"] - a["expected_99_s"]) <= 5,
         f"{f0(a.get('sold_99_s'), 1)} s against {f0(a['expected_99_s'], 1)} s"),
        ("sell-out within a few seconds of what the admission rate allows",
         sold is not None and lo is not None and lo - 5 <= sold <= hi + 5,
         f"{f0(sold, 1)} s against {f0(lo, 1)} s + {a['tail_rounds']} expiry round(s) of the "
         f"last seat x ({run.hold_ttl:g} s hold TTL + {REFRESH_SECONDS:g} s) = {f0(hi, 1)} s"),
        ("FIFO after the opening", a["fifo_inversions"] == 0,
         f"{a['fifo_inversions']} inversion(s) beyond one batch"),
        ("positions never move backwards", a["positions_backwards"] == 0,
         f"{a['positions_backwards']} of {a['waiters_with_positions']:,} waiters"),
    ]
    return out


TARGETS = {False: "redis-server",
           True: "local Redis Cluster of 3 masters with a replica each (WAIT 1 on writes)"}


def report_md(runs: list[Run], argv: list[str], started: datetime) -> str:
    lines = [f"# Ticket drop, {started:%Y-%m-%d %H:%M:%S}", "",
             f"`python -m loadtests run drop {shlex.join(argv)}`", "",
             f"Machine: {machine()}, shared with other work running at the "
             "same time: every figure here is from this one run. Target: a fresh "
             f"{TARGETS['--cluster' in argv]} (the repo's redis.conf) and the API "
             f"({default_server()}, uvloop) started by the runner, the catalogue loaded with "
             "`PUT /admin/concerts/{id}` and the settings PATCHed through the admin API.", ""]
    if len(runs) > 1:
        lines += generator_table(runs)
    for run in runs:
        lines += run_section(run, len(runs) > 1)
    return "\n".join(lines) + "\n"


def generator_figures(run: Run) -> dict:
    a = run.analysis
    cpu_s = run.gen_cpu * run.wall
    span = a["req_span"] or 1
    return {"cpu_s": cpu_s, "req_per_cpu_s": a["requests_n"] / cpu_s if cpu_s else None,
            "buyers_per_cpu_s": a["buyers"] / cpu_s if cpu_s else None,
            "req_s": a["requests_n"] / span, "peak": run.gen_peak}


def generator_table(runs: list[Run]) -> list[str]:
    lines = ["## The generators, same drop", "",
             "The same plan (same buyers, arrivals and choices; seed "
             f"{runs[0].cfg.seed}) on a fresh stack for each generator, one after the other. "
             "*CPU*: the generator's processes (all of them, from /proc) over the run.", "",
             "| generator | processes | buyers | requests | mean req/s | generator CPU s | "
             "peak cores (5 s) | requests per CPU s | buyers per CPU s | sleep overshoot "
             "p50 / p99 ms | failures | sold out after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        g, a = generator_figures(run), run.analysis
        lines.append(
            f"| {run.generator} | {run.processes} | {a['buyers']:,} | {a['requests_n']:,} | "
            f"{f0(g['req_s'])} | {f0(g['cpu_s'], 1)} | {g['peak']:.2f} | "
            f"{f0(g['req_per_cpu_s'])} | {f0(g['buyers_per_cpu_s'])} | "
            f"{f0(a['overshoot_p50'], 1)} / {f0(a['overshoot_p99'], 1)} | {a['failures']:,} | "
            f"{f0(a.get('sold_out_s'), 1)} s |")
    if len(runs) == 2:
        g0, g1 = generator_figures(runs[0]), generator_figures(runs[1])
        if g0["req_per_cpu_s"] and g1["req_per_cpu_s"]:
            best, other = (runs[0], runs[1]) if g0["req_per_cpu_s"] >= g1["req_per_cpu_s"] \
                else (runs[1], runs[0])
            ratio = generator_figures(best)["req_per_cpu_s"] / generator_figures(other)[
                "req_per_cpu_s"]
            lines += ["", f"**{best.generator}** drives {ratio:.1f}x the requests (and buyers) "
                      f"per CPU second of **{other.generator}** here."]
    return [*lines, ""]


def run_section(run: Run, several: bool) -> list[str]:
    a, cfg = run.analysis, run.cfg
    h = "##"
    st = a["stats_end"]
    rel = run.out.name if several else "."
    lines = [f"{h} The drop, {run.generator} generator ({run.processes} process(es))", ""]
    lines += [f"{cfg.buyers:,} buyers, {run.seats:,} seats (`{Path(run.catalog).name}`), "
              f"admitPerSecond **{run.admit}** (seats ÷ ({run.per_buyer:.2f} seats a buyer "
              f"means to buy x the target)), activeLimit {run.active_limit:,}, activeTtlSeconds "
              f"{cfg.active_ttl:g}, holdTtlSeconds {run.hold_ttl:g}; opensAt "
              f"{cfg.opens_at - cfg.t_start:.1f} s after the plan's start; "
              f"{a['pre_total']:,} buyers arrived before the "
              f"opening, {a['post_total']:,} after it (exponential burst, mean "
              f"{cfg.mix.post_mean:g} s, cut at {cfg.mix.post_max:g} s). "
              f"Run time {run.wall:.0f} s.", ""]
    lines += ["### Checks", "", "| check | | |", "|---|---|---|"]
    for name, ok, detail in verdicts(run):
        lines.append(f"| {name} | {'✓' if ok else '✗'} | {detail} |")
    lines.append("")
    lines += ["### Time to sell out", "",
              f"- **Sold out {f0(a.get('sold_out_s'), 1)} s after the opening** (the "
              f"{run.seats:,}th PAID event); the first sale after {f0(a.get('first_sale_s'), 1)}"
              " s.",
              f"- What the admission rate allows: {run.seats:,} seats ÷ ({run.admit} admissions"
              f"/s x {run.per_buyer:.2f} seats an admission sells, the plan's average) + the "
              f"median buyer's {f0(a.get('flow_p50'), 1)} s from its admission to its last pay"
              f" = **{f0(a.get('expected_s'), 1)} s**. The last seats are often holds left "
              f"to expire, on sale again {run.hold_ttl:g} s (the hold TTL) later and picked up "
              f"by a buyer looking again within {REFRESH_SECONDS:g} s, sometimes more than "
              f"once: the last seat sold (id {a['tail_seat']}) had been left to expire "
              f"{a['tail_rounds']} time(s), so {f0(a.get('expected_tail_s'), 1)} s; the last "
              f"EXPIRED event came {f0(a.get('last_expiry_s'), 1)} s after the opening.",
              f"- Half the seats sold after {f0(a.get('sold_50_s'), 1)} s, 90 % after "
              f"{f0(a.get('sold_90_s'), 1)} s, 99 % after {f0(a.get('sold_99_s'), 1)} s; "
              f"{a['admitted_until_sold_out']:,} tokens were admitted until the sell-out.",
              f"- Admissions a second from the opening to the sell-out (ADMITTED events, the "
              f"{a['admit_seconds']} whole seconds that began with at least {run.admit} "
              f"waiting and room for them under the active limit and the stock, and ended "
              f"with room and waiters left, as the stats sampled each second say): mean "
              f"{f0(a.get('admit_rate_mean'), 1)}, min "
              f"{f0(a.get('admit_rate_min'))}, max {f0(a.get('admit_rate_max'))}, configured "
              f"{run.admit}.",
              f"- At the end: {st['sold']:,} sold, {st['freeSeats']:,} free, {st['holds']:,} "
              f"holds, {st['waiting']:,} still waiting (told it sold out), {st['active']:,} "
              "ACTIVE tokens.", ""]
    lines += ["### The queue and its stock", "",
              f"- Admitted buyers who found nothing to hold: **{a['admitted_found_nothing']:,}"
              f"** of {a['admitted']:,} admitted (admission is sized to the seats left: "
              f"admitPerSeat).",
              f"- Waiters told SOLD_OUT by their own status poll: {a['told_sold_out']:,}; from "
              f"the last sale to that answer p50 {f0(a.get('told_sold_out_p50'), 1)} s, p99 "
              f"{f0(a.get('told_sold_out_p99'), 1)} s, max {f0(a.get('told_sold_out_max'), 1)}"
              f" s (the tick says so within a second; a waiter learns at its next poll, "
              f"pollAfterSeconds at most 30).",
              f"- Seats that came back (cancelled, expired, revoked) and were held again: "
              f"**{a['returned_to_head']:,}** by a buyer admitted after the seat came back "
              f"(the head of the queue), {a['returned_to_active']:,} by one ACTIVE before; "
              f"{a['returned_unsold']:,} not held again.", ""]
    lines += ["### Per step", "", "| step | requests | p50 ms | p90 ms | p99 ms | max ms |",
              "|---|---:|---:|---:|---:|---:|"]
    for step, n, p50, p90, p99, mx in a["steps"]:
        lines.append(f"| {step} | {n:,} | {f0(p50, 1)} | {f0(p90, 1)} | {f0(p99, 1)} | "
                     f"{f0(mx, 1)} |")
    lines += ["", f"{a['requests_n']:,} requests in all. Times include any wait for one of the "
              f"generator's pooled connections (p99 of that wait: "
              f"{f0(a['pool_wait_p99'], 2)} ms; locust: not measured).", ""]
    lines += ["### Answers other than 2xx", "", "| step | status | code | count | |",
              "|---|---:|---|---:|---|"]
    for (step, status, code, ok), n in a["codes"]:
        lines.append(f"| {step} | {status} | {code} | {n:,} | "
                     f"{'expected' if ok else '**failure**'} |")
    if not a["codes"]:
        lines.append("| (none) | | | | |")
    lines += ["", "### Buyers' outcomes", "", "| outcome | buyers |", "|---|---:|"]
    lines += [f"| {o} | {n:,} |" for o, n in a["outcomes"]]
    lines += ["", "### The books", "",
              f"Sales (`GET /admin/concerts/{cfg.concert}/sales.csv`): {a['sales_rows']:,} rows; "
              f"stats at the end: sold {st['sold']:,}, free {st['freeSeats']:,}, holds "
              f"{st['holds']:,}.", "",
              "Events in `tk:{c:" + str(cfg.concert) + "}:events` (XRANGE): " + ", ".join(
                  f"{k} {v:,}" for k, v in a["events"].items())
              + f"; ADMITTED counts sum to {a['admitted_events']:,}. What the buyers saw: held "
              f"{a['client']['held']:,} seats, paid {a['client']['paid']:,}, cancelled "
              f"{a['client']['cancelled']:,}, left {a['client']['abandoned']:,} to expire.", "",
              "| check | |", "|---|---|"]
    lines += [f"| {k} | {'✓' if ok else '✗'} |" for k, ok in a["match"].items()]
    lines += ["", "| money (every buyer's balance and history, through the API) | |",
              "|---|---:|"]
    for k, v in a["money"].items():
        lines.append(f"| {k} | {f0(v, 2) if isinstance(v, float) else f0(v)} |")
    lines += ["", "### Fairness", "",
              f"- Arrived before the opening: {a['pre_total']:,}, admitted {a['pre_admitted']:,}."
              f" Rank correlation (Spearman) of arrival with admission time: "
              f"**{rho(a['rho_pre_admission'])}**; with the first position after the "
              f"opening: {rho(a['rho_pre_position'])} (≈ 0: the pre-queue is shuffled).",
              f"- Arrived after it: {a['post_total']:,}, admitted {a['post_admitted']:,}. Rank "
              f"correlation of arrival with admission: **{rho(a['rho_post_admission'])}**; "
              f"FIFO inversions (a buyer whose issue was answered before another's was sent, "
              f"admitted more than half a second after it): **{a['fifo_inversions']}**.",
              f"- Positions that moved backwards between two polls of one waiter: "
              f"**{a['positions_backwards']}** of {a['waiters_with_positions']:,} waiters "
              "told two positions or more.", ""]
    lines += eta_lines(a)
    g = generator_figures(run)
    lines += ["### The generator", "",
              f"{run.generator}, {run.processes} process(es), {cfg.connections} keep-alive "
              f"connections each: {g['cpu_s']:.1f} CPU s over {run.wall:.0f} s (average "
              f"{run.gen_cpu:.2f} cores, peak {run.gen_peak:.2f} over 5 s); "
              f"{f0(g['req_per_cpu_s'])} requests and {f0(g['buyers_per_cpu_s'])} buyers per "
              f"CPU second; a planned wait woke {f0(a['overshoot_p50'], 1)} ms late at p50, "
              f"{f0(a['overshoot_p99'], 1)} ms at p99 (its event loop's lag). API + Redis: "
              f"{run.server_cpu:.2f} cores on average. The whole machine (every process, other "
              f"work on the box included): {run.machine_cpu:.2f} cores on average, "
              f"{run.machine_peak:.2f} at the busiest 5 s, of {os.cpu_count()}.", ""]
    rh = a.get("redis") or {}
    stalls = ", ".join(f"{e['event']} max {e['max_ms']} ms" for e in rh.get("latency", []))
    lines += ["### Redis during the drop", "",
              f"LATENCY LATEST (events over 50 ms): {stalls or 'none'}; delayed AOF fsyncs: "
              f"{rh.get('aof_delayed_fsync')}; AOF rewrites: {rh.get('aof_rewrites')} (last "
              f"fork {rh.get('latest_fork_usec')} µs). A stall every step shares (the same max "
              "in every row of *Per step*) with none here was not Redis: the API or the "
              "generator was off the CPU (see the whole machine's CPU).", ""]
    if run.warnings:
        lines += ["### Warnings", ""] + [f"- {w}" for w in run.warnings] + [""]
    lines += ["### Charts", ""]
    for p in a["charts"]:
        lines += [f"![{p.stem}]({rel}/{p.name})", ""]
    return lines


def eta_lines(a: dict) -> list[str]:
    e, e10 = a["eta_all"], a["eta_ge10"]
    ok = e10["abs_p90"] is not None and e10["abs_p90"] <= ETA_GOAL
    return ["### ETA accuracy", "",
            "Each admitted buyer's first `estimatedWaitSeconds` that came with a position (the "
            "issue answer after the opening; for the pre-queue, its first poll after the "
            "opening) against its actual wait from that answer to its admission (the server's "
            "admission time: `expiresAt` - activeTtlSeconds). Error = (estimate - actual) ÷ "
            "actual.", "",
            "| buyers | n | median error | median \\|error\\| | p90 \\|error\\| | within ±20 % | "
            "median \\|error\\| s | p90 \\|error\\| s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| all admitted | {e['n']:,} | {pct(e['median'])} | {apct(e['abs_median'])} | "
            f"{apct(e['abs_p90'])} | {apct(e['within'], 0)} | {f0(e['abs_s_median'], 1)} | "
            f"{f0(e['abs_s_p90'], 1)} |",
            f"| actual wait ≥ 10 s | {e10['n']:,} | {pct(e10['median'])} | "
            f"{apct(e10['abs_median'])} | {apct(e10['abs_p90'])} | {apct(e10['within'], 0)} | "
            f"{f0(e10['abs_s_median'], 1)} | {f0(e10['abs_s_p90'], 1)} |", "",
            f"Goal: within ±20 % at p90 (waits ≥ 10 s): **{'met' if ok else 'missed'}**.", ""]


def summary(run: Run) -> dict:
    """The run's verdicts and headline figures (checks.json: for tests and scripts)."""
    a = run.analysis
    keys = ("buyers", "requests_n", "failures", "sales_rows", "oversold", "double_charged",
            "sold_out_s", "sold_99_s", "expected_s", "expected_99_s", "expected_tail_s",
            "tail_rounds", "admit_rate_mean", "admit_rate_min", "admit_rate_max",
            "rho_pre_admission", "rho_pre_position", "rho_post_admission", "fifo_inversions",
            "positions_backwards", "eta_all", "eta_ge10", "events", "admitted_events",
            "admitted", "admitted_found_nothing", "told_sold_out", "told_sold_out_p50",
            "told_sold_out_p99", "told_sold_out_max", "returned_to_head", "returned_to_active",
            "returned_unsold")
    return {"generator": run.generator, "processes": run.processes, "seats": run.seats,
            "admitPerSecond": run.admit, "verdicts": {n: ok for n, ok, _ in verdicts(run)},
            "generator_cpu": generator_figures(run), "machine_cpu": run.machine_cpu,
            "steps": {s[0]: {"n": s[1], "p50": s[2], "p90": s[3], "p99": s[4], "max": s[5]}
                      for s in a["steps"]},
            "codes": [[step, status, code, ok, n] for (step, status, code, ok), n in
                      a["codes"]],
            **{k: a.get(k) for k in keys}}
