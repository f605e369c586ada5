"""A drop's figures, from what the generators recorded, the event stream and the books: time
to sell out against what the admission rate allows, admissions a second, p50/p99 per step,
answers by code, fairness (rank correlations, FIFO inversions, positions that move back),
the accuracy of the estimated waits; what the queue knows of its stock (admitted buyers who
found nothing, how soon the waiters were told SOLD_OUT, who got the seats that came back);
and the books' checks (``books.py``)."""

from __future__ import annotations

import asyncio
import csv
import heapq
import io
import json
import math
from collections import Counter, defaultdict
from typing import Any

from loadtests.drop.admin import Admin
from loadtests.drop.books import (
    check_books,
    customers,
    read_events,
    read_requests,
    redis_health,
)
from loadtests.drop.buyer import STEPS
from loadtests.drop.charts import charts
from loadtests.drop.recorder import read_buyers
from loadtests.drop.run import ETA_GOAL, REFRESH_SECONDS, Run
from loadtests.generator.stats import percentile, spearman


def analyse(run: Run, admin: Admin, redis_url: str, events_key: str) -> dict:
    cfg, out = run.cfg, run.out
    a: dict[str, Any] = {}
    buyers = read_buyers(out)
    requests = read_requests(out)
    events = read_events(redis_url, events_key)
    with open(out / "events.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["type", "at", "reservationId", "seatId", "customerId", "count",
                               "sold"], restval="")
        w.writeheader()
        w.writerows(events)
    stats = admin.call("GET", f"/admin/concerts/{cfg.concert}/stats")
    sales = list(csv.DictReader(io.StringIO(
        admin.call("GET", f"/admin/concerts/{cfg.concert}/sales.csv", raw=True))))
    accounts = asyncio.run(customers(cfg.base, [b["customer"] for b in buyers]))
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
    for step in STEPS:
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
    a.update(stock(run, buyers, events))
    a["redis"] = redis_health(redis_url, events_key)
    a["charts"] = charts(run, buyers, requests, events, a)
    return a


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
    # Only seconds that began with a queue of at least a second's admissions and room for
    # them under the active limit and the stock (admitPerSeat a seat still free or held, plus
    # the seats on offer), as the stats sampled then say: otherwise fewer are admitted, by
    # design, not by a fault of the rate.
    # The stats are sampled once a second, so the one before a second may be up to a second
    # old: the second must also end with room left and someone waiting (its last sample, or
    # the first after it), or the limit or the stock bound within it (a sale takes
    # admitPerSeat places).
    def room_of(r: dict) -> int:
        room = run.active_limit - r["active"]
        if run.admit_per_seat > 0:
            room = min(room, math.ceil(run.admit_per_seat * (run.seats - r["sold"]))
                       + r.get("offered", 0) - r["active"])
        return room

    def room_at(t0: float) -> bool:
        before = [r for r in run.samples if r["epoch"] <= t0]
        within = [r for r in run.samples if t0 < r["epoch"] <= t0 + 1]
        after = within[-1:] or [r for r in run.samples if r["epoch"] > t0 + 1][:1]
        if not before or not after:
            return False
        start, end_ = before[-1], after[0]
        return (start["waiting"] >= run.admit and room_of(start) >= run.admit
                and end_["waiting"] > 0 and room_of(end_) > 0)

    full = [per_second.get(s, 0) for s in range(math.ceil(cfg.opens_at), math.floor(end))
            if room_at(s)]
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


def stock(run: Run, buyers: list[dict], events: list[dict]) -> dict:
    """What the queue knows of its stock: admitted buyers who found nothing to hold; the time
    from the last sale to each waiter's first SOLD_OUT answer; and each seat that came back
    (a hold cancelled, expired or revoked): whether its next hold was by a buyer admitted
    after it came back (the head of the queue) or before (a shopper ACTIVE already)."""
    s: dict[str, Any] = {}
    s["admitted_found_nothing"] = sum(1 for b in buyers if b["admitted"] and b["outcome"] in (
        "sold out", "no seat"))
    s["admitted"] = sum(1 for b in buyers if b["admitted"])
    paid = [int(e["at"]) / 1000 for e in events if e["type"] == "PAID"]
    last_sale = max(paid) if len(paid) >= run.seats else None
    told = sorted(b["sold_out_told"] - last_sale for b in buyers
                  if last_sale is not None and b.get("sold_out_told"))
    s["told_sold_out"] = len(told)
    s["told_sold_out_p50"] = percentile(told, 0.5)
    s["told_sold_out_p99"] = percentile(told, 0.99)
    s["told_sold_out_max"] = told[-1] if told else None
    admitted = {b["customer"]: b["admitted"] for b in buyers if b["admitted"]}
    returned: dict[str, float] = {}  # seat -> when it last came back, not held since
    to_head = to_active = 0
    for e in events:  # in stream order
        if e["type"] in ("CANCELLED", "EXPIRED", "REVOKED"):
            returned[e["seatId"]] = int(e["at"]) / 1000
        elif e["type"] == "HELD" and e["seatId"] in returned:
            back = returned.pop(e["seatId"])
            since = admitted.get(int(e["customerId"]))
            if since is not None and since >= back - 0.002:  # ms clocks on both sides
                to_head += 1
            else:
                to_active += 1
    s["returned_to_head"], s["returned_to_active"] = to_head, to_active
    s["returned_unsold"] = len(returned)
    return s


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
