"""Script return codes (defined once, matching the Lua headers) and the exceptions they become.

Every script replies with an array whose first element is a ``Code``. ``raise_for`` is the one
place that turns a non-zero code into its exception; an unknown code raises loudly.
"""

from __future__ import annotations

from enum import IntEnum

from engine.ids import iso_ms


class Code(IntEnum):
    OK = 0
    TOKEN_UNKNOWN = 1  # missing, unknown, expired or finished token
    TOKEN_WAITING = 2  # the token is still in the queue
    CONCERT_NOT_FOUND = 3
    OPTION_NOT_FOUND = 4
    SEAT_NOT_FOUND = 5
    SEAT_TAKEN = 6
    RESERVATION_NOT_FOUND = 7
    ALREADY_PAID = 8
    HOLD_EXPIRED = 9
    PAYMENT_IN_PROGRESS = 10
    INSUFFICIENT_BALANCE = 11
    BALANCE_LIMIT = 12
    IDEMPOTENCY_KEY_REUSED = 13
    PAY_STALE = 14  # internal: a crashed pay to finish before going on
    HOLD_CANCELLED = 15
    PAY_SUPERSEDED = 16  # internal: a recovery voided this pay attempt
    PAY_ORPHANED = 17  # internal: a debit whose attempt no longer holds the seat (refund)
    PAID_EARLIER = 18  # internal: this customer paid the reservation before (its answer)
    QUEUE_FULL = 19  # the concert's queue is at its cap
    RATE_LIMITED = 20
    TICKET_LIMIT = 21  # the customer's open holds plus paid seats reached the concert's limit
    NO_ADJACENT_SEATS = 22
    CATALOG_CHANGED = 23  # internal: the seat list the engine used is stale (reload, retry)
    RESERVATION_REFUNDED = 24
    NOT_PAID = 25  # an operator's refund of a reservation that is not paid
    LOAD_IN_PROGRESS = 26  # another load of the same option with another seat count
    SEATS_TAKEN = 27  # a reload would reprice held or sold seats
    SECTION_NOT_FOUND = 28  # (the engine's own: no script answers it)
    QUEUE_STANDING = 29  # an opening set in the future while a queue formed after one stands
    CANCEL_LIMIT = 30  # the token cancelled its limit of holds (a new token may hold again)
    # Tickets and check-in (engine/tickets.py, lua/checkin.lua): numbered from 40, apart from
    # the codes other work adds after 29.
    TICKET_INVALID = 40  # a forged, altered or malformed ticket (its signature or its record)
    ALREADY_CHECKED_IN = 41  # the ticket was scanned before (a refund of it, unless forced)
    TICKET_REFUNDED = 42  # the ticket's sale was refunded
    # The gates (lua/include/gates.lua, engine/access_codes.py, engine/challenge.py):
    # numbered from 50.
    ACCESS_CODE_REQUIRED = 50  # a new token of a concert in presale, without a code
    ACCESS_CODE_INVALID = 51  # a code the concert does not know, or with no use left
    CHALLENGE_REQUIRED = 52  # a new token of a concert behind the proof of work, without one
    CHALLENGE_INVALID = 53  # a solution that is wrong, expired, another concert's or used
    ACCESS_CODE_LIMIT = 54  # an operator's new codes would pass the concert's bound


class EngineError(Exception):
    """A refusal by the engine: the request was understood and changed nothing."""

    code: Code = Code.OK

    def __init__(self, detail: str | None = None, reply: list | None = None) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        self.reply = reply or []
        super().__init__(self.detail)


class TokenUnknown(EngineError):
    """The queue token is missing, unknown, expired or finished."""

    code = Code.TOKEN_UNKNOWN


class TokenWaiting(EngineError):
    """The queue token is still waiting; this needs an ACTIVE token."""

    code = Code.TOKEN_WAITING


class ConcertNotFound(EngineError):
    """No such concert."""

    code = Code.CONCERT_NOT_FOUND


class OptionNotFound(EngineError):
    """No such concert option (performance) in this concert."""

    code = Code.OPTION_NOT_FOUND


class SeatNotFound(EngineError):
    """No such seat in this concert option."""

    code = Code.SEAT_NOT_FOUND


class SeatTaken(EngineError):
    """The seat is held or sold."""

    code = Code.SEAT_TAKEN


class ReservationNotFound(EngineError):
    """No such reservation."""

    code = Code.RESERVATION_NOT_FOUND


class AlreadyPaid(EngineError):
    """The reservation is already paid."""

    code = Code.ALREADY_PAID


class HoldExpired(EngineError):
    """The hold expired and its seat was released."""

    code = Code.HOLD_EXPIRED


class HoldCancelled(EngineError):
    """The hold was cancelled and its seat was released."""

    code = Code.HOLD_CANCELLED


class PaymentInProgress(EngineError):
    """A payment of this reservation is in progress."""

    code = Code.PAYMENT_IN_PROGRESS


class InsufficientBalance(EngineError):
    """The balance does not cover the price."""

    code = Code.INSUFFICIENT_BALANCE


class BalanceLimit(EngineError):
    """The charge would take the balance over its limit."""

    code = Code.BALANCE_LIMIT


class IdempotencyKeyReused(EngineError):
    """This Idempotency-Key was used with a different request."""

    code = Code.IDEMPOTENCY_KEY_REUSED


class PayStale(EngineError):
    """Internal: a previous pay of this reservation crashed mid-way."""

    code = Code.PAY_STALE

    @property
    def attempt(self) -> int:
        return int(self.reply[1])


class PaySuperseded(EngineError):
    """The payment was interrupted and rolled back; retry it."""

    code = Code.PAY_SUPERSEDED


class PayOrphaned(EngineError):
    """Internal: the debit's attempt no longer holds the seat; the debit is refunded."""

    code = Code.PAY_ORPHANED


