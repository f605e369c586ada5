"""The ticket drop's buyers under locust: ``FastHttpUser`` (geventhttpclient) over one
connection pool per process shared by all its users, each user one buyer of the plan running
``buyer_flow`` (``buyer.py``) once, so locust and the asyncio generator drive the very same
buyers. Run by ``python -m loadtests run drop --generator locust`` (which sets the knobs
below); it writes the same files as the asyncio shards (``requests-l<i>.csv``,
``buyers-l<i>.jsonl``, ``progress-l<i>.json``, ``summary-l<i>.json``).

Knobs: ``LOADTEST_DROP_CONFIG`` (the run's DropConfig JSON), ``LOADTEST_ID_STRIDE`` (locust
processes: user n of worker i plays buyer ``i + n * stride``).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from geventhttpclient.client import HTTPClientPool
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner

from loadtests.drop.buyer import Env, Resp, Wait, buyer_flow, new_record
from loadtests.drop.plan import DropConfig, make_plan
from loadtests.drop.recorder import Recorder
from loadtests.generator.pool import parse_answer

CONFIG = DropConfig.load(Path(os.environ["LOADTEST_DROP_CONFIG"]))
PLAN = make_plan(CONFIG)
STRIDE = max(1, int(os.environ.get("LOADTEST_ID_STRIDE", "1")))
_numbers = itertools.count()
_state: dict[str, Any] = {}


def _process_state(environment: Any) -> dict[str, Any]:
    """This process's pool, recorder and environment (made after any fork)."""
    if _state.get("pid") != os.getpid():
        index = getattr(environment.runner, "worker_index", 0) or 0
        mine = [p for p in PLAN if p.index % STRIDE == index % STRIDE]
        _state.update(pid=os.getpid(), index=index, env=Env(CONFIG), mine=len(mine),
                      pool=HTTPClientPool(concurrency=CONFIG.connections), stop=Event(),
                      rec=Recorder(Path(CONFIG.out_dir), f"l{index}"))
        gevent.spawn(_housekeeping)
    return _state


def _housekeeping() -> None:
    rec = _state["rec"]
    while True:
        rec.flush()
        finished = rec.done >= _state["mine"]
        rec.progress(_state["mine"], finished=finished)
        if finished:
            summary = rec.summary(generator="locust", shard=rec.shard, buyers=_state["mine"],
                                  connections=CONFIG.connections)
            (Path(CONFIG.out_dir) / f"summary-{rec.shard}.json").write_text(json.dumps(summary))
            return
        gevent.sleep(1)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        _process_state(environment)


class DropBuyer(FastHttpUser):
    host = CONFIG.base
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def __init__(self, environment: Any) -> None:
        type(self).client_pool = _process_state(environment)["pool"]
        super().__init__(environment)

    @task
    def buy(self) -> None:
        st = _process_state(self.environment)
        index = st["index"] + STRIDE * next(_numbers)
        if index >= len(PLAN):
            raise StopUser()
        plan, rec_all, env = PLAN[index], st["rec"], st["env"]
        rec = new_record(plan, CONFIG)
        flow = buyer_flow(plan, env, rec)
        resp: Resp | None = None
        try:
            while True:
                action = flow.send(resp)
                if type(action) is Wait:
                    delay = action.at - time.time()
                    if delay > 0:
                        if action.wake:  # a queue poll's wait: woken at the sell-out
                            if not st["stop"].wait(timeout=delay):
                                rec_all.overshoot.append(time.time() - action.at)
                        else:
                            gevent.sleep(delay)
                            rec_all.overshoot.append(time.time() - action.at)
                    resp = None
                    continue
                headers = dict(action.headers)
                if action.auth:
                    headers["Authorization"] = action.auth
                t = time.time()
                t1 = time.perf_counter()
                with self.client.request(action.method, action.path, name=action.name,
                                         headers=headers, json=action.body,
                                         catch_response=True) as r:
                    ms = (time.perf_counter() - t1) * 1000
                    status = r.status_code or 0
                    body, code, after = parse_answer(status, r.content or b"",
                                                     (r.headers or {}).get("Retry-After"))
                    if status == 0:
                        code = "ConnectionError"
                    ok = rec_all.request(t - CONFIG.t_start, action, status, code, ms, 0.0)
                    if ok:
                        r.success()
                    else:
                        r.failure(f"HTTP {status} {code}")
                    if action.name == "issue" and status == 200 and rec.issued == 0:
                        rec_all.started += 1
                resp = Resp(status, body, after if status else 1.0, code, time.time())
        except StopIteration:
            pass
        except Exception as e:  # a bug in the flow or an answer it did not expect
            rec.outcome = rec.outcome or f"error: {type(e).__name__}: {e}"[:200]
        rec_all.buyer_done(rec)
        raise StopUser()
