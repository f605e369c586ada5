"""Machinery of the Redis-side benchmarks (script_bench/scripts.py, scaling.py): the engine's own
functions produce the exact commands, a lean pipelined connection sends them, and Redis's own
counters say what each cost.

- ``Stepper``: a stand-in for the engine's transport. Each engine coroutine (``issue_token``,
  ``reserve``, ``pay``, ...) runs on a real ``engine.store.Store`` until it awaits Redis; its
  packed command (byte for byte what the API would send) is collected instead of sent. The
  commands of many coroutines are then sent together, the replies handed back, and the
  coroutines go on (a stepped ``pay`` thus runs as three rounds: pay_begin, debit,
  pay_finish). Replies go through the engine's own checks (``raise_for``): a refused call is a
  failure, not a number.
- ``Pipe``: one blocking socket with a ``hiredis.Reader``. Commands are packed before the clock
  starts and written in batches, two batches in flight, so the client costs ~1 µs a command and
  the throughput is mostly Redis's.
- ``Meter``: around each timed batch, ``CONFIG RESETSTAT`` and ``INFO cpu`` before, ``INFO cpu``
  and ``INFO commandstats`` after: Redis CPU (``used_cpu_user + used_cpu_sys``, all its threads,
  AOF writes included) per call, and the time EVALSHA itself took per call.

Nothing here talks to anything but the Redis URL it is given (the benchmarks start their own).
"""

from __future__ import annotations

import hashlib
import math
import socket
import statistics
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import hiredis

from engine.config import Settings
from engine.scripts import load_sources
from engine.store import Store

ReplyError = hiredis.ReplyError
pack = hiredis.pack_command

SCRIPT_NAMES = {hashlib.sha1(src.encode()).hexdigest().encode(): name
                for name, src in load_sources().items()}


