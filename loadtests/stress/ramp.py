"""``python -m loadtests run stress [s6|s7|s6,s7]``: ramp the users of the report's §6 (point
charge) and §7 (booking flow) shapes step by step against a Redis + API it starts, until a
step's p99 passes the bound or a step has failures (or the generator saturates, or the last
step is done), and report the knee: the last step within the bound (users, requests/s, p99),
with a chart, in ``loadtests/results/<time>-stress/``.

Each step holds its users for ``--step-seconds`` (15); its first ``--warmup`` seconds (3: the
new users start over the first 2 s) are not judged. Steps grow by ``--factor`` (1.5) from
``--start`` users, or by ``--step`` users when given, up to ``--max-users``.

Generators: the lean asyncio one (default; ``loadtests/stress/users.py``, the same requests and
checks as the locustfiles, one pooled keep-alive connection per ``--per-conn`` users), the one
the drop's comparison found cheaper per request; or ``--generator locust``: the report's
locustfiles themselves under a step ``LoadTestShape`` (``loadtests/stress/locust_shape.py``).
The generator's CPU is measured each step: a step where it passes 90 % of its cores ends the
ramp, and the knee is then the generator's, not the API's (the report says which).

The stack is the runner's (``stack_env``) with the per-customer rate limits off (§7 shares
500 customers between all users: thousands of users would be 429s, not load).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

from devstack import REPO
from devstack.cpu import TreeCpu, cpu_seconds, machine_cpu_seconds
from devstack.demo_stack import DemoStack
from loadtests.generator.processes import Generators
from loadtests.reporting import report_folder
from loadtests.scenarios.registry import SCENARIOS as KNOWN
from loadtests.scenarios.registry import Load, stack_env
from loadtests.stress.report import chart, fmt, report_md
from loadtests.stress.steps import Ramp, judge_asyncio, judge_locust, levels
from loadtests.stress.users import StressConfig

SCENARIOS = ("s6", "s7")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests run stress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default="s6,s7",
                   help="s6, s7 or s6,s7 (default: both, one after the other)")
    p.add_argument("--generator", choices=["asyncio", "locust"], default="asyncio")
    p.add_argument("-p", "--processes", type=int, default=1,
                   help="generator processes (default 1)")
    p.add_argument("--start", type=int, default=250, help="users of the first step (250)")
    p.add_argument("--factor", type=float, default=1.5, help="growth per step (1.5)")
    p.add_argument("--step", type=int, help="grow by this many users instead")
    p.add_argument("--max-users", type=int, default=40_000, help="the last step (40,000)")
    p.add_argument("--step-seconds", type=float, default=15.0, help="seconds a step (15)")
    p.add_argument("--warmup", type=float, default=3.0,
                   help="seconds of each step not judged (3)")
    p.add_argument("--p99", type=float, default=50.0,
                   help="the bound on a step's p99, ms (50: the report's target)")
    p.add_argument("--per-conn", type=int, default=10,
                   help="asyncio: users per pooled keep-alive connection (10)")
    p.add_argument("--api-workers", type=int, default=1,
                   help="API workers (1); the server: $SERVER or api/serve.py's default")
    p.add_argument("--out", type=Path, help="report folder (default "
                   "loadtests/results/<time>-stress/)")
    return p


class CpuSampler:
    """CPU seconds of the generator's process trees, the API + Redis, the whole machine."""

    def __init__(self, roots: list[int], server_pids: list[int]) -> None:
        self.gen = TreeCpu(roots)
        self.server = server_pids
        self.points: list[tuple[float, float, float, float]] = []

    def sample(self) -> None:
        self.points.append((time.time(), self.gen.read(), cpu_seconds(self.server),
                            machine_cpu_seconds()))

    def cores(self, t0: float, t1: float) -> tuple[float, float, float]:
        pts = [p for p in self.points if t0 - 0.6 <= p[0] <= t1 + 0.6]
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            return 0.0, 0.0, 0.0
        a, b = pts[0], pts[-1]
        dt = b[0] - a[0]
        return (b[1] - a[1]) / dt, (b[2] - a[2]) / dt, (b[3] - a[3]) / dt


