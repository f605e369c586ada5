"""``python -m loadtests.script_bench.hot``: one concert that everybody wants, at the script
level. What ten million waiters cost one Redis core: memory a waiter, the opening of their
pre-queue, and the Redis CPU of each thing the waiting room does (an issue, a poll, the tick,
the idle sweep), summed into the CPU a second of a concert with N waiters who poll as
``pollAfterSeconds`` asks. The same on a local cluster of 1 and of 3 masters (``--cluster``):
one concert's costs stay on the master of its slot; more concerts spread.

The queue is built in bulk by a Lua loop that writes what issue.lua writes for a pre-queue
waiter (its entry in tokens and seqs, its seen bit, the concert's counters), so ten million
take a minute instead of an hour of issues; the timed calls are the engine's own scripts, as
the API runs them. Redis CPU per call: ``INFO commandstats`` (time inside the script) and the
server's CPU (``used_cpu_user + used_cpu_sys``, with its networking), each phase alone.
Writes loadtests/results/hot.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devstack.local_cluster import LocalCluster
from devstack.redis_server import temp_redis
from engine.ids import order_key, use_token_key
from engine.keys import concert_keys
from engine.queue_view import seen_keys
from engine.scripts import load_sources
from engine.seed import Option, Seat, create_concert
from engine.sync import sync_client
from engine.tick import SWEEP_SLICE
from loadtests.reporting import RESULTS, publish

CONCERT = 20
FIRST_CUSTOMER = 10_000_000
IDLE_MS = 120_000  # WAITING_IDLE_SECONDS's default
POLL_EVERY = 27.0  # seconds: pollAfterSeconds is drawn from 24..30 at a wait of 2 min and more
WORKERS = 8  # API workers, each reading the view once a second
MARKS = 5000  # marks a seen.lua call (engine/queue_view.py MARKS_A_CALL)
ACTIVE_LIMIT, ADMIT_PER_SECOND, ACTIVE_TTL_MS = 1000, 100, 600_000

BULK = """
local concert, tokens, seqs, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lo, hi, first, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for seq = lo, hi do
  redis.call('HSET', tokens, first + seq, seq)
  redis.call('HSET', seqs, seq, first + seq)
  redis.call('SETBIT', seen, seq, 1)
end
redis.call('HSET', concert, 'seq', hi, 'prefirst', 1, 'qv', 2, 'seen' .. ARGV[5],
           period .. ':' .. hi)
