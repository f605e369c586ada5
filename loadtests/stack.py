"""Processes for benchmarks and tests: a redis-server from the repo's redis.conf on a free
port in a temp dir, and an ASGI server (uvicorn or granian) serving an app. Both stop with the
context that started them; nothing here listens beyond 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import redis

from api import serve

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}") from None
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


def wait_for_http(port: int, proc: subprocess.Popen, what: str, timeout: float = 15) -> None:
    """Until an HTTP answer (any status) comes back on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer HTTP on {port} within {timeout} s")


class RedisServer:
    """One redis-server from the repo's redis.conf; restartable on the same port and data
    directory (the durability and recovery tests restart it from its AOF)."""

    def __init__(self, workdir: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(workdir)
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH: `make install` installs it")
        self.proc = subprocess.Popen(
            [exe, str(REPO / "redis.conf"), "--port", str(self.port), "--dir", str(self.dir),
             "--logfile", str(self.dir / "redis.log"), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    client.close()
                    return self
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start: see {self.dir}/redis.log") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Server:
    """An ASGI server (``kind``: granian or uvicorn, flags from api/serve.py) serving ``app``
    on 127.0.0.1 with ``env`` added; its stderr is kept for ``log()``."""

    kind = ""

    def __init__(self, app: str, env: dict[str, str] | None = None, workers: int = 1,
                 port: int | None = None, *, own_group: bool = False) -> None:
        self.app, self.env, self.workers = app, env or {}, workers
        self.port = port or free_port()
        self.own_group = own_group  # a process group of its own: interrupt() is a Ctrl-C
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r}, workers={self.workers}, port={self.port})"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return serve.command(self.kind, self.app, port=self.port, workers=self.workers)

    def start(self) -> Server:
        self._log = tempfile.TemporaryFile()
        serve.raise_nofile()  # inherited: a connection test may hold thousands of sockets
        self.proc = subprocess.Popen(self.command(), cwd=REPO, env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=self._log,
                                     process_group=0 if self.own_group else None)
        what = f"{self.kind} {self.app}"
        wait_for_port(self.port, self.proc, what)
        # granian's main process listens before its workers have loaded the app (and uvicorn's
        # with --workers): wait for the workers, then for an answer from one.
        deadline = time.monotonic() + 15
        while self.workers > 1 or self.kind != "uvicorn":
            if len(self.pids()) >= self.workers and self.pids() != [self.proc.pid]:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what}: no {self.workers} workers\n{self.log()}")
            time.sleep(0.05)
        wait_for_http(self.port, self.proc, what)
        if self.workers > 1:
            time.sleep(1)  # an answer comes from the first worker ready; let the others boot
        return self

    def pids(self) -> list[int]:
        """The serving processes (the workers, or the single process)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            kids = [int(p) for p in children.read_text().split()]
        except OSError:
            kids = []
        return [p for p in kids if "resource_tracker" not in _cmdline(p)] or [self.proc.pid]

    def all_pids(self) -> list[int]:
        """Every process of the server: the supervisor too (its CPU counts)."""
        assert self.proc is not None
        return sorted({self.proc.pid, *self.pids()})

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def interrupt(self) -> None:
        """SIGINT as a terminal's Ctrl-C sends it: to the whole group when it has its own."""
        assert self.proc is not None
        if self.own_group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                for pid in self.pids():  # granian's workers are not in a group of their own
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Uvicorn(Server):
    """uvicorn (uvloop, httptools, keep-alive 75 s)."""

    kind = "uvicorn"


class Granian(Server):
    """granian (``--interface asgi --loop uvloop``, HTTP/1, the limits of api/serve.py)."""

    kind = "granian"


SERVER_CLASSES: dict[str, type[Server]] = {"uvicorn": Uvicorn, "granian": Granian}


def server(kind: str, app: str, env: dict[str, str] | None = None, workers: int = 1,
           port: int | None = None, *, own_group: bool = False) -> Server:
    """A server of ``kind`` (``uvicorn`` or ``granian``), not yet started."""
    if kind not in SERVER_CLASSES:
        raise ValueError(f"server kind must be one of {', '.join(SERVER_CLASSES)}: {kind!r}")
    return SERVER_CLASSES[kind](app, env, workers, port, own_group=own_group)


def default_server() -> str:
    """The server tests and load tests use: ``$SERVER`` when set, else api/serve.py's."""
    return os.environ.get("SERVER") or serve.DEFAULT_SERVER


def api_server(env: dict[str, str] | None = None, workers: int = 1) -> Server:
    """The API under the default server, not yet started."""
    return server(default_server(), "api.app:app", env, workers)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat): set against the
    processes measured, it shows how much other work ran beside a benchmark."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


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


def publish(report: str, name: str) -> Path:
    """Print a benchmark's report and write it to loadtests/results/<name>."""
    print("\n" + report)
    results = REPO / "loadtests" / "results"
    results.mkdir(exist_ok=True)
    path = results / name
    path.write_text(report)
    print(f"written to {path.relative_to(REPO)}")
    return path
