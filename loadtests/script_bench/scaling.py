"""``python -m loadtests.script_bench.scaling``: does a script's Redis cost stay flat as the
queue and the customer base grow? Issue, status (a token deep in the queue), reserve and
charge, at 1k, 10k, 100k and 1M waiting tokens and customers, and Redis memory per waiting
token.

One redis-server (the repo's redis.conf, AOF on) in a temp dir, one concert with ACTIVE_LIMIT
10: its first 10 tokens are ACTIVE (they reserve), every later one waits. The state grows
through the engine's own calls, pipelined (loadtests/script_bench/driver.py): ``queue.issue_token``
for new customers fills the queue, ``wallet.charge`` gives new customers a balance (and one
history entry). At each size, in timed batches (median of ``--batches``):

- issue: a new customer; the last ``min(10k, n/2)`` issues of the fill, so the queue ends at n;
- status: a WAITING token among the last 1000 of the queue (position about n), asked of
  Redis (status.lua: what a poll costs when the worker's view cannot answer it);
- reserve: a free seat of the concert whose queue is n long, TICKETS in a row by each of the
  ACTIVE_LIMIT holders (within the ticket limit), cancelled after (untimed);
- charge: a random one of the n customers.

Memory per waiting token: the growth of ``used_memory`` over the issues alone (fill and timed
ones) divided by the tokens they added; beside it ``MEMORY USAGE`` of the keys a waiting
token lives in (tokens, seqs, the seen bitmaps). Writes loadtests/results/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from devstack.redis_server import temp_redis
from engine import booking, queue, wallet
from engine.ids import Token, parse_reservation
from engine.keys import concert_keys
from engine.money import MINOR_PER_UNIT
from engine.seed import create_concert
from loadtests.reporting import RESULTS, publish
from loadtests.script_bench import driver
from loadtests.script_bench.driver import Summary, chunk_for, drive, untimed
from loadtests.script_bench.scripts import bench_options, bench_settings, seat_of, tokens_of

SIZES = (1_000, 10_000, 100_000, 1_000_000)
CONCERT = 20
ACTIVE_LIMIT = 2_500  # the holders: each reserves TICKETS seats a size, then cancels them
TICKETS = 4  # the default ticket limit
QUEUE_FIRST = 10_000_001  # the queue's customers; customers with a balance are 1..n
FILL_CHUNK = 50_000
DEEP = 1000  # status polls the last DEEP tokens of the queue


@dataclass
class Point:
    size: int
    tokens: int  # waiting tokens when measured
    customers: int
    issue: Summary
    issue_from: int  # queue length when the timed issues began
    status: Summary
    position: float  # mean position of the polled tokens
    reserve: Summary
    charge: Summary
    used_memory: int
    token_bytes: int  # used_memory growth over the issues so far
    key_bytes: dict[str, int]  # MEMORY USAGE of tokens, seqs, seen bitmaps
    customer_bytes: int  # used_memory growth over the customer fills so far
    fill_seconds: float  # filling up to this size from the previous one


def run_scaling(url: str, sizes: tuple[int, ...] = SIZES, issue_ops: int = 10_000,
                status_ops: int = 20_000, reserve_ops: int = 10_000, charge_ops: int = 20_000,
                batches: int = 4, log: bool = False) -> list[Point]:
    """Grow the state on the Redis at ``url`` (already running, empty) through ``sizes`` and
    measure at each."""
    # The ACTIVE_LIMIT holders make every reserve, TICKETS each in a row at each size (as a
    # buyer does, within the ticket limit, which stays on: a customer's ticket record lists
    # its open holds), then cancel them; the reserve rate limit, which would refuse four in a
    # row, is off. All are admitted at once (the stock's bound on admission, admitPerSeat,
    # off: the tiny test's concert has a few seats).
    settings = replace(bench_settings(url), active_limit=ACTIVE_LIMIT,
                       admit_per_second=ACTIVE_LIMIT, admit_per_seat=0,
                       reserve_rate_per_customer=0)
    if reserve_ops > ACTIVE_LIMIT * TICKETS:
        raise ValueError(f"at most {ACTIVE_LIMIT * TICKETS:,} reserves a size")
    store = driver.stepped_store(settings)
    r = redis.Redis.from_url(url)
    create_concert(r, CONCERT, "Scaling", bench_options(reserve_ops * len(sizes)))
    r.close()
    pipe = driver.Pipe(url)
    pipe.load_scripts()
    meter = driver.Meter(pipe)
    k = concert_keys(CONCERT)
    rng = random.Random(7)
    points: list[Point] = []

    def say(text: str) -> None:
        if log:
            print(text, flush=True)

    def timed(name: str) -> Summary:
        summary = driver.summarise(name, meter.samples.pop(name))
        say(f"    {name:8s} {summary.cpu_us:6.1f} µs/call ({summary.ops:,} calls)")
        return summary

    def memory() -> int:
        time.sleep(0.3)  # the client's buffers shrink on Redis's next cron
        return pipe.used_memory()

    try:
        # The first ACTIVE_LIMIT tokens are admitted at once: they reserve.
        first = drive(meter, (queue.issue_token(store, QUEUE_FIRST + i, CONCERT)
                              for i in range(ACTIVE_LIMIT)), measure=untimed, keep=True)
        holders = tokens_of(first, "ACTIVE")
        assert len(holders) == ACTIVE_LIMIT, "every holder ACTIVE"
        next_customer = QUEUE_FIRST + ACTIVE_LIMIT
        customers = 0
        deep: deque[Token] = deque(maxlen=DEEP)
        token_bytes = customer_bytes = 0
        seats_used = 0

        def issue(count: int, timed_chunk: int | None) -> None:
            nonlocal next_customer
            for lo in range(0, count, FILL_CHUNK):
                n = min(FILL_CHUNK, count - lo)
                got = drive(meter, (queue.issue_token(store, c, CONCERT)
                                    for c in range(next_customer, next_customer + n)),
                            measure=None if timed_chunk else untimed,
                            chunk=timed_chunk or n, keep=True, label="issues")
                next_customer += n
                deep.extend(tokens_of(got[-DEEP:], "WAITING"))

        for size in sizes:
            t0 = time.monotonic()
            say(f"  {size:,} waiting tokens and customers: filling ...")
            waiting = pipe.call("HLEN", k.seqs)
            timed_issues = min(issue_ops, size // 2)
            m0 = memory()
            issue(size - timed_issues - waiting, None)
            pipe.settle()
            issue_from = pipe.call("HLEN", k.seqs)
            issue(timed_issues, chunk_for(timed_issues, batches))
            token_bytes += memory() - m0

            m0 = memory()
            for lo in range(customers + 1, size + 1, FILL_CHUNK):
                drive(meter, (wallet.charge(store, c, 100 * MINOR_PER_UNIT)
                              for c in range(lo, min(lo + FILL_CHUNK, size + 1))),
                      measure=untimed, chunk=FILL_CHUNK, label="charges")
            customers = size
            customer_bytes += memory() - m0
            fill_seconds = time.monotonic() - t0
            tokens = pipe.call("HLEN", k.seqs)
            say(f"    filled in {fill_seconds:.1f} s; {tokens:,} waiting")

            pipe.settle()
            polled = list(deep)
            statuses = drive(meter, (queue.token_status(store, polled[i % len(polled)])
                                     for i in range(status_ops)),
                             chunk=chunk_for(status_ops, batches), keep=True, label="polls")
            if any(s["status"] != "WAITING" for s in statuses):
                raise RuntimeError("a polled token is not WAITING")
            position = sum(s["position"] for s in statuses) / len(statuses)
            pipe.settle()
            held = drive(meter, (booking.reserve(store, holders[i // TICKETS],
                                                 *seat_of(seats_used + i))
                                 for i in range(reserve_ops)),
                         chunk=chunk_for(reserve_ops, batches), keep=True, label="reserves")
            seats_used += reserve_ops
            drive(meter, (booking.cancel(store, holders[i // TICKETS],
                                         parse_reservation(h["reservationId"])[1])
                          for i, h in enumerate(held)), measure=untimed, label="cancels")
            pipe.settle()
            drive(meter, (wallet.charge(store, rng.randint(1, size), 100 * MINOR_PER_UNIT)
                          for _ in range(charge_ops)),
                  chunk=chunk_for(charge_ops, batches), label="charges")

            usage = {key: pipe.call("MEMORY", "USAGE", key, "SAMPLES", "0") or 0
                     for key in (k.tokens, k.seqs, k.seen0, k.seen1, k.seen2)}
            key_bytes = {"tokens": usage[k.tokens], "seqs": usage[k.seqs],
                         "seen": usage[k.seen0] + usage[k.seen1] + usage[k.seen2]}
            points.append(Point(
                size=size, tokens=tokens, customers=customers, issue=timed("issue"),
                issue_from=issue_from, status=timed("status"), position=position,
                reserve=timed("reserve"), charge=timed("charge"), used_memory=memory(),
                token_bytes=token_bytes, key_bytes=key_bytes, customer_bytes=customer_bytes,
                fill_seconds=fill_seconds,
            ))
    finally:
        pipe.close()
    return points


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else \
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def tables(points: list[Point]) -> str:
    cpu = ("| waiting tokens / customers | issue | status (mean position) | reserve | charge |\n"
           "|---|---:|---:|---:|---:|\n")
    cpu += "\n".join(
        f"| {_size(p.size)} | {p.issue.cpu_us:.1f} | {p.status.cpu_us:.1f} "
        f"({p.position:,.0f}) | {p.reserve.cpu_us:.1f} | {p.charge.cpu_us:.1f} |"
        for p in points
    )
    inner = ("| waiting tokens / customers | issue | status | reserve | charge |\n"
             "|---|---:|---:|---:|---:|\n")
    inner += "\n".join(
        f"| {_size(p.size)} | {p.issue.script_us:.1f} | {p.status.script_us:.1f} | "
        f"{p.reserve.script_us:.1f} | {p.charge.script_us:.1f} |"
        for p in points
    )
    mem = ("| waiting tokens | used_memory | growth over the issues | per waiting token | "
           "MEMORY USAGE tokens+waiting, per token | customers: growth, per customer | "
           "fill time |\n|---:|---:|---:|---:|---:|---:|---:|\n")
    mem += "\n".join(
        f"| {p.tokens:,} | {p.used_memory / 2**20:,.1f} MiB | {p.token_bytes / 2**20:,.1f} MiB "
        f"| {p.token_bytes / p.tokens:,.0f} B | {sum(p.key_bytes.values()) / p.tokens:,.0f} B | "
        f"{p.customer_bytes / 2**20:,.1f} MiB, {p.customer_bytes / p.customers:,.0f} B | "
        f"{p.fill_seconds:.1f} s |"
        for p in points
    )
    return (f"Redis CPU µs per call (INFO cpu delta / calls, median of the batches):\n\n{cpu}\n\n"
            "EVALSHA's own time, µs per call (INFO commandstats: wall clock inside the script, "
            f"so it also counts any time Redis was preempted):\n\n{inner}\n\n"
            f"Memory (`used_memory`; MiB = 2^20 bytes):\n\n{mem}\n")


def report(points: list[Point], argv: str, seconds: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    last = points[-1]
    timed = ", ".join(f"{_size(p.size)}: {p.issue_from:,}→{p.tokens:,}" for p in points)
    return (
        f"## Redis cost against queue and customer base size, {stamp}\n\n"
        f"`python -m loadtests.script_bench.scaling{argv}`: {platform.node()}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}; redis-server from redis.conf (AOF "
        f"everysec); {seconds:.0f} s in all.\n\n"
        f"One concert, ACTIVE_LIMIT {ACTIVE_LIMIT}: the queue grows by `queue.issue_token` for "
        "new customers, the customers by `wallet.charge` (a balance and one history entry "
        "each). *status* polls tokens among the last 1000 of the queue, *reserve* takes free "
        f"seats of that concert, {TICKETS} in a row a holder (then cancelled, untimed), "
        "*charge* a random existing customer. The timed issues are the "
        f"last of the fill (queue length during them: {timed}).\n\n"
        + tables(points)
        + f"\n**{last.tokens:,} waiting tokens took {last.token_bytes / 1e6:,.0f} MB "
        f"({last.token_bytes / 2**20:,.0f} MiB) of `used_memory`, "
        f"{last.token_bytes / last.tokens:,.0f} bytes a token** (target: 1M in < 250 MB). "
        "By key (MEMORY USAGE, per waiting token): "
        + ", ".join(f"{name} {b / last.tokens:,.0f} B" for name, b in last.key_bytes.items())
        + ".\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                   default=SIZES, help="comma-separated, increasing")
    p.add_argument("--batches", type=int, default=4, help="timed batches per measurement")
    p.add_argument("--out", type=Path, default=RESULTS / "scaling.md")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    with temp_redis(prefix="bench-scaling-") as rs:
        print(f"redis-server on {rs.url}; sizes {', '.join(map(_size, args.sizes))}",
              flush=True)
        points = run_scaling(rs.url, args.sizes, batches=args.batches, log=True)
    shown = "" if args.sizes == SIZES else " --sizes " + ",".join(map(str, args.sizes))
    text = report(points, shown, time.monotonic() - t0)
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
