"""The stress ramp's pure parts: the latency histogram's percentiles and the steps' levels."""

from __future__ import annotations

import random
from collections import Counter

from loadtests import stressgen
from loadtests.stress import build_parser, levels


def test_histogram_percentiles_err_high_by_under_a_bucket() -> None:
    rng = random.Random(2)
    values = [rng.lognormvariate(0, 1) for _ in range(20_000)]
    hist = Counter(stressgen.bucket(v) for v in values)
    exact = sorted(values)
    for q in (0.5, 0.99):
        got = stressgen.hist_percentile(hist, q)
        want = exact[int(q * len(exact))]
        assert want <= got * 1.001 and got <= want * stressgen.BUCKET ** 2


def test_ramp_levels() -> None:
    args = build_parser().parse_args(["--start", "100", "--max-users", "400"])
    assert levels(args) == [100, 150, 225, 338, 400]
    args = build_parser().parse_args(["--start", "100", "--step", "100", "--max-users", "300"])
    assert levels(args) == [100, 200, 300]
