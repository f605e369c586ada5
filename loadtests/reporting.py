"""Where the load tests' and benchmarks' reports go: ``loadtests/results/``."""

from __future__ import annotations

from pathlib import Path

from devstack import REPO

RESULTS = REPO / "loadtests" / "results"


def publish(report: str, name: str) -> Path:
    """Print a benchmark's report and write it to loadtests/results/<name>."""
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(report)
    print(f"written to {path.relative_to(REPO)}")
    return path
