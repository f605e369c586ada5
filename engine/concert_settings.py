"""A concert's own settings, set by its operators while it is on sale (PATCH
/admin/concerts/{id}/settings, ``python -m engine settings``): stored in the concert's settings
hash (configure.lua) and read by the scripts themselves on every call (lua/include/
settings.lua), so a change takes effect at once in every API worker. A setting not set is the
environment's default."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from engine.config import Settings
from engine.errors import ConcertNotFound
from engine.ids import iso_ms
from engine.keys import concert_keys
from engine.store import Store

log = logging.getLogger("admin")


class SettingError(ValueError):
    """A bad value for a setting; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Knob:
    name: str  # in the API
    field: str  # in the settings hash
    kind: str  # count | ratio | seconds | flag | time | choice
    default: Callable[[Settings], object]
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()


KNOBS = (
    Knob("activeLimit", "activeLimit", "count", lambda s: s.active_limit, 1, 10**7),
    Knob("admitPerSecond", "admitPerSecond", "count", lambda s: s.admit_per_second, 1, 10**6),
    Knob("admitPerSeat", "admitPerSeat", "ratio", lambda s: s.admit_per_seat, 0, 1000),
    Knob("returnHoldSeconds", "returnHoldMs", "seconds", lambda s: s.return_hold_seconds,
         0, 86400),
    Knob("activeTtlSeconds", "activeTtlMs", "seconds", lambda s: s.active_ttl_seconds,
         0.001, 7 * 86400),
    Knob("waitingIdleSeconds", "idleMs", "seconds", lambda s: s.waiting_idle_seconds,
         0.001, 7 * 86400),
    Knob("holdTtlSeconds", "holdMs", "seconds", lambda s: s.hold_ttl_seconds, 0.001, 86400),
    Knob("maxTicketsPerCustomer", "maxTickets", "count", lambda s: s.max_tickets_per_customer,
         0, 10**6),
    Knob("paused", "paused", "flag", lambda s: False),
    Knob("opensAt", "opensAt", "time", lambda s: None),
    Knob("queueing", "queueing", "choice", lambda s: "fifo", choices=("fifo", "random")),
    # The gates on a new token (lua/include/gates.lua): a presale code, and a proof of
    # work of this complexity (ALTCHA's maxnumber: a visitor hashes half of it on average; 0:
    # off).
    Knob("accessCodeRequired", "accessCodeRequired", "flag", lambda s: False),
    Knob("challengeComplexity", "challengeComplexity", "count", lambda s: 0, 0, 10**7),
)
BY_NAME = {k.name: k for k in KNOBS}


def to_stored(knob: Knob, value: object) -> str:
    """A validated value as the settings hash keeps it (numbers: ms, 0/1, choice index)."""
    name = knob.name
    if knob.kind in ("count", "ratio", "seconds"):
        if type(value) is float and knob.kind == "count" and value.is_integer():
            value = int(value)  # JSON's 7.0 is the integer 7 (as JSON Schema reads it)
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                knob.kind == "count" and not isinstance(value, int)):
            kind = {"count": "an integer", "ratio": "a number",
                    "seconds": "a number of seconds"}[knob.kind]
            raise SettingError(name, f"must be {kind}")
        if not knob.low <= value <= knob.high:
            raise SettingError(name, f"must be from {knob.low:g} to {knob.high:g}")
        if knob.kind == "count":
            return str(value)
        if knob.kind == "ratio":
            return f"{value:.6g}"
        return str(round(value * 1000) if knob.low == 0 else max(1, round(value * 1000)))
    if knob.kind == "flag":
        if not isinstance(value, bool):
            raise SettingError(name, "must be true or false")
        return "1" if value else "0"
    if knob.kind == "choice":
        if value not in knob.choices:
            raise SettingError(name, f"must be one of {', '.join(knob.choices)}")
        return str(knob.choices.index(value))
    return str(parse_time(name, value))


def parse_time(name: str, value: object) -> int:
    """RFC 3339 with an offset (2027-03-01T10:00:00+09:00 or ...Z) as epoch ms."""
    if not isinstance(value, str) or "T" not in value:
        raise SettingError(name, "must be an RFC 3339 date-time with an offset")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SettingError(name, "must be an RFC 3339 date-time with an offset") from None
    if at.tzinfo is None:
        raise SettingError(name, "needs an offset (Z or +09:00)")
    return round(at.timestamp() * 1000)


def from_stored(knob: Knob, raw: bytes | None, settings: Settings) -> object:
    if raw is None:
        return knob.default(settings)
    if knob.kind == "ratio":
        return float(raw)
    n = int(raw)
    if knob.kind == "seconds":
        return n / 1000
    if knob.kind == "flag":
        return n == 1
    if knob.kind == "choice":
        return knob.choices[n]
    if knob.kind == "time":
        return iso_ms(n) if n else None
    return n


async def get(store: Store, concert_id: int) -> dict:
    """The concert's settings in force, and which of them its operators set."""
    k = concert_keys(concert_id)
    if not await store.execute("EXISTS", k.concert):
        raise ConcertNotFound()
    raw = await store.execute("HMGET", k.settings, *(knob.field for knob in KNOBS))
    return {"concertId": concert_id,
            "settings": {knob.name: from_stored(knob, v, store.settings)
                         for knob, v in zip(KNOBS, raw, strict=True)},
            "overridden": sorted(knob.name for knob, v in zip(KNOBS, raw, strict=True)
                                 if v is not None)}


def validate(changes: object) -> list[tuple[Knob, str]]:
    """A PATCH body: each named setting's new stored value, "" for null (back to default)."""
    if not isinstance(changes, dict) or not changes:
        raise SettingError("(body)", "must be an object with at least one setting")
    out = []
    for name, value in changes.items():
        knob = BY_NAME.get(name)
        if knob is None:
            raise SettingError(name, f"is not a setting (settings: {', '.join(BY_NAME)})")
        out.append((knob, "" if value is None else to_stored(knob, value)))
    return out


def stored(changes: object) -> list[str]:
    """A validated PATCH body (or a catalogue document's "settings") as configure.lua's
    field, value pairs."""
    return [x for knob, value in validate(changes) for x in (knob.field, value)]


def configure_keys(concert_id: int) -> tuple[str, str]:
    k = concert_keys(concert_id)
    return k.concert, k.settings


async def patch(store: Store, concert_id: int, changes: object) -> dict:
    """Set some settings (null: back to the default), all or none; returns the settings in
    force. Logged with what changed. An opening in the future while a queue formed after an
    opening stands is refused (QueueStanding): it would put later arrivals ahead."""
    await store.run("configure", configure_keys(concert_id),
                    ("patch", store.settings.idle_ms, *stored(changes)))
    log.info("concert %s settings changed: %s", concert_id, changes)
    return await get(store, concert_id)