class Pipe:
    """A blocking, pipelined Redis connection: ``call`` one command, ``run`` many."""

    BATCH = 1000  # commands a write

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), 10)
        self.sock.settimeout(120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()
        db = int((u.path or "/0").strip("/") or 0)
        if db:
            self.call("SELECT", db)

    def call(self, *args: Any) -> Any:
        self.sock.sendall(pack(args))
        reply = self._read(1)[0]
        if type(reply) is ReplyError:
            raise RuntimeError(f"Redis refused {args[0]}: {reply}")
        return reply

    def _read(self, count: int) -> list:
        out: list = []
        reader, recv = self.reader, self.sock.recv
        while len(out) < count:
            reply = reader.gets()
            if reply is False:
                data = recv(1 << 20)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                reader.feed(data)
            else:
                out.append(reply)
        return out

    @classmethod
    def batches(cls, packed: Sequence[bytes]) -> list[tuple[bytes, int]]:
        """The commands as write buffers (done before the clock starts)."""
        return [(b"".join(packed[i:i + cls.BATCH]), len(packed[i:i + cls.BATCH]))
                for i in range(0, len(packed), cls.BATCH)]

    def run(self, batches: list[tuple[bytes, int]]) -> list:
        """Send every batch, keeping two in flight, and return all replies in order."""
        replies: list = []
        in_flight: list[int] = []
        for data, count in batches:
            self.sock.sendall(data)
            in_flight.append(count)
            if len(in_flight) > 1:
                replies += self._read(in_flight.pop(0))
        for count in in_flight:
            replies += self._read(count)
        return replies

    def info(self, section: str) -> dict[str, str]:
        text = self.call("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def cpu(self) -> float:
        i = self.info("cpu")
        return float(i["used_cpu_user"]) + float(i["used_cpu_sys"])

    def used_memory(self) -> int:
        return int(self.info("memory")["used_memory"])

    def settle(self, timeout: float = 120) -> None:
        """Wait until no AOF rewrite runs or is scheduled (a fork mid-measure would count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.info("persistence")
            if p.get("aof_rewrite_in_progress") == "0" and p.get("aof_rewrite_scheduled") == "0":
                return
            time.sleep(0.1)

    def load_scripts(self) -> None:
        for src in load_sources().values():
            self.call("SCRIPT", "LOAD", src)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Sample:
    """One timed batch of calls of one script."""

    ops: int
    seconds: float
    cpu_seconds: float  # Redis process CPU over the batch
    script_usec: float  # EVALSHA's own time per call (INFO commandstats)


@dataclass
class Meter:
    """Timed batches, by script name."""

    pipe: Pipe
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def timed(self, name: str, packed: Sequence[bytes]) -> list:
        batches = Pipe.batches(packed)
        self.pipe.call("CONFIG", "RESETSTAT")
        c0 = self.pipe.cpu()
        t0 = time.perf_counter()
        replies = self.pipe.run(batches)
        seconds = time.perf_counter() - t0
        c1 = self.pipe.cpu()
        stats = self.pipe.info("commandstats").get("cmdstat_evalsha", "")
        per_call = dict(kv.split("=") for kv in stats.split(",") if "=" in kv)
        self.samples.setdefault(name, []).append(Sample(
            len(packed), seconds, c1 - c0, float(per_call.get("usec_per_call", "nan"))))
        return replies


@dataclass
class Summary:
    name: str
    ops: int
    ops_per_s: float  # median over the batches
    cpu_us: float  # Redis CPU µs per call, median over the batches
    cpu_us_min: float
    cpu_us_max: float
    script_us: float  # EVALSHA time µs per call, median over the batches
    batches: int


def summarise(name: str, samples: list[Sample]) -> Summary:
    per_op = [s.cpu_seconds / s.ops * 1e6 for s in samples]
    return Summary(
        name=name, ops=sum(s.ops for s in samples),
        ops_per_s=statistics.median(s.ops / s.seconds for s in samples),
        cpu_us=statistics.median(per_op), cpu_us_min=min(per_op), cpu_us_max=max(per_op),
        script_us=statistics.median(s.script_usec for s in samples), batches=len(samples),
    )


class _Await:
    """What the stepped store's transport returns: the driver gets the packed command, the
    coroutine gets the reply."""

    __slots__ = ("packed",)

    def __init__(self, packed: bytes) -> None:
        self.packed = packed

    def __await__(self):  # type: ignore[no-untyped-def]
        return (yield self)


class _StepTransport:
    """Stands in for ``engine.transport.PipelinedRedis`` under a ``Store``."""

    def call(self, packed: bytes, slot: int = 0, waited: bool = False) -> _Await:
        return _Await(packed)

    def trouble(self, slot: int) -> None:
        pass

    async def aclose(self) -> None:
        pass


def stepped_store(settings: Settings) -> Store:
    """A real ``Store`` (script registry, error mapping) whose commands the driver sends."""
    return Store(_StepTransport(), settings)  # type: ignore[arg-type]


def script_of(packed: bytes) -> str:
    """The script name of a packed EVALSHA (else the command's name)."""
    parts = packed.split(b"\r\n", 5)
    if parts[2].upper() == b"EVALSHA":
        return SCRIPT_NAMES.get(parts[4], parts[4].decode())
    return parts[2].decode().lower()


class CallsFailed(RuntimeError):
    pass


def untimed(_name: str) -> bool:
    """``drive(..., measure=untimed)``: preparation, not measured."""
    return False


def drive(
    meter: Meter,
    calls: Iterable[Coroutine[Any, Any, Any]],
    *,
    measure: Callable[[str], bool] | None = None,
    chunk: int = 10_000,
    keep: bool = False,
    label: str = "calls",
    suffix: str = "",
) -> list:
    """Run engine coroutines ``chunk`` at a time: each round sends the commands every live
    coroutine awaits, one timed batch per script (untimed when ``measure(name)`` is false),
    then hands back the replies. Returns the results when ``keep``; raises ``CallsFailed`` when
    any call raised (a refusal by a script included). Samples are filed under the script's
    name plus ``suffix``."""
    results: list = []
    failed: list[BaseException] = []
    pipe = meter.pipe
    it = iter(calls)
    while True:
        coros = [c for _, c in zip(range(chunk), it, strict=False)]
        if not coros:
            break
        done: list = [None] * len(coros)
        waiting: dict[int, _Await] = {}

        def step(i: int, value: Any, coros: list = coros, done: list = done,
                 waiting: dict = waiting) -> None:
            try:
                aw = coros[i].send(value)
            except StopIteration as stop:
                done[i] = stop.value
            except Exception as e:
                failed.append(e)
            else:
                if not isinstance(aw, _Await):
                    coros[i].close()
                    raise TypeError(f"an engine call awaited {aw!r}, not Redis")
                waiting[i] = aw

        for i in range(len(coros)):
            step(i, None)
        while waiting:
            rounds: dict[str, list[int]] = {}
            for i, aw in waiting.items():
                rounds.setdefault(script_of(aw.packed), []).append(i)
            current = dict(waiting)
            waiting.clear()
            for name, idx in rounds.items():
                packed = [current[i].packed for i in idx]
                if measure is None or measure(name):
                    replies = meter.timed(name + suffix, packed)
                else:
                    replies = pipe.run(Pipe.batches(packed))
                for i, reply in zip(idx, replies, strict=True):
                    step(i, reply)
        if failed:
            raise CallsFailed(f"{len(failed)} of {len(coros)} {label} failed; the first: "
                              f"{failed[0]!r}")
        if keep:
            results += done
    return results


def chunk_for(ops: int, batches: int = 4) -> int:
    """Coroutines a round so that ``ops`` calls make ``batches`` timed batches."""
    return max(1, math.ceil(ops / batches))
