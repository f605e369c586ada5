"""The hot-concert bench (loadtests/script_bench/hot.py) at a tiny size on one redis-server:
the bulk build is what issue.lua leaves (a poll of a built waiter finds it), every phase
reports a cost, the sweep drops the waiters made idle. No timing is asserted."""

from __future__ import annotations

import math
from pathlib import Path

from loadtests.script_bench import hot, issue_steps


def test_hot_bench_builds_a_queue_the_scripts_read_and_reports_every_phase(
        tmp_path: Path) -> None:
    assert hot.main(["--waiters", "20000", "--polls", "10000", "--issues", "1000", "--out",
                     str(tmp_path / "hot.md")]) == 0
    text = (tmp_path / "hot.md").read_text()
    assert "20,000 waiters" in text and "us of Redis CPU a poll" in text
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 10
    for row in rows:
        assert math.isfinite(float(row[4])) and float(row[4]) > 0, row
    dropped = int(rows[-1][5].strip().split()[0].replace(",", ""))
    # A tenth of the 21,000 places made idle: every one still waiting is dropped (the tick
    # admitted 100 of the places, a tenth of them among these).
    assert 2100 - 100 <= dropped <= 2100, dropped


def test_issue_steps_cuts_the_script_at_each_step() -> None:
    """Each variant runs (a cut that no longer compiles or matches a line stops the tool), and
    a longer cut costs no less than a shorter one by much."""
    costs = issue_steps.measure(calls=200, rounds=1)
    assert [step for step, _ in costs] == [s for s, _ in issue_steps.STEPS] + [issue_steps.LAST]
    assert all(us > 0 for _, us in costs)
    assert costs[-1][1] > costs[0][1]
    assert "| the join" in issue_steps.report(costs)
