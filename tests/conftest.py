"""Fixtures: a real redis-server started from the repo's redis.conf on a free port in a temp
dir (never a database we did not create), flushed before each test; the app in-process with
its lifespan (TestClient); a real server for concurrency tests (``$SERVER`` when set, else
api/serve.py's default; tests/test_faults.py and test_server.py run both); and a local Redis
Cluster (``redis_cluster``: 3 masters with a replica each).

Where single node and cluster differ, tests run on both: a module or test marked
``pytest.mark.both_modes`` runs once per mode (``mode`` = "single" | "cluster"), and the
``r``, ``settings`` and ``live_server`` fixtures then point at that mode's Redis."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator

import pytest
import redis
from starlette.testclient import TestClient

from api.app import create_app
from devstack.api_server import Server, default_server, server
from devstack.cluster_nodes import QUICK_SYNC
from devstack.local_cluster import LocalCluster
from devstack.redis_server import RedisServer
from engine.config import Settings
from engine.ids import use_token_key
from engine.keys import concert_keys
from engine.seed import Option, Seat, create_concert, fund_customers
from engine.sync import sync_client
from engine.tickets import new_key_pem


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_modes: run on a single node and on the cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_modes"):
        metafunc.parametrize("mode", ["single", "cluster"], indirect=True)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "single")


@pytest.fixture
def redis_url(mode: str, request: pytest.FixtureRequest) -> str:
    """The Redis of this test's mode (the cluster is started only when a test needs it)."""
    if mode == "cluster":
        return request.getfixturevalue("redis_cluster").url
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = sync_client(redis_url)
    client.flushall()  # our own servers, started here: nothing else lives there
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    # A long tick: tests that rely on the background tick shorten it themselves. No ticket
    # or rate limits: tests that hold many seats or replay requests per customer would meet
    # them; the tests of the limits set them.
    # Polls asked of Redis each (queue_view_seconds=0): a test sees the queue as it is now;
    # tests/test_queue_view.py and the live servers use the per-worker view.
    return Settings(redis_url=redis_url, tick_seconds=3600, queue_token_key=QUEUE_TOKEN_KEY,
                    queue_view_seconds=0, **NO_LIMITS)


# The queue token key of the in-process apps and of engine calls made by tests (the live
# servers read theirs from Redis, as a deployment without QUEUE_TOKEN_KEY does).
QUEUE_TOKEN_KEY = "tests-queue-token-key-0123456789abcdef"
use_token_key(QUEUE_TOKEN_KEY.encode())


# This run's ticket signing key (TICKET_SIGNING_KEY): jwt mode does not start without one.
TICKET_KEY = new_key_pem()

# The tests' small catalogues (a few seats) would also meet admission sized to the stock and
# returned seats on offer to the queue: off here too; the tests of those turn them on.
NO_LIMITS = {"max_tickets_per_customer": 0, "issue_rate_per_customer": 0,
             "reserve_rate_per_customer": 0, "admit_per_seat": 0, "return_hold_seconds": 0}
NO_LIMITS_ENV = {"MAX_TICKETS_PER_CUSTOMER": "0", "ISSUE_RATE_PER_CUSTOMER": "0",
                 "RESERVE_RATE_PER_CUSTOMER": "0", "ADMIT_PER_SEAT": "0",
                 "RETURN_HOLD_SECONDS": "0"}


# A small test catalog: concert 2 with two options of 4 seats, concert 3 with one option.
CONCERT, OPTION, OTHER_OPTION = 2, 41150, 41151
SEAT_PRICE = 100_000  # minor units: 1,000 points
ODD_PRICES = {(41151, 3): 123_450, (41151, 4): 123_456}  # 1234.5 and 1234.56 points


def seat_id(option: int, number: int) -> int:
    return option * 100 + number


def small_catalog(r: redis.Redis, seats: int = 4) -> None:
    def option(opt: int, day: str) -> Option:
        return Option(opt, f"2027-01-{day}T19:00:00+09:00",
                      tuple(Seat(seat_id(opt, n), n, ODD_PRICES.get((opt, n), SEAT_PRICE),
                                 "A", "1") for n in range(1, seats + 1)))

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


def waiting_count(r: redis.Redis, concert: int = CONCERT) -> int:
    """A concert's WAITING tokens as the scripts count them (lua/include/waiting.lua), checked
    against its seqs hash."""
    k = concert_keys(concert)
    seq, left, admitted = (int(x or 0) for x in r.hmget(k.concert, "seq", "leftn", "admitted"))
    assert seq - left - admitted == r.hlen(k.seqs), (seq, left, admitted, r.hlen(k.seqs))
    return seq - left - admitted


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def live_server(settings: Settings, catalog: redis.Redis) -> Iterator[Callable[..., Server]]:
    """``live_server(**env)`` -> a real server (api/serve.py's flags) serving the app: the
    default one, or ``live_server(kind="uvicorn", **env)``."""
    servers: list[Server] = []

    def start(kind: str | None = None, **env: str) -> Server:
        api = server(kind or default_server(), "api.app:app",
                     {"REDIS_URL": settings.redis_url, "TICK_SECONDS": "3600",
                      **NO_LIMITS_ENV, **env})
        servers.append(api)
        return api.start()

    yield start
    for api in servers:
        api.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """3 masters with a replica each from the repo's redis.conf, in a temp dir, healthy (every
    replica synced). Node timeout 1 s: a killed master's replica takes over in ~3 s. Not
    flushed between tests (``redis_cluster.flushall()``); roles may have moved after a
    failover test, which leaves it healthy again."""
    if shutil.which("redis-server") is None:
        pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), masters=3, replicas=1,
                           node_timeout_ms=1000, extra=QUICK_SYNC).start()
    yield cluster
    cluster.stop()
