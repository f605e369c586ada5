"""The pre-queue's order: a keyed pseudo-random permutation of its places, the very one
lua/include/order.lua computes (a 4-round Feistel network, sha1 rounds, cycle-walking), so
that an API worker knows a pre-queue waiter's slot from its seq alone (engine/queue_view.py)
and the opening of a pre-queue of any size costs nothing."""

from __future__ import annotations

import hashlib
from functools import lru_cache


def _bits(m: int) -> int:
    h = 1
    while 2 ** (2 * h) < m:
        h += 1
    return h


def _round(key: str, r: int, x: int, h: int) -> int:
    return int(hashlib.sha1(f"{key}{r}:{x}".encode()).hexdigest()[:8], 16) % (1 << h)


@lru_cache(maxsize=65536)  # a waiter polls its slot again and again
def slot_of(key: str, m: int, i: int) -> int:
    """The slot (0 .. m-1) of the i-th place (0 .. m-1) of a pre-queue of m."""
    h = _bits(m)
    half = 1 << h
    x = i
    while True:
        left, right = divmod(x, half)
        for r in range(1, 5):
            left, right = right, left ^ _round(key, r, right, h)
        x = left * half + right
        if x < m:
            return x


def place_at(key: str, m: int, s: int) -> int:
    """The place (0 .. m-1) at slot s: slot_of's inverse."""
    h = _bits(m)
    half = 1 << h
    x = s
    while True:
        left, right = divmod(x, half)
        for r in range(4, 0, -1):
            left, right = right ^ _round(key, r, left, h), left
        x = left * half + right
        if x < m:
            return x
