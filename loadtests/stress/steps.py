"""The stress ramp's steps: their users (``levels``), what a step measured (``Step``) and a
ramp's record (``Ramp``), and a step judged from what the generators wrote: the asyncio
users' per-second histograms, or locust's stats history."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.generator.locust_csv import num, read_stats
from loadtests.generator.stats import bucket_ms, hist_percentile
from loadtests.stress.users import GC, LAG, StressConfig, read_seconds


def levels(args: argparse.Namespace) -> list[int]:
    out, users = [], float(args.start)
    while True:
        n = min(args.max_users, round(users))
        if out and n <= out[-1]:
            n = out[-1] + 1
        out.append(min(n, args.max_users))
        if out[-1] >= args.max_users:
            return out
        users = users + args.step if args.step else users * args.factor


@dataclass
class Step:
    k: int
    users: int
    seconds: float
    requests: int = 0
    failures: int = 0
    req_s: float = 0.0
    p50: float | None = None
    p99: float | None = None
    codes: Counter = field(default_factory=Counter)
    gen_cpu: float = 0.0
    lag_p99: float | None = None  # ms: the generator's event loop (asyncio)
    gc_pauses: int = 0  # the generator's full collections in the judged part (asyncio)
    gc_max: float = 0.0  # ms, the longest
    server_cpu: float = 0.0
    machine_cpu: float = 0.0
    verdict: str = ""  # "" within the bound, else why the ramp stopped here


@dataclass
class Ramp:
    scenario: str
    generator: str
    processes: int
    out: Path
    bound: float
    steps: list[Step] = field(default_factory=list)
    knee: Step | None = None
    stop_reason: str = ""
    warnings: list[str] = field(default_factory=list)
    chart: Path | None = None


def judge_asyncio(cfg: StressConfig, k: int, warmup: float) -> Step:
    merged = read_seconds(Path(cfg.out_dir))
    lo, hi = math.ceil(k * cfg.step_seconds + warmup), math.floor((k + 1) * cfg.step_seconds)
    st = Step(k, cfg.users_at(k), hi - lo)
    hist: Counter = Counter()
    lag: Counter = Counter()
    for sec in range(lo, hi):
        for name, slot in merged.get(sec, {}).items():
            if name == LAG:
                lag.update(slot[3])
                continue
            if name == GC:
                st.gc_pauses += slot[0]
                st.gc_max = max(st.gc_max, max((bucket_ms(i) for i in slot[3]),
                                               default=0.0))
                continue
            st.requests += slot[0]
            st.failures += slot[1]
            st.codes.update(slot[2])
            hist.update(slot[3])
    st.req_s = st.requests / max(1, hi - lo)
    st.p50, st.p99 = hist_percentile(hist, 0.5), hist_percentile(hist, 0.99)
    st.lag_p99 = hist_percentile(lag, 0.99)
    return st


def judge_locust(cfg: StressConfig, k: int, history: Path, t_run0: float) -> Step:
    """From locust's stats history: the row at the step's end (its percentiles are locust's
    10 s window: the last 10 s of the step) and the counts over the judged part."""
    rows = [r for r in read_stats(history) if r.get("Name") == "Aggregated"]
    end = t_run0 + (k + 1) * cfg.step_seconds
    begin = end - min(10.0, cfg.step_seconds)
    st = Step(k, cfg.users_at(k), end - begin)

    def at(t: float) -> dict | None:
        best = None
        for r in rows:
            if int(r["Timestamp"]) <= t:
                best = r
        return best

    a, b = at(begin), at(end)
    if a and b:
        st.requests = int(num(b["Total Request Count"]) or 0) - int(
            num(a["Total Request Count"]) or 0)
        st.failures = int(num(b["Total Failure Count"]) or 0) - int(
            num(a["Total Failure Count"]) or 0)
        span = max(1, int(b["Timestamp"]) - int(a["Timestamp"]))
        st.req_s = st.requests / span
        st.p50, st.p99 = num(b["50%"]), num(b["99%"])
    return st
