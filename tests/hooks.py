"""A Store whose every script call first awaits a hook: tests force an interleaving of the real
engine code (the pay protocol's steps, the tick's recovery) without changing it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from engine.config import Settings
from engine.store import Store, connect

Hook = Callable[[str, Sequence[Any], Sequence[Any]], Awaitable[None]]


class HookedStore(Store):
    """``run`` awaits ``hook(name, keys, args)`` before each script call (when set), and
    ``after(name, reply)`` once the reply came (when set; it may raise to lose the reply)."""

    def __init__(self, settings: Settings, hook: Hook | None = None,
                 after: Callable[[str, list], None] | None = None) -> None:
        super().__init__(connect(settings), settings)
        self.hook, self.after = hook, after

    async def run(self, name: str, keys: Sequence[Any], args: Sequence[Any] = ()) -> list:
        if self.hook is not None:
            await self.hook(name, keys, args)
        reply = await super().run(name, keys, args)
        if self.after is not None:
            self.after(name, reply)
        return reply
