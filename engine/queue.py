"""Queue tokens: issue (issue.lua) and status (status.lua); a concert's numbers (stats.lua);
the deployment's token key. The background tick that admits and sweeps is engine/tick.py;
the polls answered without a call each, engine/queue_view.py."""

from __future__ import annotations

from engine import access_codes, challenge
from engine.errors import ChallengeRefused, StoreUnavailable
from engine.ids import (
    Token,
    has_token_key,
    iso_ms,
    mint,
    order_key,
    random_below_2_to,
    random_bytes,
    use_token_key,
)
from engine.keys import CONCERTS, TOKEN_KEY, concert_keys
from engine.store import Store


async def token_key(store: Store) -> bytes:
    """The deployment's queue token key: QUEUE_TOKEN_KEY, or the one Redis keeps (made by
    the first worker that asks: SET NX), so that every worker mints and checks alike."""
    if store.settings.queue_token_key:
        return store.settings.queue_token_key.encode()
    key = await store.execute("GET", TOKEN_KEY)
    if key is None:  # read first: a SET is refused when Redis is full, even a no-op one
        await store.execute("SET", TOKEN_KEY, random_bytes(32).hex(), "NX")
        key = await store.execute("GET", TOKEN_KEY)
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise StoreUnavailable(f"{TOKEN_KEY} is not a queue token key: {key!r:.40}")
    return bytes(key)


async def use_deployment_key(store: Store) -> None:
    """Mint and check queue tokens with the deployment's key from now on (this process)."""
    use_token_key(await token_key(store))


def queue_args(store: Store) -> tuple[int, int, int, int, float, int]:
    """The queue settings' defaults (the environment's); a concert's own win in the scripts:
    active limit, admissions a second, active TTL (ms), idle limit (ms), admissions a seat,
    a returned seat's time on offer to the queue (ms)."""
    s = store.settings
    return (s.active_limit, s.admit_per_second, s.active_ttl_ms, s.idle_ms, s.admit_per_seat,
            s.return_hold_ms)


def seed() -> int:
    """A secure random seed for the scripts' random-mode draws (1 .. 2^31 - 1; the scripts
    take it modulo 2^31 - 2)."""
    return random_below_2_to(31) or 1


STATUS = {0: "WAITING", 1: "ACTIVE", 2: "WAITING", 3: "SOLD_OUT"}


def _token_view(token: Token, state: int, position: int, wait: int, until: int,
                opens_at: int, poll: int, paused: int) -> dict:
    """state 1 ACTIVE, 0 WAITING, 2 WAITING in the pre-queue (no position until the
    opening), 3 SOLD_OUT (on the concert's waitlist: WAITING again when a seat comes back);
    wait -1: no estimate (paused)."""
    view = {
        "tokenValue": token.value,
        "concertId": token.concert_id,
        "customerId": token.customer_id,
        "status": STATUS[state],
        "position": None if state == 2 else int(position),
        "estimatedWaitSeconds": None if wait < 0 else int(wait),
        "expiresAt": iso_ms(int(until)) if state == 1 else None,
        "pollAfterSeconds": int(poll) if state != 1 else None,
        "paused": paused == 1,
    }
    if opens_at:
        view["opensAt"] = iso_ms(int(opens_at))
    return view


async def issue_token(store: Store, customer_id: int, concert_id: int, address: str = "",
                      access_code: str = "", altcha: str = "",
                      pace: tuple[float, int] | None = None) -> dict:
    """The customer's live token for the concert, or a new one: the next place, in the
    pre-queue before the concert opens, at the end of the line after. ``address``: the
    client's, when issues are rate limited per address. A new token passes the concert's
    gates while they are on: a presale code (``access_code``) and a proof of work
    (``altcha``, ALTCHA's payload: checked here, then spent by the script). ``pace``: the
    places the queue passes a second and since when it is sold out (ms, 0: not), as the
    worker's view read them (QueueViews.pace): a new token behind waiters is estimated from
    them, as a poll answered by the view is, instead of Redis reading the rate."""
    if not has_token_key():  # a worker asks Redis for it as it starts (api/app.py)
        raise StoreUnavailable("the queue token key is not read from Redis yet")
    s = store.settings
    k = concert_keys(concert_id)
    keys = [k.concert, k.tokens, k.seqs, k.seen0, k.seen1, k.seen2, k.active, k.rate,
            k.settings, k.buckets, k.events, k.offers, k.left, k.codes, k.departed]
    proof, expires, why = "", 0, ""
    if altcha:
        try:
            proof, expires = challenge.verify(challenge.hmac_key(s), altcha, concert_id)
            keys.append(k.solved(proof))
        except challenge.ChallengeError as e:
            proof, why = "-", str(e)
    args = [customer_id, order_key(concert_id), *queue_args(store), s.max_waiting, seed(),
            s.issue_rate_per_customer, s.issue_rate_per_address, s.rate_burst, s.events_maxlen,
            *((f"{pace[0]:.3f}", pace[1]) if pace else ("", ""))]
    optional = [address if s.issue_rate_per_address else "",
                access_codes.normalize(access_code) if access_code else "", proof, expires]
    while optional and not optional[-1]:  # the script reads an empty one as left out
        optional.pop()
    try:
        _, seq, *standing = await store.run("issue", keys, args + optional)
    except ChallengeRefused as e:
        raise challenge.refusal(store.settings, concert_id, e, why) from None
    return _token_view(mint(concert_id, customer_id, seq), *standing)


async def token_status(store: Store, token: Token) -> dict:
    """Where a token stands, asked of Redis: polling keeps a WAITING token in the queue. (Most
    polls are answered from the worker's view instead: engine/queue_view.py.)"""
    k = concert_keys(token.concert_id)
    _, *standing = await store.run(
        "status",
        (k.tokens, k.seqs, k.seen0, k.seen1, k.seen2, k.active, k.rate, k.settings, k.events,
         k.concert, k.offers, k.left, k.departed),
        (token.customer_id, token.seq, order_key(token.concert_id), *queue_args(store),
         seed(), store.settings.events_maxlen),
    )
    return _token_view(token, *standing)


async def concert_stats(store: Store, concert_id: int) -> dict:
    """A concert at a glance: its queue (waiting; active: admitted and still shopping;
    admissions a second, the last minute's average), its seats (on sale in all, free, held
    (of which paying), sold, on offer to the queue after coming back), whether it is sold
    out and since when, tickets checked in at the door, paused, and its opening."""
    k = concert_keys(concert_id)
    (_, waiting, active, holds, paying, sold, free, rate, paused, opens_at, seats, sold_out,
     offered, checked_in) = await store.run(
        "stats", (k.active, k.holds, k.paying, k.concert, k.free, k.rate, k.settings,
                  k.offers), (store.settings.return_hold_ms,))
    return {"concertId": concert_id, "waiting": waiting, "active": active,
            "holds": holds + paying, "paying": paying, "sold": sold, "freeSeats": free,
            "seats": seats, "offered": offered, "checkedIn": checked_in, "soldOut": bool(sold_out),
            "soldOutSince": iso_ms(sold_out) if sold_out else None,
            "admissionsPerSecond": float(rate), "paused": bool(paused),
            "opensAt": iso_ms(opens_at) if opens_at else None}


async def concerts(store: Store) -> list[int]:
    return sorted(int(c) for c in await store.execute("SMEMBERS", CONCERTS))
