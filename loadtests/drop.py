"""``python -m loadtests run drop``: a ticket drop, end to end, against a Redis + API it starts.

1. A venue from a catalogue document (default ``catalog/drop.json``: 5,000 seats, two dates,
   four sections) loaded with ``PUT /admin/concerts/{id}`` (the runner sets ADMIN_TOKEN), and
   the concert's settings PATCHed: ``opensAt`` a few seconds ahead, ``admitPerSecond`` chosen
   so that the seats last about ``--target`` seconds at the plan's seats per buyer,
   ``activeLimit``, ``activeTtlSeconds``, ``holdTtlSeconds``.
2. The buyers' customers funded (1,000,000 points; the plan's top-up buyers get none and
   charge before paying).
3. N simulated buyers (``loadtests/dropgen.py``: the plan and the flow) driven by the asyncio
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
import asyncio
import csv
import io
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from devstack import REPO
from devstack.cpu import TreeCpu, cpu_seconds, machine_cpu_seconds, peaks
from devstack.demo_stack import DemoStack
from loadtests import dropgen
from loadtests.dropgen import DropConfig, Mix, make_plan
from loadtests.generator.pool import Pool, Req
from loadtests.generator.processes import Generators, interrupt
from loadtests.generator.stats import percentile, spearman
from loadtests.reporting import RESULTS

DEFAULT_CATALOG = REPO / "catalog" / "drop.json"
ADMIN_TOKEN = "drop-runner-admin"
INITIAL_BALANCE = 1_000_000  # points of a funded buyer (the demo's)
EXPECTED = {(409, "SEAT_TAKEN"), (409, "NO_ADJACENT_SEATS"), (409, "TICKET_LIMIT"),
            (429, "RATE_LIMITED")}
ETA_GOAL = 0.20
REFRESH_SECONDS = 2.0  # a buyer who finds nothing looks again after this (dropgen)
PAY_TOTAL_OFF = "customers whose payments != their seats' prices"
BALANCE_OFF = "customers whose balance != start + charges - payments"


# --- options ---------------------------------------------------------------------------------
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
    p.add_argument("--lead", type=float, default=8.0,
                   help="seconds from the first arrivals to the opening (8)")
    p.add_argument("--pre-share", type=float, default=Mix.pre_share,
                   help=f"buyers arriving before the opening ({Mix.pre_share})")
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


# --- the admin API -----------------------------------------------------------------------------
class Admin:
    """A keep-alive client of the API for the runner's own calls (not the buyers')."""

    def __init__(self, base: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        u = urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.unavailable: list[str] = []  # 503s the runner's own calls met (then retried)

    def call(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(4):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (ConnectionError, OSError):
                self.conn.close()
                if attempt == 3:
                    raise
                continue
            if resp.status == 503 and attempt < 3 and method in ("GET", "PUT", "PATCH"):
                # A read, or an idempotent load/settings change: the 503's Retry-After.
                self.unavailable.append(f"{method} {path}: {payload[:200].decode()}")
                time.sleep(float(resp.getheader("Retry-After") or 1))
                continue
            break
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
        return payload.decode() if raw else json.loads(payload)

    def close(self) -> None:
        self.conn.close()


def catalog_summary(doc: dict) -> tuple[int, list[dict]]:
    """(seats, [{"id", "sections", "seats"}]) of a catalogue document."""
    options, total = [], 0
    for o in doc["options"]:
        n = sum(r["seats"] for s in o["sections"] for r in s["rows"])
        total += n
        options.append({"id": o["concertOptionId"], "sections": [s["name"] for s in
                                                                  o["sections"]], "seats": n})
    return total, options


# --- one run -------------------------------------------------------------------------------------
@dataclass
class Run:
    generator: str
    processes: int
    out: Path
    cfg: DropConfig
    seats: int
    admit: int
    per_buyer: float
    catalog: str
    active_limit: int
    hold_ttl: float
    samples: list[dict] = field(default_factory=list)
    sold_out_at: float | None = None  # epoch s, as the sampler saw it
    wall: float = 0.0
    gen_cpu: float = 0.0
    gen_peak: float = 0.0
    server_cpu: float = 0.0
    machine_cpu: float = 0.0  # every process on the box, average cores
    machine_peak: float = 0.0
    warnings: list[str] = field(default_factory=list)
    analysis: dict = field(default_factory=dict)


def generator_commands(generator: str, processes: int, config: Path, out: Path
                       ) -> list[tuple[list[str], dict[str, str], Path]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if generator == "asyncio":
        return [([sys.executable, "-m", "loadtests.dropgen", str(config), "--shard",
                  f"{i}/{processes}"], env, out / f"dropgen-{i}.log") for i in range(processes)]
    cfg = DropConfig.load(config)
    lead = max(1.0, cfg.t_start - time.time())
    rate = max(100, math.ceil(cfg.buyers / max(1.0, lead * 0.6)))
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests/locustfiles/drop.py"),
           "--headless", "--only-summary", "-u", str(cfg.buyers), "-r", str(rate),
           "-t", f"{math.ceil(cfg.deadline - time.time() + 30)}s", "--stop-timeout", "5"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    env |= {"LOADTEST_DROP_CONFIG": str(config), "LOADTEST_ID_STRIDE": str(processes)}
    return [(cmd, env, out / "locust.log")]


def run_drop(args: argparse.Namespace, generator: str, out: Path) -> Run:
    from engine.keys import concert_keys
    from engine.seed import DEMO_BALANCE, fund_customers
    from engine.sync import sync_client

    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("requests-*.csv"), *out.glob("buyers-*.jsonl"),
                  *out.glob("progress-*.json"), *out.glob("summary-*.json"),
                  out / "SOLD_OUT"]:
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
                         connections=args.connections, mix=Mix(pre_share=args.pre_share))
        plans = make_plan(cfg)
        per_buyer = dropgen.expected_seats(plans)
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
            "activeTtlSeconds": args.active_ttl, "holdTtlSeconds": args.hold_ttl})
        config = out / "drop_config.json"
        cfg.dump(config)
        run = Run(generator, processes, out, cfg, seats, admit, per_buyer, str(args.catalog),
                  args.active_limit, args.hold_ttl)
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
        progress = dropgen.read_progress(Path(cfg.out_dir))
        g, s = gen.read(), cpu_seconds(server_pids) - server0
        points.append((now, g, s))
        row = {"t": now - cfg.opens_at, "epoch": now, "waiting": stats["waiting"],
               "active": stats["active"], "holds": stats["holds"], "paying": stats["paying"],
               "sold": stats["sold"], "free": stats["freeSeats"],
               "admissions_avg": stats["admissionsPerSecond"], "gen_cpu_s": g,
               "server_cpu_s": s, "machine_cpu_s": machine_cpu_seconds() - machine0,
               "done": sum(x["done"] for x in progress),
               "started": sum(x["started"] for x in progress),
               "requests": sum(x["requests"] for x in progress),
               "failures": sum(x["failures"] for x in progress)}
        run.samples.append(row)
        if run.sold_out_at is None and stats["sold"] >= run.seats:
            run.sold_out_at = now
            cfg.sold_out_file.write_text(str(now))
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


# --- after the drop: the books and the figures ---------------------------------------------------
def read_requests(out: Path) -> list[tuple[float, str, int, str, float, bool, float]]:
    rows = []
    for path in sorted(out.glob("requests-*.csv")):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.append((float(r["t"]), r["step"], int(r["status"]), r["code"],
                             float(r["ms"]), r["ok"] == "1", float(r["pool_ms"])))
    rows.sort()
    return rows


async def _customers(base: str, customers: list[int]) -> dict[int, tuple[Any, Any]]:
    """Every buyer's balance and history, over a pool of connections."""
    from urllib.parse import urlsplit

    u = urlsplit(base)
    pool = Pool(u.hostname or "127.0.0.1", u.port or 80, 32)
    out: dict[int, tuple[Any, Any]] = {}
    sem = asyncio.Semaphore(64)

    async def one(cid: int) -> None:
        async with sem:
            got = []
            for path in (f"/api/point?customerId={cid}",
                         f"/api/point/history?customerId={cid}&limit=100"):
                req = Req("GET", path, None, None, "check")
                status, raw, _, _ = await pool.request(pool.build(req))
                got.append(json.loads(raw) if status == 200 else None)
            out[cid] = (got[0], got[1])

    await asyncio.gather(*(one(c) for c in customers))
    pool.close()
    return out