return hi"""


@dataclass
class Cost:
    name: str
    calls: int
    usec_per_call: float  # INFO commandstats: inside the script
    cpu_per_call: float  # the server's CPU (user + sys) over the phase, per call
    note: str = ""


@dataclass
class Result:
    where: str
    waiters: int
    memory_per_waiter: float = 0.0
    key_bytes: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0
    costs: list[Cost] = field(default_factory=list)

    def cost(self, name: str) -> Cost:
        return next(c for c in self.costs if c.name == name)


class Bench:
    """The engine's scripts against one Redis (or the master of the concert's slot)."""

    def __init__(self, node: redis.Redis, idle_ms: int = IDLE_MS) -> None:
        self.r = node
        self.k = concert_keys(CONCERT)
        self.idle_ms = idle_ms
        self.sha = {name: node.script_load(src) for name, src in load_sources().items()}
        self.defaults = (ACTIVE_LIMIT, ADMIT_PER_SECOND, ACTIVE_TTL_MS, idle_ms, 0, 0)

    def phase(self, name: str, calls: Callable[[redis.client.Pipeline], int], note: str = "",
              per: int = 1) -> Cost:
        """Run the calls ``calls`` queues on a pipeline, alone on the server; per call (or per
        ``per`` units of each call)."""
        self.r.config_resetstat()
        before = self._cpu()
        n = calls(None)
        cpu = self._cpu() - before
        stats = self.r.info("commandstats")
        scripts = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
        units = max(1, n * per)
        return Cost(name, n, scripts["usec"] / units, cpu * 1e6 / units, note)

    def _cpu(self) -> float:
        info = self.r.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    def run(self, script: str, keys: Sequence[str], args: Sequence[object],
            pipe: redis.client.Pipeline | None = None) -> object:
        target = pipe if pipe is not None else self.r
        return target.evalsha(self.sha[script], len(keys), *keys, *args)

    def pipelined(self, script: str, calls: list[tuple[Sequence[str], Sequence[object]]],
                  chunk: int = 200) -> list:
        out: list = []
        for i in range(0, len(calls), chunk):
            with self.r.pipeline(transaction=False) as p:
                for keys, args in calls[i:i + chunk]:
                    self.run(script, keys, args, p)
                out += p.execute()
        return out

    # --- the scripts the API and the tick run, with the engine's keys and arguments --------
    def issue_call(self, customer: int, pace: tuple[object, object] = ("", "")
                   ) -> tuple[list[str], list[object]]:
        """pace: the worker's view's (places a second, sold out), as the API sends it once
        a view is read; by default none (the script reads the rate hash)."""
        k = self.k
        return ([k.concert, k.tokens, k.seqs, k.seen0, k.seen1, k.seen2, k.active, k.rate,
                 k.settings, k.buckets, k.events, k.offers, k.left, k.codes, k.departed],
                [customer, order_key(CONCERT), *self.defaults, 20_000_000,
                 random.randrange(1, 2**31), 0, 0, 10, 10_000, *pace])

    def status_call(self, seq: int) -> tuple[list[str], list[object]]:
        k = self.k
        return ([k.tokens, k.seqs, k.seen0, k.seen1, k.seen2, k.active, k.rate, k.settings,
                 k.events, k.concert, k.offers, k.left, k.departed],
                [FIRST_CUSTOMER + seq, seq, order_key(CONCERT), *self.defaults,
                 random.randrange(1, 2**31), 10_000])

    def view_call(self) -> tuple[list[str], list[object]]:
        k = self.k
        return [k.concert, k.rate, k.settings, k.left], [self.idle_ms, 2**52]

    def seen_call(self, seqs: list[int]) -> tuple[list[str], list[object]]:
        return list(seen_keys(CONCERT)), [self.idle_ms, *seqs]

    def admit_call(self) -> tuple[list[str], list[object]]:
        k = self.k
        return ([k.tokens, k.seqs, k.active, k.rate, k.holds, k.paying, k.res, k.taken, k.free,
                 k.gone, k.settings, k.tickets, k.buckets, k.refunding, k.events, k.concert,
                 k.layout, k.offers, k.seen0, k.seen1, k.seen2, k.left, k.departed],
                [*self.defaults, 60_000, 3_600_000, random.randrange(1, 2**31), 10_000,
                 600_000, order_key(CONCERT), 900_000])

    def sweep_call(self) -> tuple[list[str], list[object]]:
        k = self.k
        return ([k.concert, k.tokens, k.seqs, k.seen0, k.seen1, k.seen2, k.rate, k.settings,
                 k.left, k.departed],
                [self.idle_ms, SWEEP_SLICE])

    def stats_call(self) -> tuple[list[str], list[object]]:
        k = self.k
        return [k.active, k.holds, k.paying, k.concert, k.free, k.rate, k.settings,
                k.offers], [0]


def waiting_of(r: redis.Redis) -> int:
    """The concert's WAITING tokens (lua/include/waiting.lua)."""
    seq, left, admitted = r.hmget(concert_keys(CONCERT).concert, "seq", "leftn", "admitted")
    return int(seq or 0) - int(left or 0) - int(admitted or 0)


