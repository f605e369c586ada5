"""CPU accounting from /proc: the CPU seconds of processes, of process trees (a load
generator and what it forks) and of the whole machine, which benchmarks set against each
other to say who was busy (a shared box runs other work beside them)."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process so far; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (the ones still running)."""
    return sum(v for v in (process_cpu(p) for p in pids) if v is not None)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (of every thread of it)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    tree, i = [pid], 0
    while i < len(tree):
        tree += children(tree[i])
        i += 1
    return tree


class TreeCpu:
    """CPU seconds of process trees (a generator and whatever it forks); a process that has
    exited keeps the last value read of it."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.seen: dict[int, float] = {}

    def read(self) -> float:
        for root in self.roots:
            for pid in process_tree(root):
                v = process_cpu(pid)
                if v is not None:
                    self.seen[pid] = v
        return sum(self.seen.values())


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat: all but idle and
    iowait): set against the processes measured, it shows how much other work ran beside."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def wait_for_quiet(max_cores: float = 0.3, timeout: float = 120, window: float = 0.5) -> float:
    """Until the machine's busy CPU over ``window`` s falls under ``max_cores`` (other work on
    a shared box: a benchmark's own processes idle between runs), at most ``timeout`` s.
    Returns the last level seen, so that a report can say it went on regardless."""
    deadline = time.monotonic() + timeout
    while True:
        t0, c0 = time.monotonic(), machine_cpu_seconds()
        time.sleep(window)
        busy = (machine_cpu_seconds() - c0) / (time.monotonic() - t0)
        if busy < max_cores or time.monotonic() > deadline:
            return busy


def peaks(points: list[tuple[float, float, float]], window: float = 5.0) -> tuple[float, float]:
    """From samples (time, CPU seconds of A, CPU seconds of B), the highest average over
    ``window`` seconds of A's cores and of A's + B's together."""
    best_a = best_both = 0.0
    j = 0
    for i in range(len(points)):
        while points[i][0] - points[j][0] > window:
            j += 1
        dt = points[i][0] - points[j][0]
        if dt >= window * 0.8:
            a = (points[i][1] - points[j][1]) / dt
            best_a = max(best_a, a)
            best_both = max(best_both, a + (points[i][2] - points[j][2]) / dt)
    return best_a, best_both


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
