"""The ticket drop's lean generator: the buyers of ``buyer.py`` on raw asyncio (uvloop) over
the keep-alive connection pool of ``loadtests/generator/pool.py``. ``python -m
loadtests.drop.asyncio_driver CONFIG --shard i/n`` runs shard i of n (buyers ``index % n ==
i``); the runner starts the shards and reads what they record (``recorder.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

from api.gc_tuning import GENERATOR_THRESHOLD, freeze_heap
from loadtests.drop.buyer import Env, Resp, Wait, buyer_flow, new_record
from loadtests.drop.plan import BuyerPlan, DropConfig, make_plan
from loadtests.drop.recorder import Recorder
from loadtests.generator.pool import Pool, parse_answer


class AsyncDriver:
    def __init__(self, cfg: DropConfig, shard: int, shards: int) -> None:
        self.cfg = cfg
        self.shard = f"a{shard}"
        self.plans = [p for p in make_plan(cfg) if p.index % shards == shard]
        u = urlsplit(cfg.base)
        self.pool = Pool(u.hostname or "127.0.0.1", u.port or 80, cfg.connections)
        self.env = Env(cfg)
        self.rec = Recorder(Path(cfg.out_dir), self.shard)
        self.t0 = cfg.t_start
        self.sleepers: set[asyncio.Future] = set()  # queue polls' waits, woken at sell-out

    async def _sleep(self, delay: float, wake: bool) -> bool:
        """Sleep ``delay`` s; a ``wake`` sleep ends early when the drop sells out. True when it
        slept its full time."""
        if not wake:
            await asyncio.sleep(delay)
            return True
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = loop.call_later(delay, _resolve, fut, True)
        self.sleepers.add(fut)
        try:
            return await fut
        finally:
            handle.cancel()
            self.sleepers.discard(fut)

    async def _buyer(self, p: BuyerPlan) -> None:
        rec = new_record(p, self.cfg)
        flow = buyer_flow(p, self.env, rec)
        resp: Resp | None = None
        recorder, pool = self.rec, self.pool
        try:
            while True:
                action = flow.send(resp)
                if type(action) is Wait:
                    delay = action.at - time.time()
                    if delay > 0 and await self._sleep(delay, action.wake):
                        recorder.overshoot.append(time.time() - action.at)
                    resp = None
                    continue
                t = time.time()
                t1 = time.perf_counter()
                try:
                    status, raw, retry, waited = await pool.request(pool.build(action))
                except (ConnectionError, OSError) as e:
                    recorder.request(t - self.t0, action, 0, type(e).__name__,
                                     (time.perf_counter() - t1) * 1000, 0.0)
                    resp = Resp(0, None, 1.0, type(e).__name__, time.time())
                    continue
                ms = (time.perf_counter() - t1) * 1000
                body, code, after = parse_answer(status, raw, retry)
                recorder.request(t - self.t0, action, status, code, ms, waited * 1000)
                resp = Resp(status, body, after, code, time.time())
                if action.name == "issue" and rec.issued == 0 and status == 200:
                    recorder.started += 1
        except StopIteration:
            pass
        except Exception as e:  # a bug in the flow or an answer it did not expect
            rec.outcome = rec.outcome or f"error: {type(e).__name__}: {e}"[:200]
        recorder.buyer_done(rec)

    async def _housekeeping(self, tasks: list[asyncio.Task]) -> None:
        while True:
            self.rec.flush()
            self.rec.progress(len(self.plans), reconnects=self.pool.reconnects)
            if all(t.done() for t in tasks):
                return
            await asyncio.sleep(1)

    async def run(self) -> dict:
        tasks = [asyncio.create_task(self._buyer(p)) for p in self.plans]
        freeze_heap(GENERATOR_THRESHOLD)  # the plan and every buyer's task: out of its sight
        keeper = asyncio.create_task(self._housekeeping(tasks))
        remaining = max(1.0, self.cfg.deadline - time.time() + 15)
        _, pending = await asyncio.wait(tasks, timeout=remaining)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await keeper
        self.rec.flush()
        self.rec.progress(len(self.plans), reconnects=self.pool.reconnects, finished=True)
        self.pool.close()
        return self.rec.summary(generator="asyncio", shard=self.shard, buyers=len(self.plans),
                                reconnects=self.pool.reconnects,
                                connections=self.cfg.connections)


def _resolve(fut: asyncio.Future, value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.drop.asyncio_driver",
                                 description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("--shard", default="0/1", help="i/n: run buyers with index %% n == i")
    args = ap.parse_args(argv)
    cfg = DropConfig.load(args.config)
    i, n = (int(x) for x in args.shard.split("/"))
    uvloop.install()
    driver = AsyncDriver(cfg, i, n)
    summary = asyncio.run(driver.run())
    (Path(cfg.out_dir) / f"summary-{driver.shard}.json").write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
