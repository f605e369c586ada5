"""A node whose changes wait for its replicas (``REDIS_WAIT_REPLICAS`` > 0) without making
anything else wait.

The ``WAIT`` that acknowledges a batch of writes (engine/transport.py) holds its connection
until the replicas have the batch or its timeout passes. On one shared connection every read
queued behind it waited too, and a master with no replica (a replica just promoted, or one
whose replica is dead, stopped or resyncing) held every read of its shard for the WAIT
timeout, batch after batch (a review measured a killed master's shard reading again 15-34 s
after the kill, against 2.7 s without WAIT). So a node here has two connections:

- **reads** carries every call that is not a waited write (reads, the tick, a read's own
  small writes, pay's first step) and never a WAIT;
- **writes** carries the waited writes and their group-commit WAIT, nothing else.

A read sent after a write was answered still sees it: both connections go to the same
master, which applied the write before its WAIT answered.

**Replica health.** A master that cannot acknowledge refuses at once rather than making each
write wait out the timeout and answer "may have been applied". The node is *short* of
replicas when a batch's WAIT saw fewer than asked, or when the writes connection is (re)opened
and a ``WAIT n <timeout>`` on it says so (with no write on the connection yet, WAIT answers at
once with the replicas online). While short, waited writes are refused without being sent
(``ReplicasMissing``: nothing was applied), and a probe runs, only then: the same WAIT on the
writes connection, which answers as soon as the replicas have the connection's last write (a
stopped replica resumed, a new one synced), a few times a second while they do not. A healthy
node's waited call costs two attribute checks, and no timer. A WAIT answered by an error (a
master turned replica) says nothing of replicas: the writes go, and their MOVED moves the
cluster client on.

Redis's own ``min-replicas-to-write`` refuses writes on the server instead, but it counts a
replica as present until ``min-replicas-max-lag`` seconds without an ack (replicas ack once a
second: with the tightest, 1 s, writes were still acknowledged 1.9-2.9 s after the replica
stopped), acknowledges writes that no replica has yet, and binds every client of the server;
docs/cluster.md compares them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from engine.transport import PipelinedRedis, ReplicasMissing, TransportError, pack

PROBE_EVERY = 0.2  # seconds between the starts of two probes of a node short of replicas


class ReplicatedNode:
    """One node as ``PipelinedRedis`` (an ``engine.connection.Node``, and a ``Connection`` of
    one node), with waited writes on a connection of their own and refused at once while the node is
    short of replicas. Takes ``PipelinedRedis``'s arguments."""

    def __init__(self, url: str = "", *, wait_replicas: int, wait_timeout_ms: int,
                 **options: Any) -> None:
        self.reads = PipelinedRedis(url, **options)
        self.writes = PipelinedRedis(url, wait_replicas=wait_replicas,
                                     wait_timeout_ms=wait_timeout_ms, on_short=self._saw,
                                     **options)
        self.host, self.port = self.reads.host, self.reads.port
        self.wanted = wait_replicas
        # WAIT 0 would block for ever: a probe waits at least a millisecond.
        self._probe_command = pack(("WAIT", wait_replicas, max(1, wait_timeout_ms)))
        self.short: int | None = None  # replicas seen while fewer than wanted; None: enough
        self._checking: asyncio.Task | None = None  # the probe of a (re)opened connection
        self._recovering: asyncio.Task | None = None  # probes while short
        self._probed_at = -1e9
        self._closed = False

    # --- calls ---------------------------------------------------------------------------
    def call(self, packed: bytes, slot: int = 0, waited: bool = False) -> Any:
        if not waited:
            return self.reads.call(packed, slot)
        if self.short is not None:
            raise self._refusal()
        if not self.writes.connected:
            return self._call_after_check(packed, slot)
        return self.writes.call(packed, slot, True)

    async def execute(self, *args: Any) -> Any:
        return await self.reads.execute(*args)

    async def call_asking(self, packed: bytes, waited: bool = False) -> Any:
        if not waited:
            return await self.reads.call_asking(packed)
        await self._check()
        return await self.writes.call_asking(packed, True)

    def node_of(self, slot: int) -> tuple[str, int]:
        return self.host, self.port

    def masters(self) -> list[tuple[str, int]]:
        return [(self.host, self.port)]

    def node(self, address: tuple[str, int]) -> ReplicatedNode:
        return self

    async def _call_after_check(self, packed: bytes, slot: int) -> Any:
        await self._check()
        return await self.writes.call(packed, slot, True)

    async def _check(self) -> None:
        """Open the writes connection and probe it, once for every caller meanwhile; raise
        ``ReplicasMissing`` when the node is short (or ``TransportError``: unreachable)."""
        if self.short is None and not self.writes.connected:
            if self._checking is None:
                self._checking = asyncio.get_running_loop().create_task(self._probe())
                self._checking.add_done_callback(self._checked)
            # shield: one caller giving up must not cancel the probe others wait for
            await asyncio.shield(self._checking)
        if self.short is not None:
            raise self._refusal()

    def _checked(self, task: asyncio.Task) -> None:
        self._checking = None
        if not task.cancelled():
            task.exception()  # retrieved: its callers got it

    def _refusal(self) -> ReplicasMissing:
        self._recover_soon()
        return ReplicasMissing(
            f"Redis at {self.host}:{self.port} has {self.short} of the {self.wanted} replicas "
            "in sync that a change must reach (REDIS_WAIT_REPLICAS): refused before it was sent")

    # --- replica health ------------------------------------------------------------------
    def _saw(self, acked: Any) -> None:
        """A batch's WAIT (or a probe) saw fewer replicas than wanted. An error instead (a
        master turned replica after a failover) says nothing of replicas: the writes sent there
        say it better (MOVED, and the cluster client moves on), so they are not refused."""
        if type(acked) is int:
            self.short = acked
            self._recover_soon()

    async def _probe(self) -> None:
        acked = await self.writes.call(self._probe_command)
        if type(acked) is int and acked < self.wanted:
            self._saw(acked)
        else:
            self.short = None

    def _recover_soon(self) -> None:
        """Probe until the replicas are back; at most one prober, started at most every
        PROBE_EVERY (one that stopped, the node unreachable, starts again with the next
        refused call)."""
        if self._recovering is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._probed_at >= PROBE_EVERY:
            self._probed_at = loop.time()
            self._recovering = loop.create_task(self._recover(loop))
            self._recovering.add_done_callback(self._recovered)

    async def _recover(self, loop: asyncio.AbstractEventLoop) -> None:
        while self.short is not None and not self._closed:
            started = loop.time()
            try:
                await self._probe()
            except TransportError:
                return
            if self.short is not None:
                await asyncio.sleep(max(0.0, PROBE_EVERY - (loop.time() - started)))

    def _recovered(self, task: asyncio.Task) -> None:
        self._recovering = None
        if not task.cancelled():
            task.exception()

    async def aclose(self) -> None:
        self._closed = True
        for task in (self._checking, self._recovering):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.reads.aclose()
        await self.writes.aclose()


def node_client(url: str = "", **options: Any) -> PipelinedRedis | ReplicatedNode:
    """One node's client: one connection, or two when changes wait for replicas."""
    if options.get("wait_replicas"):
        return ReplicatedNode(url, **options)
    return PipelinedRedis(url, **options)
