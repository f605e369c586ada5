"""The HTTP server under the API, uvicorn and granian alike (api/serve.py builds both command
lines): header and body limits on the wire, idle keep-alive clients, Ctrl-C with the lifespan's
shutdown, a killed worker, and shedding past MAX_IN_FLIGHT. Where the two servers differ, the
test says how."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry, multiprocess

from devstack.api_server import SERVER_CLASSES, Server, server
from devstack.redis_server import RedisServer
from tests.conftest import OPTION, small_catalog

HOST = "127.0.0.1"
SERVERS = list(SERVER_CLASSES)
both_servers = pytest.mark.parametrize("kind", SERVERS)


def read_answer(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer read off a connection: (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def raw(port: int, request: bytes, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """One request written as bytes on a fresh connection: (status, headers, body)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it has read everything
        return read_answer(s)


def problem_code(headers: dict[str, str], body: bytes) -> str | None:
    if headers.get("content-type") != "application/problem+json":
        return None
    return orjson.loads(body)["code"]


@pytest.fixture
def api(request: pytest.FixtureRequest, settings, catalog: redis.Redis) -> Iterator[Server]:
    s = server(request.param, "api.app:app", {"REDIS_URL": settings.redis_url,
                                              "TICK_SECONDS": "3600"}).start()
    yield s
    s.stop()


GET = b"GET /api/point?customerId=1 HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize("api", SERVERS, indirect=True)
def test_header_limits(api: Server) -> None:
    """Past 16 KiB of headers Guard answers 431 problem+json. granian (hyper) refuses more than
    100 headers, or a head still unfinished after its --http1-buffer-size (~408 KiB), before
    the app sees the request: 431 with an empty body. uvicorn (httptools) takes any number and
    size. A finished head over that size gets a 431 from one or the other under granian: hyper
    checks the size only between reads of an unfinished head, so one read that brings the rest
    of it hands the app the whole head (7-11 % of tries on a 2-core box, more under load)."""
    one_big = GET + b"X-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    huge = GET + b"X-Pad: " + b"a" * 500_000 + b"\r\n\r\n"
    unfinished = GET + b"X-Pad: " + b"a" * 500_000  # its end not sent: no read completes it
    many = GET + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n"
    status, headers, body = raw(api.port, one_big)
    assert (status, problem_code(headers, body)) == (431, "HEADERS_TOO_LARGE")
    status, headers, body = raw(api.port, GET + b"".join(b"X-H%d: v\r\n" % i
                                                         for i in range(99)) + b"\r\n")
    assert status == 200
    if api.kind == "uvicorn":
        assert raw(api.port, many)[0] == 200  # 150 small headers are 1.5 KB: under 16 KiB
        status, headers, body = raw(api.port, huge)
        assert (status, problem_code(headers, body)) == (431, "HEADERS_TOO_LARGE")
    else:
        for request in (many, unfinished):
            status, headers, body = raw(api.port, request)
            assert (status, body, headers.get("connection")) == (431, b"", "close")
        status, headers, body = raw(api.port, huge)
        assert status == 431 and (body == b"" or problem_code(headers, body)
                                  == "HEADERS_TOO_LARGE"), (status, headers, body[:200])


