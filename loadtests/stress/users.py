"""The stress ramp's users on the lean asyncio generator (``python -m loadtests run stress``):
the report's §6 and §7 shapes, request for request as ``scenarios/locustfiles/s6_point_charge.py``
and ``s7_booking_flow.py`` make them, over the keep-alive connection pool of
``loadtests/generator/pool.py`` (one connection per ``per_conn`` users, growing with the ramp).

- ``s6``: ``PATCH /api/point/charge`` of 5,000.00 for customers 1..10,000 in turn (one cycle
  per process, as the report's class attribute), 1-3 s between requests; a 200 must carry the
  asked customer and a balance of at least the amount.
- ``s7``: a customer ``randint(1, 500)`` per user; each iteration issues a token, and when it
  is ACTIVE reads option 41150's free seats, reserves the first and pays for it; 1-5 s
  between iterations. Expected, not failures: 409 SEAT_TAKEN (users race for the first free
  seat) and 401 TOKEN_UNKNOWN on seats/reserve/pay (a user sharing the customer paid, which
  finished the shared token).

The ramp: step k (0-based) runs ``levels[k]`` users from ``t0 + k * step_seconds``; a step's
new users begin over its first 2 s. Shard i of n runs users ``u % n == i``. Every second a
shard appends to ``stress-<shard>.jsonl`` one line per request name: the second, count,
failures, failure codes and a latency histogram (4 % buckets), which the controller merges
per step. It stops at the ``STOP`` file the controller writes, or at the end of the last step.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop

from api.gc_tuning import GENERATOR_THRESHOLD, freeze_heap
from loadtests.generator.pool import Pool, Req, parse_answer
from loadtests.generator.stats import bucket

LAG = "(event loop lag)"  # not a request: the generator's own lag, recorded like one
GC = "(gc pause)"  # not a request: the collector's full (generation 2) passes


@dataclass
class StressConfig:
    base: str
    scenario: str  # s6 | s7
    out_dir: str
    t0: float
    levels: list[int]  # users of each step
    step_seconds: float
    per_conn: int = 10  # users per pooled connection
    seed: int = 7

    @property
    def steps(self) -> int:
        return len(self.levels)

    def users_at(self, k: int) -> int:
        return self.levels[min(k, len(self.levels) - 1)] if k >= 0 else 0

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @staticmethod
    def load(path: Path) -> StressConfig:
        return StressConfig(**json.loads(Path(path).read_text()))

    @property
    def stop_file(self) -> Path:
        return Path(self.out_dir) / "STOP"

    @property
    def end(self) -> float:
        return self.t0 + self.steps * self.step_seconds


class Stats:
    """Per second and request name: count, failures, codes, latency histogram."""

    def __init__(self, path: Path, t0: float) -> None:
        self.path, self.t0 = path, t0
        self.path.write_text("")
        self.cur: dict[tuple[int, str], list] = {}

    def add(self, name: str, ms: float, ok: bool, code: str) -> None:
        sec = int(time.time() - self.t0)
        slot = self.cur.get((sec, name))
        if slot is None:
            slot = self.cur[(sec, name)] = [0, 0, Counter(), Counter()]
        slot[0] += 1
        slot[2][bucket(ms)] += 1
        if not ok:
            slot[1] += 1
            slot[3][code] += 1

    def flush(self, everything: bool = False) -> None:
        now = int(time.time() - self.t0)
        done = [k for k in self.cur if everything or k[0] < now]
        if not done:
            return
        with open(self.path, "ab") as f:
            for k in sorted(done):
                n, fails, hist, codes = self.cur.pop(k)
                f.write(orjson.dumps({"s": k[0], "name": k[1], "n": n, "f": fails,
                                      "codes": dict(codes),
                                      "h": {str(i): c for i, c in hist.items()}}) + b"\n")


class Worker:
    def __init__(self, cfg: StressConfig, shard: int, shards: int) -> None:
        self.cfg, self.shard, self.shards = cfg, shard, shards
        u = urlsplit(cfg.base)
        self.pool = Pool(u.hostname or "127.0.0.1", u.port or 80, 1)
        self.stats = Stats(Path(cfg.out_dir) / f"stress-{shard}.jsonl", cfg.t0)
        self.stop = False
        self.customers = itertools.cycle(range(1, 10_001))  # §6: one cycle per process
        self.running = 0

    def stopping(self) -> bool:
        return self.stop or time.time() >= self.cfg.end

    async def call(self, method: str, path: str, body: dict | None, auth: str | None,
                   name: str) -> tuple[int, object, str, float]:
        req = Req(method, path, body, auth, name)
        t1 = time.perf_counter()
        try:
            status, raw, retry, _ = await self.pool.request(self.pool.build(req))
        except (ConnectionError, OSError) as e:
            return 0, None, type(e).__name__, (time.perf_counter() - t1) * 1000
        data, code, _ = parse_answer(status, raw, retry)
        return status, data, code, (time.perf_counter() - t1) * 1000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # at the stop, run() cancels the users

    async def user_s6(self, rng: random.Random) -> None:
        while not self.stopping():
            cid = next(self.customers)
            status, body, code, ms = await self.call(
                "PATCH", "/api/point/charge", {"customerId": cid, "amount": 5000.00}, None,
                "PATCH /api/point/charge")
            ok = (status == 200 and isinstance(body, dict) and body.get("customerId") == cid
                  and isinstance(body.get("balance"), int | float) and body["balance"] >= 5000)
            self.stats.add("PATCH /api/point/charge", ms, ok, code or f"HTTP {status}")
            await self.sleep(rng.uniform(1, 3))

    async def user_s7(self, rng: random.Random) -> None:
        customer = rng.randint(1, 500)
        while not self.stopping():
            status, body, code, ms = await self.call(
                "POST", "/api/token/issue", {"customerId": customer, "concertId": 2}, None,
                "POST /api/token/issue")
            ok = status == 200 and isinstance(body, dict) and body.get("customerId") == customer
            self.stats.add("POST /api/token/issue", ms, ok, code or f"HTTP {status}")
            token = body["tokenValue"] if ok and body.get("status") == "ACTIVE" else None
            if token:
                await self._book(token)
            await self.sleep(rng.uniform(1, 5))

    async def _book(self, token: str) -> None:
        name = "GET /api/41150/available-seats"
        status, body, code, ms = await self.call("GET", "/api/41150/available-seats", None,
                                                 token, name)
        if status == 401 and code == "TOKEN_UNKNOWN":
            self.stats.add(name + " [401 token finished]", ms, True, "")
            return
        ok = status == 200 and isinstance(body, dict) and isinstance(body.get("seats"), list)
        self.stats.add(name, ms, ok, code or f"HTTP {status}")
        if not ok or not body["seats"]:
            return
        seat = body["seats"][0]["id"]
        name = "POST /api/reserve"
        status, body, code, ms = await self.call(
            "POST", "/api/reserve", {"concertOptionId": 41150, "seatId": seat}, token, name)
        if status == 409 and code in ("SEAT_TAKEN", "TICKET_LIMIT"):  # as common.py counts
            self.stats.add(f"{name} [409 {code.lower().replace('_', ' ')}]", ms, True, "")
            return
        if status == 401 and code == "TOKEN_UNKNOWN":
            self.stats.add(name + " [401 token finished]", ms, True, "")
            return
        ok = status == 200 and isinstance(body, dict) and body.get("status") == "HELD"
        self.stats.add(name, ms, ok, code or f"HTTP {status}")
        if not ok:
            return
        rid = body["reservationId"]
        name = "POST /api/pay"
        status, body, code, ms = await self.call("POST", "/api/pay", {"reservationId": rid},
                                                 token, name)
        if status == 401 and code == "TOKEN_UNKNOWN":
            self.stats.add(name + " [401 token finished]", ms, True, "")
            return
        ok = status == 200 and isinstance(body, dict) and body.get("status") == "PAID"
        self.stats.add(name, ms, ok, code or f"HTTP {status}")

    async def user(self, u: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        if self.stopping():
            return
        self.running += 1
        self.pool.size = max(1, math.ceil(self.running / self.cfg.per_conn))
        rng = random.Random(self.cfg.seed * 1_000_003 + u)
        try:
            await (self.user_s6(rng) if self.cfg.scenario == "s6" else self.user_s7(rng))
        except asyncio.CancelledError:
            pass
        except Exception as e:  # a bug, or an answer the checks did not foresee
            self.stats.add("(user error)", 0.0, False, type(e).__name__)

    async def housekeeping(self, users: list[asyncio.Task]) -> None:
        while not self.stopping():
            self.stop = self.stop or self.cfg.stop_file.exists()
            self.stats.flush()
            await asyncio.sleep(0.5)
        for t in users:
            t.cancel()

    async def lag(self) -> None:
        """The event loop's lag: how late a 50 ms sleep wakes (a busy generator's own
        queueing, which every response time it measures includes)."""
        while not self.stopping():
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            self.stats.add(LAG, (time.perf_counter() - t) * 1000 - 50, True, "")

    def watch_gc(self) -> None:
        """Record each generation-2 collection's pause (the lag it causes)."""
        started = [0.0]

        def cb(phase: str, info: dict) -> None:
            if info.get("generation") != 2:
                return
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                self.stats.add(GC, (time.perf_counter() - started[0]) * 1000, True, "")

        gc.callbacks.append(cb)

    async def run(self) -> None:
        self.watch_gc()
        cfg, tasks = self.cfg, []
        for k in range(cfg.steps):
            lo, hi = (cfg.users_at(k - 1) if k else 0), cfg.users_at(k)
            for u in range(lo, hi):
                if u % self.shards == self.shard:
                    at = cfg.t0 + k * cfg.step_seconds + 2.0 * (u - lo) / max(1, hi - lo)
                    tasks.append(asyncio.create_task(self.user(u, at)))
        freeze_heap(GENERATOR_THRESHOLD)  # every user's task: out of the collector's sight
        keeper = asyncio.create_task(self.housekeeping(tasks))
        lag = asyncio.create_task(self.lag())
        await asyncio.wait(tasks, timeout=max(1.0, cfg.end - time.time() + 10))
        self.stop = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, lag, return_exceptions=True)
        await keeper
        self.stats.flush(everything=True)
        self.pool.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.stress.users", description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("--shard", default="0/1")
    args = ap.parse_args(argv)
    i, n = (int(x) for x in args.shard.split("/"))
    uvloop.install()
    asyncio.run(Worker(StressConfig.load(args.config), i, n).run())
    return 0


def read_seconds(out_dir: Path) -> dict[int, dict[str, list]]:
    """Every shard's per-second lines merged: second -> name -> [n, failures, codes, hist]."""
    merged: dict[int, dict[str, list]] = defaultdict(dict)
    for path in sorted(out_dir.glob("stress-*.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line:
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:  # a line being written
                continue
            slot = merged[row["s"]].setdefault(row["name"], [0, 0, Counter(), Counter()])
            slot[0] += row["n"]
            slot[1] += row["f"]
            slot[2].update(row["codes"])
            slot[3].update({int(k): v for k, v in row["h"].items()})
    return merged


if __name__ == "__main__":
    sys.exit(main())
