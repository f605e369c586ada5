"""Demo data: the catalogue document catalog/demo.json (concert 2: four performances, one is
41150, of 50 seats in sections VIP, R and S), loaded by the same code as any catalogue
(engine/venue.py), and customers 1-10,000 with 1,000,000 points. Idempotent: it only creates
what is missing, so a second run never resets a balance, a hold or a sale.

``create_concert`` writes a concert from Python objects with the seat ids given (the tests'
and benchmarks' catalogues), through the same loader."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import orjson

from engine.keys import CustomerKeys
from engine.money import MINOR_PER_UNIT
from engine.sync import SyncRedis
from engine.venue import DocumentError, Option, Seat, Venue, load_sync, parse

__all__ = ["DEMO_CONCERT", "DEMO_OPTIONS", "Option", "Seat", "create_concert", "fund_customers",
           "seed_demo"]

log = logging.getLogger(__name__)

DEMO_DOCUMENT = Path(__file__).resolve().parent.parent / "catalog" / "demo.json"
DEMO_CONCERT = 2
DEMO_OPTIONS = (41150, 41151, 41152, 41153)
DEMO_CUSTOMERS = 10_000
DEMO_BALANCE = 1_000_000 * MINOR_PER_UNIT


def create_concert(r: SyncRedis, concert_id: int, name: str, options: Iterable[Option]) -> int:
    """Create the concert and whichever of its options do not exist yet. Returns how many
    options were created now."""
    return len(load_sync(r, Venue(concert_id, name, tuple(options)))["created"])


def fund_customers(r: SyncRedis, first: int, last: int, minor: int) -> int:
    """Give customers first..last a starting balance unless they have one. Returns how many
    were funded now."""
    funded = 0
    for lo in range(first, last + 1, 1000):
        with r.pipeline(transaction=False) as p:
            for cid in range(lo, min(lo + 1000, last + 1)):
                p.set(CustomerKeys(cid).balance, minor, nx=True)
            funded += sum(1 for ok in p.execute() if ok)
    return funded


def seed_demo(r: SyncRedis, customers: int = DEMO_CUSTOMERS) -> dict:
    venue = parse(orjson.loads(DEMO_DOCUMENT.read_bytes()))
    try:
        load_sync(r, venue)
    except DocumentError as e:  # a Redis with the demo of an older version: keep it as it is
        log.warning("the demo concert on this Redis differs from %s (%s): kept as it is",
                    DEMO_DOCUMENT.name, e)
    funded = fund_customers(r, 1, customers, DEMO_BALANCE)
    return {"concert": DEMO_CONCERT, "options": list(DEMO_OPTIONS), "funded": funded}
