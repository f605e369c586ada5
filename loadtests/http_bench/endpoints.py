"""``make bench-endpoints``: each API endpoint under wrk on each server and backend, in one
run, every figure beside a bare Starlette hello on the same server measured right next to it
(each server's hello, the endpoint on every backend and server, each server's hello, the next
endpoint, ...).

Servers (``--servers``): ``uvicorn`` (uvloop, httptools) and ``granian`` (``--interface asgi
--loop uvloop``), one worker each, flags from api/serve.py. For each endpoint the table gives
each server's req/s and p99, its ratio to that server's hello, and its ratio to the faster
server's hello; a second table the server's CPU (all its processes, in cores) and requests per
CPU-second, since one granian worker uses more than one core (its Rust threads).

Backends (``--backends``): ``single`` (one redis-server), ``cluster1`` (a one-master cluster:
the cost of cluster routing alone), ``cluster3`` and ``cluster3-wait1`` (three masters with a
replica each; the second acknowledges a change once a replica has it). Each (backend, server)
pair has its own API worker and fresh data for the write endpoints. Prints the tables and
writes them to loadtests/results/endpoints.md. Everything targets 127.0.0.1 and stops by
itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from devstack.api_server import SERVER_CLASSES, Server, server, server_kinds
from devstack.cluster_nodes import QUICK_SYNC
from devstack.local_cluster import LocalCluster
from devstack.redis_server import RedisServer
from engine import booking, concert_settings, queue
from engine.config import Settings
from engine.ids import parse_token
from engine.seed import Option, Seat, create_concert, fund_customers, seed_demo
from engine.store import Store, connect
from engine.sync import sync_client
from loadtests.http_bench.wrk import WrkRun, endpoint_run, median_run, wrk_missing
from loadtests.reporting import bench_report, publish

SEATS_PER_OPTION = 1000
ENDPOINTS = ["issue", "status", "poll", "dates", "seats", "point", "charge", "reserve", "pay"]
LABELS = {
    "issue": "POST /api/token/issue", "status": "GET /api/token/status",
    "poll": "GET /api/token/status, WAITING (from the view)",
    "dates": "GET /api/2/available-dates", "seats": "GET /api/41150/available-seats",
    "point": "GET /api/point", "charge": "PATCH /api/point/charge",
    "reserve": "POST /api/reserve", "pay": "POST /api/pay", "hello": "hello (baseline)",
}
HELLO_APP = "loadtests.http_bench.hello:app"  # the baseline: a bare Starlette hello
BACKENDS = ["single", "cluster1", "cluster3", "cluster3-wait1"]
TITLES = {"single": "single node", "cluster1": "cluster, 1 master",
          "cluster3": "cluster, 3 masters", "cluster3-wait1": "3 masters, WAIT 1"}
# The fresh seats and holds of every server and round outgrow redis.conf's 1 GB (writes then
# got 503 STORE_FULL): the benchmark measures speed, not the memory cap.
ROOMY = ("--maxmemory", "8gb")
# Fresh seats and holds for this many req/s over a run (reserve and pay never reuse one).
EXPECTED_RPS = {"uvicorn": 32_000, "granian": 48_000}


@dataclass
class Backend:
    """One backend under one server: its Redis, its data and its API worker."""

    name: str
    server: str
    index: int  # keeps the data of the pairs that share a Redis apart
    url: str = ""
    redis_pids: list[int] = field(default_factory=list)
    prep: dict[str, str] = field(default_factory=dict)
    api: Server | None = None
    per_run: int = 0  # fresh seats, holds and customers one run may use

    @property
    def concert(self) -> int:
        return 9 + self.index  # reserve and pay run on a big concert of their own

    @property
    def customer_base(self) -> int:
        """Reserve's customers from here, pay's from here + 5,000,000: apart from issue's."""
        return 10_000_000 * (self.index + 1)

    @property
    def issue_start(self) -> int:
        return 1_000_000 * (self.index + 1)  # fresh customers: every issue a new token

    def env(self, mode: str, round_: int = 0) -> dict[str, str]:
        """wrk's settings for ``mode``; each round's writes start past the last round's, so
        that every issue, reserve and pay is a fresh one (``per_run`` each, at most)."""
        env = {"BENCH_SEATS_PER_OPTION": str(SEATS_PER_OPTION)}
        skip = round_ * self.per_run
        if mode in ("status", "dates", "seats"):
            env["BENCH_TOKEN"] = self.prep["status"]
        elif mode == "poll":
            env["BENCH_TOKEN"] = self.prep["poll"]
        elif mode == "reserve":
            env |= {"BENCH_TOKENS": self.prep["reserve"], "BENCH_CONCERT": str(self.concert),
                    "BENCH_PER_CUSTOMER": self.prep["per"], "BENCH_START": str(skip)}
        elif mode == "pay":
            env |= {"BENCH_IDS": self.prep["ids"], "BENCH_START": str(skip)}
        elif mode == "issue":
            env["BENCH_START"] = str(self.issue_start + skip)
        return env