def read_events(redis_url: str, key: str) -> list[dict[str, str]]:
    from engine.sync import sync_client

    r = sync_client(redis_url)
    events, start = [], "-"
    try:
        while True:
            batch = r.xrange(key, min=start, max="+", count=10_000)
            if start != "-":
                batch = batch[1:]
            if not batch:
                break
            for _, fields in batch:
                events.append({k.decode(): v.decode() for k, v in fields.items()})
            start = batch[-1][0].decode()
    finally:
        r.close()
    return events


def analyse(run: Run, admin: Admin, redis_url: str, events_key: str) -> dict:
    cfg, out = run.cfg, run.out
    a: dict[str, Any] = {}
    buyers = dropgen.read_buyers(out)
    requests = read_requests(out)
    events = read_events(redis_url, events_key)
    with open(out / "events.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["type", "at", "reservationId", "seatId", "customerId", "count"])
        w.writeheader()
        w.writerows(events)
    stats = admin.call("GET", f"/admin/concerts/{cfg.concert}/stats")
    sales = list(csv.DictReader(io.StringIO(
        admin.call("GET", f"/admin/concerts/{cfg.concert}/sales.csv", raw=True))))
    accounts = asyncio.run(_customers(cfg.base, [b["customer"] for b in buyers]))
    a["buyers"], a["requests_n"] = len(buyers), len(requests)
    a["outcomes"] = Counter(b["outcome"] or "(none)" for b in buyers).most_common()

    # Requests per step: latency percentiles, failures by code.
    by_step: dict[str, list[float]] = defaultdict(list)
    codes: Counter = Counter()
    pool_waits = []
    for _, step, status, code, ms, ok, pool_ms in requests:
        by_step[step].append(ms)
        pool_waits.append(pool_ms)
        if not (200 <= status < 300):
            codes[(step, status, code, ok)] += 1
    a["steps"] = []
    for step in dropgen.STEPS:
        v = sorted(by_step.get(step, []))
        if v:
            a["steps"].append((step, len(v), percentile(v, 0.5), percentile(v, 0.9),
                               percentile(v, 0.99), v[-1]))
    a["codes"] = sorted(codes.items(), key=lambda kv: -kv[1])
    a["failures"] = sum(n for (_, _, _, ok), n in codes.items() if not ok)
    a["unexpected"] = [(k, n) for k, n in codes.items() if not k[3]]
    a["pool_wait_p99"] = percentile(pool_waits, 0.99)
    a["req_span"] = (requests[-1][0] - requests[0][0]) if requests else 0.0
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("summary-*.json"))]
    a["overshoot_p99"] = max((s["overshoot_ms_p99"] for s in summaries), default=None)
    a["overshoot_p50"] = max((s["overshoot_ms_p50"] for s in summaries), default=None)

    # The books: sales, stats, balances and histories, events.
    a.update(check_books(run, buyers, events, stats, sales, accounts))
    # Time to sell out, admissions.
    a.update(timing(run, buyers, events))
    # Fairness, positions, ETA.
    a.update(fairness(run, buyers))
    a.update(eta(run, buyers))
    a["redis"] = redis_health(redis_url, events_key)
    from loadtests.drop_report import charts

    a["charts"] = charts(run, buyers, requests, events, a)
    return a


