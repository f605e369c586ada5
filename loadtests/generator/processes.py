"""The load generators' processes (locust, the asyncio shards): started in a session of their
own with their output in a log file, stopped the way locust wants (SIGINT: it stops its users
and writes its CSVs), killed when they do not stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import IO

from devstack import REPO


def interrupt(proc: subprocess.Popen, group: bool = False, wait: float = 20) -> None:
    """SIGINT to ``proc``, or with ``group`` to its whole process group, then after ``wait``
    seconds SIGKILL to its group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Generators:
    """Generator processes run from the repo, each in a session of its own (the runner's
    Ctrl-C spares them: ``stop`` ends each whole group) writing to its own log file."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.logs: list[IO[str]] = []

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        f = open(log, "w")  # closed by stop()
        self.logs.append(f)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def any_exited(self) -> bool:
        return any(p.poll() is not None for p in self.procs)

    def all_exited(self) -> bool:
        return all(p.poll() is not None for p in self.procs)

    def stop(self, grace: float = 0.0) -> None:
        """Each process: ``grace`` seconds to end by itself, then SIGINT to its group and
        SIGKILL 15 s later; then the logs closed."""
        for p in self.procs:
            if grace:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(grace)
            interrupt(p, group=True, wait=15)
        for f in self.logs:
            f.close()
