"""The ticket drop's simulated buyer, written once for both generators: ``buyer_flow`` is a
generator function that yields what the buyer wants done (``Req``: an HTTP request;
``Wait``: sleep until a wall-clock time) and receives each request's answer (``Resp``). The
drivers are thin: ``asyncio_driver.py`` (raw asyncio over the keep-alive pool, one process
or several shards) and ``locust_driver.py`` (locust's ``FastHttpUser``), so the two
generators can be compared on the very same buyers.

A buyer: issue a token at its arrival time; poll the status at the rate the API suggests
(``pollAfterSeconds``, or ``Retry-After`` on a 429/503); some give up waiting (``patience``).
Once ACTIVE: the dates, then either one seat picked from the seat list (half of them asking
one section with ``?section=``), retried on 409 SEAT_TAKEN, or best-available with ``quantity``
2-4 (a section or not), fewer together on 409 NO_ADJACENT_SEATS. Then pay (buyers whose
customer has no points charge first, with an Idempotency-Key), or cancel (half of them hold
again and pay), or abandon the holds (they expire). A few greedy ones hold 4 and then ask a
fifth (409 TICKET_LIMIT, expected). Buyers learn of the sell-out from the API itself: a
waiter told SOLD_OUT by its status poll goes home (the time is recorded), and a shopper whose
dates show no free seat stops looking.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadtests.drop.plan import BuyerPlan, DropConfig, Mix
from loadtests.generator.pool import Req

# What a buyer may be answered without it being a failure, besides 2xx.
SEAT_TAKEN = (409, "SEAT_TAKEN")
NO_ADJACENT = (409, "NO_ADJACENT_SEATS")
TICKET_LIMIT = (409, "TICKET_LIMIT")
RATE_LIMITED = (429, "RATE_LIMITED")
STEPS = ("issue", "status", "dates", "seats", "reserve", "reserve-best", "cancel", "point",
         "charge", "pay")



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
    sold_out_told: float | None = None  # when a status poll first answered SOLD_OUT
    ticket_limit: int = 0
    seat_taken: int = 0
    outcome: str = ""
    done: float = 0.0


class Env:
    """What a flow needs from its driver: the configuration and the deadline (the sell-out,
    buyers learn from the API)."""

    def __init__(self, cfg: DropConfig) -> None:
        self.cfg = cfg

    def stop(self) -> bool:
        return time.time() > self.cfg.deadline


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
        rec.outcome = "deadline"
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
        if body["status"] == "SOLD_OUT":  # the queue says so: go home
            rec.sold_out_told = r.at
            rec.outcome = "told sold out"
            return
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
            rec.outcome = "deadline"
            return
        yield Wait(time.time() + float(body.get("pollAfterSeconds") or 1), wake=True)
        while True:
            if env.stop():
                rec.outcome = "deadline"
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
            if env.stop():
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


def new_record(p: BuyerPlan, cfg: DropConfig) -> BuyerRecord:
    return BuyerRecord(index=p.index, customer=p.customer, topup=p.topup,
                       pre=cfg.t_start + p.arrival < cfg.opens_at)
