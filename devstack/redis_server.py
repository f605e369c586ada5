"""One redis-server from the repo's redis.conf on a free port (or a given one), its data and
log in a directory of the caller's; it stops with the context that started it."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from devstack import REPO
from devstack.ports import free_port


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

    def pids(self) -> list[int]:
        """The server's process, when it runs."""
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

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


@contextlib.contextmanager
def temp_redis(*extra: str, prefix: str = "redis-") -> Iterator[RedisServer]:
    """A redis-server (``extra``: more of its arguments) in a temp dir of its own, stopped and
    the dir removed at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, RedisServer(Path(tmp), *extra) as rs:
        yield rs
