"""Token values and reservation ids: opaque to clients, each with 128 bits nobody can guess,
and shaped so the engine finds their Redis keys without a lookup (the concert, and for a token
the customer, are in the value). Anything that does not match exactly is rejected before it
reaches Redis.

A queue token is ``<concertId>.<customerId>.<seq>.<mac>``: seq, its place in the order the
concert issued tokens, lets an API worker answer a poll from its view of the queue without
asking Redis (engine/queue_view.py); mac, a keyed BLAKE2b of the rest (128 bits), proves the
engine issued it. The key (``use_token_key``) is one per deployment: QUEUE_TOKEN_KEY, or one
Redis keeps (engine/queue.py's ``token_key``)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

MAX_ID = 2**53 - 1
_ID = r"([1-9][0-9]{0,15})"
_SECRET = r"([0-9a-f]{32})"
_TOKEN = re.compile(rf"{_ID}\.{_ID}\.{_ID}\.{_SECRET}")
_RESERVATION = re.compile(rf"{_ID}\.{_SECRET}")


# Random bytes from the OS's CSPRNG (what `secrets` uses), read 4 KiB at a time: a request
# that draws a token's secret, a queue place and a seed makes one getrandom() call in ~150
# instead of three. A forked child starts with an empty pool, never its parent's bytes.
_POOL_SIZE = 4096
_pool = b""
_at = 0


def _empty_pool() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_empty_pool)


def random_bytes(n: int) -> bytes:
    """``n`` (at most 4096) bytes from the OS's CSPRNG, as ``os.urandom(n)``."""
    global _pool, _at
    if _at + n > len(_pool):
        _pool, _at = os.urandom(_POOL_SIZE), 0
    out = _pool[_at:_at + n]
    _at += n
    return out


def random_below_2_to(bits: int) -> int:
    """A uniform integer in [0, 2^bits), bits at most 64."""
    return int.from_bytes(random_bytes(8)) >> (64 - bits)


def new_hex() -> str:
    """128 random bits as 32 lowercase hex characters: a token's secret, or a reservation's
    res_id (its id within the concert; the API's reservationId is "<concertId>.<res_id>")."""
    return random_bytes(16).hex()


class Token(NamedTuple):
    """A parsed token value (a tuple: cheaper to build on every request than a dataclass)."""

    concert_id: int
    customer_id: int
    seq: int  # its place in the concert's queue (engine/queue.py)
    mac: str

    @property
    def value(self) -> str:
        return f"{self.concert_id}.{self.customer_id}.{self.seq}.{self.mac}"


_key: bytes = b""


def use_token_key(key: bytes) -> None:
    """The deployment's key for queue tokens' macs (every worker the same)."""
    global _key
    if len(key) < 16:
        raise ValueError("a queue token key needs at least 16 bytes")
    _key = key[:64]  # BLAKE2b takes a key of up to 64 bytes
    order_key.cache_clear()


def _need_key() -> None:
    if not _key:
        raise RuntimeError("no queue token key: use_token_key() first")


def _mac(concert_id: int, customer_id: int, seq: int) -> str:
    _need_key()
    return hashlib.blake2b(b"%d.%d.%d" % (concert_id, customer_id, seq), key=_key,
                           digest_size=16).hexdigest()


@lru_cache(maxsize=4096)
def order_key(concert_id: int) -> str:
    """The key of a concert's pre-queue order (lua/include/order.lua), from the token key."""
    _need_key()
    return hashlib.blake2b(b"order:%d" % concert_id, key=_key, digest_size=16).hexdigest()


def mint(concert_id: int, customer_id: int, seq: int) -> Token:
    """The token of a customer's place ``seq`` in a concert's queue."""
    return Token(concert_id, customer_id, seq, _mac(concert_id, customer_id, seq))


def has_token_key() -> bool:
    return bool(_key)


def parse_token(value: str, verify: bool = True) -> Token | None:
    """``<concertId>.<customerId>.<seq>.<32 hex>`` with a mac of ours, or None. (``verify``
    False: the shape only, for the debugging CLI, which shows what a token would run.)"""
    m = _TOKEN.fullmatch(value)
    if m is None:
        return None
    concert_id, customer_id, seq = int(m[1]), int(m[2]), int(m[3])
    if concert_id > MAX_ID or customer_id > MAX_ID or seq > MAX_ID:
        return None
    if verify and not hmac.compare_digest(m[4], _mac(concert_id, customer_id, seq)):
        return None
    return Token(concert_id, customer_id, seq, m[4])


def reservation_id(concert_id: int, secret: str) -> str:
    return f"{concert_id}.{secret}"


def parse_reservation(value: str) -> tuple[int, str] | None:
    """``<concertId>.<32 hex>`` as (concertId, secret), or None when it is not one of ours."""
    m = _RESERVATION.fullmatch(value)
    if m is None or int(m[1]) > MAX_ID:
        return None
    return int(m[1]), m[2]


@lru_cache(maxsize=4096)  # a token's expiry is shown again on every poll of it
def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC, e.g. ``2026-11-25T09:30:00.123Z``."""
    return (
        datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )
