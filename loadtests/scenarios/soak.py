"""The soak run's sampler and its leak rule.

Every few seconds it records Redis ``used_memory`` (INFO memory), the key count (DBSIZE), the
number of entries in concert 2's hashes and sorted sets (tokens, queue, holds, reservations:
what a leak inside a key would grow) and the API's RSS (VmRSS summed over its processes).

**The rule.** Samples of the warm-up (by default the first half of the run) are not judged.
Over the rest, a least-squares line is fitted to each series; the run fails if, for any
series, the line rises over that window by more than ``max(5 % of the series' mean, a
floor)``: 2 MiB for used_memory, 100 keys, 100 records, 8 MiB for RSS. A sawtooth (state that
expires) has a flat line; a leak has a rising one. With fewer than 6 samples, or a judged
window shorter than ``min_window`` (twice the longest TTL of the soak stack), the verdict is
"inconclusive", never a pass.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

import redis
from redis.cluster import RedisCluster

from engine.keys import concert_keys
from engine.sync import SyncRedis, sync_client

CONCERT = 2
MIN_SAMPLES = 6
# series -> (relative limit of the rise over the judged window, absolute floor, unit)
LIMITS: dict[str, tuple[float, float, str]] = {
    "redis_used_memory": (0.05, 2 * 2**20, "bytes"),
    "redis_keys": (0.05, 100, "keys"),
    "concert_records": (0.05, 100, "records"),
    "api_rss": (0.05, 8 * 2**20, "bytes"),
}


def rss_bytes(pids: list[int]) -> int | None:
    total, seen = 0, False
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    seen = True
        except OSError:
            continue
    return total if seen else None


def used_memory(r: SyncRedis) -> int:
    """used_memory of the Redis, summed over the masters of a cluster."""
    if isinstance(r, RedisCluster):
        info = r.info("memory", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(v["used_memory"]) for v in info.values())
    return int(r.info("memory")["used_memory"])


def concert_records(r: redis.Redis, concert: int = CONCERT) -> int:
    k = concert_keys(concert)
    with r.pipeline(transaction=False) as p:
        for key in (k.tokens, k.seqs, k.res, k.tickets):
            p.hlen(key)
        for key in (k.active, k.holds, k.paying, k.gone):
            p.zcard(key)
        p.llen(k.left)  # the departures the workers read (at most 100,000)
        return sum(p.execute())


class Sampler:
    """Samples in a thread from ``start()`` to ``stop()``; ``samples`` holds dicts with ``t``
    (seconds since start) and the four series (None when a source is not known)."""

    def __init__(self, redis_url: str | None, api_pids: list[int] | None,
                 every: float = 5.0) -> None:
        self.redis = sync_client(redis_url, socket_timeout=2) if redis_url else None
        self.api_pids = api_pids or []
        self.every = every
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._t0 = 0.0

    def sample(self) -> dict[str, float]:
        s: dict[str, float] = {"t": round(time.monotonic() - self._t0, 2)}
        if self.redis is not None:
            try:
                s["redis_used_memory"] = float(used_memory(self.redis))
                s["redis_keys"] = float(self.redis.dbsize())  # a cluster: over its masters
                s["concert_records"] = float(concert_records(self.redis))
            except redis.RedisError:
                pass  # a missed sample, not a verdict
        rss = rss_bytes(self.api_pids)
        if rss is not None:
            s["api_rss"] = float(rss)
        return s

    def _run(self) -> None:
        while True:
            self.samples.append(self.sample())
            if self._stop.wait(self.every):
                return

    def start(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join(10)
        if self.redis is not None:
            self.redis.close()
        return self.samples


@dataclass
class SeriesVerdict:
    series: str
    unit: str
    samples: int
    mean: float
    slope_per_min: float
    rise: float  # of the fitted line over the judged window
    limit: float
    ok: bool
    line: tuple[float, float, float, float]  # the fitted line: (t0, y0, t1, y1)


def slope(points: list[tuple[float, float]]) -> float:
    mx, my = fmean(p[0] for p in points), fmean(p[1] for p in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def judge(samples: list[dict[str, float]], warmup_s: float,
          min_window_s: float = 0.0) -> tuple[str, list[SeriesVerdict], str]:
    """("pass" | "fail" | "inconclusive", per-series verdicts, a sentence)."""
    judged = [s for s in samples if s["t"] >= warmup_s]
    window = judged[-1]["t"] - judged[0]["t"] if len(judged) > 1 else 0.0
    verdicts = []
    for series, (rel, floor, unit) in LIMITS.items():
        points = [(s["t"], s[series]) for s in judged if s.get(series) is not None]
        if len(points) < MIN_SAMPLES:
            continue
        b = slope(points)
        mean, mt = fmean(p[1] for p in points), fmean(p[0] for p in points)
        t0, t1 = points[0][0], points[-1][0]
        rise = b * (t1 - t0)
        limit = max(rel * mean, floor)
        line = (t0, mean + b * (t0 - mt), t1, mean + b * (t1 - mt))
        verdicts.append(SeriesVerdict(series, unit, len(points), mean, b * 60, rise, limit,
                                      rise <= limit, line))
    if not verdicts:
        return "inconclusive", verdicts, (
            f"{len(judged)} samples after a {warmup_s:.0f} s warm-up: {MIN_SAMPLES} are needed")
    if window < min_window_s:
        return "inconclusive", verdicts, (
            f"the judged window ({window:.0f} s after a {warmup_s:.0f} s warm-up) is shorter "
            f"than {min_window_s:.0f} s: run longer")
    bad = [v.series for v in verdicts if not v.ok]
    if bad:
        return "fail", verdicts, f"still growing after the warm-up: {', '.join(bad)}"
    return "pass", verdicts, (
        f"flat after a {warmup_s:.0f} s warm-up over {window:.0f} s ({len(judged)} samples)")
