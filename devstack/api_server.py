"""The API (or any ASGI app) as a real server process: granian or uvicorn with the flags of
api/serve.py, on 127.0.0.1 and a free port, its stderr kept; it stops with the context that
started it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from api import serve
from devstack import REPO
from devstack.ports import free_port, wait_for_http, wait_for_port


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


def server_kinds(text: str) -> list[str]:
    """``granian,uvicorn`` -> the kinds, each checked (an argparse ``type``)."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds or any(k not in SERVER_CLASSES for k in kinds):
        raise argparse.ArgumentTypeError(f"servers: some of {', '.join(SERVER_CLASSES)}")
    return kinds


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
