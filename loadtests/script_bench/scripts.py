"""``python -m loadtests.script_bench.scripts``: each Lua script of the endpoints alone, on Redis.

Starts its own redis-server (the repo's redis.conf: AOF on, everysec) in a temp dir, prepares
state, then drives the engine's own functions (``queue.issue_token``, ``pay.pay``, ...):
their commands, byte for byte what the API sends, are pipelined to Redis in timed batches
(see ``driver.py``). Every call is a realistic, successful one: a new customer for each
issue, a WAITING token for each status, a free seat for each reserve, an open hold for each
cancel and pay, a new Idempotency-Key for each keyed charge; any refusal stops the run.

For each script: calls a second through one pipelined connection (commands packed before the
clock starts; on 2 cores this is mostly Redis's limit), Redis CPU µs a call (INFO cpu delta /
calls: the figure that matters, the API's client being Python) and EVALSHA's own µs a call
(INFO commandstats). Medians over ``--batches`` timed batches. Writes
loadtests/results/scripts.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import orjson
import redis

from devstack.redis_server import temp_redis
from engine import access_codes, booking, catalog, challenge, pay, queue, tick, wallet
from engine.config import Settings
from engine.ids import Token, parse_reservation, parse_token, use_token_key
from engine.keys import concert_keys
from engine.money import MINOR_PER_UNIT
from engine.seed import (
    DEMO_CONCERT,
    DEMO_OPTIONS,
    Option,
    Seat,
    create_concert,
    fund_customers,
    seed_demo,
)
from loadtests.reporting import RESULTS, publish
from loadtests.script_bench.driver import (
    Meter,
    Pipe,
    Summary,
    chunk_for,
    drive,
    stepped_store,
    summarise,
    untimed,
)

BENCH_CONCERT = 9  # reserve, cancel and pay run on a big concert of their own
BEST_CONCERT = 10  # best available: performances of 50 rows of 20, filled best row first
BEST_ROWS, BEST_ROW_SEATS, BEST_QUANTITY = 50, 20, 2
SEATS_PER_OPTION = 1000
SEAT_PRICE = 100_000 * MINOR_PER_UNIT
READ_POOL = range(500_001, 500_101)  # ACTIVE tokens of the demo concert for dates and seats
ISSUE_FIRST = 1_000_001  # never-seen customers: every issue makes a new token
RESERVE_FIRST, CANCEL_FIRST, PAY_FIRST = 2_000_001, 3_000_001, 4_000_001
BARE_FIRST = 5_000_001  # issue and reserve again with the ticket and rate limits off
STEPS_FIRST = 6_000_001  # pay in three steps (as on a cluster, or PAY_ONE_CALL=0)
BEST_FIRST = 7_000_001  # best available, a pair of seats each
CHARGE_CUSTOMERS = 1000  # at most; demo customers from 1, keyed charges to the next ones
# The issue's gates: three fresh concerts alike, one with each gate on (lua/include/gates.lua)
GATE_CONCERTS = {"-gates-off": 11, "-code": 12, "-challenge": 13}
GATES_FIRST = 8_000_001
BENCH_HMAC_KEY = "script-bench-challenge-key-of-32-bytes"
VIEW_PACE = (200.0, 0)  # a worker view's pace and sold-out mark, as the API sends them
EASY = 100  # the bench's challenges: the script's cost does not depend on the complexity

# (script, what drives it) in table order; "pay-steps" is the sum of pay's three steps.
ROWS = [
    ("issue", "`queue.issue_token`, a new customer, with the pace of the worker's view: "
              "`POST /api/token/issue`"),
    ("issue-noview", "the same with no view yet (a period's first: the script reads the rate)"),
    ("issue-nolimits", "the same with the rate limits off (0)"),
    ("issue-gates-off", "`queue.issue_token`, a new customer, on a fresh concert: the gates' "
                        "baseline"),
    ("issue-code", "the same concert's twin in presale (`accessCodeRequired`): a single-use "
                   "code each"),
    ("issue-challenge", "its twin behind the proof of work (`challengeComplexity`): a solved "
                        "challenge each (checked in Python before the script: not counted here)"),
    ("status", "`queue.token_status`, a WAITING token: `GET /api/token/status`"),
    ("admit", "`tick.tick`: the API's background tick (about once a second)"),
    ("dates", "`catalog.available_dates`: `GET /api/2/available-dates`"),
    ("seats", "`catalog.available_seats`, 50 seats: `GET /api/41150/available-seats`"),
    ("catalog", "the seat list on a cache miss (once per option and worker)"),
    ("reserve", "`booking.reserve`, a free seat: `POST /api/reserve`"),
    ("reserve-nolimits", "the same with the ticket and rate limits off (0)"),
    ("reserve_best", "`booking.reserve_best`, 2 seats side by side, the best rows full first: "
                     "`POST /api/reserve` with `quantity`"),
    ("cancel", "`booking.cancel`, an open hold: `DELETE /api/reserve/{id}`"),
    ("pay", "`pay.pay` on one Redis, one call: `POST /api/pay`"),
    ("pay_begin", "`pay.pay` in steps (a cluster): step 1, HELD → PAYING"),
    ("debit", "step 2: debit the balance"),
    ("pay_finish", "step 3: PAID, seat sold, token finished"),
    ("pay-steps", "`pay.pay` in steps: the three together"),
    ("charge", "`wallet.charge`: `PATCH /api/point/charge`"),
    ("charge+key", "`wallet.charge` with a new `Idempotency-Key`"),
    ("balance", "`wallet.balance`: `GET /api/point`"),
    ("history", "`wallet.history`, 20 entries: `GET /api/point/history`"),
]
PAY_STEPS = ("pay_begin", "debit", "pay_finish")
BOLD = ("pay", "pay-steps")  # the two ways of a pay, as a whole


BENCH_TOKEN_KEY = b"bench-queue-token-key-0123456789"


def bench_settings(url: str) -> Settings:
    """Defaults (ACTIVE_LIMIT 1000, 200 admissions/s), with TTLs long enough that nothing
    expires under the benchmark."""
    use_token_key(BENCH_TOKEN_KEY)  # the engine's calls mint and read tokens here
    return replace(Settings(), redis_url=url, redis_command_timeout=30, redis_connect_timeout=10,
                   active_ttl_seconds=3600, hold_ttl_seconds=3600, waiting_idle_seconds=3600,
                   pay_stale_seconds=600, challenge_hmac_key=BENCH_HMAC_KEY,
                   challenge_ttl_seconds=3600)


def seat_of(i: int) -> tuple[int, int]:
    """The i-th seat of the bench concert: (optionId, seatId)."""
    option = 1 + i // SEATS_PER_OPTION
    return option, option * SEATS_PER_OPTION + i % SEATS_PER_OPTION + 1


def bench_options(seats: int) -> list[Option]:
    return [
        Option(o, "2027-06-01T19:00:00+09:00", tuple(
            Seat(o * SEATS_PER_OPTION + n, n, SEAT_PRICE) for n in range(1, SEATS_PER_OPTION + 1)))
        for o in range(1, -(-seats // SEATS_PER_OPTION) + 1)
    ]


def best_options(pairs: int) -> list[Option]:
    """Performances for ``pairs`` best-available pairs: rows of 20 (the first ten dearer),
    so a call skips the rows already full (one BITCOUNT each) before the one it fills."""
    per = BEST_ROWS * BEST_ROW_SEATS
    return [
        Option(o, "2027-06-02T19:00:00+09:00", tuple(
            Seat(o * per + i + 1, i % BEST_ROW_SEATS + 1,
                 SEAT_PRICE * (2 if i < 10 * BEST_ROW_SEATS else 1),
                 "VIP" if i < 10 * BEST_ROW_SEATS else "R", str(i // BEST_ROW_SEATS + 1))
            for i in range(per)))
        for o in range(1, -(-pairs * BEST_QUANTITY // per) + 1)
    ]


def gated(r: redis.Redis, ops: int) -> tuple[list[str], list[str]]:
    """The gates' concerts, alike but for their settings; ``ops`` single-use codes of the
    presale one and ``ops`` solved challenges of the other: (codes, payloads)."""
    for concert in GATE_CONCERTS.values():
        create_concert(r, concert, "Gates bench", bench_options(SEATS_PER_OPTION))
    code_k, pow_k = concert_keys(GATE_CONCERTS["-code"]), concert_keys(GATE_CONCERTS["-challenge"])
    r.hset(code_k.settings, "accessCodeRequired", 1)
    r.hset(pow_k.settings, "challengeComplexity", EASY)
    codes = [access_codes.new_code() for _ in range(ops)]
    for i in range(0, ops, 5000):
        r.hset(code_k.codes, mapping=dict.fromkeys(codes[i:i + 5000], 1))
    payloads = [solved(challenge.new(BENCH_HMAC_KEY.encode(), GATE_CONCERTS["-challenge"], EASY,
                                     3600)) for _ in range(ops)]
    return codes, payloads


def solved(c: dict) -> str:
    """A challenge's payload, as the widget sends it."""
    found = challenge.solve(c)
    return base64.b64encode(orjson.dumps({**c, "number": found})).decode()


