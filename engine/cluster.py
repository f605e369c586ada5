"""Redis Cluster on the hot path: the single-node transport (engine/transport.py) once per
master, and a slot map that sends each call to the master of its slot.

- **The slot map** comes from ``CLUSTER SHARDS`` (``CLUSTER SLOTS`` on Redis 6), read from any
  node that answers; it is a list of 16384 node connections, so routing a call is one list
  index. A call's slot is computed from the hash tag of its first key (every script's keys
  share one tag: engine/keys.py).
- **MOVED** (the slot lives elsewhere now): the map takes the new owner at once, the call is
  sent there, and the whole map is read again soon. **ASK** (the slot is being migrated and
  this key already moved): ``ASKING`` and the call, back to back on the target's connection.
- **Trouble stays with its shard**: an unreachable master fails its own calls fast (its
  connection's fail-fast pause) while the other masters keep serving; every such failure asks
  for a fresh map (at most every ``REFRESH_PAUSE``), so a failover is picked up without a
  restart as soon as the cluster has promoted a replica. ``TRYAGAIN`` and ``CLUSTERDOWN`` are
  answers, which the Store turns into a fast 503.

Each master's client keeps the single-node design: auto-pipelined, no per-call timers, a
watchdog, bounded pending, group-commit WAIT on a connection of its own (engine/replicated.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from binascii import crc_hqx
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from engine.connection import Address, Node
from engine.replicated import node_client
from engine.transport import ConnectFailed, ReplyError, TransportError, pack

SLOTS = 16384
SCHEME = "redis+cluster://"


def key_slot(key: str) -> int:
    """The cluster slot of a key: CRC16 of its hash tag (the text between the first ``{`` and
    the next ``}``, when not empty), else of the whole key."""
    k = key.encode()
    start = k.find(b"{")
    if start != -1:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return crc_hqx(k, 0) % SLOTS


def parse_url(url: str) -> tuple[list[Address], str | None, str | None]:
    """``redis+cluster://[user:password@]host:port[,host:port...]`` -> (seeds, user, password)."""
    if not url.startswith(SCHEME):
        raise ValueError(f"not a cluster URL: {url!r} (redis+cluster://host:port,...)")
    rest = url[len(SCHEME):].split("/", 1)[0]
    username = password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        user, _, pw = auth.partition(":")
        username, password = (unquote(user) or None), unquote(pw) if pw else None
        if password is None and username is not None:  # redis+cluster://password@host
            username, password = None, username
    seeds = []
    for part in rest.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"cluster seed {part!r} is not host:port in {url!r}")
        seeds.append((host.strip("[]"), int(port)))
    return seeds, username, password


def _pairs(flat: list) -> dict[str, Any]:
    """A RESP2 map (a flat list of names and values) as a dict with str names."""
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in zip(flat[::2], flat[1::2],
                                                                          strict=True)}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def parse_shards(reply: list, asked: str) -> list[tuple[int, int, Address]]:
    """``CLUSTER SHARDS`` -> [(first slot, last slot, master address)]. A node that does not
    know its own address (a cluster of one) says ""; that is the host that was asked."""
    ranges = []
    for shard in reply:
        s = _pairs(shard)
        masters = [_pairs(n) for n in s["nodes"] if _text(_pairs(n)["role"]) == "master"]
        if not masters:
            continue
        m = masters[0]
        host = _text(m.get("endpoint", b"?"))
        if host in ("?", ""):
            host = _text(m.get("ip", b"")) or asked
        addr = (host, int(m["port"]))
        slots = s["slots"]
        ranges += [(int(slots[i]), int(slots[i + 1]), addr) for i in range(0, len(slots), 2)]
    return ranges


def parse_slots(reply: list, asked: str) -> list[tuple[int, int, Address]]:
    """``CLUSTER SLOTS`` (Redis 6) -> [(first slot, last slot, master address)]."""
    return [(int(r[0]), int(r[1]), (_text(r[2][0]) or asked, int(r[2][1]))) for r in reply]


