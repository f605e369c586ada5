"""After a drop, the books as the service keeps them, read back to check them against what the
buyers saw: each request the generators recorded, every buyer's balance and history (through
the API), the concert's event stream (``XRANGE``), and the Redis that served the concert's
own record of its stalls; then the checks: nothing oversold, nobody charged twice, events =
outcomes."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from engine.sync import node_of, sync_client
from loadtests.drop.run import BALANCE_OFF, PAY_TOTAL_OFF, Run
from loadtests.generator.pool import Pool, Req

INITIAL_BALANCE = 1_000_000  # points of a funded buyer (the demo's)


def read_requests(out: Path) -> list[tuple[float, str, int, str, float, bool, float]]:
    rows = []
    for path in sorted(out.glob("requests-*.csv")):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.append((float(r["t"]), r["step"], int(r["status"]), r["code"],
                             float(r["ms"]), r["ok"] == "1", float(r["pool_ms"])))
    rows.sort()
    return rows


async def customers(base: str, customers: list[int]) -> dict[int, tuple[Any, Any]]:
    """Every buyer's balance and history, over a pool of connections."""
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


def concert_node(redis_url: str, key: str) -> redis.Redis:
    """A plain client of the Redis that serves ``key``: the server, or its cluster master."""
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
    c: dict[str, Any] = {"stats_end": stats, "sales_rows": len(sales)}
    seat_counts = Counter(s["seatId"] for s in sales)
    rid_counts = Counter(s["reservationId"] for s in sales)
    c["seats_sold_twice"] = sum(1 for n in seat_counts.values() if n > 1)
    c["sales_rid_twice"] = sum(1 for n in rid_counts.values() if n > 1)
    c["oversold"] = max(0, len(seat_counts) - run.seats) + c["seats_sold_twice"]
    c["books_balance"] = stats["freeSeats"] + stats["sold"] + stats["holds"] == run.seats
    # Events, by type (reservation ids as the API gives them).
    by_type: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_type[e["type"]].append(e)
    c["events"] = {t: len(v) for t, v in sorted(by_type.items())}
    c["admitted_events"] = sum(int(e["count"]) for e in by_type["ADMITTED"])

    def rids(kind: str) -> Counter:
        return Counter(e["reservationId"] for e in by_type[kind])

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
