"""Fixtures: a real redis-server started from the repo's redis.conf on a free port in a temp
dir (never a database we did not create), flushed before each test; the app in-process with
its lifespan (TestClient); and a real uvicorn server for concurrency tests."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from api.app import create_app
from engine.config import Settings
from engine.seed import Option, Seat, create_concert, fund_customers

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process from the repo's redis.conf; restartable on the same port and
    data directory (for the durability and recovery tests)."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.dir = workdir
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)
        self.proc = subprocess.Popen(
            [exe, str(REPO / "redis.conf"), "--port", str(self.port), "--dir", str(self.dir),
             "--logfile", str(self.dir / "redis.log"), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start: see {self.dir}/redis.log") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()  # our own server, started above: nothing else lives there
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    # A long tick: tests that rely on the background tick shorten it themselves.
    return Settings(redis_url=redis_server.url, tick_seconds=3600)


# A small test catalog: concert 2 with two options of 4 seats, concert 3 with one option.
CONCERT, OPTION, OTHER_OPTION = 2, 41150, 41151
SEAT_PRICE = 100_000  # minor units: 1,000 points


def seat_id(option: int, number: int) -> int:
    return option * 100 + number


def small_catalog(r: redis.Redis, seats: int = 4) -> None:
    def option(opt: int, day: str) -> Option:
        return Option(opt, f"2027-01-{day}T19:00:00+09:00",
                      tuple(Seat(seat_id(opt, n), n, SEAT_PRICE) for n in range(1, seats + 1)))

    create_concert(r, CONCERT, "Test Concert", [option(OPTION, "10"), option(OTHER_OPTION, "09")])
    create_concert(r, 3, "Other Concert", [option(50001, "20")])
    fund_customers(r, 1, 200, 10_000 * 100)


@pytest.fixture
def catalog(r: redis.Redis) -> redis.Redis:
    small_catalog(r)
    return r


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**overrides)`` -> a started TestClient on an app with those settings."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        client = TestClient(create_app(dataclasses.replace(settings, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient], catalog: redis.Redis) -> TestClient:
    return make_client()


def active_token(client: TestClient, customer: int, concert: int = CONCERT) -> str:
    resp = client.post("/api/token/issue", json={"customerId": customer, "concertId": concert})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ACTIVE", resp.json()
    return resp.json()["tokenValue"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LiveServer:
    def __init__(self, base: str, proc: subprocess.Popen) -> None:
        self.base, self.proc = base, proc
        self.host, self.port = base.removeprefix("http://").split(":")


@pytest.fixture
def live_server(settings: Settings, catalog: redis.Redis) -> Iterator[Callable[..., LiveServer]]:
    """``live_server(**env)`` -> a real uvicorn (uvloop, httptools) serving the app."""
    procs: list[subprocess.Popen] = []

    def start(**env: str) -> LiveServer:
        port = free_port()
        full_env = {**os.environ, "REDIS_URL": settings.redis_url, "TICK_SECONDS": "3600", **env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1",
             "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
             "--timeout-keep-alive", "75"],
            cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        procs.append(proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return LiveServer(f"http://127.0.0.1:{port}", proc)
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode()) from None
                time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)
