"""The proof-of-work bench (loadtests/pow_bench/solve.py) at tiny sizes, without the browser
(tests/test_gates_widget.py runs the widget): every figure is a number. No timing is asserted."""

from __future__ import annotations

import math

from loadtests.pow_bench import solve as bench


def test_pow_bench_measures_python_the_server_and_redis() -> None:
    rows, rate = bench.python_rows((1000,), runs=3)
    assert len(rows) == 1 and rows[0].startswith("| 1,000 |") and rate > 0
    make_us, verify_us = bench.server_costs(n=50)
    assert all(math.isfinite(x) and x > 0 for x in (make_us, verify_us))
    solved, code = bench.redis_bytes(n=2000)
    assert solved > 0 and code > 0
