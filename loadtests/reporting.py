"""What every load test's and benchmark's report shares: where it goes
(``loadtests/results/``), the line that says what machine made it, and matplotlib for its
charts."""

from __future__ import annotations

import os
import platform
from datetime import datetime
from pathlib import Path
from types import ModuleType

from devstack import REPO
from devstack.cpu import cores, cpu_model

RESULTS = REPO / "loadtests" / "results"


def publish(report: str, name: str) -> Path:
    """Print a benchmark's report and write it to loadtests/results/<name>."""
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(report)
    print(f"written to {path.relative_to(REPO)}")
    return path


def report_folder(out: Path | None, suffix: str = "") -> tuple[Path, datetime]:
    """``out``, or loadtests/results/<time><suffix>/, made and announced; and the time."""
    started = datetime.now()
    folder = out or RESULTS / f"{started:%Y%m%d-%H%M%S}{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"report folder: {folder}", flush=True)
    return folder, started


def machine() -> str:
    """The machine a figure comes from, e.g. ``2 cores (AMD EPYC 7B13)``."""
    return f"{cores()} cores ({cpu_model()})"


def host_line() -> str:
    """A benchmark report's second line: host, cores, Python."""
    return f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend (files, no display)."""
    # Imported here, not at the top: matplotlib is heavy (~0.5 s), an optional dev
    # dependency, and only the charts need it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
