"""The reserve-and-cancel measurement runs, and its tokens stop at the cancel limit."""

from __future__ import annotations

import re
import subprocess
import sys

from devstack import REPO


def test_each_token_stops_at_the_cancel_limit() -> None:
    proc = subprocess.run([sys.executable, "-m", "loadtests.http_bench.mem_closed_holds",
                           "-c", "4"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "3 tokens in" in proc.stdout and "'CANCEL_LIMIT': 3" in proc.stdout, proc.stdout
    assert "8.0 cancels a token" in proc.stdout, proc.stdout
    per_hold = int(re.search(r"(\d+) bytes a closed hold", proc.stdout).group(1))
    assert 200 < per_hold < 2000, proc.stdout
