"""``python -m api.serve``: the API under granian or uvicorn with the flags measured for it
(``make run``, the Dockerfile and the test and load-test stacks all build their command here).

Both get uvloop, one process per worker, a listen backlog for a burst of connects, and
keep-alive past any client's idle time. What differs (measured, see docs/performance.md):

- granian admits at most ``--backpressure`` connections per worker (a semaphore held for a
  connection's life, default 1,024) and leaves the rest unaccepted in the backlog: it is set
  to ``CONNECTIONS_PER_WORKER`` so that 10,000 keep-alive clients are served by one worker.
  The API sheds excess *requests* itself (``MAX_IN_FLIGHT``, api/asgi.py ``Guard``).
- granian closes a keep-alive connection idle for ``--http1-header-read-timeout`` (30 s by
  default, 60 s at most); uvicorn after ``--timeout-keep-alive`` (5 s by default: the report's
  locust users idle 1-5 s, so requests raced the close). Put a load balancer's idle timeout
  below these.
- granian answers 431 itself, with an empty body, to more than 100 headers, and to a head not
  yet ended after ``--http1-buffer-size`` (~408 KiB) of it. hyper checks that size only between
  reads of an unfinished head: when one read brings the rest of a longer head, the app gets it
  whole. ``Guard`` answers those, and past 16 KiB anything under uvicorn (httptools takes any
  size), with 431 problem+json.
- a dead worker: uvicorn's supervisor starts another; granian does with
  ``--respawn-failed-workers`` (without it the whole server exits).
- Ctrl-C (SIGINT to the process group): uvicorn's workers and supervisor each take it; granian
  runs through api/granian_cli.py, whose workers leave it to their supervisor (the SIGINT
  beside the supervisor's SIGTERM could hang a granian worker for good) and keep a SIGTERM
  that comes while they boot until they can act on it (granian lost it, and then waited on
  that worker for ever).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

SERVERS = ("granian", "uvicorn")
# granian: more requests per worker on the reads a drop is made of (status polls ~1.4x, point
# reads ~1.15x, two workers ~1.2x), fewer on issue and reserve, a tie on pay; and it passed
# every fault test (tests/test_faults.py, tests/test_server.py). See docs/performance.md.
DEFAULT_SERVER = "granian"
# Kernel accept queue for a burst of new connections (Linux caps it at net.core.somaxconn).
BACKLOG = 4096
# granian's connections per worker (its --backpressure); each idle one costs ~ KiB of RSS.
CONNECTIONS_PER_WORKER = 16384
UVICORN_KEEP_ALIVE_SECONDS = 75
GRANIAN_KEEP_ALIVE_MS = 60_000  # the largest granian takes
# File descriptors: one a connection, plus Redis, logs and the interpreter's own.
WANT_NOFILE = 65536


def command(server: str, app: str = "api.app:app", *, host: str = "127.0.0.1",
            port: int = 8000, workers: int = 1, log_level: str = "warning") -> list[str]:
    """The argv that serves ``app`` under ``server`` (``granian`` or ``uvicorn``)."""
    if server == "uvicorn":
        cmd = [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port),
               "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--timeout-keep-alive", str(UVICORN_KEEP_ALIVE_SECONDS),
               "--backlog", str(BACKLOG), "--log-level", log_level,
               "--no-proxy-headers"]  # X-Forwarded-For: the app's TRUSTED_PROXIES decide
        return cmd + (["--workers", str(workers)] if workers > 1 else [])
    if server == "granian":
        # granian's CLI, its workers leaving SIGINT to the supervisor (api/granian_cli.py)
        return [sys.executable, "-m", "api.granian_cli", "--interface", "asgi", "--loop", "uvloop",
                "--http", "1", "--no-ws", "--host", host, "--port", str(port),
                "--workers", str(workers), "--backlog", str(BACKLOG),
                "--backpressure", str(CONNECTIONS_PER_WORKER),
                "--http1-header-read-timeout", str(GRANIAN_KEEP_ALIVE_MS),
                "--respawn-failed-workers", "--log-level", log_level, app]
    raise ValueError(f"server must be one of {', '.join(SERVERS)}, got {server!r}")


def raise_nofile(want: int = WANT_NOFILE) -> int:
    """Raise this process's open-file limit (inherited by the server it execs) towards
    ``want``, as far as the hard limit allows; returns the soft limit now in force. Debian's
    default soft limit, 1,024, would refuse the 1,000th concurrent connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default=os.environ.get("SERVER") or DEFAULT_SERVER,
                   choices=SERVERS, help=f"default: $SERVER or {DEFAULT_SERVER}")
    p.add_argument("--app", default="api.app:app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    nofile = raise_nofile()
    if nofile < 2 * CONNECTIONS_PER_WORKER // 3:
        print(f"api.serve: open files limited to {nofile} (ulimit -n, its hard limit): about "
              "that many concurrent connections at most", file=sys.stderr)
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        somaxconn = BACKLOG
    if somaxconn < BACKLOG:
        print(f"api.serve: net.core.somaxconn is {somaxconn}: the kernel caps the listen "
              f"backlog ({BACKLOG}) there; a burst of connects past it waits for SYN retries",
              file=sys.stderr)
    cmd = command(args.server, args.app, host=args.host, port=args.port,
                  workers=args.workers, log_level=args.log_level)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # the server becomes this process: signals reach it directly


if __name__ == "__main__":
    main()