def concert_node(redis_url: str, key: str) -> redis.Redis:
    """A plain client of the Redis that serves ``key``: the server, or its cluster master."""
    from engine.sync import node_of, sync_client

    r = sync_client(redis_url)
    try:
        node = node_of(r, key)
    finally:
        r.close()
    return redis.Redis(*node) if node else sync_client(redis_url)


def redis_health(redis_url: str, key: str) -> dict:
    """What the Redis serving the concert saw of its own stalls during the run: LATENCY
    LATEST (events over 50 ms: command, fork, aof-fsync-always, aof-write...), delayed AOF
    fsyncs, its CPU."""
    r = concert_node(redis_url, key)
    try:
        latest = r.execute_command("LATENCY", "LATEST") or []
        info = r.info()
    finally:
        r.close()
    events = []
    for row in latest:
        name = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
        events.append({"event": name, "latest_ms": int(row[2]), "max_ms": int(row[3])})
    return {"latency": events, "aof_delayed_fsync": info.get("aof_delayed_fsync"),
            "used_cpu": info.get("used_cpu_sys", 0) + info.get("used_cpu_user", 0),
            "latest_fork_usec": info.get("latest_fork_usec"),
            "aof_rewrites": info.get("aof_rewrites", info.get("total_aof_rewrites"))}


