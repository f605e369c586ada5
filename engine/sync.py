"""redis-py clients for what is not the hot path (the CLI, seeding, tests, benchmarks): one
``redis.Redis`` for ``redis://``, or a ``redis.cluster.RedisCluster`` for
``redis+cluster://`` (the same URL the API takes)."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from engine.cluster import SCHEME, parse_url

SyncRedis = redis.Redis | RedisCluster


def sync_client(url: str, **options: Any) -> SyncRedis:
    if url.startswith(SCHEME):
        seeds, username, password = parse_url(url)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds],
                            username=username, password=password, **options)
    return redis.Redis.from_url(url, **options)


def node_of(r: SyncRedis, key: str) -> tuple[str, int] | None:
    """The master that serves ``key`` (None on a single node)."""
    if not isinstance(r, RedisCluster):
        return None
    node = r.get_node_from_key(key)
    return node.host, node.port