def run_ramp(args: argparse.Namespace, scenario: str, out: Path) -> Ramp:
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("stress-*.jsonl"), out / "STOP"]:
        stale.unlink(missing_ok=True)
    ramp = Ramp(scenario, args.generator, args.processes, out, args.p99)
    lv = levels(args)
    seconds = len(lv) * args.step_seconds
    s = KNOWN[scenario]
    env = {**stack_env(s, Load(lv[-1], 100, seconds)), "ISSUE_RATE_PER_CUSTOMER": "0",
           "RESERVE_RATE_PER_CUSTOMER": "0"}
    stack = DemoStack(env, args.api_workers).start()
    gens = Generators()
    try:
        assert stack.api is not None
        t0 = time.time() + (2.0 if args.generator == "asyncio" else 4.0)
        cfg = StressConfig(base=stack.api.base, scenario=scenario, out_dir=str(out), t0=t0,
                           levels=lv, step_seconds=args.step_seconds, per_conn=args.per_conn)
        config = out / "stress_config.json"
        cfg.dump(config)
        penv = {**os.environ, "PYTHONUNBUFFERED": "1"}
        prefix = out / s.file
        if args.generator == "asyncio":
            cmds = [[sys.executable, "-m", "loadtests.stress.users", str(config), "--shard",
                     f"{i}/{args.processes}"] for i in range(args.processes)]
        else:
            cmds = [[sys.executable, "-m", "locust", "-f",
                     f"{s.path},{REPO / 'loadtests/stress/locust_shape.py'}",
                     "--headless", "--host", stack.api.base, "--csv", str(prefix),
                     "--csv-full-history", "--only-summary"]
                    + (["--processes", str(args.processes)] if args.processes > 1 else [])]
            penv |= {"LOADTEST_STRESS_CONFIG": str(config),
                     "LOADTEST_ID_STRIDE": str(args.processes)}
        for i, cmd in enumerate(cmds):
            gens.start(cmd, penv, out / f"generator-{i}.log")
        sampler = CpuSampler(gens.pids, stack.pids())
        t_run0 = t0
        if args.generator == "locust":  # the shape's clock starts with locust's test
            deadline = time.time() + 30
            while time.time() < deadline and not prefix.with_name(
                    prefix.name + "_stats_history.csv").exists():
                time.sleep(0.2)
            t_run0 = time.time()
        history = prefix.with_name(prefix.name + "_stats_history.csv")
        cores = args.processes
        for k in range(len(lv)):
            step_end = t_run0 + (k + 1) * args.step_seconds
            while time.time() < step_end + 1.2:
                sampler.sample()
                if gens.any_exited():
                    break
                time.sleep(max(0.0, min(1.0, step_end + 1.2 - time.time())))
            if gens.any_exited() and time.time() < step_end:
                ramp.stop_reason = "the generator exited early: see generator-0.log"
                break
            st = (judge_asyncio(cfg, k, args.warmup) if args.generator == "asyncio"
                  else judge_locust(cfg, k, history, t_run0))
            judged0 = t_run0 + k * args.step_seconds + args.warmup
            st.gen_cpu, st.server_cpu, st.machine_cpu = sampler.cores(judged0, step_end)
            ramp.steps.append(st)
            reasons = []
            if st.requests == 0:
                reasons.append("no requests")
            if st.p99 is not None and st.p99 > args.p99:
                reasons.append(f"p99 {st.p99:.1f} ms > {args.p99:g} ms")
            if st.failures:
                reasons.append(f"{st.failures:,} failures")
            if st.gen_cpu >= 0.9 * cores:
                reasons.append(f"the generator saturated ({st.gen_cpu:.2f} of {cores} core(s))")
            if st.lag_p99 is not None and st.lag_p99 > args.p99 / 2:
                reasons.append(f"the generator's event loop lagged (p99 {st.lag_p99:.1f} ms): "
                               "its own queueing is in the response times")
            print(f"[stress {scenario} {args.generator}] step {k + 1}/{len(lv)}: "
                  f"{st.users:>6,} users  {st.req_s:8.0f} req/s  p50 {fmt(st.p50)} ms  p99 "
                  f"{fmt(st.p99)} ms  failures {st.failures}  generator CPU {st.gen_cpu:.2f}"
                  f"{f' (loop lag p99 {st.lag_p99:.1f} ms)' if st.lag_p99 is not None else ''}"
                  f"{f' gc {st.gc_pauses}x max {st.gc_max:.0f} ms' if st.gc_pauses else ''}"
                  f"  API+Redis {st.server_cpu:.2f}  machine {st.machine_cpu:.2f}"
                  + (f"  -> stop: {'; '.join(reasons)}" if reasons else ""), flush=True)
            if reasons:
                st.verdict = "; ".join(reasons)
                ramp.stop_reason = st.verdict
                break
            ramp.knee = st
        else:
            ramp.stop_reason = f"the last step ({lv[-1]:,} users) was within the bound"
        cfg.stop_file.write_text("stop")
    finally:
        gens.stop(grace=15)
        stack.stop()
    ramp.chart = chart(ramp)
    return ramp


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    scenarios = [x.strip().lower().removeprefix("§") for x in args.scenario.split(",")]
    scenarios = [x if x.startswith("s") else f"s{x}" for x in scenarios]
    bad = [x for x in scenarios if x not in SCENARIOS]
    if bad:
        print(f"unknown scenario(s) {', '.join(bad)}: s6, s7 or s6,s7", file=sys.stderr)
        return 2
    out, started = report_folder(args.out, "-stress")
    ramps = []
    for sc in scenarios:
        ramps.append(run_ramp(args, sc, out / sc))
        (out / "report.md").write_text(report_md(ramps, argv, started, args))
        r = ramps[-1]
        k = r.knee
        print(f"  {sc}: knee " + (f"{k.users:,} users, {k.req_s:,.0f} req/s, p99 {fmt(k.p99)} "
                                  "ms" if k else "none (the first step was over the bound)")
              + f"; stopped: {r.stop_reason}", flush=True)
    with open(out / "knees.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "generator", "users", "req_s", "p50_ms", "p99_ms", "stopped"])
        for r in ramps:
            k = r.knee
            w.writerow([r.scenario, r.generator, k.users if k else "", f"{k.req_s:.1f}" if k
                        else "", k.p50 if k else "", k.p99 if k else "", r.stop_reason])
    (out / "knees.json").write_text(json.dumps([
        {"scenario": r.scenario, "generator": r.generator,
         "knee": None if r.knee is None else {"users": r.knee.users, "req_s": r.knee.req_s,
                                               "p50_ms": r.knee.p50, "p99_ms": r.knee.p99},
         "stopped": r.stop_reason, "steps": len(r.steps)} for r in ramps], indent=1))
    print(f"report: {out / 'report.md'}")
    return 0 if all(r.steps and r.steps[0].requests > 0 for r in ramps) else 1


if __name__ == "__main__":
    sys.exit(main())