class ClusterRedis:
    """``call(packed, slot, waited)`` on the master of ``slot``; ``redirect`` follows a MOVED or
    ASK answer; ``trouble(slot)`` after a transport error asks for a fresh map."""

    REFRESH_PAUSE = 0.2  # read the map again at most this often while things go wrong

    def __init__(self, url: str, **node_options: Any) -> None:
        self.seeds, self.username, self.password = parse_url(url)
        self.node_options = node_options
        self.nodes: dict[Address, Node] = {}
        self.by_slot: list[Node] | None = None
        self.redirects = 0  # MOVED and ASK answers followed (a metric)
        # on_change(map) after each new map (the API logs failovers), when set
        self.on_change: Callable[[dict[Address, int]], None] | None = None
        self._refreshing: asyncio.Task | None = None
        self._refreshed_at = -1e9
        self._closed = False

    # --- the hot path --------------------------------------------------------------------
    def call(self, packed: bytes, slot: int, waited: bool = False) -> Any:
        by_slot = self.by_slot
        if by_slot is None:
            return self._call_after_map(packed, slot, waited)
        return by_slot[slot].call(packed, slot, waited)

    async def _call_after_map(self, packed: bytes, slot: int, waited: bool) -> Any:
        await self._load()
        assert self.by_slot is not None
        return await self.by_slot[slot].call(packed, slot, waited)

    async def redirect(self, error: ReplyError, packed: bytes, slot: int,
                       waited: bool) -> Any:
        """Follow a MOVED or ASK answer (once: the caller loops); any other error is the
        answer."""
        kind, _, rest = str(error).partition(" ")
        if kind not in ("MOVED", "ASK"):
            return error
        self.redirects += 1
        moved_slot, _, where = rest.partition(" ")
        host, _, port = where.rpartition(":")
        node = self._node((host or self.by_slot[slot].host if self.by_slot else host,
                           int(port)))
        if kind == "MOVED":
            if self.by_slot is not None:
                self.by_slot[int(moved_slot)] = node
            self._refresh_soon()
            return await node.call(packed, slot, waited)
        return await node.call_asking(packed, waited)

    def slot_of(self, key: str) -> int:
        return key_slot(key)

    def node_of(self, slot: int) -> Address:
        """The master serving ``slot`` as this client knows it."""
        assert self.by_slot is not None
        node = self.by_slot[slot]
        return node.host, node.port

    def trouble(self, slot: int) -> None:
        """A call on ``slot``'s master failed in transport: a failover may be under way."""
        self._refresh_soon()

    async def execute(self, *args: Any) -> Any:
        """A plain command: routed by its first key when it has one."""
        slot = key_slot(str(args[1])) if len(args) > 1 else 0
        reply = await self.call(pack(args), slot)
        for _ in range(5):
            if type(reply) is not ReplyError:
                break
            followed = await self.redirect(reply, pack(args), slot, False)
            if followed is reply:
                break
            reply = followed
        return reply

    # --- the map -------------------------------------------------------------------------
    def _node(self, addr: Address) -> Node:
        node = self.nodes.get(addr)
        if node is None:
            node = self.nodes[addr] = node_client(
                host=addr[0], port=addr[1], username=self.username, password=self.password,
                **self.node_options)
        return node

    async def _load(self) -> None:
        if self.by_slot is not None:
            return
        if self._refreshing is None:
            self._refreshed_at = asyncio.get_running_loop().time()
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)
        if self.by_slot is None:
            raise ConnectFailed(f"no node of the cluster {self.seeds} gave its slot map")

    def _refresh_soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._refreshing is None and loop.time() - self._refreshed_at >= self.REFRESH_PAUSE \
                and not self._closed:
            self._refreshed_at = loop.time()
            self._refreshing = loop.create_task(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved: a refresh that found no node is logged by its caller

    async def _refresh(self) -> None:
        """Read the map from the first node that gives one: the masters known now, then the
        seeds. Keeps the old map when none answers."""
        known = list(dict.fromkeys([(n.host, n.port) for n in (self.by_slot or ())]))
        for addr in [*known, *(s for s in self.seeds if s not in known)]:
            try:
                ranges = await self._read_map(self._node(addr))
            except TransportError:
                continue
            if ranges is not None and self._apply(ranges):
                return

    async def _read_map(self, node: Node) -> list[tuple[int, int, Address]] | None:
        reply = await node.execute("CLUSTER", "SHARDS")
        if type(reply) is ReplyError:
            reply = await node.execute("CLUSTER", "SLOTS")
            return None if type(reply) is ReplyError else parse_slots(reply, node.host)
        return parse_shards(reply, node.host)

    def _apply(self, ranges: list[tuple[int, int, Address]]) -> bool:
        by_slot: list[Node | None] = [None] * SLOTS
        for first, last, addr in ranges:
            node = self._node(addr)
            for slot in range(first, last + 1):
                by_slot[slot] = node
        if any(n is None for n in by_slot):
            return False  # a map with holes (slots unassigned mid-change): keep the old one
        self.by_slot = by_slot  # type: ignore[assignment]
        if self.on_change is not None:
            counts: dict[Address, int] = {}
            for first, last, addr in ranges:
                counts[addr] = counts.get(addr, 0) + last - first + 1
            self.on_change(counts)
        return True

    def masters(self) -> list[Address]:
        return sorted({(n.host, n.port) for n in (self.by_slot or ())})

    def node(self, address: Address) -> Node:
        return self._node(address)

    async def aclose(self) -> None:
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refreshing
        for node in self.nodes.values():
            await node.aclose()
