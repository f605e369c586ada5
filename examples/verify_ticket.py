"""Verify a ticket offline with the box office's public key (docs/tickets.md):

    .venv/bin/python examples/verify_ticket.py ticket-key.pub.pem "$TICKET"

Exit 0 with what the ticket says when its signature verifies, 1 when it does not. Needs only
the `cryptography` package: no network, no Redis. Whether the ticket still lets its holder in
(not refunded, not scanned before) only the check-in knows (POST /admin/checkin)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key


def verify(public_pem: bytes, ticket: str) -> list[str]:
    """The ticket's words (TK1, concertId, reservation secret, concertOptionId, seatId) if the
    key signed exactly this text; InvalidSignature if not."""
    key = load_pem_public_key(public_pem)
    assert isinstance(key, Ed25519PublicKey), "a ticket key is Ed25519"
    body, _, signature = ticket.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != signature:
        raise InvalidSignature  # base64's spare bits: only one spelling is the ticket
    key.verify(raw, body.encode())  # raises InvalidSignature
    return body.split(".")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: verify_ticket.py PUBLIC_KEY.pem TICKET", file=sys.stderr)
        return 2
    try:
        version, concert, secret, option, seat = verify(Path(argv[0]).read_bytes(), argv[1])
    except (InvalidSignature, ValueError) as e:
        print(f"NOT a valid ticket ({type(e).__name__})")
        return 1
    print(f"valid {version} ticket: reservation {concert}.{secret}, performance {option}, "
          f"seat {seat}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
