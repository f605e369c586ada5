"""What every load test's and benchmark's report shares: where it goes
(``loadtests/results/``), the line that says what machine made it, and matplotlib for its
charts."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType

from devstack import REPO
from devstack.cpu import cores, cpu_model

RESULTS = REPO / "loadtests" / "results"


def publish(report: str, to: str | Path) -> Path:
    """Print a benchmark's report and write it to ``to``: a path, or a file name in
    loadtests/results/."""
    print("\n" + report)
    path = to if isinstance(to, Path) else RESULTS / to
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report)
    shown = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
    print(f"written to {shown}")
    return path


def bench_report(title: str, body: str, note: str = "") -> str:
    """A benchmark's report: its title and the time, the host (``note`` after it), the body."""
    return f"## {title}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n{host_line()}{note}\n\n{body}"


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
