"""Every Redis key name the engine uses, in one place.

A concert's keys share the hash tag ``{c:<concertId>}`` and a customer's keys share
``{u:<customerId>}``, so each script touches one Redis Cluster slot. Ids reaching this module
are already validated integers or hex strings: no client input picks a key or a tag.
"""

from __future__ import annotations

from functools import lru_cache

PREFIX = "tk"

# The set of concert ids the background tick walks (a key without a tag).
CONCERTS = f"{PREFIX}:concerts"
# string: the deployment's queue token key, when QUEUE_TOKEN_KEY is not set (engine/ids.py).
TOKEN_KEY = f"{PREFIX}:queue-key"


def concert_tag(concert_id: int) -> str:
    return f"{PREFIX}:{{c:{concert_id}}}"


def customer_tag(customer_id: int) -> str:
    return f"{PREFIX}:{{u:{customer_id}}}"


class ConcertKeys:
    """The keys of one concert (queue, catalog, seats, holds, reservations)."""

    __slots__ = (
        "active", "buckets", "codes", "concert", "departed", "events", "free", "gone", "holds",
        "layout", "lease", "left", "offers", "options", "paying", "rate", "refunding", "res",
        "seen0", "seen1", "seen2", "seqs", "settings", "tag", "taken", "tickets", "tokens",
    )

    def __init__(self, concert_id: int) -> None:
        self.tag = t = concert_tag(concert_id)
        # hash: name; seq, head, prefirst, premax, prehead, leftn, admitted, qv, rmax, seen0..2
        # (the queue: lua/include/admission.lua, waiters.lua); seats (on sale in all), sold,
        # checkedin (tickets in at the door), nbits
        self.concert = f"{t}:concert"
        self.options = f"{t}:options"  # hash: optionId -> performance date
        # hash: the operator's settings (lua/include/settings.lua); defaults from the env
        self.settings = f"{t}:settings"
        self.free = f"{t}:free"  # hash: optionId -> free seat count
        # hash: optionId -> "start:count:version" of its seats in `taken`
        self.layout = f"{t}:layout"
        self.taken = f"{t}:taken"  # bitmap: seat index -> 1 while held or sold
        self.holds = f"{t}:holds"  # zset: reservation id -> hold expiry (ms)
        # zset: seat index -> when it came back (ms): a returned seat on offer to the customers
        # admitted after that, for returnHoldSeconds (lua/include/release.lua)
        self.offers = f"{t}:offers"
        self.paying = f"{t}:paying"  # zset: reservation id -> pay start (ms)
        self.res = f"{t}:res"  # hash: reservation id -> JSON record
        # zset: closed reservation id -> closed at (ms; a hold no pay touched: less the concert
        # hash's closedshift), for purging
        self.gone = f"{t}:gone"
        # hash: customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>" (ACTIVE); seq: the
        # token's place in the order the concert issued them (lua/include/admission.lua)
        self.tokens = f"{t}:tokens"
        self.seqs = f"{t}:seqs"  # hash: seq -> customerId of a WAITING token
        # list: the seqs of the last waiters who left (idle, revoked, replaced; the concert
        # hash's leftn counts them all), for the workers' views (lua/include/waiters.lua)
        self.left = f"{t}:left"
        # bitmap: seq -> 1 once its waiter left (idle, revoked, replaced), for seen.lua to name
        # the ones a worker's view missed (lua/include/waiters.lua)
        self.departed = f"{t}:departed"
        # bitmaps: seq -> its waiter polled in a period p (p % 3 = 0, 1, 2 in turn; a period
        # is the idle limit: lua/include/waiters.lua)
        self.seen0, self.seen1, self.seen2 = f"{t}:seen0", f"{t}:seen1", f"{t}:seen2"
        self.active = f"{t}:active"  # zset: customerId -> ACTIVE token expiry (ms)
        # hash: sec, n, avg, pn, pavg (admissions and places passed a second, a minute's
        # average); cursor (idle sweep); soldOut (ms since the concert sold out, set by the
        # tick); credited ("<score>|<seat index>": the last returned seat that admitted its waiter)
        self.rate = f"{t}:rate"
        # string with TTL: the API worker ticking the concert now (one tick a second in all)
        self.lease = f"{t}:lease"
        # hash: customerId -> "<paid>|<open ids>|<token>|<its holds>|<reserve bucket>"
        # (lua/include/tickets.lua): one read and one write a reserve
        self.tickets = f"{t}:tickets"
        # hash: "i:<customer>" / "a:<address>" -> token bucket (issue's rate limits)
        self.buckets = f"{t}:buckets"
        self.refunding = f"{t}:refunding"  # zset: reservation id -> operator refund start
        self.events = f"{t}:events"  # stream: HELD, PAID, ... (lua/include/events.lua)
        # hash: presale code -> its uses left (engine/access_codes.py; made by operators only)
        self.codes = f"{t}:codes"

    def seats(self, option_id: int) -> str:
        """hash: seatId -> "number:price:index" (price in minor units, index in `taken`)."""
        return f"{self.tag}:seats:{option_id}"

    def solved(self, challenge: str) -> str:
        """string with an expiry: a proof-of-work solution spent on a new token, kept until
        its challenge expires (lua/include/gates.lua); ``challenge``: its 64 hex, checked."""
        return f"{self.tag}:solved:{challenge}"

    def seat_view(self, option_id: int) -> str:
        """zset: the seat as JSON ({"id","number","price","section","row"}) -> its offset in
        the option's listing (and bitmap slice)."""
        return f"{self.tag}:seatview:{option_id}"


@lru_cache(maxsize=4096)
def concert_keys(concert_id: int) -> ConcertKeys:
    """Cached: a handful of concerts serve most requests during a drop."""
    return ConcertKeys(concert_id)


class CustomerKeys:
    """The keys of one customer (balance, history, pay records, idempotency records)."""

    __slots__ = ("balance", "debits", "history", "tag")

    def __init__(self, customer_id: int) -> None:
        self.tag = customer_tag(customer_id)
        self.balance = f"{self.tag}:balance"  # string: integer minor units
        self.history = f"{self.tag}:history"  # list: "kind|amount|balance|atMs|ref", newest first
        # hash: reservation id -> "D:attempt:amount:balanceAfter" | "V:attempt" |
        # "R:attempt:amount" (that attempt's debit refunded): see lua/debit.lua
        self.debits = f"{self.tag}:debits"

    def idempotency(self, key_digest: str) -> str:
        """string with TTL: "fingerprint|balance" of the first answer to that key."""
        return f"{self.tag}:idem:{key_digest}"
