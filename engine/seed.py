"""Demo data: concert 2 with four future performances (one is 41150) of 50 seats each, and
customers 1-10,000 with 1,000,000 points. Idempotent: it only creates what is missing, so a
second run never resets a balance, a hold or a sale."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
import redis

from engine.keys import CONCERTS, CustomerKeys, concert_keys
from engine.money import MINOR_PER_UNIT, from_minor
from engine.scripts import load_sources

DEMO_CONCERT = 2
DEMO_OPTIONS = (41150, 41151, 41152, 41153)
DEMO_CUSTOMERS = 10_000
DEMO_BALANCE = 1_000_000 * MINOR_PER_UNIT
SEATS_PER_OPTION = 50


@dataclass(frozen=True, slots=True)
class Seat:
    id: int
    number: int
    price: int  # minor units


@dataclass(frozen=True, slots=True)
class Option:
    id: int
    date: str
    seats: tuple[Seat, ...]


def seat_price(number: int) -> int:
    """VIP rows, then R, then S, in minor units."""
    points = 150_000 if number <= 10 else 120_000 if number <= 30 else 90_000
    return points * MINOR_PER_UNIT


def demo_options(today: date | None = None) -> list[Option]:
    start = (today or date.today()) + timedelta(days=30)
    days = (0, 1, 14, 15)
    return [
        Option(
            id=opt,
            date=f"{start + timedelta(days=d)}T19:00:00+09:00",
            seats=tuple(
                Seat(opt * 100 + n, n, seat_price(n)) for n in range(1, SEATS_PER_OPTION + 1)
            ),
        )
        for opt, d in zip(DEMO_OPTIONS, days, strict=True)
    ]


def create_concert(r: redis.Redis, concert_id: int, name: str, options: Iterable[Option]) -> int:
    """Create the concert and whichever of its options do not exist yet (create_option.lua,
    atomic per option). Returns how many options were created now."""
    k = concert_keys(concert_id)
    script = r.register_script(load_sources()["create_option"])
    created = 0
    for opt in options:
        seats = sorted(opt.seats, key=lambda seat: seat.number)
        args: list[object] = [opt.id, opt.date, name, secrets.token_hex(8)]
        for seat in seats:
            view = {"id": seat.id, "number": seat.number, "price": from_minor(seat.price)}
            args += [seat.id, seat.number, seat.price, orjson.dumps(view)]
        keys = [k.concert, k.options, k.free, k.layout, k.seats(opt.id), k.seat_view(opt.id)]
        created += script(keys=keys, args=args)[1]
    r.sadd(CONCERTS, concert_id)
    return created


def fund_customers(r: redis.Redis, first: int, last: int, minor: int) -> int:
    """Give customers first..last a starting balance unless they have one. Returns how many
    were funded now."""
    funded = 0
    for lo in range(first, last + 1, 1000):
        with r.pipeline(transaction=False) as p:
            for cid in range(lo, min(lo + 1000, last + 1)):
                p.set(CustomerKeys(cid).balance, minor, nx=True)
            funded += sum(1 for ok in p.execute() if ok)
    return funded


def seed_demo(r: redis.Redis, customers: int = DEMO_CUSTOMERS) -> dict:
    create_concert(r, DEMO_CONCERT, "Demo Concert", demo_options())
    funded = fund_customers(r, 1, customers, DEMO_BALANCE)
    return {"concert": DEMO_CONCERT, "options": list(DEMO_OPTIONS), "funded": funded}
