"""The Redis-side benchmarks (loadtests/script_bench/: scripts.py, scaling.py) at tiny sizes:
they run against the test Redis, every call succeeds, and every row has numbers. No timing
is asserted: this only keeps the benchmarks working as the engine changes."""

from __future__ import annotations

import math

from loadtests.script_bench import scaling as bench_scaling
from loadtests.script_bench import scripts as bench_scripts


def test_bench_scripts_measures_every_script(redis_url: str) -> None:
    rows, notes = bench_scripts.run_scripts(redis_url, ops=60, batches=2,
                                               active_limit=50)
    assert [s.name for s in rows] == [name for name, _ in bench_scripts.ROWS]
    for s in rows:
        assert s.ops > 0, s
        assert s.ops_per_s > 0, s
        assert math.isfinite(s.cpu_us) and s.cpu_us >= 0, s
        assert s.batches >= 1, s
    text = bench_scripts.report(rows, notes, 60, 2, 1.0)
    assert text.count("\n| ") == len(bench_scripts.ROWS) + 1  # header and one row a script


def test_bench_scaling_measures_every_size(redis_url: str) -> None:
    sizes = (40, 120)
    # 60 reserves: 4 by each of the first 15 ACTIVE holders, within the ticket limit.
    points = bench_scaling.run_scaling(redis_url, sizes, issue_ops=10, status_ops=20,
                                       reserve_ops=60, charge_ops=20, batches=2)
    assert [p.size for p in points] == list(sizes)
    for p in points:
        assert p.tokens == p.size and p.customers == p.size
        for s in (p.issue, p.status, p.reserve, p.charge):
            assert s.ops > 0 and s.ops_per_s > 0 and math.isfinite(s.cpu_us), s
        assert p.position > 0
        assert all(b > 0 for b in p.key_bytes.values()), p.key_bytes
        assert p.used_memory > 0
    text = bench_scaling.report(points, "", 1.0)
    assert "waiting tokens took" in text