def check_books(run: Run, buyers: list[dict], events: list[dict], stats: dict,
                sales: list[dict], accounts: dict) -> dict:
    cfg = run.cfg
    prefix = f"{cfg.concert}."
    c: dict[str, Any] = {"stats_end": stats, "sales_rows": len(sales)}
    seat_counts = Counter(s["seatId"] for s in sales)
    rid_counts = Counter(s["reservationId"] for s in sales)
    c["seats_sold_twice"] = sum(1 for n in seat_counts.values() if n > 1)
    c["sales_rid_twice"] = sum(1 for n in rid_counts.values() if n > 1)
    c["oversold"] = max(0, len(seat_counts) - run.seats) + c["seats_sold_twice"]
    c["books_balance"] = stats["freeSeats"] + stats["sold"] + stats["holds"] == run.seats
    # Events, by type (the stream's reservation ids are the secrets: the API's id without
    # the concert prefix).
    by_type: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_type[e["type"]].append(e)
    c["events"] = {t: len(v) for t, v in sorted(by_type.items())}
    c["admitted_events"] = sum(int(e["count"]) for e in by_type["ADMITTED"])

    def rids(kind: str) -> Counter:
        return Counter(prefix + e["reservationId"] for e in by_type[kind])

    held_ev, paid_ev, cancel_ev, expired_ev = (rids(k) for k in
                                               ("HELD", "PAID", "CANCELLED", "EXPIRED"))
    c["paid_event_twice"] = sum(1 for n in paid_ev.values() if n > 1)
    held_client = {r for b in buyers for r in b["held"]}
    paid_client = {r for b in buyers for r in b["paid"]}
    cancel_client = {r for b in buyers for r in b["cancelled"]}
    abandoned_client = {r for b in buyers for r in b["abandoned"]}
    sales_rids = set(rid_counts)
    c["client"] = {"held": len(held_client), "paid": len(paid_client),
                   "cancelled": len(cancel_client), "abandoned": len(abandoned_client)}
    c["match"] = {
        "HELD events = seats the buyers held": set(held_ev) == held_client,
        "PAID events = buyers' payments = sales.csv rows": set(paid_ev) == paid_client
        == sales_rids and len(sales) == stats["sold"],
        "CANCELLED events = buyers' cancels": set(cancel_ev) == cancel_client,
        "EXPIRED events = holds left to expire (+ unpaid ones)":
            abandoned_client <= set(expired_ev)
            and set(expired_ev) <= held_client - paid_client - cancel_client,
        "HELD = PAID + CANCELLED + EXPIRED + holds open": sum(held_ev.values()) == (
            sum(paid_ev.values()) + sum(cancel_ev.values()) + sum(expired_ev.values())
            + stats["holds"]),
    }
    # Money: each buyer's balance and history against its sales.
    sale_price: dict[int, float] = defaultdict(float)
    sale_rids: dict[int, set[str]] = defaultdict(set)
    for s in sales:
        sale_price[int(s["customerId"])] += float(s["price"])
        sale_rids[int(s["customerId"])].add(s["reservationId"])
    double, wrong_total, wrong_balance, missing, client_mismatch = 0, 0, 0, 0, 0
    charged_total = paid_total = 0.0
    for b in buyers:
        point, hist = accounts.get(b["customer"], (None, None))
        if point is None or hist is None:
            missing += 1
            continue
        entries = hist["entries"]
        pays = Counter(e.get("reservationId") for e in entries if e["type"] == "PAYMENT")
        double += sum(1 for n in pays.values() if n > 1)
        paid = sum(e["amount"] for e in entries if e["type"] == "PAYMENT")
        refunded = sum(e["amount"] for e in entries if e["type"] == "REFUND")
        charged = sum(e["amount"] for e in entries if e["type"] == "CHARGE")
        charged_total += charged
        paid_total += paid - refunded
        if abs(paid - refunded - sale_price.get(b["customer"], 0.0)) > 0.005:
            wrong_total += 1
        start = 0 if b["topup"] else INITIAL_BALANCE
        if abs(start + charged - paid + refunded - point["balance"]) > 0.005:
            wrong_balance += 1
        if set(b["paid"]) != sale_rids.get(b["customer"], set()) or abs(
                b["charged"] - charged) > 0.005:
            client_mismatch += 1
    c["money"] = {"customers checked": len(buyers) - missing, "unreadable": missing,
                  "reservations paid twice in a history": double,
                  PAY_TOTAL_OFF: wrong_total, BALANCE_OFF: wrong_balance,
                  "customers whose own view != the books": client_mismatch,
                  "charged (points)": charged_total, "paid (points)": paid_total,
                  "sales (points)": sum(float(s["price"]) for s in sales)}
    c["double_charged"] = double + wrong_total + wrong_balance
    return c


