"""Token values and reservation ids: opaque to clients, 128 random bits each, and shaped so the
engine finds their Redis keys without a lookup (the concert, and for a token the customer, are
in the value). Anything that does not match exactly is rejected before it reaches Redis."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

MAX_ID = 2**53 - 1
_ID = r"([1-9][0-9]{0,15})"
_SECRET = r"([0-9a-f]{32})"
_TOKEN = re.compile(rf"{_ID}\.{_ID}\.{_SECRET}")
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
    secret: str

    @property
    def value(self) -> str:
        return f"{self.concert_id}.{self.customer_id}.{self.secret}"


def parse_token(value: str) -> Token | None:
    """``<concertId>.<customerId>.<32 hex>``, or None when it is not one of ours."""
    m = _TOKEN.fullmatch(value)
    if m is None:
        return None
    concert_id, customer_id = int(m[1]), int(m[2])
    if concert_id > MAX_ID or customer_id > MAX_ID:
        return None
    return Token(concert_id, customer_id, m[3])


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