def tokens_of(results: list[dict], status: str | None = None) -> list[Token]:
    """The tokens of issue/status answers (all of ``status`` when given, else an error)."""
    if status is not None and any(v["status"] != status for v in results):
        raise RuntimeError(f"expected every token {status}")
    return [parse_token(v["tokenValue"]) for v in results]  # type: ignore[misc]


def run_scripts(url: str, ops: int = 40_000, batches: int = 4,
                active_limit: int | None = None) -> tuple[list[Summary], list[str]]:
    """Prepare the data on the Redis at ``url`` (already running; seeded here) and measure
    every script. Returns the table rows (``ROWS`` order) and notes on the state measured.
    ``active_limit`` below the 100 ACTIVE readers makes every issued token wait (tiny runs)."""
    r = redis.Redis.from_url(url)
    seed_demo(r)
    create_concert(r, BENCH_CONCERT, "Script bench", bench_options(5 * ops))
    best = best_options(ops)
    create_concert(r, BEST_CONCERT, "Best available bench", best)
    for first in (PAY_FIRST, STEPS_FIRST):
        fund_customers(r, first, first + ops - 1, 1_000_000 * MINOR_PER_UNIT)
    codes, payloads = gated(r, ops)
    r.close()

    settings = bench_settings(url)
    if active_limit is not None:
        settings = replace(settings, active_limit=active_limit)
    store = stepped_store(settings)
    steps = stepped_store(replace(settings, pay_one_call=False))
    bare = stepped_store(replace(settings, issue_rate_per_customer=0,
                                 reserve_rate_per_customer=0, max_tickets_per_customer=0))
    # Preparation only: admit every token it issues at once, whatever the queue's limits.
    prep = stepped_store(replace(settings, active_limit=10**9, admit_per_second=10**9))
    pipe = Pipe(url)
    pipe.load_scripts()
    meter = Meter(pipe)
    chunk = chunk_for(ops, batches)
    few = max(1, ops // 10)
    notes: list[str] = []

    def issue(store_: object, customers: range, concert: int,
              pace: tuple[float, int] | None = None, **kw: object) -> list[dict]:
        calls = (queue.issue_token(store_, c, concert, pace=pace)  # type: ignore[arg-type]
                 for c in customers)
        return drive(meter, calls, keep=True, label="issues", **kw)  # type: ignore[arg-type]

    def hold(tokens: list[Token], first_seat: int) -> list[str]:
        held = drive(meter, (booking.reserve(store, t, *seat_of(first_seat + i))
                             for i, t in enumerate(tokens)), measure=untimed, keep=True,
                     label="reserves")
        return [parse_reservation(h["reservationId"])[1] for h in held]  # type: ignore[index]

    try:
        readers = tokens_of(issue(prep, READ_POOL, DEMO_CONCERT, measure=untimed), "ACTIVE")
        group = {first: tokens_of(issue(prep, range(first, first + ops), BENCH_CONCERT,
                                        measure=untimed), "ACTIVE")
                 for first in (RESERVE_FIRST, CANCEL_FIRST, PAY_FIRST, BARE_FIRST,
                               STEPS_FIRST)}

        best_toks = tokens_of(issue(prep, range(BEST_FIRST, BEST_FIRST + ops), BEST_CONCERT,
                                    measure=untimed), "ACTIVE")

        # Queue: issue to new customers (most wait: 1000 ACTIVE at most, 200 admitted a
        # second), then one status poll of each, then the background tick.
        issued = issue(store, range(ISSUE_FIRST, ISSUE_FIRST + ops), DEMO_CONCERT, VIEW_PACE,
                       chunk=chunk)
        issue(store, range(ISSUE_FIRST + 2 * ops, ISSUE_FIRST + 3 * ops), DEMO_CONCERT,
              chunk=chunk, suffix="-noview")
        issue(bare, range(ISSUE_FIRST + ops, ISSUE_FIRST + 2 * ops), DEMO_CONCERT, VIEW_PACE,
              chunk=chunk, suffix="-nolimits")
        gate_args = {"-gates-off": {}, "-code": {"access_code": codes},
                     "-challenge": {"altcha": payloads}}
        for suffix, concert in GATE_CONCERTS.items():
            given = gate_args[suffix]
            drive(meter, (queue.issue_token(store, GATES_FIRST + i, concert,
                                            **{a: v[i] for a, v in given.items()})
                          for i in range(ops)), chunk=chunk, label="issues", suffix=suffix)
        waiting = [v for v in issued if v["status"] == "WAITING"]
        notes.append(f"issue: {len(waiting):,} of {ops:,} new tokens WAITING, queue length at "
                     f"the end {max((v['position'] for v in waiting), default=0):,}")
        statuses = drive(meter, (queue.token_status(store, t) for t in tokens_of(waiting)),
                         chunk=chunk_for(len(waiting), batches), keep=True, label="polls")
        notes.append(f"status: {len(statuses):,} WAITING tokens polled, mean position "
                     f"{sum(s['position'] for s in statuses) / max(1, len(statuses)):,.0f}")
        drive(meter, (tick.tick(store, DEMO_CONCERT) for _ in range(few)),
              chunk=chunk_for(few, batches), label="ticks")

        # Catalog reads with ACTIVE tokens.
        n_readers = len(readers)
        drive(meter, (catalog.available_dates(store, readers[i % n_readers], DEMO_CONCERT)
                      for i in range(ops)), chunk=chunk, label="dates reads")
        option = DEMO_OPTIONS[0]
        drive(meter, [catalog.available_seats(store, readers[0], option)],
              measure=untimed)  # the seat list, read once and kept by the engine
        drive(meter, (catalog.available_seats(store, readers[i % n_readers], option)
                      for i in range(ops)), chunk=chunk, label="seats reads")
        drive(meter, (catalog.seat_list(store, DEMO_CONCERT, option, b"")  # a cache miss
                      for _ in range(few)), chunk=chunk_for(few, batches), label="seat lists")

        # Seats: reserve free seats; cancel and pay holds made for them.
        drive(meter, (booking.reserve(store, t, *seat_of(i))
                      for i, t in enumerate(group[RESERVE_FIRST])), chunk=chunk, label="reserves")
        drive(meter, (booking.reserve(bare, t, *seat_of(3 * ops + i))
                      for i, t in enumerate(group[BARE_FIRST])), chunk=chunk, label="reserves",
              suffix="-nolimits")
        drive(meter, (catalog.seat_list(store, BEST_CONCERT, o.id) for o in best),
              measure=untimed)  # the seat lists, read once and kept by the engine
        per = BEST_ROWS * BEST_ROW_SEATS // BEST_QUANTITY
        drive(meter, (booking.reserve_best(store, t, best[i // per].id, BEST_QUANTITY)
                      for i, t in enumerate(best_toks)), chunk=chunk, label="best-available holds")
        cancels = hold(group[CANCEL_FIRST], ops)
        drive(meter, (booking.cancel(store, t, s) for t, s in zip(group[CANCEL_FIRST], cancels,
                                                                   strict=True)),
              chunk=chunk, label="cancels")
        for payer, first, seats in ((store, PAY_FIRST, 2 * ops), (steps, STEPS_FIRST, 4 * ops)):
            pays = hold(group[first], seats)
            paid = drive(meter, (pay.pay(payer, t, s) for t, s in zip(group[first], pays,
                                                                          strict=True)),
                         chunk=chunk, keep=True, label="pays")
            if not all(p["status"] == "PAID" for p in paid):
                raise RuntimeError("a pay did not end PAID")

        # Points: charges spread so that every charged customer has 20+ history entries.
        amount = 5000 * MINOR_PER_UNIT
        n = max(1, min(CHARGE_CUSTOMERS, ops // 25))
        drive(meter, (wallet.charge(store, 1 + i % n, amount) for i in range(ops)),
              chunk=chunk, label="charges")
        drive(meter, (wallet.charge(store, 1 + n + i % n, amount, f"bench-{i}")
                      for i in range(ops)), chunk=chunk, label="keyed charges", suffix="+key")
        drive(meter, (wallet.balance(store, 1 + i % 10_000) for i in range(ops)),
              chunk=chunk, label="balance reads")
        read = drive(meter, (wallet.history(store, 1 + i % n, 20) for i in range(ops // 2)),
                     chunk=chunk_for(ops // 2, batches), keep=True, label="history reads")
        notes.append(f"charge: {ops:,} charges over {n:,} customers (and as many keyed ones "
                     f"over {n:,} others); history: {len(read):,} reads of "
                     f"{sum(len(h['entries']) for h in read) / max(1, len(read)):.0f} entries")
        version = pipe.info("server")["redis_version"]
        notes.append(f"Redis {version}, used_memory at the end "
                     f"{pipe.used_memory() / 2**20:,.0f} MiB")
    finally:
        pipe.close()

    rows = {name: summarise(name, samples) for name, samples in meter.samples.items()}
    parts = [rows[s] for s in PAY_STEPS]
    rows["pay-steps"] = Summary(
        name="pay-steps", ops=parts[0].ops, ops_per_s=1 / sum(1 / s.ops_per_s for s in parts),
        cpu_us=sum(s.cpu_us for s in parts), cpu_us_min=sum(s.cpu_us_min for s in parts),
        cpu_us_max=sum(s.cpu_us_max for s in parts), script_us=sum(s.script_us for s in parts),
        batches=parts[0].batches,
    )
    missing = [name for name, _ in ROWS if name not in rows]
    if missing:
        raise RuntimeError(f"no measurement of {missing}")
    return [rows[name] for name, _ in ROWS], notes


def table(rows: list[Summary]) -> str:
    what = dict(ROWS)
    head = ("| script | driven by | calls | calls/s | Redis CPU µs/call | min / max | "
            "EVALSHA µs/call |\n|---|---|---:|---:|---:|---:|---:|\n")
    return head + "\n".join(
        f"| {f'**{s.name}**' if s.name in BOLD else s.name} | {what[s.name]} | {s.ops:,} | "
        f"{s.ops_per_s:,.0f} | {s.cpu_us:.1f} | {s.cpu_us_min:.1f} / {s.cpu_us_max:.1f} | "
        f"{s.script_us:.1f} |"
        for s in rows
    ) + "\n"


def report(rows: list[Summary], notes: list[str], ops: int, batches: int, seconds: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"## Lua scripts alone, {stamp}\n\n"
        f"`python -m loadtests.script_bench.scripts --ops {ops}`: {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; redis-server from "
        f"redis.conf (AOF everysec); {seconds:.0f} s in all.\n\n"
        "Each call is the engine's own function, its command pipelined (1000 a write, two "
        "writes in flight) over one connection. *calls/s*: that connection's throughput, "
        "mostly Redis's limit. *Redis CPU µs/call*: `used_cpu_user + used_cpu_sys` delta / "
        "calls (all of Redis: parsing, the script, replies, AOF writes), median over "
        f"{batches} batches, min / max beside it. *EVALSHA µs/call*: the script's own run time "
        "(INFO commandstats: wall clock, so it also counts any time Redis was preempted). "
        "**pay** is one call on one Redis; **pay-steps** its three steps summed (a cluster, "
        "or PAY_ONE_CALL=0).\n\n"
        + table(rows) + "\n" + "".join(f"- {n}\n" for n in notes)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=40_000, help="calls per script (admit, catalog: "
                   "a tenth; history: a half)")
    p.add_argument("--batches", type=int, default=4, help="timed batches per script")
    p.add_argument("--out", type=Path, default=RESULTS / "scripts.md")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    with temp_redis(prefix="bench-scripts-") as rs:
        print(f"redis-server on {rs.url}; {args.ops:,} calls per script ...", flush=True)
        rows, notes = run_scripts(rs.url, args.ops, args.batches)
    text = report(rows, notes, args.ops, args.batches, time.monotonic() - t0)
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