def timing(run: Run, buyers: list[dict], events: list[dict]) -> dict:
    cfg = run.cfg
    t: dict[str, Any] = {}
    paid = sorted(int(e["at"]) / 1000 for e in events if e["type"] == "PAID")
    t["sold_out_s"] = (paid[run.seats - 1] - cfg.opens_at) if len(paid) >= run.seats else None
    t["first_sale_s"] = (paid[0] - cfg.opens_at) if paid else None
    adm = sorted((int(e["at"]) / 1000, int(e["count"])) for e in events
                 if e["type"] == "ADMITTED")
    end = (cfg.opens_at + t["sold_out_s"]) if t["sold_out_s"] is not None else (
        adm[-1][0] if adm else cfg.opens_at)
    # Per second of the server's clock (the admission budget is per epoch second), from the
    # first whole second after the opening to the last whole second before the sell-out.
    per_second: Counter = Counter()
    for at, n in adm:
        per_second[math.floor(at)] += n
    t["admissions_per_second"] = sorted((s - cfg.opens_at, n) for s, n in per_second.items())
    before_end = sum(n for at, n in adm if at <= end)
    t["admitted_until_sold_out"] = before_end
    # Only seconds that began with a queue of at least a second's admissions (stats samples):
    # a drained queue admits fewer, by no fault of the rate.
    samples = [(r["epoch"], r["waiting"]) for r in run.samples]

    def waiting_at(t0: float) -> int:
        before = [w for e, w in samples if e <= t0]
        return before[-1] if before else 0

    full = [per_second.get(s, 0) for s in range(math.ceil(cfg.opens_at), math.floor(end))
            if waiting_at(s) >= run.admit]
    t["admit_seconds"] = len(full)
    t["admit_rate_mean"] = sum(full) / len(full) if full else None
    t["admit_rate_min"] = min(full) if full else None
    t["admit_rate_max"] = max(full) if full else None
    flows = sorted(b["done"] - b["admitted"] for b in buyers
                   if b["outcome"] == "bought" and b["admitted"])
    t["flow_p50"] = percentile(flows, 0.5)
    # What the admission rate allows: each admission sells per_buyer seats on average (the
    # plan's), the last buyer's pay comes a median flow after its admission; the last seats
    # may be holds left to expire, on sale again one hold TTL later.
    t["expected_s"] = run.seats / (run.admit * run.per_buyer) + (t["flow_p50"] or 0)
    for share in (0.5, 0.9, 0.99):
        k = math.ceil(run.seats * share)
        t[f"sold_{round(share * 100)}_s"] = (paid[k - 1] - cfg.opens_at) if len(paid) >= k \
            else None
    expired = sorted(int(e["at"]) / 1000 for e in events if e["type"] == "EXPIRED")
    t["last_expiry_s"] = (expired[-1] - cfg.opens_at) if expired else None
    # The tail: how many times the last seat sold had been held and left to expire first.
    rounds: Counter = Counter()
    last_seat, last_at = None, -1.0
    for e in events:
        if e["type"] == "EXPIRED":
            rounds[e["seatId"]] += 1
        elif e["type"] == "PAID" and int(e["at"]) / 1000 >= last_at:
            last_seat, last_at = e["seatId"], int(e["at"]) / 1000
    t["tail_rounds"] = rounds.get(last_seat, 0) if last_seat else 0
    t["tail_seat"] = last_seat
    t["expected_tail_s"] = t["expected_s"] + t["tail_rounds"] * (run.hold_ttl
                                                                   + REFRESH_SECONDS)
    k = math.ceil(run.seats * 0.99)
    t["expected_99_s"] = k / (run.admit * run.per_buyer) + (t["flow_p50"] or 0)
    return t


