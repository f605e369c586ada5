"""The ticket drop's simulated buyers (``python -m loadtests run drop``), and the lean
generator that drives them: raw asyncio (uvloop) over a pool of keep-alive connections,
responses parsed by httptools.

A buyer is one generator function, ``buyer_flow``, that yields what it wants done (``Req``:
an HTTP request; ``Wait``: sleep until a wall-clock time) and receives each request's answer
(``Resp``). The behaviour lives there once; the drivers are thin: ``AsyncDriver`` below (one
process, or several shards), and the locust one in ``locustfiles/drop.py`` (``FastHttpUser``
over a shared connection pool), so the two generators can be compared on the very same
buyers.

The plan (``make_plan``) is a pure function of the run's configuration and seed: arrivals
(a share before the opening, uniform over the lead time; the rest just after it, an
exponential burst), and per buyer the choices below. ``python -m loadtests.dropgen CONFIG
--shard i/n`` runs shard i of n (buyers ``index % n == i``); the runner starts the shards and
reads what they write into the run's folder:

- ``progress-<shard>.json`` once a second: buyers started / done, requests, failures;
- ``requests-<shard>.csv``: one row per request (start time, step, status, code, ms, ok,
  ms spent waiting for a pooled connection);
- ``buyers-<shard>.jsonl``: one record per buyer (arrival, every position it was told, its
  first estimate, its admission time, holds, payments, cancels, charges, outcome);
- ``summary-<shard>.json`` at the end: the driver's own figures (sleep overshoot, pool waits).

A buyer: issue a token at its arrival time; poll the status at the rate the API suggests
(``pollAfterSeconds``, or ``Retry-After`` on a 429/503); some give up waiting (``patience``).
Once ACTIVE: the dates, then either one seat picked from the seat list (half of them asking
one section with ``?section=``), retried on 409 SEAT_TAKEN, or best-available with ``quantity``
2-4 (a section or not), fewer together on 409 NO_ADJACENT_SEATS. Then pay (buyers whose
customer has no points charge first, with an Idempotency-Key), or cancel (half of them hold
again and pay), or abandon the holds (they expire). A few greedy ones hold 4 and then ask a
fifth (409 TICKET_LIMIT, expected). When the runner says the drop sold out (a file appears),
buyers still waiting go home.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

from api.gc_tuning import GENERATOR_THRESHOLD, freeze_heap
from loadtests.generator.pool import Pool, Req, parse_answer
from loadtests.generator.stats import percentile

# What a buyer may be answered without it being a failure, besides 2xx.
SEAT_TAKEN = (409, "SEAT_TAKEN")
NO_ADJACENT = (409, "NO_ADJACENT_SEATS")
TICKET_LIMIT = (409, "TICKET_LIMIT")
RATE_LIMITED = (429, "RATE_LIMITED")
STEPS = ("issue", "status", "dates", "seats", "reserve", "reserve-best", "cancel", "point",
         "charge", "pay")


# --- the run's configuration and plan -----------------------------------------------------------
@dataclass
class Mix:
    """How buyers behave; shares are of all buyers unless said otherwise."""

    pre_share: float = 0.1  # arrive before the opening (uniform over the lead time)
    post_mean: float = 6.0  # the others: opening + an exponential of this mean (s) ...
    post_max: float = 30.0  # ... cut at this many seconds after the opening
    queue_abandon: float = 0.03  # give up waiting after `patience` (uniform 15-60 s)
    single: float = 0.45  # pick one seat from the list; the others: best-available 2-4
    section: float = 0.5  # ask one section (single: ?section=; best: "section")
    first_date: float = 0.6  # prefer the first date (else either)
    cancel: float = 0.05  # cancel the holds and leave
    cancel_rebuy: float = 0.04  # cancel, hold again (best-available 1-2), pay
    abandon: float = 0.06  # leave the holds to expire
    greedy: float = 0.03  # hold 4 together, then ask a fifth (409 TICKET_LIMIT)
    topup: float = 0.10  # a customer with no points: charges before paying
    think_min: float = 0.2  # seconds between a buyer's steps once ACTIVE
    think_max: float = 1.0
    refreshes: int = 5  # found nothing: look again this many times, 2 s apart


@dataclass
class DropConfig:
    base: str  # http://127.0.0.1:PORT
    concert: int
    options: list[dict]  # [{"id": 130001, "sections": ["VIP", ...], "seats": 2500}]
    buyers: int
    t_start: float  # epoch s: the plan's time zero
    opens_at: float  # epoch s
    active_ttl: float  # s: admission time = expiresAt - this
    out_dir: str
    seed: int = 13
    funded_base: int = 100_000  # customer of a funded buyer: funded_base + index + 1
    topup_base: int = 200_000  # of a buyer with no points: topup_base + index + 1
    connections: int = 64  # per generator process
    deadline: float = 0.0  # epoch s: every buyer stops by then
    mix: Mix = field(default_factory=Mix)

    @property
    def sold_out_file(self) -> Path:
        return Path(self.out_dir) / "SOLD_OUT"

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @staticmethod
    def load(path: Path) -> DropConfig:
        raw = json.loads(Path(path).read_text())
        raw["mix"] = Mix(**raw.get("mix", {}))
        return DropConfig(**raw)


@dataclass(frozen=True, slots=True)
class BuyerPlan:
    index: int  # arrival order
    customer: int
    arrival: float  # s after t_start
    patience: float | None  # s of waiting before giving up (None: waits)
    single: bool
    quantity: int  # best-available: 2-4 (greedy: 4)
    section: str | None
    option: int  # preferred option id (when it has seats)
    after: str  # pay | cancel | cancel-rebuy | abandon
    greedy: bool
    topup: bool
    seed: int


def make_plan(cfg: DropConfig) -> list[BuyerPlan]:
    """Every buyer of the run, in arrival order; a pure function of ``cfg``."""
    m, rng = cfg.mix, random.Random(cfg.seed)
    lead = cfg.opens_at - cfg.t_start
    arrivals = []
    for _ in range(cfg.buyers):
        if rng.random() < m.pre_share:
            arrivals.append(rng.uniform(min(0.5, lead / 4), max(lead - 0.5, lead * 3 / 4)))
        else:
            arrivals.append(lead + min(rng.expovariate(1 / m.post_mean), m.post_max))
    arrivals.sort()
    plans = []
    for i, at in enumerate(arrivals):
        greedy = rng.random() < m.greedy
        single = not greedy and rng.random() < m.single
        opt = cfg.options[0] if rng.random() < m.first_date else rng.choice(cfg.options)
        section = rng.choice(opt["sections"]) if rng.random() < m.section else None
        u = rng.random()
        after = ("cancel" if u < m.cancel else "cancel-rebuy" if u < m.cancel + m.cancel_rebuy
                 else "abandon" if u < m.cancel + m.cancel_rebuy + m.abandon else "pay")
        if greedy:
            after = "pay"
        topup = rng.random() < m.topup
        patience = rng.uniform(15, 60) if rng.random() < m.queue_abandon else None
        plans.append(BuyerPlan(
            index=i, customer=(cfg.topup_base if topup else cfg.funded_base) + i + 1,
            arrival=at, patience=patience, single=single,
            quantity=4 if greedy else rng.randint(2, 4), section=section, option=opt["id"],
            after=after, greedy=greedy, topup=topup, seed=rng.getrandbits(32)))
    return plans


def expected_seats(plans: list[BuyerPlan]) -> float:
    """Seats an admission sells, on average over the plan, while seats are free: a buyer who
    cancels buys none, cancel-rebuy 1.5 on average, and one who left the queue none (its token
    is still admitted when its turn comes within the idle limit, and takes an admission)."""
    total = sum({"pay": 1 if p.single else p.quantity, "cancel": 0, "abandon": 0,
                 "cancel-rebuy": 1.5}[p.after] for p in plans if p.patience is None)
    return total / len(plans) if plans else 0.0


# --- what a buyer says and hears ------------------------------------------------------------
@dataclass(slots=True)
class Wait:
    at: float  # epoch s
    wake: bool = False  # a queue poll's wait: cut short when the drop sells out


@dataclass(slots=True)
class Resp:
    status: int  # 0: no answer (connection error)
    body: Any
    retry_after: float | None
    code: str  # problem code of an error answer
    at: float  # epoch s when the answer came


@dataclass
class BuyerRecord:
    index: int
    customer: int
    topup: bool
    pre: bool  # arrived before the opening
    arrived: float = 0.0  # epoch s of its issue request
    issued: float = 0.0  # answer to the issue
    first_t: float | None = None  # first answer carrying a position
    first_position: int | None = None
    first_estimate: int | None = None
    positions: list[int] = field(default_factory=list)  # every position told while WAITING
    polls: int = 0
    admitted: float | None = None  # server's admission time (expiresAt - active TTL)
    active_seen: float | None = None  # when the buyer learned it
    held: list[str] = field(default_factory=list)  # reservation ids held
    held_prices: dict[str, float] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)
    paid_amount: float = 0.0
    charged: float = 0.0
    abandoned: list[str] = field(default_factory=list)
    ticket_limit: int = 0
    seat_taken: int = 0
    outcome: str = ""
    done: float = 0.0


class Env:
    """What a flow needs from its driver: the configuration, whether the drop sold out."""

    def __init__(self, cfg: DropConfig) -> None:
        self.cfg = cfg
        self.sold_out = False

    def stop(self) -> bool:
        return self.sold_out or time.time() > self.cfg.deadline


def _think(rng: random.Random, m: Mix) -> Wait:
    return Wait(time.time() + rng.uniform(m.think_min, m.think_max))


def _retry_wait(r: Resp, default: float = 1.0) -> Wait:
    return Wait(time.time() + (r.retry_after if r.retry_after is not None else default))


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


Flow = Generator[Req | Wait, Resp | None, None]


def buyer_flow(p: BuyerPlan, env: Env, rec: BuyerRecord) -> Flow:
    """One buyer from arrival to its outcome (``rec.outcome``); see the module docstring."""
    cfg, m = env.cfg, env.cfg.mix
    rng = random.Random(p.seed)
    yield Wait(cfg.t_start + p.arrival, wake=True)
    if env.stop():  # the sale says "sold out": no one joins any more
        rec.outcome = "arrived after the sell-out" if env.sold_out else "deadline"
        return
    rec.arrived = time.time()
    # The token.
    while True:
        r = yield Req("POST", "/api/token/issue", {"customerId": p.customer,
                                                   "concertId": cfg.concert}, None, "issue",
                      (RATE_LIMITED,))
        if r.status == 200:
            break
        if r.status in (429, 503) and not env.stop():
            yield _retry_wait(r)
            continue
        rec.outcome = f"error: issue {r.status} {r.code}"
        return
    token = r.body["tokenValue"]
    rec.issued = r.at
    body = r.body
    while True:
        if body["status"] == "ACTIVE":
            break
        rec.polls += 1
        if body.get("position") is not None:
            rec.positions.append(body["position"])
            if rec.first_t is None:
                rec.first_t, rec.first_position = r.at, body["position"]
                rec.first_estimate = body["estimatedWaitSeconds"]
        if p.patience is not None and time.time() - rec.arrived > p.patience:
            rec.outcome = "left the queue"
            return
        if env.stop():
            rec.outcome = "sold out while waiting" if env.sold_out else "deadline"
            return
        yield Wait(time.time() + float(body.get("pollAfterSeconds") or 1), wake=True)
        while True:
            if env.stop():
                rec.outcome = "sold out while waiting" if env.sold_out else "deadline"
                return
            r = yield Req("GET", "/api/token/status", None, token, "status")
            if r.status == 200:
                body = r.body
                break
            if r.status in (429, 503, 0):
                w = _retry_wait(r)
                w.wake = True
                yield w
                continue
            rec.outcome = f"error: status {r.status} {r.code}"
            return
    rec.active_seen = r.at
    rec.admitted = epoch(body["expiresAt"]) - cfg.active_ttl
    # Shopping.
    yield _think(rng, m)
    holds = yield from _hold(p, env, rec, rng, token, p.single, p.quantity, p.section)
    if not holds:
        if not rec.outcome:
            rec.outcome = "no seat"
        return
    if p.greedy:  # a fifth seat past the limit of 4
        yield _think(rng, m)
        r = yield Req("POST", "/api/reserve", {"concertOptionId": holds[0][1], "quantity": 1},
                      token, "reserve-best", (TICKET_LIMIT, NO_ADJACENT, RATE_LIMITED))
        if r.status == 409 and r.code == "TICKET_LIMIT":
            rec.ticket_limit += 1
        elif r.status == 200:  # the limit did not hold: keep and pay it (the checks count it)
            holds += _held(rec, r.body)
    if p.after in ("cancel", "cancel-rebuy"):
        yield _think(rng, m)
        for rid, _, _ in holds:
            r = yield Req("DELETE", f"/api/reserve/{rid}", None, token, "cancel")
            if r.status == 200:
                rec.cancelled.append(rid)
        if p.after == "cancel":
            rec.outcome = "cancelled"
            return
        yield _think(rng, m)
        holds = yield from _hold(p, env, rec, rng, token, False, rng.randint(1, 2), None)
        if not holds:
            rec.outcome = rec.outcome or "cancelled, then no seat"
            return
    if p.after == "abandon":
        rec.abandoned = [rid for rid, _, _ in holds]
        rec.outcome = "abandoned holds"
        return
    yield _think(rng, m)
    total = sum(price for _, _, price in holds)
    if p.topup:
        r = yield Req("GET", f"/api/point?customerId={p.customer}", None, None, "point")
        balance = r.body["balance"] if r.status == 200 else 0
        if balance < total:
            amount = math.ceil((total - balance) / 100_000) * 100_000
            while True:
                r = yield Req("PATCH", "/api/point/charge",
                              {"customerId": p.customer, "amount": amount}, None, "charge",
                              headers=(("Idempotency-Key", f"drop-{p.customer}-topup"),))
                if r.status == 200:
                    rec.charged += amount
                    break
                if r.status in (0, 503) and not env.stop():  # same key: charged at most once
                    yield _retry_wait(r)
                    continue
                break
    for rid, _, _ in holds:
        while True:
            r = yield Req("POST", "/api/pay", {"reservationId": rid}, token, "pay")
            if r.status == 200 and r.body.get("status") == "PAID":
                rec.paid.append(rid)
                rec.paid_amount += r.body["amount"]
                break
            if r.status in (0, 503) or (r.status == 409 and r.code in ("PAY_STALE",
                                                                       "PAYMENT_IN_PROGRESS")):
                if not env.stop():  # pay is idempotent by reservation: retry as it is
                    yield _retry_wait(r)
                    continue
            break
    rec.outcome = "bought" if len(rec.paid) == len(holds) else "paid some"


def _held(rec: BuyerRecord, body: dict) -> list[tuple[str, int, float]]:
    """(reservation id, option, price) of a reserve answer (one seat or best-available)."""
    seats = body.get("seats")
    if seats is None:
        out = [(body["reservationId"], body["concertOptionId"], body["price"])]
    else:
        out = [(s["reservationId"], body["concertOptionId"], s["price"]) for s in seats]
    for rid, _, price in out:
        rec.held.append(rid)
        rec.held_prices[rid] = price
    return out


def _hold(p: BuyerPlan, env: Env, rec: BuyerRecord, rng: random.Random, token: str,
          single: bool, quantity: int, section: str | None
          ) -> Generator[Req | Wait, Resp | None, list[tuple[str, int, float]]]:
    """Dates, then a hold (one seat from the list, or best-available); [] when none. A buyer
    who finds nothing looks again, 2 s apart, ``m.refreshes`` times: seats come back from
    cancels and from holds left to expire."""
    m = env.cfg.mix
    for attempt in range(m.refreshes + 1):
        if attempt:
            if env.stop():  # the sale says "sold out": no point looking again
                break
            yield Wait(time.time() + 2, wake=True)
        held, found = yield from _hold_once(p, env, rec, rng, token, single, quantity, section)
        if held or rec.outcome:
            return held
    rec.outcome = "sold out" if not found else "no seat"
    return []


def _hold_once(p: BuyerPlan, env: Env, rec: BuyerRecord, rng: random.Random, token: str,
               single: bool, quantity: int, section: str | None
               ) -> Generator[Req | Wait, Resp | None, tuple[list, bool]]:
    """One look: the dates, then each option with free seats. (holds, any seat was free)."""
    cfg, m = env.cfg, env.cfg.mix
    r = yield Req("GET", f"/api/{cfg.concert}/available-dates", None, token, "dates")
    if r.status != 200:
        rec.outcome = f"error: dates {r.status} {r.code}"
        return [], False
    free = {d["concertOptionId"]: d["availableSeats"] for d in r.body["dates"]
            if d["availableSeats"] > 0}
    options = [p.option] if p.option in free else []
    options += [o for o in free if o not in options]
    for option in options:
        yield _think(rng, m)
        if single:
            sec = section
            for _ in range(5):
                path = f"/api/{option}/available-seats" + (f"?section={sec}" if sec else "")
                r = yield Req("GET", path, None, token, "seats")
                if r.status != 200:
                    rec.outcome = f"error: seats {r.status} {r.code}"
                    return [], True
                seats = r.body["seats"]
                if not seats:
                    if sec is None:
                        break  # this option is full: the next one
                    sec = None
                    continue
                seat = rng.choice(seats[:30])  # a buyer picks among the best few it sees
                yield _think(rng, m)
                while True:
                    r = yield Req("POST", "/api/reserve",
                                  {"concertOptionId": option, "seatId": seat["id"]}, token,
                                  "reserve", (SEAT_TAKEN, RATE_LIMITED))
                    if r.status != 429:
                        break
                    yield _retry_wait(r)
                if r.status == 200:
                    return _held(rec, r.body), True
                if r.status == 409 and r.code == "SEAT_TAKEN":
                    rec.seat_taken += 1
                    continue
                rec.outcome = f"error: reserve {r.status} {r.code}"
                return [], True
        else:
            q, sec = quantity, section
            while q >= 1:
                body: dict = {"concertOptionId": option, "quantity": q}
                if sec:
                    body["section"] = sec
                r = yield Req("POST", "/api/reserve", body, token, "reserve-best",
                              (NO_ADJACENT, RATE_LIMITED))
                if r.status == 200:
                    return _held(rec, r.body), True
                if r.status == 429:
                    yield _retry_wait(r)
                    continue
                if r.status == 409 and r.code == "NO_ADJACENT_SEATS":
                    if sec:
                        sec = None
                    else:
                        q -= 1
                    continue
                rec.outcome = f"error: reserve-best {r.status} {r.code}"
                return [], True
    return [], bool(free)


# --- recording ------------------------------------------------------------------------------------
class Recorder:
    """Requests (one CSV row each), buyers (JSON lines), appended to the shard's files every
    second; the counters of the progress file."""

    HEADER = "t,step,status,code,ms,ok,pool_ms\n"

    def __init__(self, out_dir: Path, shard: str) -> None:
        self.out_dir, self.shard = out_dir, shard
        self.req_path = out_dir / f"requests-{shard}.csv"
        self.buyer_path = out_dir / f"buyers-{shard}.jsonl"
        self.req_path.write_text(self.HEADER)
        self.buyer_path.write_text("")
        self.rows: list[str] = []
        self.buyers: list[BuyerRecord] = []
        self.requests = self.failures = self.started = self.done = 0
        self.overshoot: list[float] = []  # s a Wait woke after its time

    def request(self, t: float, req: Req, status: int, code: str, ms: float, pool_ms: float
                ) -> bool:
        ok = 200 <= status < 300 or (status, code) in req.expect
        self.requests += 1
        self.failures += not ok
        self.rows.append(f"{t:.4f},{req.name},{status},{code},{ms:.3f},{int(ok)},"
                         f"{pool_ms:.3f}\n")
        return ok

    def buyer_done(self, rec: BuyerRecord) -> None:
        rec.done = time.time()
        self.done += 1
        self.buyers.append(rec)

    def flush(self) -> None:
        if self.rows:
            with open(self.req_path, "a") as f:
                f.write("".join(self.rows))
            self.rows = []
        if self.buyers:
            with open(self.buyer_path, "ab") as f:
                f.write(b"".join(orjson.dumps(asdict(b)) + b"\n" for b in self.buyers))
            self.buyers = []

    def progress(self, total: int, **extra: Any) -> None:
        tmp = self.out_dir / f".progress-{self.shard}.json"
        tmp.write_text(json.dumps({"buyers": total, "started": self.started,
                                   "done": self.done, "requests": self.requests,
                                   "failures": self.failures, "t": time.time(), **extra}))
        tmp.replace(self.out_dir / f"progress-{self.shard}.json")

    def summary(self, **extra: Any) -> dict:
        o = self.overshoot
        return {"waits": len(o), "overshoot_ms_p50": (percentile(o, 0.5) or 0.0) * 1000,
                "overshoot_ms_p99": (percentile(o, 0.99) or 0.0) * 1000,
                "overshoot_ms_max": max(o, default=0.0) * 1000, **extra}


def new_record(p: BuyerPlan, cfg: DropConfig) -> BuyerRecord:
    return BuyerRecord(index=p.index, customer=p.customer, topup=p.topup,
                       pre=cfg.t_start + p.arrival < cfg.opens_at)


# --- the asyncio driver ---------------------------------------------------------------------------
class AsyncDriver:
    def __init__(self, cfg: DropConfig, shard: int, shards: int) -> None:
        self.cfg = cfg
        self.shard = f"a{shard}"
        self.plans = [p for p in make_plan(cfg) if p.index % shards == shard]
        u = urlsplit(cfg.base)
        self.pool = Pool(u.hostname or "127.0.0.1", u.port or 80, cfg.connections)
        self.env = Env(cfg)
        self.rec = Recorder(Path(cfg.out_dir), self.shard)
        self.t0 = cfg.t_start
        self.sleepers: set[asyncio.Future] = set()  # queue polls' waits, woken at sell-out

    async def _sleep(self, delay: float, wake: bool) -> bool:
        """Sleep ``delay`` s; a ``wake`` sleep ends early when the drop sells out. True when it
        slept its full time."""
        if not wake:
            await asyncio.sleep(delay)
            return True
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = loop.call_later(delay, _resolve, fut, True)
        self.sleepers.add(fut)
        try:
            return await fut
        finally:
            handle.cancel()
            self.sleepers.discard(fut)

    async def _buyer(self, p: BuyerPlan) -> None:
        rec = new_record(p, self.cfg)
        flow = buyer_flow(p, self.env, rec)
        resp: Resp | None = None
        recorder, pool = self.rec, self.pool
        try:
            while True:
                action = flow.send(resp)
                if type(action) is Wait:
                    delay = action.at - time.time()
                    if delay > 0 and await self._sleep(delay, action.wake):
                        recorder.overshoot.append(time.time() - action.at)
                    resp = None
                    continue
                t = time.time()
                t1 = time.perf_counter()
                try:
                    status, raw, retry, waited = await pool.request(pool.build(action))
                except (ConnectionError, OSError) as e:
                    recorder.request(t - self.t0, action, 0, type(e).__name__,
                                     (time.perf_counter() - t1) * 1000, 0.0)
                    resp = Resp(0, None, 1.0, type(e).__name__, time.time())
                    continue
                ms = (time.perf_counter() - t1) * 1000
                body, code, after = parse_answer(status, raw, retry)
                recorder.request(t - self.t0, action, status, code, ms, waited * 1000)
                resp = Resp(status, body, after, code, time.time())
                if action.name == "issue" and rec.issued == 0 and status == 200:
                    recorder.started += 1
        except StopIteration:
            pass
        except Exception as e:  # a bug in the flow or an answer it did not expect
            rec.outcome = rec.outcome or f"error: {type(e).__name__}: {e}"[:200]
        recorder.buyer_done(rec)

    async def _housekeeping(self, tasks: list[asyncio.Task]) -> None:
        while True:
            if not self.env.sold_out and self.cfg.sold_out_file.exists():
                self.env.sold_out = True
                for fut in list(self.sleepers):
                    _resolve(fut, False)
            self.rec.flush()
            self.rec.progress(len(self.plans), reconnects=self.pool.reconnects)
            if all(t.done() for t in tasks):
                return
            await asyncio.sleep(1)

    async def run(self) -> dict:
        tasks = [asyncio.create_task(self._buyer(p)) for p in self.plans]
        freeze_heap(GENERATOR_THRESHOLD)  # the plan and every buyer's task: out of its sight
        keeper = asyncio.create_task(self._housekeeping(tasks))
        remaining = max(1.0, self.cfg.deadline - time.time() + 15)
        _, pending = await asyncio.wait(tasks, timeout=remaining)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await keeper
        self.rec.flush()
        self.rec.progress(len(self.plans), reconnects=self.pool.reconnects, finished=True)
        self.pool.close()
        return self.rec.summary(generator="asyncio", shard=self.shard, buyers=len(self.plans),
                                reconnects=self.pool.reconnects,
                                connections=self.cfg.connections)


def _resolve(fut: asyncio.Future, value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.dropgen", description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("--shard", default="0/1", help="i/n: run buyers with index %% n == i")
    args = ap.parse_args(argv)
    cfg = DropConfig.load(args.config)
    i, n = (int(x) for x in args.shard.split("/"))
    uvloop.install()
    driver = AsyncDriver(cfg, i, n)
    summary = asyncio.run(driver.run())
    (Path(cfg.out_dir) / f"summary-{driver.shard}.json").write_text(json.dumps(summary))
    return 0


# --- reading what the shards wrote -----------------------------------------------------------
def read_buyers(out_dir: Path) -> list[dict]:
    out = []
    for path in sorted(out_dir.glob("buyers-*.jsonl")):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return sorted(out, key=lambda b: b["index"])


def read_progress(out_dir: Path) -> list[dict]:
    out = []
    for path in sorted(out_dir.glob("progress-*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out




if __name__ == "__main__":
    sys.exit(main())
