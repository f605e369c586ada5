"""Token values and reservation ids: opaque to clients, 128 random bits each, and shaped so the
engine finds their Redis keys without a lookup (the concert, and for a token the customer, are
in the value). Anything that does not match exactly is rejected before it reaches Redis."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

MAX_ID = 2**53 - 1
_ID = r"([1-9][0-9]{0,15})"
_SECRET = r"([0-9a-f]{32})"
_TOKEN = re.compile(rf"{_ID}\.{_ID}\.{_SECRET}")
_RESERVATION = re.compile(rf"{_ID}\.{_SECRET}")


def new_secret() -> str:
    """128 random bits as 32 lowercase hex characters."""
    return secrets.token_hex(16)


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
