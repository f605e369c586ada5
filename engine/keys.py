"""Every Redis key name the engine uses, in one place.

A concert's keys share the hash tag ``{c:<concertId>}`` and a customer's keys share
``{u:<customerId>}``, so each script touches one Redis Cluster slot. Ids reaching this module
are already validated integers or hex strings: no client input picks a key or a tag.
"""

from __future__ import annotations

from functools import lru_cache

PREFIX = "tk"

# The set of concert ids the background tick walks (the only key without a tag).
CONCERTS = f"{PREFIX}:concerts"


def concert_tag(concert_id: int) -> str:
    return f"{PREFIX}:{{c:{concert_id}}}"


def customer_tag(customer_id: int) -> str:
    return f"{PREFIX}:{{u:{customer_id}}}"


class ConcertKeys:
    """The keys of one concert (queue, catalog, seats, holds, reservations)."""

    __slots__ = (
        "active", "buckets", "codes", "concert", "events", "free", "gone", "holds", "layout",
        "lease", "offers", "options", "paying", "rate", "refunding", "res", "settings", "tag",
        "taken", "tickets", "tokens", "waiting",
    )

    def __init__(self, concert_id: int) -> None:
        self.tag = t = concert_tag(concert_id)
        # hash: name, seq (queue places), seats (on sale in all), sold, checkedin (tickets in
        # at the door), nbits
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
        self.gone = f"{t}:gone"  # zset: closed reservation id -> closed at (ms), for purging
        # hash: customerId -> "secret@activeUntilMs" (ACTIVE) or "secret:lastPollMs" (WAITING)
        self.tokens = f"{t}:tokens"
        # zset: customerId -> queue place (a random one in the pre-queue, see issue.lua)
        self.waiting = f"{t}:waiting"
        self.active = f"{t}:active"  # zset: customerId -> ACTIVE token expiry (ms)
        # hash: sec, n, avg (admissions a second, a minute's average); cursor (idle sweep);
        # soldOut (ms since the concert sold out, set by the tick)
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