@pytest.mark.parametrize("api", SERVERS, indirect=True)
def test_body_limits(api: Server) -> None:
    """413 problem+json past 64 KiB, announced (Content-Length) or streamed (chunked), and for a
    body only claimed: the answer comes without it being sent."""
    big = b'{"customerId": 1' + b" " * 70_000 + b"}"
    announced = (b"POST /api/token/issue HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(big) + big)
    chunked = (b"POST /api/token/issue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"2710\r\n" + b" " * 10_000 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n")
    claimed = b"POST /api/token/issue HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{"
    for request in (announced, chunked, claimed):
        t0 = time.monotonic()
        status, headers, body = raw(api.port, request)
        assert (status, problem_code(headers, body)) == (413, "BODY_TOO_LARGE"), request[:60]
        assert time.monotonic() - t0 < 2



def in_flight(port: int, answer: dict[str, object]) -> threading.Thread:
    """A point read started in a thread (it waits on a stopped Redis): its status and body go
    into ``answer``."""
    def run() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        conn.request("GET", "/api/point?customerId=3")
        resp = conn.getresponse()
        answer["status"], answer["body"] = resp.status, orjson.loads(resp.read())

    t = threading.Thread(target=run)
    t.start()
    return t

def test_idle_keep_alive_connections_are_reused(settings, catalog: redis.Redis) -> None:
    """The report's locust users idle 1-5 s between requests; uvicorn's default keep-alive is
    5 s, which raced them. Both servers here keep an idle connection past that (uvicorn 75 s,
    granian 60 s: api/serve.py), so the second request goes on the same socket. Both servers
    in one test: one idle wait."""
    env = {"REDIS_URL": settings.redis_url, "TICK_SECONDS": "3600"}
    servers = [server(kind, "api.app:app", env).start() for kind in SERVERS]
    try:
        conns = []
        for s in servers:
            for _ in range(3):
                conn = http.client.HTTPConnection(HOST, s.port, timeout=5)
                conn.request("GET", "/api/point?customerId=1")
                assert conn.getresponse().read()
                conns.append((s.kind, conn, conn.sock.getsockname()))
        time.sleep(6)
        for kind, conn, local in conns:
            assert conn.sock is not None and conn.sock.getsockname() == local
            conn.request("GET", "/api/point?customerId=1")  # raises if the server closed it
            resp = conn.getresponse()
            assert resp.status == 200 and orjson.loads(resp.read())["customerId"] == 1, kind
            conn.close()
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, to hang with SIGSTOP."""
    rs = RedisServer(tmp_path / "redis")
    rs.dir.mkdir()
    rs.start()
    small_catalog(redis.Redis.from_url(rs.url))
    yield rs
    if rs.proc and rs.proc.poll() is None:
        os.kill(rs.proc.pid, signal.SIGCONT)
    rs.stop()


def point_requests_counted(prom: Path) -> float:
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg, str(prom))
    return sum(s.value for m in reg.collect() for s in m.samples
               if s.name == "ticketing_http_requests_total"
               and s.labels.get("route") == "/api/point" and s.labels.get("status") == "200")


@both_servers
def test_ctrl_c_stops_cleanly_after_the_lifespan_shutdown(
        kind: str, own_redis: RedisServer, tmp_path: Path) -> None:
    """SIGINT to the server's process group (a terminal's Ctrl-C, to the supervisor and both
    workers; granian's leave it to their supervisor's SIGTERM, as the pair could hang them:
    api/granian_cli.py): a request in flight still gets its answer, an idle keep-alive client
    does not hold the exit up, the lifespan's shutdown runs in each worker (it flushes the
    request tallies, which only a shutdown or the tick writes: the tick here is an hour away),
    and the exit status is 0 with nothing on stderr."""
    prom = tmp_path / "prom"
    prom.mkdir()
    api = server(kind, "api.app:app", {
        "REDIS_URL": own_redis.url, "TICK_SECONDS": "3600", "REDIS_COMMAND_TIMEOUT": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(prom)}, workers=2, own_group=True).start()
    try:
        for _ in range(20):  # new connections: both workers get some
            conn = http.client.HTTPConnection(HOST, api.port, timeout=5)
            conn.request("GET", "/api/point?customerId=1")
            assert conn.getresponse().status == 200
            conn.close()
        idle = http.client.HTTPConnection(HOST, api.port, timeout=5)
        idle.request("GET", "/api/point?customerId=2")
        assert idle.getresponse().read()
        assert point_requests_counted(prom) == 0  # nothing flushed yet
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        answer: dict[str, object] = {}
        t = in_flight(api.port, answer)
        time.sleep(0.3)
        started = time.monotonic()
        api.interrupt()
        code = api.proc.wait(15)
        took = time.monotonic() - started
        t.join(5)
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
        api.stop()
    assert code == 0, api.log()
    assert answer["status"] == 503 and answer["body"]["code"] == "STORE_UNAVAILABLE", answer
    assert took < 5, took  # the in-flight request's 1 s, not the idle client's 60-75 s
    assert point_requests_counted(prom) == 21, api.log()
    assert "Traceback" not in api.log() and "ERROR" not in api.log(), api.log()


def test_a_granian_worker_takes_one_shutdown_signal(own_redis: RedisServer) -> None:
    """A granian worker ignores SIGINT (a Ctrl-C is its supervisor's to act on) and shuts down
    on its first SIGTERM, however many follow (api/granian_cli.py): with granian's own
    handler the third signal hangs the worker for good, and a Ctrl-C (SIGINT to the group, then
    the supervisor's SIGTERM) sometimes makes three. Here the signals come 0.1 s apart, each
    one handled on its own, while a request waits on a stopped Redis."""
    with server("granian", "api.app:app", {
            "REDIS_URL": own_redis.url, "TICK_SECONDS": "3600",
            "REDIS_COMMAND_TIMEOUT": "1"}) as api:
        worker = api.pids()[0]
        assert worker != api.proc.pid
        os.kill(worker, signal.SIGINT)
        conn = http.client.HTTPConnection(HOST, api.port, timeout=5)
        conn.request("GET", "/api/point?customerId=1")
        assert conn.getresponse().status == 200  # after a SIGINT of its own: serving on
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        answer: dict[str, object] = {}
        t = in_flight(api.port, answer)
        try:
            time.sleep(0.3)
            for _ in range(3):
                with contextlib.suppress(ProcessLookupError):  # gone: the request was not in
                    os.kill(worker, signal.SIGTERM)  # flight yet (a loaded machine)
                time.sleep(0.1)
            t.join(10)
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 5
        while worker in api.pids():  # the supervisor reaps it (and starts another)
            assert time.monotonic() < deadline, f"worker {worker} hung\n{api.log()}"
            time.sleep(0.05)
    assert answer["status"] == 503 and answer["body"]["code"] == "STORE_UNAVAILABLE", answer


@both_servers
def test_a_killed_worker_is_replaced(kind: str, settings, catalog: redis.Redis) -> None:
    """A worker killed (the OOM killer, a segfault): the supervisor starts another and the API
    serves on (granian needs --respawn-failed-workers for it, else the whole server exits)."""
    with server(kind, "api.app:app", {"REDIS_URL": settings.redis_url, "TICK_SECONDS": "3600"},
                workers=2) as api:
        victim = api.pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not (len(api.pids()) == 2 and victim not in api.pids()):
            assert time.monotonic() < deadline, f"no new worker: {api.pids()}\n{api.log()}"
            time.sleep(0.1)
        assert api.proc.poll() is None
        for _ in range(10):
            conn = http.client.HTTPConnection(HOST, api.port, timeout=5)
            conn.request("GET", "/api/point?customerId=1")
            assert conn.getresponse().status == 200
            conn.close()


@both_servers
def test_past_max_in_flight_requests_get_a_fast_503(kind: str, own_redis: RedisServer) -> None:
    """MAX_IN_FLIGHT=4 and Redis hung: the 4 requests in progress wait for it, and every other
    request, of every kind, is answered 503 OVERLOADED at once, with Retry-After and without a
    word to Redis (which is stopped: a request that reached it would wait the 2 s command
    timeout). /healthz still answers. Once Redis is back, the worker serves again."""
    api = server(kind, "api.app:app", {
        "REDIS_URL": own_redis.url, "TICK_SECONDS": "3600", "REDIS_COMMAND_TIMEOUT": "2",
        "MAX_IN_FLIGHT": "4"}).start()
    tok = None
    try:
        conn = http.client.HTTPConnection(HOST, api.port, timeout=5)
        conn.request("POST", "/api/token/issue", orjson.dumps({"customerId": 9, "concertId": 2}))
        tok = orjson.loads(conn.getresponse().read())["tokenValue"]
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        held: list[int] = []

        def hold() -> None:
            c = http.client.HTTPConnection(HOST, api.port, timeout=10)
            c.request("GET", "/api/point?customerId=1")
            held.append(c.getresponse().status)

        holders = [threading.Thread(target=hold) for _ in range(4)]
        for t in holders:
            t.start()
        time.sleep(0.3)
        a = {"Authorization": tok}
        every_kind = [
            ("POST", "/api/token/issue", {"customerId": 77, "concertId": 2}, {}),
            ("GET", "/api/token/status", None, a),
            ("GET", "/api/2/available-dates", None, a),
            ("GET", f"/api/{OPTION}/available-seats", None, a),
            ("GET", "/api/point?customerId=1", None, {}),
            ("PATCH", "/api/point/charge", {"customerId": 1, "amount": 10}, {}),
            ("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": OPTION * 100 + 1}, a),
            ("GET", "/api/point/history?customerId=1", None, {}),
            ("GET", "/readyz", None, {}),
            ("GET", "/", None, {}),
        ]
        shed: list[tuple[str, int, dict, dict, float]] = []
        lock = threading.Lock()

        def client() -> None:
            c = http.client.HTTPConnection(HOST, api.port, timeout=5)  # keep-alive throughout
            for method, path, body, headers in every_kind:
                t0 = time.monotonic()
                c.request(method, path, orjson.dumps(body) if body is not None else None,
                          headers)
                resp = c.getresponse()
                data = orjson.loads(resp.read())
                with lock:
                    shed.append((path, resp.status, data,
                                 {k.lower(): v for k, v in resp.getheaders()},
                                 time.monotonic() - t0))

        clients = [threading.Thread(target=client) for _ in range(5)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        # A shed request's body is read, even one that comes after its headers, so that its
        # keep-alive connection serves the next request (granian closes a connection whose
        # request body was left unread).
        with socket.create_connection((HOST, api.port), timeout=5) as s:
            body = orjson.dumps({"customerId": 1, "amount": 10})
            s.sendall(b"PATCH /api/point/charge HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            time.sleep(0.05)
            s.sendall(body)
            status, headers, data = read_answer(s)
            assert (status, problem_code(headers, data)) == (503, "OVERLOADED")
            assert headers.get("connection") != "close", headers
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(s)[0] == 200
        c = http.client.HTTPConnection(HOST, api.port, timeout=5)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        for t in holders:
            t.join()
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    try:
        assert held == [503] * 4  # STORE_UNAVAILABLE after the command timeout
        assert len(shed) == 5 * len(every_kind)
        for path, status, data, headers, took in shed:
            assert status == 503 and data["code"] == "OVERLOADED", (path, data)
            assert headers["content-type"] == "application/problem+json"
            assert headers["retry-after"] == "1"
            assert took < 0.5, (path, took)
        time.sleep(0.2)  # the transport's fail-fast pause after the hung connection
        c = http.client.HTTPConnection(HOST, api.port, timeout=5)
        c.request("GET", "/api/token/status", headers={"Authorization": tok})
        resp = c.getresponse()
        assert resp.status == 200 and orjson.loads(resp.read())["status"] == "ACTIVE"
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        m = re.search(r'ticketing_http_requests_total\{[^}]*route="\(overloaded\)"[^}]*'
                      r'status="503"[^}]*\} (\S+)', text)
        assert m and float(m[1]) == len(shed) + 1, text[:2000]  # and the raw one
    finally:
        api.stop()
