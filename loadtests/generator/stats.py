"""The load tests' statistics, one definition each: the percentile of a sample, rank
correlation and FIFO inversions (the drop's fairness), and a latency histogram of 4 %
buckets whose percentiles the stress ramp merges across processes and seconds."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (0..1) of ``values``, interpolated linearly between the closest ranks
    (numpy's default, ``statistics.quantiles(method="inclusive")``); None for no values."""
    s = sorted(values)
    if not s:
        return None
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties given their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (Pearson's of the ranks, ties averaged)."""
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return sxy / (sx * sy) if sx and sy else None


def inversions_beyond(pairs: list[tuple[float, float]], slack: float) -> int:
    """Pairs (arrival, admission) sorted by arrival where a later arrival was admitted more
    than ``slack`` seconds before an earlier one (FIFO broken beyond one batch)."""
    count, latest = 0, -math.inf
    for _, admitted in sorted(pairs):
        if admitted < latest - slack:
            count += 1
        latest = max(latest, admitted)
    return count


# --- a latency histogram ---
BUCKET = 1.04  # histogram buckets: ms in [0.01 * 1.04^i, 0.01 * 1.04^(i+1))


def bucket(ms: float) -> int:
    return max(0, int(math.log(max(ms, 0.01) / 0.01, BUCKET)))


def bucket_ms(i: int) -> float:
    """The upper edge of bucket i (a percentile read from a histogram errs high, by < 4 %)."""
    return 0.01 * BUCKET ** (i + 1)


def hist_percentile(hist: Counter, q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    need, seen = q * total, 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= need:
            return bucket_ms(i)
    return bucket_ms(max(hist))
