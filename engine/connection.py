"""What the engine needs of a connection to Redis, declared once (as ``limits`` declares its
storage backends): the Store and the memory watch use these and nothing else.

Three classes implement ``Connection``, chosen by ``engine.store.connect`` from REDIS_URL and
REDIS_WAIT_REPLICAS:

- ``engine.transport.PipelinedRedis``: one node, one auto-pipelined connection;
- ``engine.replicated.ReplicatedNode``: one node whose changes wait for replicas, their
  WAITs on a second connection of their own;
- ``engine.cluster.ClusterRedis``: a Redis Cluster, one of those ``Node``s per master, each
  call routed by its slot. Only it answers MOVED and ASK and reads a new slot map after
  trouble: ``Routed`` declares those two, and the Store asks for them only on a cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, runtime_checkable

Address = tuple[str, int]


@runtime_checkable
class Node(Protocol):
    """One Redis server: a cluster's master, or the whole store on one node."""

    host: str
    port: int

    def call(self, packed: bytes, slot: int = 0, waited: bool = False) -> Awaitable[Any]:
        """Send one packed command (``waited``: a change whose answer waits for replicas);
        an awaitable of its reply, a ``ReplyError`` returned rather than raised. Raises
        ``engine.transport.TransportError``."""
        ...

    async def execute(self, *args: Any) -> Any:
        """One plain command, packed here."""
        ...

    async def call_asking(self, packed: bytes, waited: bool = False) -> Any:
        """``ASKING`` then the command, back to back (a cluster's ASK redirect)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Connection(Protocol):
    """The whole store: one node, or a cluster of them."""

    def call(self, packed: bytes, slot: int = 0, waited: bool = False) -> Awaitable[Any]:
        """As ``Node.call``, on the master of ``slot`` (0 on one node)."""
        ...

    async def execute(self, *args: Any) -> Any:
        """One plain command; on a cluster, routed by its first key."""
        ...

    def node_of(self, slot: int) -> Address:
        """The address of the master serving ``slot``, as this client knows it."""
        ...

    def masters(self) -> list[Address]:
        """Every master this client knows of (one node: itself)."""
        ...

    def node(self, address: Address) -> Node:
        """The client of the master at ``address`` (one of ``masters()``)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Routed(Connection, Protocol):
    """A connection that spreads slots over nodes (a cluster)."""

    async def redirect(self, error: Any, packed: bytes, slot: int, waited: bool) -> Any:
        """Follow a MOVED or ASK answer once; any other error is the answer."""
        ...

    def trouble(self, slot: int) -> None:
        """A call on ``slot``'s master failed in transport: read the slot map again soon."""
        ...