class PaidEarlier(EngineError):
    """Internal: the customer paid this reservation before; the reply carries that answer."""

    code = Code.PAID_EARLIER

    @property
    def amount(self) -> int:
        return int(self.reply[1])

    @property
    def balance(self) -> int:
        return int(self.reply[2])


class QueueFull(EngineError):
    """The concert's queue is full; try again in a little while."""

    code = Code.QUEUE_FULL


class RateLimited(EngineError):
    """Too many requests: slow down."""

    code = Code.RATE_LIMITED

    @property
    def retry_after_ms(self) -> int:
        return int(self.reply[1])


class TicketLimit(EngineError):
    """This customer's holds and paid seats in this concert reached its ticket limit."""

    code = Code.TICKET_LIMIT

    @property
    def limit(self) -> int:
        return int(self.reply[1])


class CancelLimit(EngineError):
    """This queue token cancelled as many holds as a token may; a new token may hold again."""

    code = Code.CANCEL_LIMIT

    @property
    def limit(self) -> int:
        return int(self.reply[1])


class NoAdjacentSeats(EngineError):
    """No free seats next to each other in one row for that quantity."""

    code = Code.NO_ADJACENT_SEATS


class CatalogChanged(EngineError):
    """Internal: the option's seat list changed since it was read."""

    code = Code.CATALOG_CHANGED


class ReservationRefunded(EngineError):
    """The reservation was refunded by the organiser; its seat is on sale again."""

    code = Code.RESERVATION_REFUNDED


class NotPaid(EngineError):
    """The reservation is not paid (held, being paid, expired or cancelled): there is no
    sale to refund and no ticket yet."""

    code = Code.NOT_PAID


class LoadInProgress(EngineError):
    """Another load of this performance with another seat count is under way."""

    code = Code.LOAD_IN_PROGRESS


class SeatsTaken(EngineError):
    """Some of the seats to change are held or sold."""

    code = Code.SEATS_TAKEN


class SectionNotFound(EngineError):
    """No such section in this performance."""

    code = Code.SECTION_NOT_FOUND


class QueueStanding(EngineError):
    """Tokens wait in a queue formed after an opening: an opening in the future would put
    every later arrival ahead of them. Set opensAt before the queue forms, or pause the
    concert instead."""

    code = Code.QUEUE_STANDING

    @property
    def waiting(self) -> int:
        return int(self.reply[1])


class TicketInvalid(EngineError):
    """The ticket is not one this engine signed: forged, altered or malformed."""

    code = Code.TICKET_INVALID


class AlreadyCheckedIn(EngineError):
    """The ticket was checked in before: it lets its holder in once, and is refunded only
    when forced."""

    code = Code.ALREADY_CHECKED_IN

    def __init__(self, detail: str | None = None, reply: list | None = None) -> None:
        if detail is None and reply:  # name the first scan's time
            detail = f"The ticket was checked in at {iso_ms(int(reply[1]))}."
        super().__init__(detail, reply)

    @property
    def at(self) -> int:
        """The first scan's time (epoch ms)."""
        return int(self.reply[1])


class TicketRefunded(EngineError):
    """The ticket's sale was refunded: it lets nobody in."""

    code = Code.TICKET_REFUNDED


class AccessCodeRequired(EngineError):
    """This concert is in presale: a new token needs its accessCode."""

    code = Code.ACCESS_CODE_REQUIRED


class AccessCodeInvalid(EngineError):
    """The accessCode is not one of this concert's presale codes, or its uses are spent."""

    code = Code.ACCESS_CODE_INVALID


class ChallengeRefused(EngineError):
    """A refusal by the proof-of-work gate; ``challenge`` (set by the engine): a fresh one to
    solve, which the problem carries, so that a client needs no second call."""

    challenge: dict | None = None


class ChallengeRequired(ChallengeRefused):
    """A new token for this concert needs a solved proof of work as 'altcha' (the challenge:
    GET /api/token/challenge?concertId=N, or this problem's own)."""

    code = Code.CHALLENGE_REQUIRED


class ChallengeInvalid(ChallengeRefused):
    """The 'altcha' solution is wrong, expired, for another concert or used already (each
    solves one new token, once)."""

    code = Code.CHALLENGE_INVALID

    @property
    def reason(self) -> int:
        """1: expired, 2: used already (the script's reasons; 0: the engine's own)."""
        return int(self.reply[1]) if len(self.reply) > 1 else 0


class AccessCodeLimit(EngineError):
    """The concert would have more presale codes than ACCESS_CODES_PER_CONCERT."""

    code = Code.ACCESS_CODE_LIMIT

    @property
    def have(self) -> int:
        return int(self.reply[1])


class StoreUnavailable(Exception):
    """Redis did not answer in time (down, hung, or full); nothing is known to have changed
    unless ``maybe_applied``."""

    def __init__(self, detail: str, *, maybe_applied: bool = False, full: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.maybe_applied = maybe_applied
        self.full = full


def _classes(base: type[EngineError]) -> list[type[EngineError]]:
    return [c for sub in base.__subclasses__() for c in (sub, *_classes(sub))]


BY_CODE: dict[int, type[EngineError]] = {
    cls.code: cls for cls in _classes(EngineError) if cls.code is not Code.OK
}
assert len(BY_CODE) == len(Code) - 1, "every non-OK code needs exactly one exception class"


def raise_for(reply: list) -> list:
    """Return a script's reply when its code is OK, else raise the code's exception."""
    code = int(reply[0])
    if code == 0:
        return reply
    cls = BY_CODE.get(code)
    if cls is None:
        raise RuntimeError(f"unknown script return code {code!r} in {reply!r}")
    raise cls(reply=reply)