def fairness(run: Run, buyers: list[dict]) -> dict:
    f: dict[str, Any] = {}
    pre = [b for b in buyers if b["pre"] and b["admitted"]]
    post = [b for b in buyers if not b["pre"] and b["admitted"]]
    f["pre_admitted"], f["post_admitted"] = len(pre), len(post)
    f["pre_total"] = sum(1 for b in buyers if b["pre"])
    f["post_total"] = len(buyers) - f["pre_total"]
    f["rho_pre_admission"] = spearman([b["arrived"] for b in pre],
                                              [b["admitted"] for b in pre])
    with_pos = [b for b in pre if b["first_position"] is not None]
    f["rho_pre_position"] = spearman([b["arrived"] for b in with_pos],
                                             [b["first_position"] for b in with_pos])
    f["rho_post_admission"] = spearman([b["arrived"] for b in post],
                                               [b["admitted"] for b in post])
    # FIFO after the opening: a buyer whose issue was answered before another's was sent must
    # not be admitted in a later batch than it (0.5 s: batches are a second apart).
    import heapq

    by_sent = sorted(post, key=lambda b: b["arrived"])
    by_answer = sorted(post, key=lambda b: b["issued"])
    inversions, j, latest = 0, 0, -math.inf
    heap: list[float] = []
    for b in by_sent:
        while j < len(by_answer) and by_answer[j]["issued"] < b["arrived"]:
            heapq.heappush(heap, -by_answer[j]["admitted"])
            latest = max(latest, by_answer[j]["admitted"])
            j += 1
        if latest > b["admitted"] + 0.5:
            inversions += 1
    f["fifo_inversions"] = inversions
    f["post_before_pre"] = sum(1 for b in post if pre and b["admitted"] < max(
        x["admitted"] for x in pre) - 0.5) if pre and post else 0
    backwards = [b for b in buyers if any(y > x for x, y in zip(b["positions"],
                                                                 b["positions"][1:],
                                                                 strict=False))]
    f["positions_backwards"] = len(backwards)
    f["waiters_with_positions"] = sum(1 for b in buyers if len(b["positions"]) >= 2)
    return f


def eta(run: Run, buyers: list[dict]) -> dict:
    """Each admitted buyer's first estimate (its first answer with a position) against its
    wait from that answer to its admission (the server's: expiresAt - active TTL)."""
    e: dict[str, Any] = {}
    pts = [(b["first_estimate"], b["admitted"] - b["first_t"], b["pre"]) for b in buyers
           if b["admitted"] and b["first_t"] is not None]
    e["eta_points"] = pts
    for label, cut in (("all", 0.0), ("ge10", 10.0)):
        sel = [(est, act) for est, act, _ in pts if act >= max(cut, 0.5)]
        rel = sorted((est - act) / act for est, act in sel)
        absrel = sorted(abs(x) for x in rel)
        abs_s = sorted(abs(est - act) for est, act in sel)
        e[f"eta_{label}"] = {
            "n": len(sel), "median": percentile(rel, 0.5), "abs_median": percentile(absrel, 0.5),
            "abs_p90": percentile(absrel, 0.9), "p10": percentile(rel, 0.1),
            "p90": percentile(rel, 0.9), "abs_s_median": percentile(abs_s, 0.5),
            "abs_s_p90": percentile(abs_s, 0.9),
            "within": sum(1 for x in absrel if x <= ETA_GOAL) / len(absrel) if absrel else None}
    return e


# --- charts ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import shutil

    if shutil.which("redis-server") is None:
        print("redis-server is not on PATH: `make install` installs it", file=sys.stderr)
        return 2
    started = datetime.now()
    out = args.out or RESULTS / f"{started:%Y%m%d-%H%M%S}-drop"
    out.mkdir(parents=True, exist_ok=True)
    print(f"report folder: {out}", flush=True)
    from loadtests.drop_report import report_md, summary, verdicts

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
