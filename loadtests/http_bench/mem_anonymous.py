"""What an anonymous caller makes Redis keep in open mode, and the memory watermark under a
flood: docs/durability-and-faults.md, "When Redis fills up" (the table of anonymous requests).

    .venv/bin/python -m loadtests.http_bench.mem_anonymous [-n 10000]

Starts its own redis-server (the repo's redis.conf) and one API worker, then, through HTTP:
A) charges of 0.01 to distinct made-up customers, B) charges to one known customer with a
fresh 255-character Idempotency-Key each, C) charges to one customer past its history's cap;
each with used_memory before and after (bytes a request) and what expires. D) Then sets
maxmemory so that the watermark (MEMORY_WATERMARK) lies 2 MB above what is used, floods
charges that each add a customer and a key, samples used_memory every 10 ms, and afterwards
asks a token issue for a real customer and waits for the tick to release an expired hold.
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import redis

from devstack.api_server import api_server
from devstack.redis_server import RedisServer
from engine.config import Settings
from engine.keys import CustomerKeys, concert_keys
from engine.seed import Option, Seat, create_concert

CONCERT, OPTION = 2, 41150
THREADS = 16


def flood(port: int, n: int, make: Callable[[int], tuple[int, dict[str, str]]],
          stop: threading.Event | None = None) -> tuple[Counter[int], dict[int, list[float]]]:
    """``n`` charges of 0.01 (``make(i)`` -> customer, headers) on THREADS connections:
    statuses counted, and each answer's seconds by status."""
    codes: Counter[int] = Counter()
    times: dict[int, list[float]] = {}
    lock = threading.Lock()

    def run(first: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(first, n, THREADS):
            customer, headers = make(i)
            t0 = time.perf_counter()
            conn.request("PATCH", "/api/point/charge", headers=headers,
                         body=orjson.dumps({"customerId": customer, "amount": 0.01}))
            resp = conn.getresponse()
            resp.read()
            took = time.perf_counter() - t0
            with lock:
                codes[resp.status] += 1
                times.setdefault(resp.status, []).append(took)
        conn.close()
        if stop is not None:
            stop.set()

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, times


def post(port: int, path: str, body: dict, token: str = "") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=orjson.dumps(body),
                 headers={"Authorization": token} if token else {})
    resp = conn.getresponse()
    out = resp.status, orjson.loads(resp.read())
    conn.close()
    return out


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def per_request(r: redis.Redis, port: int, n: int, label: str,
                make: Callable[[int], tuple[int, dict[str, str]]]) -> None:
    m0, k0 = used(r), r.dbsize()
    codes, _ = flood(port, n, make)
    m1, k1 = used(r), r.dbsize()
    print(f"{label}: {dict(codes)}, +{k1 - k0} keys, +{m1 - m0} bytes = "
          f"{(m1 - m0) / n:.0f} bytes a request")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000, help="requests a measurement")
    n = ap.parse_args().n
    share = Settings().memory_watermark
    with tempfile.TemporaryDirectory() as tmp:
        rs = RedisServer(Path(tmp)).start()
        r = redis.Redis.from_url(rs.url)
        create_concert(r, CONCERT, "Flood", [Option(OPTION, "2027-01-10T19:00:00+09:00", tuple(
            Seat(OPTION * 100 + i, i, 100_000, "A", "1") for i in range(1, 5)))])
        api = api_server({"REDIS_URL": rs.url, "TICK_SECONDS": "0.2", "ACTIVE_LIMIT": "1",
                          "ACTIVE_TTL_SECONDS": "1", "HOLD_TTL_SECONDS": "1"}).start()
        try:
            # Settled first: a script's first run costs Redis ~100 KB for a while.
            flood(api.port, THREADS, lambda i: (6_000_000 + i, {"Idempotency-Key": "warm"}))
            while not r.exists(concert_keys(CONCERT).rate):  # the first tick ran
                time.sleep(0.05)
            time.sleep(0.5)
            per_request(r, api.port, n, "A) 0.01 to a made-up customer each",
                        lambda i: (7_000_000 + i, {}))
            b = CustomerKeys(7_000_000)
            print(f"   TTL of a balance: {r.ttl(b.balance)}, of a history: {r.ttl(b.history)}; "
                  f"MEMORY USAGE {r.memory_usage(b.balance)} + {r.memory_usage(b.history)}")
            per_request(r, api.port, n, "B) one customer, a fresh 255-char Idempotency-Key each",
                        lambda i: (7, {"Idempotency-Key": f"{i:0>255}"}))
            idem = next(r.scan_iter("tk:{u:7}:idem:*", count=1000))
            print(f"   TTL of a record: {r.ttl(idem)} s; MEMORY USAGE {r.memory_usage(idem)}")
            per_request(r, api.port, 1000, "C) 1,000 charges to one known customer",
                        lambda i: (8, {}))
            k = CustomerKeys(8)
            print(f"   its history: {r.llen(k.history)} entries, {r.memory_usage(k.history)} "
                  f"bytes; its balance {r.memory_usage(k.balance)} bytes")
            watermark(r, api.port, n, share)
        finally:
            api.stop()
            rs.stop()


def watermark(r: redis.Redis, port: int, n: int, share: float) -> None:
    limit = int((used(r) + 2_000_000) / share)
    r.config_set("maxmemory", limit)
    mark = share * limit
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], used(r))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    codes, times = flood(port, 3 * n, lambda i: (9_000_000 + i, {"Idempotency-Key": f"w{i}"}))
    took = time.monotonic() - t0
    done.set()
    sampler.join()
    print(f"D) maxmemory {limit}, watermark at {share:.0%}: {mark:.0f}; {3 * n} charges each "
          f"adding a customer and a key in {took:.1f} s: {dict(codes)}")
    print(f"   peak used_memory {peak[0]} = {peak[0] / limit:.1%} of maxmemory, "
          f"{peak[0] - mark:+.0f} bytes past the watermark")
    for status, xs in sorted(times.items()):
        print(f"   {status}: p50 {pct(xs, 0.5):.2f} ms, p99 {pct(xs, 0.99):.2f} ms")
    status, tok = post(port, "/api/token/issue", {"customerId": 42, "concertId": CONCERT})
    print(f"   then a real customer's issue: {status} {tok.get('status', tok)}")
    status, _ = post(port, "/api/reserve", {"concertOptionId": OPTION,
                                            "seatId": OPTION * 100 + 1}, tok["tokenValue"])
    holds = concert_keys(CONCERT).holds
    t1 = time.monotonic()
    while r.zcard(holds) and time.monotonic() - t1 < 10:
        time.sleep(0.05)
    print(f"   its hold: {status}; released by the tick after "
          f"{time.monotonic() - t1:.1f} s (HOLD_TTL_SECONDS=1), holds left: {r.zcard(holds)}")


if __name__ == "__main__":
    main()