def build(b: Bench, n: int, say: Callable[[str], None]) -> tuple[float, float]:
    """n pre-queue waiters as issue.lua leaves them (seqs 1..n); returns bytes a waiter and
    seconds."""
    k = b.k
    period = int(time.time() * 1000) // b.idle_ms
    seen = (k.seen0, k.seen1, k.seen2)[period % 3]
    before = b.r.info("memory")["used_memory"]
    t0 = time.perf_counter()
    step = 100_000
    for lo in range(1, n + 1, step):
        b.r.eval(BULK, 4, k.concert, k.tokens, k.seqs, seen, lo, min(lo + step - 1, n),
                 FIRST_CUSTOMER, period, period % 3)
        if lo // step % 20 == 0:
            say(f"  built {min(lo + step - 1, n):,} of {n:,}")
    seconds = time.perf_counter() - t0
    return (b.r.info("memory")["used_memory"] - before) / n, seconds


def measure(b: Bench, n: int, say: Callable[[str], None], polls: int = 1_000_000,
            issues: int = 20_000) -> list[Cost]:
    k = b.k
    costs: list[Cost] = []
    later = int(time.time() * 1000) + 3_600_000
    b.r.hset(k.settings, mapping={"opensAt": later})

    def timed(name: str, script: str, calls: list, note: str = "", per: int = 1) -> Cost:
        cost = b.phase(name, lambda _: len(b.pipelined(script, calls)) and len(calls),
                       note, per)
        costs.append(cost)
        say(f"  {name}: {cost.usec_per_call:.2f} us in the script, {cost.cpu_per_call:.2f} us "
            f"of server CPU")
        return cost

    # Issues into the pre-queue (before the opening), new customers.
    timed("issue (pre-queue)", "issue",
          [b.issue_call(FIRST_CUSTOMER + n + 1 + i) for i in range(issues)],
          f"{issues:,} new customers")
    total = n + issues
    # The opening: the first script to run after opensAt sets premax (one field).
    b.r.hset(k.settings, "opensAt", int(time.time() * 1000) - 1000)
    timed("the opening (queue_view.lua)", "queue_view", [b.view_call()],
          f"{total:,} waiters in the pre-queue")
    assert b.r.hget(k.concert, "premax") is not None
    timed("view read (queue_view.lua)", "queue_view", [b.view_call()] * 2000,
          "what each API worker reads once a second")
    # Admission in the pre-queue's shuffled order, at the rate the tick allows.
    timed("tick (admit.lua), admitting 100", "admit", [b.admit_call()],
          "100 admissions through the pre-queue's permutation")
    sample = random.sample(range(1, n + 1), 2000)
    timed("status poll asked of Redis (status.lua)", "status",
          [b.status_call(s) for s in sample], "a token the view cannot answer")
    # Polls: the marks the workers send, a first time in a period (written) and again
    # (read only: a waiter polls about four times a period).
    current = b.r.hget(k.concert, f"seen{int(time.time() * 1000) // b.idle_ms % 3}")
    assert current is not None
    batches = []
    for _ in range(polls // MARKS):
        batches.append(sorted(set(random.sample(range(1, n + 1), MARKS))))
    b.r.delete(*(k.seen0, k.seen1, k.seen2))  # nothing marked yet this period
    b.r.hdel(k.concert, "seen0", "seen1", "seen2")
    timed("seen marks, first in a period (seen.lua)", "seen",
          [b.seen_call(s) for s in batches], f"{MARKS:,} marks a call", per=MARKS)
    timed("seen marks, again in a period (seen.lua)", "seen",
          [b.seen_call(s) for s in batches], f"{MARKS:,} marks a call", per=MARKS)
    timed("stats (stats.lua)", "stats", [b.stats_call()] * 1000, "bounded: no walk")
    # The idle sweep: a walk of the whole queue with every waiter seen (the steady state),
    # then one where a tenth went idle (dropped).
    walk = math.ceil(total / SWEEP_SLICE) + 1
    period = int(time.time() * 1000) // b.idle_ms
    b.r.hset(k.concert, f"seen{period % 3}", f"{period}:{total}")
    bits = (k.seen0, k.seen1, k.seen2)[period % 3]
    b.r.setrange(bits, 0, b"\xff" * (total // 8 + 1))
    timed("idle sweep, a slice, all seen (sweep.lua)", "sweep", [b.sweep_call()] * walk,
          f"{SWEEP_SLICE:,} seqs a slice; a walk of the queue is {walk:,} slices")
    with b.r.pipeline(transaction=False) as p:
        for seq in random.sample(range(1, total + 1), total // 10):
            p.setbit(bits, seq, 0)
        p.execute()
    live = waiting_of(b.r)
    cost = timed("idle sweep, a slice, a tenth idle (sweep.lua)", "sweep",
                 [b.sweep_call()] * walk, "")
    cost.note = f"{live - waiting_of(b.r):,} dropped in the walk"
    return costs


def per_second(res: Result, poll_every: float = POLL_EVERY, idle_ms: int = IDLE_MS,
               workers: int = WORKERS) -> dict[str, float]:
    """Redis CPU (us) a second of the concert's waiting room at res.waiters, by kind."""
    n = res.waiters
    polls = n / poll_every
    first, again = (res.cost("seen marks, first in a period (seen.lua)").cpu_per_call,
                    res.cost("seen marks, again in a period (seen.lua)").cpu_per_call)
    firsts = n / (idle_ms / 1000)  # each waiter's first mark of a period
    marks = firsts * first + max(0.0, polls - firsts) * again
    views = workers * res.cost("view read (queue_view.lua)").cpu_per_call
    walks = 2 * n / SWEEP_SLICE / (idle_ms / 1000)
    sweep = walks * res.cost("idle sweep, a slice, all seen (sweep.lua)").cpu_per_call
    tick = res.cost("tick (admit.lua), admitting 100").cpu_per_call
    return {"polls": polls, "marks": marks, "views": views, "sweep": sweep, "tick": tick,
            "per_poll": (marks + views) / polls, "total": marks + views + sweep + tick}


def run_single(n: int, say: Callable[[str], None], polls: int, issues: int) -> Result:
    with temp_redis("--maxmemory", "0", "--appendonly", "yes") as rs:
        r = redis.Redis.from_url(rs.url)
        res = _run(r, n, say, polls, "one redis-server", issues=issues)
        r.close()
    return res


def _run(r: redis.Redis, n: int, say: Callable[[str], None], polls: int, where: str,
         loader: object = None, issues: int = 20_000) -> Result:
    create_concert(loader or r, CONCERT, "Hot", [Option(CONCERT * 10, "2027-05-01T19:00:00+09:00",
                                              (Seat(CONCERT * 1000 + 1, 1, 100),))])
    b = Bench(r)
    res = Result(where, n)
    say(f"{where}: building {n:,} pre-queue waiters")
    res.memory_per_waiter, res.build_seconds = build(b, n, say)
    k = b.k
    res.key_bytes = {name: r.memory_usage(key, samples=0) or 0 for name, key in (
        ("tokens", k.tokens), ("seqs", k.seqs),
        ("seen", next(x for x in (k.seen0, k.seen1, k.seen2) if r.exists(x))))}
    say(f"  {res.memory_per_waiter:.1f} bytes a waiter ({res.build_seconds:.0f} s to build)")
    res.costs = measure(b, n, say, polls, issues)
    return res


def run_cluster(masters: int, n: int, say: Callable[[str], None], polls: int,
                workdir: Path, issues: int = 20_000) -> tuple[Result, dict[str, float]]:
    """The same on a local cluster of ``masters`` masters (no replicas): one concert's calls
    all land on the master of its slot; the CPU of every master over the poll phase shows
    where they went."""
    cluster = LocalCluster(workdir / f"cluster{masters}", masters=masters, replicas=0,
                           node_timeout_ms=5000, extra=("--maxmemory", "0")).start()
    try:
        rc = redis.RedisCluster(host="127.0.0.1", port=cluster.masters()[0])
        node = rc.get_node_from_key(concert_keys(CONCERT).concert)
        r = redis.Redis(host=node.host, port=node.port)
        masters_cpu = {f"{x.host}:{x.port}": redis.Redis(host=x.host, port=x.port)
                       for x in rc.get_primaries()}
        before = {name: _cpu_of(m) for name, m in masters_cpu.items()}
        res = _run(r, n, say, polls, f"cluster, {masters} master{'s' * (masters > 1)}",
                   sync_client(cluster.url), issues)
        spent = {name: _cpu_of(m) - before[name] for name, m in masters_cpu.items()}
        return res, spent
    finally:
        cluster.stop()


def _cpu_of(r: redis.Redis) -> float:
    info = r.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def report(results: list[Result], spread: dict[str, dict[str, float]], argv: str,
           seconds: float) -> str:
    lines = [f"# One hot concert at the script level ({platform.node()}, {seconds:.0f} s)", "",
             f"`python -m loadtests.script_bench.hot {argv}`", "",
             f"Pollers every {POLL_EVERY} s (pollAfterSeconds' mean at long waits), "
             f"WAITING_IDLE_SECONDS {IDLE_MS // 1000}, {WORKERS} API workers reading the view "
             "once a second each; Redis CPU is the server's (user + sys) per call, in "
             "microseconds, each phase alone.", ""]
    for res in results:
        lines += [f"## {res.where}: {res.waiters:,} waiters", "",
                  f"Memory: **{res.memory_per_waiter:.0f} bytes a waiter** (used_memory "
                  f"growth over the build; MEMORY USAGE "
                  + ", ".join(f"{k} {v / res.waiters:.1f} B" for k, v in res.key_bytes.items())
                  + " a waiter).", "",
                  "| call | calls | us in the script | us of server CPU | note |",
                  "|---|---:|---:|---:|---|"]
        lines += [f"| {c.name} | {c.calls:,} | {c.usec_per_call:.2f} | {c.cpu_per_call:.2f} |"
                  f" {c.note} |" for c in res.costs]
        s = per_second(res)
        lines += ["", f"A second of this waiting room ({s['polls']:,.0f} polls): marks "
                  f"{s['marks'] / 1e3:,.0f} ms, views {s['views'] / 1e3:.1f} ms, idle sweep "
                  f"{s['sweep'] / 1e3:,.0f} ms, tick {s['tick'] / 1e3:.1f} ms: "
                  f"**{s['total'] / 1e4:.1f} % of one core**; **{s['per_poll']:.2f} us of "
                  "Redis CPU a poll**, amortised.", ""]
    for where, cpu in spread.items():
        lines += [f"CPU seconds by master over the {where} run: " + ", ".join(
            f"{m} {v:.1f} s" for m, v in cpu.items()), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.script_bench.hot",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--waiters", type=int, default=10_000_000)
    p.add_argument("--polls", type=int, default=1_000_000, help="marks timed, each pass")
    p.add_argument("--issues", type=int, default=20_000, help="issues timed (new customers)")
    p.add_argument("--cluster", default="", help="masters to run a cluster with, e.g. 1,3 "
                   "(each at --cluster-waiters)")
    p.add_argument("--cluster-waiters", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=RESULTS / "hot.md")
    a = p.parse_args(argv)
    use_token_key(b"bench-queue-token-key-0123456789")
    started = time.perf_counter()
    results = [run_single(a.waiters, print, a.polls, a.issues)]
    spread: dict[str, dict[str, float]] = {}
    for masters in [int(m) for m in a.cluster.split(",") if m]:
        with tempfile.TemporaryDirectory(prefix="hot-") as tmp:
            res, cpu = run_cluster(masters, a.cluster_waiters, print, a.polls, Path(tmp),
                                   a.issues)
        results.append(res)
        spread[res.where] = cpu
    text = report(results, spread, " ".join(argv if argv is not None else sys.argv[1:]),
                  time.perf_counter() - started)
    publish(text, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
