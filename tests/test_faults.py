"""Redis in trouble: hung (SIGSTOP), killed (SIGKILL, then restarted from its AOF), its
script cache flushed, or full. Each test starts its own redis-server and a real server, once
under uvicorn and once under granian (the server's own edges: tests/test_server.py)."""

from __future__ import annotations

import http.client
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from devstack.api_server import SERVER_CLASSES, Server, server
from devstack.redis_server import RedisServer
from engine.keys import CustomerKeys, concert_keys
from tests.conftest import OPTION, seat_id, small_catalog

HOST = "127.0.0.1"


def call(port: int, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, dict, float,
                                                                            dict[str, str]]:
    """One request on a fresh connection: (status, JSON body, seconds, headers)."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=orjson.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return (resp.status, orjson.loads(data) if data else {}, time.monotonic() - t0,
                {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


@pytest.fixture(params=list(SERVER_CLASSES))
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RedisServer, Server]]:
    # The AOF on tmpfs when there is one: these tests are about what Redis has written when it
    # answers, not the disk's fsync speed. On a busy disk a slow background fsync makes Redis
    # postpone its AOF writes (docs/durability-and-faults.md), and a kill then loses what it
    # acknowledged.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if os.access(shm, os.W_OK) else tmp_path) as data:
        yield from _stack(request, Path(data))


def _stack(request: pytest.FixtureRequest, data: Path) -> Iterator[tuple[RedisServer, Server]]:
    rs = RedisServer(data).start()
    small_catalog(redis.Redis.from_url(rs.url))
    api = server(request.param, "api.app:app", {"REDIS_URL": rs.url, "TICK_SECONDS": "0.2"})
    api.start()
    yield rs, api
    api.stop()
    if rs.proc and rs.proc.poll() is None:
        os.kill(rs.proc.pid, signal.SIGCONT)
    rs.stop()


def token(port: int, customer: int) -> str:
    status, body, _, _ = call(port, "POST", "/api/token/issue",
                              {"customerId": customer, "concertId": 2})
    assert status == 200 and body["status"] == "ACTIVE", body
    return body["tokenValue"]


def requests_of_every_kind(tok: str, seat: int) -> list[tuple[str, str, object, dict]]:
    a = {"Authorization": tok}
    return [
        ("POST", "/api/token/issue", {"customerId": 77, "concertId": 2}, {}),
        ("GET", "/api/token/status", None, a),
        ("GET", "/api/2/available-dates", None, a),
        ("GET", f"/api/{OPTION}/available-seats", None, a),
        ("GET", "/api/point?customerId=1", None, {}),
        ("PATCH", "/api/point/charge", {"customerId": 1, "amount": 10}, {}),
        ("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": seat}, a),
        ("GET", "/api/point/history?customerId=1", None, {}),
        ("GET", "/readyz", None, {}),
    ]


def wait_until_serving(port: int, tok: str, limit: float) -> float:
    """Seconds until the API answers a Redis-backed request with 200 again."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if call(port, "GET", "/api/token/status", headers={"Authorization": tok},
                timeout=limit)[0] == 200:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"the API did not serve again within {limit} s")


def test_hung_redis_gets_fast_503s_and_the_api_heals(stack) -> None:
    rs, api = stack
    tok = token(api.port, 1)
    os.kill(rs.proc.pid, signal.SIGSTOP)
    try:
        results: list[tuple[str, int, dict, float, dict]] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            for method, path, body, headers in requests_of_every_kind(tok, seat_id(OPTION, 2)):
                status, data, took, hdrs = call(api.port, method, path, body, headers)
                with lock:
                    results.append((path, status, data, took, hdrs))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert call(api.port, "GET", "/healthz")[0] == 200  # alive, though not ready
    finally:
        os.kill(rs.proc.pid, signal.SIGCONT)
    slowest = max(took for *_, took, _ in results)
    print(f"\nhung Redis: {len(results)} requests, slowest answer {slowest:.3f} s")
    for path, status, data, took, hdrs in results:
        assert status == 503, (path, status, data)
        assert data["code"] == "STORE_UNAVAILABLE" and hdrs["retry-after"] == "1", data
        assert hdrs["content-type"] == "application/problem+json"
        assert took < 1.0, (path, took)
    # A write that reached the hung Redis says its fate is unknown; the ones refused at once
    # (the fail-fast pause after the connection was dropped) were never sent and say nothing.
    writes = [d for p, _, d, _, _ in results
              if p in ("/api/token/issue", "/api/point/charge", "/api/reserve")]
    assert any("may or may not have been applied" in d["detail"] for d in writes)
    healed = wait_until_serving(api.port, tok, 3.0)
    print(f"served again {healed:.3f} s after SIGCONT")


