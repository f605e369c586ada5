"""Presale codes: an operator makes them for a concert (codes.lua), fans get them by mail, and
while the concert's setting ``accessCodeRequired`` is on a NEW token needs one: the issue
script checks it and spends one use with the token it makes (lua/include/gates.lua). The
admin API (api/gates.py) and the CLI (``python -m engine codes``) are both doors onto these.

A code is 80 random bits in RFC 4648 base32 (16 of ``A-Z2-7``: URL-safe, no 0/1/O/I to
misread, typed in any case and with dashes or spaces, which are dropped). Codes live in one
hash per concert, code -> uses left; only operators add to it, at most MAX_PER_CALL a call
and ``ACCESS_CODES_PER_CONCERT`` a concert, so nothing a caller of the public API sends makes
Redis keep anything (an unknown code is one HGET, refused)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator

from engine.errors import AccessCodeLimit
from engine.ids import random_bytes
from engine.keys import concert_keys
from engine.operator import csv_row
from engine.store import Store

MAX_PER_CALL = 100_000
MAX_USES = 1_000_000
BATCH = 5_000  # codes a script call: ~2 ms of Redis, so a big call never stalls a drop
CODE_BITS = 80
_NOT_CODE = re.compile(r"[\s-]")


def new_code() -> str:
    """80 random bits as 16 base32 characters."""
    return base64.b32encode(random_bytes(CODE_BITS // 8)).decode()


def normalize(code: str) -> str:
    """A code as typed (any case, with dashes or spaces) as the hash keeps it."""
    return _NOT_CODE.sub("", code).upper()


async def make(store: Store, concert_id: int, count: int, uses: int) -> list[str]:
    """``count`` new codes of ``uses`` uses each for the concert, all or none:
    ConcertNotFound, or AccessCodeLimit when the concert would hold more than
    ACCESS_CODES_PER_CONCERT."""
    if not (1 <= count <= MAX_PER_CALL and 1 <= uses <= MAX_USES):
        raise ValueError(f"count 1..{MAX_PER_CALL}, uses 1..{MAX_USES}")
    k = concert_keys(concert_id)
    most = store.settings.access_codes_per_concert
    made: list[str] = []
    pending = [new_code() for _ in range(count)]
    try:
        while pending:
            batch, pending = pending[:BATCH], pending[BATCH:]
            _, taken = await store.run("codes", (k.concert, k.codes),
                                       (uses, most, len(batch) + len(pending), *batch))
            taken = {t.decode() for t in taken}
            made += [c for c in batch if c not in taken]
            pending += [new_code() for _ in taken]  # another code for each already there
    except AccessCodeLimit as e:
        if made:  # another call took the room meanwhile: undo this one's (nobody has them)
            for i in range(0, len(made), BATCH):
                await store.execute("HDEL", k.codes, *made[i:i + BATCH])
        raise AccessCodeLimit(f"The concert has {e.have:,} presale codes: {count:,} more would "
                              f"pass ACCESS_CODES_PER_CONCERT ({most:,}).", e.reply) from None
    return made


CSV_COLUMNS = ["code", "usesLeft"]


async def export_csv(store: Store, concert_id: int, batch: int = 1000) -> AsyncIterator[bytes]:
    """The concert's codes and their uses left as CSV, a chunk at a time (an HSCAN: memory
    bounded by a batch)."""
    key = concert_keys(concert_id).codes
    yield csv_row(CSV_COLUMNS)
    cursor = b"0"
    while True:
        cursor, flat = await store.execute("HSCAN", key, cursor, "COUNT", batch)
        if flat:
            yield b"".join(csv_row([flat[i].decode(), int(flat[i + 1])])
                           for i in range(0, len(flat), 2))
        if cursor in (b"0", 0):
            return
