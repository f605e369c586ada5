"""``python -m loadtests.http_bench.mem_waiters``: the Redis bytes a waiting customer costs,
measured through HTTP with the default settings.

Starts its own redis-server (the repo's redis.conf, demo data seeded) and the API (default
server, ``--workers``), then ``wrk`` issues a token for a new customer id a request to the
demo concert for ``--seconds`` (a waiter each, past the active limit); ``used_memory``
before and after (after a MEMORY PURGE each time) over the tokens issued.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from devstack.api_server import api_server
from devstack.redis_server import RedisServer
from engine.keys import concert_keys
from engine.seed import DEMO_CONCERT, seed_demo
from loadtests.http_bench.wrk import ENDPOINT_LUA, wrk_missing


def used(r: redis.Redis) -> int:
    r.execute_command("MEMORY", "PURGE")
    time.sleep(0.3)  # the clients' buffers shrink on Redis's next cron
    return int(r.info("memory")["used_memory"])


def measure(seconds: float, workers: int, connections: int = 128) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rs = RedisServer(Path(tmp)).start()
        r = redis.Redis.from_url(rs.url)
        seed_demo(r)
        api = api_server({"REDIS_URL": rs.url}, workers=workers).start()
        try:
            k = concert_keys(DEMO_CONCERT)
            before = used(r)
            subprocess.run(
                ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(ENDPOINT_LUA),
                 f"http://127.0.0.1:{api.port}"], capture_output=True, check=True,
                env={**os.environ, "BENCH_MODE": "issue", "BENCH_START": "20000000"},
                timeout=seconds + 60)
            after = used(r)
            seq, left, admitted = (int(x or 0) for x in r.hmget(k.concert, "seq", "leftn",
                                                                 "admitted"))
            tokens = r.hlen(k.tokens)
            return {"tokens": tokens, "waiting": seq - left - admitted, "bytes": after - before,
                    "per_token": (after - before) / max(tokens, 1),
                    "tokens_hash": r.memory_usage(k.tokens, samples=0),
                    "seqs_hash": r.memory_usage(k.seqs, samples=0)}
        finally:
            api.stop()
            rs.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if wrk_missing():
        raise SystemExit(1)
    m = measure(a.seconds, a.workers)
    print(f"{m['tokens']:,} tokens ({m['waiting']:,} waiting) took {m['bytes'] / 1e6:.1f} MB of "
          f"used_memory: {m['per_token']:.0f} bytes a token, "
          f"{m['per_token'] * 1e6 / 2**20:.0f} MiB a million (MEMORY USAGE: tokens "
          f"{m['tokens_hash'] / max(m['tokens'], 1):.0f} B, seqs "
          f"{m['seqs_hash'] / max(m['waiting'], 1):.0f} B a token)")


if __name__ == "__main__":
    main()
