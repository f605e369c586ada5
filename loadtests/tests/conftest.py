"""Fixtures of the load tests' own tests: a real redis-server from the repo's redis.conf on a
free port in a temp dir (devstack), flushed before each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis

from devstack.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()  # our own server, started here: nothing else lives there
    client.close()
    yield redis_server.url