def prepare(b: Backend, pay_holds: int, reserve_seats: int) -> None:
    """Demo data plus the backend's big concert for reserve/pay, its ACTIVE tokens (each
    customer reserves up to its ticket limit: as many customers as that takes), and the
    holds that pay will pay."""
    settings = replace(Settings.from_env(), redis_url=b.url, redis_command_timeout=30,
                       redis_connect_timeout=10)
    per = settings.max_tickets_per_customer or 1000
    reserve_base, pay_base = b.customer_base, b.customer_base + 5_000_000
    reserve_customers, pay_customers = -(-reserve_seats // per), -(-pay_holds // per)
    r = sync_client(b.url)
    seed_demo(r)
    options = -(-(reserve_seats + pay_holds) // SEATS_PER_OPTION)
    create_concert(r, b.concert, "Bench Concert", [
        Option(o, "2027-06-01T19:00:00+09:00", tuple(
            Seat(o * SEATS_PER_OPTION + n, n, 100) for n in range(1, SEATS_PER_OPTION + 1)))
        for o in range(1, options + 1)
    ])
    fund_customers(r, pay_base, pay_base + pay_customers, 10**9 * 100)
    poll_concert = b.concert + 1000  # a queue that admits nobody: its tokens stay WAITING
    seat = Seat(poll_concert * 10_000 + 1, 1, 100)
    create_concert(r, poll_concert, "Poll Concert",
                   [Option(poll_concert * 10, "2027-06-01T19:00:00+09:00", (seat,))])
    r.close()
    pay_first_option = -(-reserve_seats // SEATS_PER_OPTION) + 1

    async def in_batches(calls: list) -> list:
        out: list = []
        for lo in range(0, len(calls), 500):
            out += await asyncio.gather(*(c() for c in calls[lo:lo + 500]))
        return out

    async def tokens(store: Store, base: int, n: int) -> list[str]:
        views = await in_batches([
            lambda c=c: queue.issue_token(store, c, b.concert) for c in range(base, base + n)])
        assert all(v["status"] == "ACTIVE" for v in views), "bench tokens must be ACTIVE"
        return [v["tokenValue"] for v in views]

    def lines(rows: list[str]) -> str:
        path = Path(tempfile.mkstemp(prefix="bench-", suffix=".txt")[1])
        path.write_text("\n".join(rows) + "\n")
        return str(path)

    async def go() -> dict[str, str]:
        store = Store(connect(settings), settings)
        await queue.use_deployment_key(store)  # the key the API's workers read too
        status_tok = (await queue.issue_token(store, 1, 2))["tokenValue"]
        # A WAITING token, its polls answered from the worker's view: a queue a hundred long
        # that admits nobody (paused).
        await concert_settings.patch(store, poll_concert, {"paused": True})
        for c in range(1, 100):
            await queue.issue_token(store, c, poll_concert)
        poll_tok = (await queue.issue_token(store, 100, poll_concert))["tokenValue"]
        # The bench concert's own settings: every token it issues is ACTIVE at once.
        await concert_settings.patch(store, b.concert, {"activeLimit": 10**7,
                                                        "admitPerSecond": 10**6})
        reserve_toks = await tokens(store, reserve_base, reserve_customers)
        pay_toks = await tokens(store, pay_base, pay_customers)
        seats = [(pay_first_option + i // SEATS_PER_OPTION, i % SEATS_PER_OPTION + 1)
                 for i in range(pay_holds)]
        holds = await in_batches([
            lambda i=i, o=o, n=n: booking.reserve(store, parse_token(pay_toks[i // per]), o,
                                                  o * SEATS_PER_OPTION + n)
            for i, (o, n) in enumerate(seats)])
        await store.aclose()
        return {"status": status_tok, "poll": poll_tok, "reserve": lines(reserve_toks),
                "per": str(per),
                "ids": lines([f"{pay_toks[i // per]} {h['reservationId']}"
                              for i, h in enumerate(holds)])}

    b.prep = asyncio.run(go())


def start_backends(names: list[str], servers: list[str], tmp: Path,
                   stack: contextlib.ExitStack) -> list[Backend]:
    """The Redis deployments the backends need (the two 3-master ones share one cluster, and
    every server of a backend its Redis)."""
    backends = [Backend(name, kind, i) for i, (name, kind) in
                enumerate((n, k) for n in names for k in servers)]
    single = cluster1 = cluster3 = None
    for sub in ("single", "cluster1", "cluster3"):
        (tmp / sub).mkdir()
    for b in backends:
        if b.name == "single":
            single = single or stack.enter_context(RedisServer(tmp / "single", *ROOMY))
            b.url, b.redis_pids = single.url, single.pids()
        elif b.name == "cluster1":
            cluster1 = cluster1 or stack.enter_context(LocalCluster(
                tmp / "cluster1", masters=1, replicas=0, extra=(*QUICK_SYNC, *ROOMY)))
            b.url, b.redis_pids = cluster1.url, cluster1.pids()
        else:
            cluster3 = cluster3 or stack.enter_context(LocalCluster(
                tmp / "cluster3", masters=3, replicas=1, extra=(*QUICK_SYNC, *ROOMY)))
            b.url, b.redis_pids = cluster3.url, cluster3.pids()
    return backends


def server_table(endpoints: list[str], runs: dict[tuple[str, str, str], WrkRun],
                 hellos: dict[tuple[str, str], list[WrkRun]], backend: str,
                 servers: list[str]) -> str:
    """Per endpoint and server: req/s, p99, x that server's hello, x the faster hello."""
    head = "| endpoint |" + "".join(
        f" {k}: req/s · p99 ms · x own hello · x faster hello |" for k in servers)
    lines = [head, "|---|" + "---:|" * len(servers)]

    def mean(k: str, mode: str) -> float:
        return sum(h.rps for h in hellos[(mode, k)]) / len(hellos[(mode, k)])

    cells = [LABELS["hello"]]
    for k in servers:
        rps = sum(mean(k, m) for m in endpoints) / len(endpoints)
        best = max(sum(mean(o, m) for m in endpoints) / len(endpoints) for o in servers)
        p99 = max(h.p99_ms for m in endpoints for h in hellos[(m, k)])
        cells.append(f"{rps:,.0f} · ≤{p99:.2f} · 1 · {rps / best:.2f}")
    lines.append("| " + " | ".join(cells) + " |")
    for mode in endpoints:
        best = max(mean(k, mode) for k in servers)
        cells = [LABELS[mode]]
        for k in servers:
            run = runs[(mode, backend, k)]
            flag = "" if not (run.non2xx or run.socket_errors) else \
                f" ({run.non2xx} non-2xx, {run.socket_errors} errors)"
            cells.append(f"{run.rps:,.0f} · {run.p99_ms:.2f} · {run.rps / mean(k, mode):.2f} · "
                         f"{run.rps / best:.2f}{flag}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cpu_table(endpoints: list[str], runs: dict[tuple[str, str, str], WrkRun],
              hellos: dict[tuple[str, str], list[WrkRun]], backend: str,
              servers: list[str]) -> str:
    """Per endpoint and server: the server's CPU in cores, requests per CPU-second, Redis."""
    lines = ["| endpoint |" + "".join(
        f" {k}: server cores · req per CPU-s · Redis cores · others |" for k in servers),
        "|---|" + "---:|" * len(servers)]
    cells = [LABELS["hello"]]
    for k in servers:
        hs = [h for m in endpoints for h in hellos[(m, k)]]
        cells.append(f"{sum(h.server_cpu for h in hs) / len(hs):.2f} · "
                     f"{sum(h.per_cpu_second for h in hs) / len(hs):,.0f} · - · "
                     f"{max(h.others_cpu for h in hs):.2f}")
    lines.append("| " + " | ".join(cells) + " |")
    for mode in endpoints:
        lines.append(f"| {LABELS[mode]} | " + " | ".join(
            f"{r.server_cpu:.2f} · {r.per_cpu_second:,.0f} · {r.redis_cpu:.2f} · "
            f"{r.others_cpu:.2f}"
            for r in (runs[(mode, backend, k)] for k in servers)) + " |")
    return "\n".join(lines) + "\n"


def backend_matrix(endpoints: list[str], runs: dict[tuple[str, str, str], WrkRun],
                   names: list[str], kind: str) -> str:
    """Per endpoint under one server: each backend's req/s, p99 and ratio to the first."""
    first = names[0]
    lines = ["| endpoint |" + "".join(
        f" {TITLES[n]}: req/s · p99 ms{f' · x {TITLES[first]}' if i else ''} |"
        for i, n in enumerate(names)), "|---|" + "---:|" * len(names)]
    for mode in endpoints:
        cells = [LABELS[mode]]
        for i, n in enumerate(names):
            run = runs[(mode, n, kind)]
            ratio = f" · {run.rps / runs[(mode, first, kind)].rps:.2f}" if i else ""
            flag = "" if not (run.non2xx or run.socket_errors) else \
                f" ({run.non2xx} non-2xx, {run.socket_errors} errors)"
            cells.append(f"{run.rps:,.0f} · {run.p99_ms:.2f}{ratio}{flag}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="each wrk run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--only", nargs="*", choices=ENDPOINTS, help="a subset of endpoints")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma-separated, first is the reference ({', '.join(BACKENDS)})")
    p.add_argument("--servers", type=server_kinds, default=list(SERVER_CLASSES),
                   help=f"comma-separated ({', '.join(SERVER_CLASSES)}), one worker each")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole interleaved sequence; each cell is the median round")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="also measure this many workers of each server on the first backend "
                        "(0: skip)")
    args = p.parse_args(argv)
    if wrk_missing():
        return 2
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    if not names or any(n not in BACKENDS for n in names):
        p.error(f"--backends takes some of {', '.join(BACKENDS)}")
    servers = args.servers
    endpoints = args.only or ENDPOINTS
    # Measure, never shed; the bench's customers reserve and pay many times a second.
    env = {"ACTIVE_TTL_SECONDS": "3600", "HOLD_TTL_SECONDS": "3600",
           "WAITING_IDLE_SECONDS": "3600", "MAX_IN_FLIGHT": "0",
           "RESERVE_RATE_PER_CUSTOMER": "0"}
    os.environ.update(env)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, \
            contextlib.ExitStack() as stack:
        backends = start_backends(names, servers, Path(tmp), stack)
        for b in backends:
            print(f"preparing {b.name} under {b.server} on {b.url} ...", flush=True)
            b.per_run = int(args.seconds * EXPECTED_RPS[b.server])
            prepare(b, pay_holds=b.per_run * args.rounds if "pay" in endpoints else 0,
                    reserve_seats=b.per_run * args.rounds)
            b.api = stack.enter_context(server(b.server, "api.app:app", {
                **env, "REDIS_URL": b.url,
                "REDIS_WAIT_REPLICAS": "1" if b.name.endswith("wait1") else "0"}))
        hello = {k: stack.enter_context(server(k, HELLO_APP)) for k in servers}
        hello_pids = {k: h.all_pids() for k, h in hello.items()}
        redis_pids = sorted({pid for b in backends for pid in b.redis_pids})

        def run(b: Backend | None, mode: str, seconds: float, kind: str = "",
                round_: int = 0) -> WrkRun:
            if b is None:
                return endpoint_run(hello[kind].base, "hello", seconds, args.connections, {},
                           hello_pids[kind], redis_pids)
            assert b.api is not None
            return endpoint_run(b.api.base, mode, seconds, args.connections, b.env(mode, round_),
                       b.api.all_pids(), b.redis_pids)

        for k in servers:  # warm every server: imports, caches, connections
            run(None, "hello", 1, k)
        for b in backends:
            run(b, "point", 1)
        every: dict[tuple[str, str, str], list[WrkRun]] = {}
        around: dict[tuple[str, str], list[tuple[WrkRun, WrkRun]]] = {}
        for round_ in range(args.rounds):
            if args.rounds > 1:
                print(f"round {round_ + 1} of {args.rounds}", flush=True)
            before = {k: run(None, "hello", args.seconds, k) for k in servers}
            for mode in endpoints:
                print(f"  {mode} ...", flush=True)
                for b in backends:
                    every.setdefault((mode, b.name, b.server), []).append(
                        run(b, mode, args.seconds, round_=round_))
                after = {k: run(None, "hello", args.seconds, k) for k in servers}
                for k in servers:
                    around.setdefault((mode, k), []).append((before[k], after[k]))
                before = after
        runs = {key: median_run(v) for key, v in every.items()}
        hellos = {key: [median_run([a for a, _ in v]), median_run([b for _, b in v])]
                  for key, v in around.items()}
        spans = "; ".join(
            f"{k} hello {min(h.rps for h in hs):,.0f}-{max(h.rps for h in hs):,.0f} req/s, "
            f"p99 {min(h.p99_ms for h in hs):.2f}-{max(h.p99_ms for h in hs):.2f} ms"
            for k in servers for hs in [[h for (_, kk), v in hellos.items() if kk == k
                                         for h in v]])
        rounds = (f"; the median of {args.rounds} rounds of the whole sequence"
                  if args.rounds > 1 else "")
        others = max(r.others_cpu for rs in every.values() for r in rs)
        out.append(f"One worker per server (wrk -t1 -c{args.connections}, {args.seconds:g} s "
                   f"per run, each endpoint between two runs of each server's hello{rounds}; "
                   f"{spans}). A ratio to a hello is to the mean of the two runs around the "
                   f"endpoint. Other processes on the machine took up to {others:.2f} cores "
                   "during a run (the 'others' column): a run they disturbed is slower.\n")
        for n in names:
            out.append(f"### {TITLES[n]}: each server\n\n"
                       + server_table(endpoints, runs, hellos, n, servers)
                       + "\nCPU during each run (cores: 1.00 is one core busy all the "
                         "run):\n\n" + cpu_table(endpoints, runs, hellos, n, servers))
        if len(names) > 1:
            for k in servers:
                out.append(f"### {k}: each backend\n\n"
                           + backend_matrix(endpoints, runs, names, k))
        if args.workers > 1:
            b = next(x for x in backends if x.name == names[0])
            lines = ["| endpoint |" + "".join(
                f" {k}: hello req/s · API req/s · ratio · x faster hello |" for k in servers),
                "|---|" + "---:|" * len(servers)]
            rows: dict[str, dict[str, tuple[WrkRun, WrkRun]]] = {"point": {}, "status": {}}
            for k in servers:
                with server(k, HELLO_APP, workers=args.workers) as hello_n, \
                        server(k, "api.app:app", {**env, "REDIS_URL": b.url},
                               workers=args.workers) as api_n:
                    for mode in rows:
                        h = endpoint_run(hello_n.base, "hello", args.seconds,
                                         args.connections * 2, {}, hello_n.all_pids(),
                                         b.redis_pids)
                        r = endpoint_run(api_n.base, mode, args.seconds, args.connections * 2,
                                         b.env(mode), api_n.all_pids(), b.redis_pids)
                        rows[mode][k] = (h, r)
            for mode, by in rows.items():
                best = max(h.rps for h, _ in by.values())
                lines.append(f"| {LABELS[mode]} | " + " | ".join(
                    f"{h.rps:,.0f} · {r.rps:,.0f} · {r.rps / h.rps:.2f} · {r.rps / best:.2f}"
                    for h, r in (by[k] for k in servers)) + " |")
            out.append(f"### {args.workers} workers of each server on {TITLES[b.name]} "
                       f"(wrk -t1 -c{args.connections * 2}; one server after the other)\n\n"
                       + "\n".join(lines) + "\n")
        for b in backends:
            Path(b.prep["ids"]).unlink(missing_ok=True)
            Path(b.prep["reserve"]).unlink(missing_ok=True)
    publish(bench_report("Endpoint benchmark", "\n".join(out)), "endpoints.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
