"""What a generator process records of its buyers, and what the runner reads back. Each
process (a shard) appends to the run's folder once a second:

- ``progress-<shard>.json``: buyers started / done, requests, failures;
- ``requests-<shard>.csv``: one row per request (start time, step, status, code, ms, ok,
  ms spent waiting for a pooled connection);
- ``buyers-<shard>.jsonl``: one record per buyer (arrival, every position it was told, its
  first estimate, its admission time, holds, payments, cancels, charges, outcome);
- ``summary-<shard>.json`` at the end: the driver's own figures (sleep overshoot, pool waits).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from loadtests.drop.buyer import BuyerRecord
from loadtests.generator.pool import Req
from loadtests.generator.stats import percentile


class Recorder:
    """Requests (one CSV row each), buyers (JSON lines), appended to the shard's files every
    second; the counters of the progress file."""

    HEADER = "t,step,status,code,ms,ok,pool_ms\n"

    def __init__(self, out_dir: Path, shard: str) -> None:
        self.out_dir, self.shard = out_dir, shard
        self.req_path = out_dir / f"requests-{shard}.csv"
        self.buyer_path = out_dir / f"buyers-{shard}.jsonl"
        self.req_path.write_text(self.HEADER)
        self.buyer_path.write_text("")
        self.rows: list[str] = []
        self.buyers: list[BuyerRecord] = []
        self.requests = self.failures = self.started = self.done = 0
        self.overshoot: list[float] = []  # s a Wait woke after its time

    def request(self, t: float, req: Req, status: int, code: str, ms: float, pool_ms: float
                ) -> bool:
        ok = 200 <= status < 300 or (status, code) in req.expect
        self.requests += 1
        self.failures += not ok
        self.rows.append(f"{t:.4f},{req.name},{status},{code},{ms:.3f},{int(ok)},"
                         f"{pool_ms:.3f}\n")
        return ok

    def buyer_done(self, rec: BuyerRecord) -> None:
        rec.done = time.time()
        self.done += 1
        self.buyers.append(rec)

    def flush(self) -> None:
        if self.rows:
            with open(self.req_path, "a") as f:
                f.write("".join(self.rows))
            self.rows = []
        if self.buyers:
            with open(self.buyer_path, "ab") as f:
                f.write(b"".join(orjson.dumps(asdict(b)) + b"\n" for b in self.buyers))
            self.buyers = []

    def progress(self, total: int, **extra: Any) -> None:
        tmp = self.out_dir / f".progress-{self.shard}.json"
        tmp.write_text(json.dumps({"buyers": total, "started": self.started,
                                   "done": self.done, "requests": self.requests,
                                   "failures": self.failures, "t": time.time(), **extra}))
        tmp.replace(self.out_dir / f"progress-{self.shard}.json")

    def summary(self, **extra: Any) -> dict:
        o = self.overshoot
        return {"waits": len(o), "overshoot_ms_p50": (percentile(o, 0.5) or 0.0) * 1000,
                "overshoot_ms_p99": (percentile(o, 0.99) or 0.0) * 1000,
                "overshoot_ms_max": max(o, default=0.0) * 1000, **extra}


def read_buyers(out_dir: Path) -> list[dict]:
    out = []
    for path in sorted(out_dir.glob("buyers-*.jsonl")):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return sorted(out, key=lambda b: b["index"])


def read_progress(out_dir: Path) -> list[dict]:
    out = []
    for path in sorted(out_dir.glob("progress-*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out
