"""What a token's reserve-and-cancel loop makes Redis keep, with the default settings:
docs/durability-and-faults.md, the table of anonymous requests (its reserve row).

    .venv/bin/python -m loadtests.http_bench.mem_closed_holds [-c 40]

Starts its own redis-server (the repo's redis.conf) and one API worker in open mode, then, for
each of ``-c`` made-up customers on a thread of its own, through HTTP: a queue token (polled
until ACTIVE), then a seat of its own held and cancelled over and over, waiting out 429s,
until the reserve says 409 CANCEL_LIMIT. Prints the cancels a token made, what a closed hold
keeps (used_memory before and after, less the event stream's growth, and ``MEMORY USAGE`` of
the reservations hash and the closed set) and for how long.
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import redis

from devstack.api_server import api_server
from devstack.redis_server import RedisServer
from engine.keys import concert_keys
from engine.seed import Option, Seat, create_concert

CONCERT, OPTION = 2, 41150


def call(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None,
         token: str = "") -> tuple[int, dict, float]:
    """(status, JSON body, Retry-After seconds or 0)."""
    conn.request(method, path, body=orjson.dumps(body) if body is not None else None,
                 headers={"Authorization": token} if token else {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, orjson.loads(data) if data else {}, float(
        resp.getheader("Retry-After") or 0)


def loop(port: int, customer: int, seat: int, out: Counter) -> None:
    """One customer's token: hold and cancel its seat until CANCEL_LIMIT."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, tok, _ = call(conn, "POST", "/api/token/issue",
                          {"customerId": customer, "concertId": CONCERT})
    token = tok["tokenValue"]
    while tok["status"] != "ACTIVE":
        time.sleep(min(1.0, tok.get("pollAfterSeconds") or 1))
        status, tok, _ = call(conn, "GET", "/api/token/status", token=token)
    while True:
        status, held, wait = call(conn, "POST", "/api/reserve",
                                  {"concertOptionId": OPTION, "seatId": seat}, token)
        if status == 429:
            time.sleep(wait or 0.5)
            continue
        if status != 200:
            out[held.get("code", status)] += 1
            break
        status, _, _ = call(conn, "DELETE", f"/api/reserve/{held['reservationId']}",
                            token=token)
        out["cancelled" if status == 200 else f"cancel {status}"] += 1
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", type=int, default=40, help="made-up customers, a token each")
    n = ap.parse_args().c
    with tempfile.TemporaryDirectory() as tmp:
        rs = RedisServer(Path(tmp)).start()
        r = redis.Redis.from_url(rs.url)
        create_concert(r, CONCERT, "Holds", [Option(OPTION, "2027-01-10T19:00:00+09:00", tuple(
            Seat(OPTION * 100 + i, i, 100_000, "A", "1") for i in range(1, n + 1)))])
        api = api_server({"REDIS_URL": rs.url}).start()
        k = concert_keys(CONCERT)
        try:
            out: Counter = Counter()
            warm = threading.Thread(target=loop, args=(api.port, 1, OPTION * 100 + n, out))
            warm.start()  # the scripts' first runs, and the stream's first entries
            warm.join()
            out.clear()
            m0, s0 = int(r.info("memory")["used_memory"]), r.memory_usage(k.events) or 0
            t0 = time.monotonic()
            threads = [threading.Thread(target=loop, args=(api.port, 1000 + i, OPTION * 100 + i,
                                                           out)) for i in range(1, n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - t0
            m1, s1 = int(r.info("memory")["used_memory"]), r.memory_usage(k.events) or 0
            closed = out["cancelled"]
            print(f"{n - 1} tokens in {took:.1f} s: {dict(out)}; "
                  f"{closed / (n - 1):.1f} cancels a token")
            print(f"used_memory +{m1 - m0} bytes, of which the event stream +{s1 - s0}: "
                  f"{(m1 - m0 - (s1 - s0)) / closed:.0f} bytes a closed hold without it")
            print(f"MEMORY USAGE: reservations {r.memory_usage(k.res)} ({r.hlen(k.res)} "
                  f"records), closed set {r.memory_usage(k.gone)} ({r.zcard(k.gone)}); "
                  f"TTL {r.ttl(k.res)} / {r.ttl(k.gone)}: kept IDEMPOTENCY_TTL_SECONDS, then "
                  "purged by the tick")
        finally:
            api.stop()
            rs.stop()


if __name__ == "__main__":
    main()
