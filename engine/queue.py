"""Queue tokens: issue (issue.lua) and status (status.lua); a concert's numbers (stats.lua).
The background tick that admits and sweeps is engine/tick.py."""

from __future__ import annotations

from engine.ids import Token, iso_ms, new_secret
from engine.keys import CONCERTS, concert_keys
from engine.store import Store


def queue_args(store: Store) -> tuple[int, int, int, int]:
    s = store.settings
    return s.active_limit, s.admit_per_second, s.active_ttl_ms, s.idle_ms


def _token_view(token: Token, active: int, position: int, wait: int, until: int) -> dict:
    return {
        "tokenValue": token.value,
        "concertId": token.concert_id,
        "customerId": token.customer_id,
        "status": "ACTIVE" if active else "WAITING",
        "position": int(position),
        "estimatedWaitSeconds": int(wait),
        "expiresAt": iso_ms(int(until)) if active else None,
    }


async def issue_token(store: Store, customer_id: int, concert_id: int) -> dict:
    """The customer's live token for the concert, or a new one at the end of the queue."""
    k = concert_keys(concert_id)
    reply = await store.run(
        "issue",
        (k.concert, k.tokens, k.waiting, k.active, k.held, k.rate),
        (customer_id, new_secret(), *queue_args(store), store.settings.max_waiting),
    )
    _, secret, active, position, wait, until = reply
    token = Token(concert_id, customer_id, secret.decode())
    return _token_view(token, active, position, wait, until)


async def token_status(store: Store, token: Token) -> dict:
    """Where a token stands; polling keeps a WAITING token in the queue."""
    k = concert_keys(token.concert_id)
    _, active, position, wait, until = await store.run(
        "status",
        (k.tokens, k.waiting, k.active, k.held, k.rate),
        (token.customer_id, token.secret, *queue_args(store)),
    )
    return _token_view(token, active, position, wait, until)


async def concert_stats(store: Store, concert_id: int) -> dict:
    """Waiting, active, holds (of which paying), sold and free seats of one concert."""
    k = concert_keys(concert_id)
    _, waiting, active, holds, paying, sold, free = await store.run(
        "stats", (k.waiting, k.active, k.holds, k.paying, k.concert, k.free))
    return {"concertId": concert_id, "waiting": waiting, "active": active,
            "holds": holds + paying, "paying": paying, "sold": sold, "freeSeats": free}


async def concerts(store: Store) -> list[int]:
    return sorted(int(c) for c in await store.execute("SMEMBERS", CONCERTS))
