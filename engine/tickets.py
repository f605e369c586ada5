"""Tickets: a PAID reservation is a ticket, a compact string signed with Ed25519, checked in at
the door once (lua/checkin.lua). The admin API (api/tickets.py) and the CLI (``python -m
engine checkin``) are both doors onto these.

A ticket names its reservation and seat, and is signed over exactly those words::

    TK1.<concertId>.<reservation secret>.<concertOptionId>.<seatId>.<signature>
    TK1.2.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e.41150.4115001.Xl3...  (86 characters)

the signature being Ed25519 (RFC 8032) over the ASCII text before its last dot, in
unpadded base64url. ``TK1`` is the format's version and keeps the key from signing anything
that reads as something else. Ed25519 signs deterministically, so a reservation's ticket is
the same string every time it is asked for. Why not a JWT: the same facts in a JWT (a JSON
header and body, base64url, EdDSA) take 219 characters against 139, a QR code of version 11
against 8, and a smaller code scans faster at a door; anyone verifies this one with five
lines (docs/tickets.md). The customer is not in the ticket: it says which
seat, not who.

The signature proves a ticket was issued; Redis decides whether it still lets someone in
(paid, not refunded, not scanned before), in one atomic script.
"""

from __future__ import annotations

import base64
import re
from typing import NamedTuple

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import operator
from engine.errors import NotPaid, ReservationNotFound, ReservationRefunded, TicketInvalid
from engine.ids import iso_ms, reservation_id
from engine.keys import concert_keys
from engine.store import Store

VERSION = "TK1"
_ID = r"[1-9][0-9]{0,15}"
# The whole ticket (the check-in's input rule, api/tickets.py, uses the same text).
PATTERN = rf"{VERSION}\.{_ID}\.[0-9a-f]{{32}}\.{_ID}\.{_ID}\.[A-Za-z0-9_-]{{86}}"
_TICKET = re.compile(rf"({VERSION}\.({_ID})\.([0-9a-f]{{32}})\.({_ID})\.({_ID}))"
                     rf"\.([A-Za-z0-9_-]{{86}})")


class Ticket(NamedTuple):
    """What a verified ticket says."""

    concert_id: int
    secret: str  # the reservation's 32 hex
    option_id: int
    seat_id: int

    @property
    def reservation_id(self) -> str:
        return reservation_id(self.concert_id, self.secret)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TicketKey:
    """The Ed25519 key tickets are signed with (TICKET_SIGNING_KEY): every worker loads the
    same one, so any worker's ticket checks in on any other, and after a restart."""

    def __init__(self, pem: str) -> None:
        try:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError) as e:
            raise ValueError(f"TICKET_SIGNING_KEY is not an unencrypted PEM private key: "
                             f"{e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("TICKET_SIGNING_KEY must be an Ed25519 private key (python -m "
                             "engine ticket-key makes one)")
        self._key = key
        self.public = key.public_key()
        self.public_pem = self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        raw = self.public.public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw)
        # RFC 8037: the same key as a JWK, for a verifier in a browser (WebCrypto) or a JOSE
        # library.
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}

    @classmethod
    def from_pem(cls, pem: str) -> TicketKey | None:
        """The key of a PEM, None for "" (no key configured)."""
        return cls(pem) if pem else None

    def sign(self, concert_id: int, secret: str, option_id: int, seat_id: int) -> str:
        body = f"{VERSION}.{concert_id}.{secret}.{option_id}.{seat_id}"
        return f"{body}.{_b64(self._key.sign(body.encode()))}"

    def verify(self, ticket: str) -> Ticket:
        """What the ticket says, if this key signed exactly it; else TicketInvalid."""
        m = _TICKET.fullmatch(ticket)
        if m is None:
            raise TicketInvalid("The ticket is not one of ours: it does not have the form "
                                "TK1.<concertId>.<32 hex>.<concertOptionId>.<seatId>.<signature>.")
        body, concert, secret, option, seat, signature = m.groups()
        raw = base64.urlsafe_b64decode(signature + "==")
        # base64 has spare bits in its last character: only the one spelling of the signature
        # is the ticket (another would be a second string that verifies: an altered ticket).
        try:
            if _b64(raw) != signature:
                raise InvalidSignature
            self.public.verify(raw, body.encode())
        except InvalidSignature:
            raise TicketInvalid("The ticket's signature does not verify: it was altered or "
                                "not signed by this box office.") from None
        return Ticket(int(concert), secret, int(option), int(seat))


def new_key_pem() -> str:
    """A new Ed25519 private key as PEM (PKCS#8), for TICKET_SIGNING_KEY."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


async def ticket(store: Store, key: TicketKey, concert_id: int, secret: str,
                 customer_id: int) -> dict:
    """The customer's ticket for a PAID reservation: the seat and the signed string. Another
    customer's reservation is not found (as everywhere); an unpaid one is NOT_PAID, a refunded
    one RESERVATION_REFUNDED. A read of one record: no script needed."""
    raw = await store.execute("HGET", concert_keys(concert_id).res, secret)
    rec = orjson.loads(raw) if raw is not None else None
    if rec is None or int(rec["customer"]) != customer_id:
        raise ReservationNotFound()
    if rec["status"] in ("REFUNDING", "REFUNDED"):
        raise ReservationRefunded("The reservation was refunded: it is no ticket any more.")
    if rec["status"] != "PAID":
        raise NotPaid("The reservation is not paid: it becomes a ticket once it is.")
    option, seat = int(rec["option"]), int(rec["seat"])
    view = await operator.seat_view(store, concert_id, option, seat)
    checked_in = rec.get("checkedIn")
    return {"reservationId": reservation_id(concert_id, secret), "concertId": concert_id,
            "concertOptionId": option, "seatId": seat, "section": view.get("section"),
            "row": view.get("row"), "number": view.get("number"),
            "ticket": key.sign(concert_id, secret, option, seat),
            "checkedInAt": iso_ms(int(checked_in)) if checked_in else None}


async def check_in(store: Store, key: TicketKey, ticket_text: str) -> dict:
    """Let the ticket's holder in, once: TicketInvalid (forged, altered), AlreadyCheckedIn
    (with the first scan's time), TicketRefunded; of concurrent scans one checks in."""
    return await enter(store, key.verify(ticket_text))


async def enter(store: Store, t: Ticket) -> dict:
    """The check-in of a ticket already verified: lua/checkin.lua decides by the record."""
    k = concert_keys(t.concert_id)
    _, at = await store.run("checkin", (k.res, k.concert, k.events),
                            (t.secret, t.seat_id, store.settings.events_maxlen))
    return {"status": "CHECKED_IN", "reservationId": t.reservation_id, "seatId": t.seat_id,
            "at": iso_ms(at)}