def test_killed_redis_restarted_from_aof_with_empty_script_cache(stack) -> None:
    rs, api = stack
    tok = token(api.port, 1)
    status, held, _, _ = call(api.port, "POST", "/api/reserve",
                              {"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)},
                              {"Authorization": tok})
    assert status == 200
    rs.proc.kill()
    rs.proc.wait()
    for method, path, body, headers in requests_of_every_kind(tok, seat_id(OPTION, 2)):
        status, data, took, _ = call(api.port, method, path, body, headers)
        assert status == 503 and data["code"] == "STORE_UNAVAILABLE" and took < 1.0, (path, data)
    rs.start()  # same port, same directory: loads the AOF; the script cache is empty
    healed = wait_until_serving(api.port, tok, 3.0)
    print(f"\nserved again {healed:.3f} s after the restart")
    status, paid, _, _ = call(api.port, "POST", "/api/pay",
                              {"reservationId": held["reservationId"]}, {"Authorization": tok})
    assert status == 200 and paid["status"] == "PAID"  # the hold survived the kill


def test_script_flush_under_a_running_api(stack) -> None:
    rs, api = stack
    tok = token(api.port, 1)
    r = redis.Redis.from_url(rs.url)
    for method, path, body, headers in requests_of_every_kind(tok, seat_id(OPTION, 3)):
        r.script_flush()
        status, data, _, _ = call(api.port, method, path, body, headers)
        assert status == 200, (path, data)


def test_sigkill_under_concurrent_charges_loses_no_acknowledged_charge(stack) -> None:
    """appendfsync everysec: a killed process loses nothing it acknowledged (the AOF write
    precedes the reply; only a power loss can take the last second)."""
    rs, api = stack
    customers = list(range(101, 109))
    r = redis.Redis.from_url(rs.url)
    start = {c: int(r.get(CustomerKeys(c).balance) or 0) for c in customers}
    acked = dict.fromkeys(customers, 0)
    unknown = dict.fromkeys(customers, 0)
    stop = threading.Event()
    tried = [0]

    def charger(customer: int) -> None:
        conn = http.client.HTTPConnection(HOST, api.port, timeout=5)
        n = 0
        while not stop.is_set():
            n += 1
            amount = 100 + n % 7  # minor units: 1.00 .. 1.06 points
            try:
                conn.request("PATCH", "/api/point/charge",
                             body=orjson.dumps({"customerId": customer, "amount": amount / 100}),
                             headers={"Content-Type": "application/json",
                                      "Idempotency-Key": f"k-{customer}-{n}"})
                resp = conn.getresponse()
                body = orjson.loads(resp.read())
            except (OSError, http.client.HTTPException):
                unknown[customer] += amount
                conn = http.client.HTTPConnection(HOST, api.port, timeout=5)
                continue
            tried[0] += 1
            if resp.status == 200:
                acked[customer] += amount
            elif "may or may not" in body.get("detail", ""):
                unknown[customer] += amount
            if resp.status != 200:
                time.sleep(0.01)

    threads = [threading.Thread(target=charger, args=(c,)) for c in customers]
    for t in threads:
        t.start()
    time.sleep(1.5)
    rs.proc.kill()  # SIGKILL in the middle of the load
    rs.proc.wait()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    rs.start()
    r = redis.Redis.from_url(rs.url)
    stored = {c: int(r.get(CustomerKeys(c).balance) or 0) for c in customers}
    print(f"\n{tried[0]} charges answered; acked {sum(acked.values())} minor units, "
          f"stored {sum(stored.values()) - sum(start.values())}, "
          f"unanswered {sum(unknown.values())}")
    assert sum(acked.values()) > 0
    for c in customers:
        assert start[c] + acked[c] <= stored[c] <= start[c] + acked[c] + unknown[c], c


def state(r: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key's dump but the tick's own (its lease, its cursors in `rate`): a full Redis
    still ticks (engine/tick.py)."""
    return {k: r.dump(k) for k in r.keys("tk:*") if not k.endswith((b":lease", b":rate"))}


@pytest.mark.parametrize("kind", list(SERVER_CLASSES))
def test_full_redis_refuses_writes_whole_and_keeps_reads(kind: str, tmp_path: Path) -> None:
    rs = RedisServer(tmp_path, "--maxmemory", "3mb").start()
    api = None
    try:
        r = redis.Redis.from_url(rs.url)
        small_catalog(r)
        api = server(kind, "api.app:app", {"REDIS_URL": rs.url, "TICK_SECONDS": "0.2"}).start()
        tok = token(api.port, 1)
        status, held, _, _ = call(api.port, "POST", "/api/reserve",
                                  {"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)},
                                  {"Authorization": tok})
        assert status == 200
        # Fill Redis to the brim with ballast until it refuses writes.
        i = 0
        while True:
            try:
                r.set(f"ballast:{i}", b"x" * 50_000)
            except redis.exceptions.OutOfMemoryError:
                break
            i += 1
        # Full and kept so: below what is used now by more than buffers shrinking (the last
        # 50 KB SET's query buffer) and the tick's own writes and frees can move it.
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - 256 * 1024)
        # The tick's first pass over each concert writes its closedshift (once: it changes
        # only with the settings); a full Redis still ticks. Past that, nothing may change.
        deadline = time.monotonic() + 10
        while not all(r.hexists(concert_keys(c).concert, "closedshift") for c in (2, 3)):
            assert time.monotonic() < deadline, "the tick did not pass"
            time.sleep(0.05)
        before = state(r)
        writes = [
            ("POST", "/api/token/issue", {"customerId": 5, "concertId": 2}, {}),
            ("PATCH", "/api/point/charge", {"customerId": 1, "amount": 10}, {}),
            ("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": seat_id(OPTION, 2)},
             {"Authorization": tok}),
            ("POST", "/api/pay", {"reservationId": held["reservationId"]},
             {"Authorization": tok}),
        ]
        for method, path, body, headers in writes:
            status, data, _, hdrs = call(api.port, method, path, body, headers)
            assert status == 503 and data["code"] == "STORE_FULL", (path, data)
            assert hdrs["retry-after"] == "1"
        assert state(r) == before  # nothing half-written
        reads = [
            ("GET", "/api/token/status", None, {"Authorization": tok}),
            ("GET", "/api/2/available-dates", None, {"Authorization": tok}),
            ("GET", f"/api/{OPTION}/available-seats", None, {"Authorization": tok}),
            ("GET", "/api/point?customerId=1", None, {}),
            ("GET", "/api/point/history?customerId=1", None, {}),
        ]
        for method, path, body, headers in reads:
            status, data, _, _ = call(api.port, method, path, body, headers)
            assert status == 200, (path, data)
        # Room again: the same writes go through.
        r.delete(*[f"ballast:{j}" for j in range(i)])
        r.config_set("maxmemory", "3mb")
        status, data, _, _ = call(api.port, *writes[3][:2], writes[3][2], writes[3][3])
        assert status == 200 and data["status"] == "PAID", data
    finally:
        if api is not None:
            api.stop()
        rs.stop()
