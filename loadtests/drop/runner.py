"""``python -m loadtests run drop``: a ticket drop, end to end, against a Redis + API it starts.

1. A venue from a catalogue document (default ``catalog/drop.json``: 5,000 seats, two dates,
   four sections) loaded with ``PUT /admin/concerts/{id}`` (the runner sets ADMIN_TOKEN), and
   the concert's settings PATCHed: ``opensAt`` a few seconds ahead, ``admitPerSecond`` chosen
   so that the seats last about ``--target`` seconds at the plan's seats per buyer,
   ``activeLimit``, ``activeTtlSeconds``, ``holdTtlSeconds``.
2. The buyers' customers funded (1,000,000 points; the plan's top-up buyers get none and
   charge before paying).
3. N simulated buyers (``plan.py`` and ``buyer.py``: the plan and the flow) driven by the asyncio
   generator (default) or locust (``--generator locust``), arriving in a burst before and
   just after the opening. ``GET /admin/concerts/{id}/stats`` is sampled every second, with
   the CPU of the generator, the API and Redis. Once every seat is sold the runner says so (a
   file the generators watch) and the buyers still waiting go home.
4. The checks, through the API (sales.csv, stats, every buyer's balance and history) and the
   event stream (``XRANGE tk:{c:<id>}:events``), against what the buyers saw: 0 oversold, 0
   double charged, events = outcomes; and the figures: time to sell out against what the
   admission rate allows, admissions a second, p50/p99 per step, failures by code, fairness,
   ETA accuracy, positions that never move backwards, the generator's CPU.
5. ``report.md`` and PNG charts in ``loadtests/results/<time>-drop/``.

``--generator both`` runs the same drop (same plan, fresh stack) with each generator in turn
and puts their figures side by side: which one drives more buyers per CPU second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from devstack import REPO
from devstack.cpu import TreeCpu, cpu_seconds, machine_cpu_seconds, peaks
from devstack.demo_stack import DemoStack
from engine.keys import concert_keys
from engine.seed import DEMO_BALANCE, fund_customers
from engine.sync import sync_client
from loadtests.drop.admin import ADMIN_TOKEN, Admin
from loadtests.drop.analysis import analyse
from loadtests.drop.books import concert_node
from loadtests.drop.plan import DropConfig, Mix, expected_seats, make_plan
from loadtests.drop.recorder import read_progress
from loadtests.drop.report import report_md, summary, verdicts
from loadtests.drop.run import Run
from loadtests.generator.processes import Generators, interrupt
from loadtests.reporting import report_folder

DEFAULT_CATALOG = REPO / "catalog" / "drop.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests run drop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-u", "--users", type=int, default=20_000, help="buyers (default 20,000)")
    p.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG,
                   help="the catalogue document (default catalog/drop.json, 5,000 seats)")
    p.add_argument("--generator", choices=["asyncio", "locust", "both"], default="asyncio",
                   help="the load generator (default asyncio); both: the same drop with each")
    p.add_argument("-p", "--processes", type=int, default=0,
                   help="generator processes (default: asyncio 1, locust 2)")
    p.add_argument("--connections", type=int, default=64,
                   help="keep-alive connections per generator process (default 64)")
    p.add_argument("--admit-per-second", type=int,
                   help="the concert's admitPerSecond (default: seats / (seats a buyer buys "
                   "x --target))")
    p.add_argument("--target", type=float, default=75.0,
                   help="seconds the seats should last at the admission rate (default 75)")
    p.add_argument("--active-limit", type=int, default=4000,
                   help="activeLimit (4,000: above admitPerSecond x activeTtlSeconds, so the "
                   "admission rate alone paces the drop)")
    p.add_argument("--active-ttl", type=float, default=90.0,
                   help="activeTtlSeconds (90): a buyer's time to shop once admitted")
    p.add_argument("--hold-ttl", type=float, default=8.0,
                   help="holdTtlSeconds (8): a hold left to expire is on sale again after it")
    p.add_argument("--admit-per-seat", type=float,
                   help="admitPerSeat: ACTIVE tokens a seat still free or held (default: the "
                   "engine's, ADMIT_PER_SEAT; 0: admission not sized to the stock)")
    p.add_argument("--return-hold", type=float,
                   help="returnHoldSeconds: a returned seat on offer to the queue (default: the "
                   "engine's, RETURN_HOLD_SECONDS; 0: to anyone at once)")
    p.add_argument("--lead", type=float, default=8.0,
                   help="seconds from the first arrivals to the opening (8)")
    p.add_argument("--pre-share", type=float, default=Mix.pre_share,
                   help=f"buyers arriving before the opening ({Mix.pre_share})")
    p.add_argument("--arrivals", type=_seconds, default=Mix.post_max,
                   help="the last buyers arrive this many seconds after the opening (an "
                   f"exponential burst of mean {Mix.post_mean:g} s, cut there; {Mix.post_max:g})")
    p.add_argument("-t", "--time", type=float, default=240.0,
                   help="every buyer stops this many seconds after the opening (240)")
    p.add_argument("--seed", type=int, default=13, help="the plan's seed (13)")
    p.add_argument("--cluster", action="store_true",
                   help="a local 3-master Redis Cluster with a replica each (WAIT 1) instead "
                   "of one redis-server")
    p.add_argument("--api-workers", type=int, default=1,
                   help="API workers (1); the server: $SERVER or api/serve.py's default")
    p.add_argument("--out", type=Path, help="report folder (default "
                   "loadtests/results/<time>-drop/)")
    return p


def _seconds(text: str) -> float:
    """A non-negative number of seconds (argparse's type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def catalog_summary(doc: dict) -> tuple[int, list[dict]]:
    """(seats, [{"id", "sections", "seats"}]) of a catalogue document."""
    options, total = [], 0
    for o in doc["options"]:
        n = sum(r["seats"] for s in o["sections"] for r in s["rows"])
        total += n
        options.append({"id": o["concertOptionId"], "sections": [s["name"] for s in
                                                                  o["sections"]], "seats": n})
    return total, options


def generator_commands(generator: str, processes: int, config: Path, out: Path
                       ) -> list[tuple[list[str], dict[str, str], Path]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if generator == "asyncio":
        return [([sys.executable, "-m", "loadtests.drop.asyncio_driver", str(config), "--shard",
                  f"{i}/{processes}"], env, out / f"generator-{i}.log") for i in range(processes)]
    cfg = DropConfig.load(config)
    lead = max(1.0, cfg.t_start - time.time())
    rate = max(100, math.ceil(cfg.buyers / max(1.0, lead * 0.6)))
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests/drop/locust_driver.py"),
           "--headless", "--only-summary", "-u", str(cfg.buyers), "-r", str(rate),
           "-t", f"{math.ceil(cfg.deadline - time.time() + 30)}s", "--stop-timeout", "5"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    env |= {"LOADTEST_DROP_CONFIG": str(config), "LOADTEST_ID_STRIDE": str(processes)}
    return [(cmd, env, out / "locust.log")]


def run_drop(args: argparse.Namespace, generator: str, out: Path) -> Run:
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("requests-*.csv"), *out.glob("buyers-*.jsonl"),
                  *out.glob("progress-*.json"), *out.glob("summary-*.json"),
                  ]:
        stale.unlink(missing_ok=True)
    processes = args.processes or (1 if generator == "asyncio" else 2)
    doc = json.loads(args.catalog.read_text())
    seats, options = catalog_summary(doc)
    concert = doc["concertId"]
    env = {"ADMIN_TOKEN": ADMIN_TOKEN, "ACTIVE_TTL_SECONDS": str(args.active_ttl)}
    stack = DemoStack(env, args.api_workers, cluster=args.cluster).start()
    run: Run | None = None
    gens = Generators()
    try:
        assert stack.api is not None
        admin = Admin(stack.api.base)
        admin.call("PUT", f"/admin/concerts/{concert}", args.catalog.read_bytes())
        # The plan first (its seats per buyer set the admission rate), with provisional times.
        t_start = time.time() + (6.0 if generator == "locust" else 2.5)
        cfg = DropConfig(base=stack.api.base, concert=concert, options=options,
                         buyers=args.users, t_start=t_start, opens_at=t_start + args.lead,
                         active_ttl=args.active_ttl, out_dir=str(out), seed=args.seed,
                         connections=args.connections,
                         mix=Mix(pre_share=args.pre_share, post_max=args.arrivals))
        plans = make_plan(cfg)
        per_buyer = expected_seats(plans)
        admit = args.admit_per_second or max(1, math.ceil(seats / (per_buyer * args.target)))
        # Fund the buyers that have points (the others charge before they pay).
        r = sync_client(stack.redis.url)
        try:
            last = max((p.customer for p in plans if not p.topup), default=cfg.funded_base)
            fund_customers(r, cfg.funded_base + 1, last, DEMO_BALANCE)
        finally:
            r.close()
        # Redis's own record of slow moments (commands, fork, AOF fsync) over 50 ms, on the
        # node that serves the concert (the drop's hot slot).
        r = concert_node(stack.redis.url, concert_keys(concert).events)
        try:
            r.config_set("latency-monitor-threshold", 50)
            r.execute_command("LATENCY", "RESET")
        finally:
            r.close()
        cfg.deadline = cfg.opens_at + args.time
        admin.call("PATCH", f"/admin/concerts/{concert}/settings", {
            "opensAt": datetime.fromtimestamp(cfg.opens_at, UTC).isoformat(),
            "admitPerSecond": admit, "activeLimit": args.active_limit,
            "activeTtlSeconds": args.active_ttl, "holdTtlSeconds": args.hold_ttl,
            **({"admitPerSeat": args.admit_per_seat} if args.admit_per_seat is not None else {}),
            **({"returnHoldSeconds": args.return_hold} if args.return_hold is not None else {})})
        config = out / "drop_config.json"
        cfg.dump(config)
        settings = admin.call("GET", f"/admin/concerts/{concert}/settings")["settings"]
        run = Run(generator, processes, out, cfg, seats, admit, per_buyer, str(args.catalog),
                  args.active_limit, args.hold_ttl, settings["admitPerSeat"])
        print(f"[drop {generator}] {args.users:,} buyers, {seats:,} seats, admitPerSecond "
              f"{admit}, opens in {cfg.opens_at - time.time():.1f} s; {processes} generator "
              f"process(es)", flush=True)
        for cmd, penv, log in generator_commands(generator, processes, config, out):
            gens.start(cmd, penv, log)
        sample(run, admin, gens, stack.pids())
        run.analysis = analyse(run, admin, stack.redis.url, concert_keys(concert).events)
        if admin.unavailable:
            run.warnings.append(f"the runner's own admin calls met {len(admin.unavailable)} "
                                f"503(s), retried; the first: {admin.unavailable[0]}")
        admin.close()
    finally:
        gens.stop()
        stack.stop()
    assert run is not None
    return run


def sample(run: Run, admin: Admin, gens: Generators, server_pids: list[int]) -> None:
    """Once a second until every buyer is done (or the deadline): the concert's stats, the
    CPU of the generator and of the API + Redis, the shards' progress; the sell-out."""
    cfg = run.cfg
    gen = TreeCpu(gens.pids)
    server0 = cpu_seconds(server_pids)
    machine0 = machine_cpu_seconds()
    t_begin = time.time()
    last_print = 0.0
    hard_stop = cfg.deadline + 45
    points = []
    while True:
        now = time.time()
        if now > hard_stop:
            run.warnings.append("the generator had not finished 45 s past the deadline: "
                                "stopped")
            break
        try:
            stats = admin.call("GET", f"/admin/concerts/{cfg.concert}/stats")
        except (RuntimeError, OSError) as e:  # a sample lost, not the run
            run.warnings.append(f"a stats sample failed at t={now - cfg.opens_at:+.0f} s: {e}")
            time.sleep(1)
            continue
        progress = read_progress(Path(cfg.out_dir))
        g, s = gen.read(), cpu_seconds(server_pids) - server0
        points.append((now, g, s))
        row = {"t": now - cfg.opens_at, "epoch": now, "waiting": stats["waiting"],
               "active": stats["active"], "holds": stats["holds"], "paying": stats["paying"],
               "sold": stats["sold"], "free": stats["freeSeats"],
               "offered": stats.get("offered", 0),
               "admissions_avg": stats["admissionsPerSecond"], "gen_cpu_s": g,
               "server_cpu_s": s, "machine_cpu_s": machine_cpu_seconds() - machine0,
               "done": sum(x["done"] for x in progress),
               "started": sum(x["started"] for x in progress),
               "requests": sum(x["requests"] for x in progress),
               "failures": sum(x["failures"] for x in progress)}
        run.samples.append(row)
        if run.sold_out_at is None and stats["sold"] >= run.seats:
            run.sold_out_at = now
        if now - last_print >= 5:
            last_print = now
            rate = cpu = 0.0
            if len(run.samples) > 5:
                a, b = run.samples[-6], row
                rate = (b["requests"] - a["requests"]) / (b["epoch"] - a["epoch"])
                cpu = (b["gen_cpu_s"] - a["gen_cpu_s"]) / (b["epoch"] - a["epoch"])
            print(f"[drop {run.generator}] t={row['t']:+6.0f} s  waiting {row['waiting']:>6,}"
                  f"  active {row['active']:>5,}  holds {row['holds']:>4,}  sold "
                  f"{row['sold']:>5,}/{run.seats:,}  buyers done {row['done']:>6,}/"
                  f"{cfg.buyers:,}  req/s {rate:7.0f}  failures {row['failures']}  "
                  f"generator CPU {cpu:.2f}", flush=True)
        finished = (len(progress) >= (run.processes if run.generator == "asyncio" else 1)
                    and sum(x["buyers"] for x in progress) >= cfg.buyers
                    and all(x.get("finished") for x in progress))
        if finished or gens.all_exited():
            break
        time.sleep(max(0.0, 1 - (time.time() - now)))
    run.wall = time.time() - t_begin
    time.sleep(1.2)  # the shards' last flush
    span = max(points[-1][0] - points[0][0], 1e-9)
    run.gen_cpu = (points[-1][1] - points[0][1]) / span
    run.server_cpu = (points[-1][2] - points[0][2]) / span
    run.gen_peak, _ = peaks(points)
    m = [(r["epoch"], r["machine_cpu_s"], 0.0) for r in run.samples]
    run.machine_cpu = (m[-1][1] - m[0][1]) / max(m[-1][0] - m[0][0], 1e-9)
    run.machine_peak, _ = peaks(m)
    if run.generator == "locust":  # its users are done; locust itself runs until -t
        for p in gens.procs:
            interrupt(p, group=True, wait=15)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not on PATH: `make install` installs it", file=sys.stderr)
        return 2
    out, started = report_folder(args.out, "-drop")
    gens = ["asyncio", "locust"] if args.generator == "both" else [args.generator]
    runs = []
    for g in gens:
        runs.append(run_drop(args, g, out / g if len(gens) > 1 else out))
        (out / "report.md").write_text(report_md(runs, argv, started))
        (out / "checks.json").write_text(json.dumps([summary(r) for r in runs], indent=1))
        for name, ok, detail in verdicts(runs[-1]):
            print(f"  {'✓' if ok else '✗'} {name}: {detail}", flush=True)
    print(f"report: {out / 'report.md'}")
    return 0 if all(all(ok for _, ok, _ in verdicts(r)) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
