"""A Redis seeded with the demo data and the API on it, started and stopped as one: what the
load tests run against when they are not given a host. The Redis is one redis-server from the
repo's redis.conf, or with ``cluster`` a local cluster of 3 masters with a replica each (the
API then acknowledges a change once a replica has it: REDIS_WAIT_REPLICAS=1)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from devstack.api_server import Server, default_server, server
from devstack.cluster_nodes import QUICK_SYNC
from devstack.local_cluster import LocalCluster
from devstack.redis_server import RedisServer, temp_redis
from engine import queue
from engine.config import Settings
from engine.seed import seed_demo
from engine.store import Store, connect
from engine.sync import sync_client


def seed(redis_url: str) -> None:
    """The demo data (engine/seed.py) on the Redis at ``redis_url``."""
    client = sync_client(redis_url)
    try:
        seed_demo(client)
    finally:
        client.close()


@contextlib.contextmanager
def demo_redis(*extra: str, prefix: str = "redis-") -> Iterator[RedisServer]:
    """A redis-server in a temp dir (``temp_redis``) with the demo data."""
    with temp_redis(*extra, prefix=prefix) as server:
        seed(server.url)
        yield server


def issue_tokens(redis_url: str, pairs: list[tuple[int, int]], **settings: object) -> list[str]:
    """A token for each (customer, concert), issued through the engine as the API would, with
    ``settings`` over the environment's (e.g. ``active_limit``); the token values."""
    config = replace(Settings.from_env(), redis_url=redis_url, **settings)

    async def issue() -> list[str]:
        store = Store(connect(config), config)
        try:
            await queue.use_deployment_key(store)  # the key the API's workers read too
            return [(await queue.issue_token(store, c, concert))["tokenValue"]
                    for c, concert in pairs]
        finally:
            await store.aclose()

    return asyncio.run(issue())


class DemoStack:
    """The demo data on a fresh Redis (or local cluster) in a temp dir, and the API under
    ``kind`` (default: ``$SERVER``, else api/serve.py's) with ``env`` added and ``workers``."""

    def __init__(self, env: dict[str, str], workers: int, kind: str | None = None,
                 cluster: bool = False) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="loadtest-")
        self.redis: RedisServer | LocalCluster = (
            LocalCluster(Path(self.tmp.name), masters=3, replicas=1, extra=QUICK_SYNC)
            if cluster else RedisServer(Path(self.tmp.name)))
        self.env = {**env, "REDIS_WAIT_REPLICAS": "1"} if cluster else env
        self.workers = workers
        self.kind = kind or default_server()
        self.api: Server | None = None

    def start(self) -> DemoStack:
        seed(self.redis.start().url)
        self.api = server(self.kind, "api.app:app", {"REDIS_URL": self.redis.url, **self.env},
                          workers=self.workers).start()
        return self

    def pids(self) -> list[int]:
        """The API's serving processes and Redis's (every node of a cluster)."""
        assert self.api is not None
        return [*self.api.pids(), *self.redis.pids()]

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        self.redis.stop()
        self.tmp.cleanup()
