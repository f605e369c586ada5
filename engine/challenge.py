"""The proof-of-work gate: while a concert's ``challengeComplexity`` is above 0, a NEW token
needs a solved ALTCHA challenge (the format of the ``altcha`` package, its v1: the reference
library makes the challenge, the widget in api/static/altcha/ solves it in a browser).

A challenge is ``{algorithm: "SHA-256", challenge, maxnumber, salt, signature}``: the server
draws a secret number n in [0, maxnumber], and challenge = SHA-256(salt + n), signature =
HMAC-SHA-256(key, challenge). The salt is 12 random bytes in hex, then a query part that
names when it expires (``expires``, Unix seconds) and the concert it is for (``concertId``),
ending with ``&``. The client finds n by trying 0, 1, 2, ... (maxnumber / 2 hashes on
average: the complexity is maxnumber) and sends back its payload, base64 of ``{algorithm,
challenge, number, salt, signature}``. Nothing is stored when a challenge is made: the
signature proves it is ours.

The engine checks a payload (its shape, the signature, the proof, the concert) in Python before
the issue script, ~10 µs of CPU; the script then refuses an expired one by Redis's clock, or
one spent already, and spends it with the token it makes: a key per solution that expires
with its challenge (lua/include/gates.lua). So a solution makes one token, once, and what the
gate keeps in Redis is one small key per token made in the last CHALLENGE_TTL_SECONDS.

The HMAC key: CHALLENGE_HMAC_KEY, else derived from TICKET_SIGNING_KEY (HKDF-SHA-256 over the
raw Ed25519 key, its own label), so every worker that signs the same tickets agrees on
challenges too, with nothing more to configure; with neither, no challenge is served and a
concert behind the gate takes no new token (closed, never open)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
from functools import cache
from typing import NamedTuple
from urllib.parse import parse_qs

import orjson
from altcha import create_challenge_v1, hash_hex, hmac_hex
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.config import Settings
from engine.errors import ChallengeInvalid, ChallengeRefused, ChallengeRequired, ConcertNotFound
from engine.keys import concert_keys
from engine.store import Store

ALGORITHM = "SHA-256"
# What the README recommends when the gate is on, and what GET /api/token/challenge answers
# while it is off: the widget solves it in 0.47 s on average in headless Chromium here, 0.68 s
# at worst (python -m loadtests.pow_bench.solve; README, "A proof-of-work gate").
DEFAULT_COMPLEXITY = 50_000
MAX_COMPLEXITY = 10**7  # the setting's bound (engine/concert_settings.py)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SALT = re.compile(r"[0-9a-f]{24}\?([0-9A-Za-z=&]{1,100})&")


class Verified(NamedTuple):
    challenge: str  # its 64 hex: what the issue script remembers as spent
    expires_ms: int


class ChallengeError(ValueError):
    """Why a payload is refused (wrong shape, signature or proof, another concert)."""


def hmac_key(settings: Settings) -> bytes | None:
    """The key challenges are signed with (None: none configured, the gate stays shut)."""
    return _key(settings.challenge_hmac_key, settings.ticket_signing_key)


@cache
def _key(configured: str, ticket_pem: str) -> bytes | None:
    if configured:
        return configured.encode()
    if not ticket_pem:
        return None
    key = serialization.load_pem_private_key(ticket_pem.encode(), None)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=b"ticketing-engine altcha challenge hmac v1").derive(raw)


def new(key: bytes, concert_id: int, complexity: int, ttl_seconds: float) -> dict:
    """A signed challenge for the concert at this complexity, expiring in ``ttl_seconds``."""
    expires = datetime.fromtimestamp(time.time() + ttl_seconds, UTC)
    c = create_challenge_v1(algorithm=ALGORITHM, max_number=complexity, hmac_key=key,
                            expires=expires, params={"concertId": str(concert_id)})
    return {"algorithm": c.algorithm, "challenge": c.challenge, "maxnumber": c.max_number,
            "salt": c.salt, "signature": c.signature}


async def complexity_of(store: Store, concert_id: int) -> int:
    """The concert's challengeComplexity now (ConcertNotFound for an unknown concert)."""
    k = concert_keys(concert_id)
    exists, [raw] = await asyncio.gather(  # pipelined: one round trip
        store.execute("EXISTS", k.concert),
        store.execute("HMGET", k.settings, "challengeComplexity"))
    if not exists:
        raise ConcertNotFound()
    return int(raw) if raw is not None else 0


async def challenge(store: Store, concert_id: int) -> dict:
    """A challenge for the concert at its complexity (while the gate is off, at
    DEFAULT_COMPLEXITY, with ``required`` false: the issue takes no solution then)."""
    key = hmac_key(store.settings)
    assert key is not None, "served only with a key (api/gates.py)"
    complexity = await complexity_of(store, concert_id)
    return {**new(key, concert_id, complexity or DEFAULT_COMPLEXITY,
                  store.settings.challenge_ttl_seconds), "required": complexity > 0}


def verify(key: bytes | None, payload: str, concert_id: int) -> Verified:
    """The challenge a payload solves and when it expires, if it is one of ours for this
    concert and the number solves it; else ChallengeError saying why. Expiry and reuse are the
    issue script's to judge (by Redis's clock, atomically with the token)."""
    if key is None:
        raise ChallengeError("no challenge can be checked here (no CHALLENGE_HMAC_KEY)")
    try:
        p = orjson.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        raise ChallengeError("it is not base64 of a JSON object") from None
    if not isinstance(p, dict):
        raise ChallengeError("it is not base64 of a JSON object")
    algorithm, challenge_, number, salt, signature = (
        p.get("algorithm"), p.get("challenge"), p.get("number"), p.get("salt"),
        p.get("signature"))
    if algorithm != ALGORITHM or type(number) is not int or not 0 <= number <= MAX_COMPLEXITY or \
            not isinstance(challenge_, str) or not _HEX64.fullmatch(challenge_) or \
            not isinstance(signature, str) or not _HEX64.fullmatch(signature) or \
            not isinstance(salt, str) or (m := _SALT.fullmatch(salt)) is None:
        raise ChallengeError("it lacks ALTCHA's algorithm (SHA-256), challenge, number, salt "
                             "or signature, or one is malformed")
    # The library's own hash and HMAC; compared in constant time (its verify_solution uses ==).
    if not hmac.compare_digest(hmac_hex(ALGORITHM, challenge_.encode(), key), signature):
        raise ChallengeError("its signature is not ours")
    if not hmac.compare_digest(hash_hex(ALGORITHM, f"{salt}{number}".encode()), challenge_):
        raise ChallengeError("its number does not solve the challenge")
    params = parse_qs(m[1], strict_parsing=True)
    expires, concert = params.get("expires", []), params.get("concertId", [])
    if len(expires) != 1 or not expires[0].isdigit() or concert != [str(concert_id)]:
        raise ChallengeError("it was made for another concert")
    return Verified(challenge_, int(expires[0]) * 1000)


def solve(c: dict) -> int:
    """The number that solves a challenge, found as a client finds it (0, 1, 2, ...): for
    tests, benchmarks and a bot's cost (README). The salt is hashed once, then copied for each
    number (~0.5 µs a number here, the library's solver ~0.7)."""
    target = bytes.fromhex(c["challenge"])
    salted = hashlib.sha256(c["salt"].encode())
    for n in range(int(c["maxnumber"]) + 1):
        h = salted.copy()
        h.update(b"%d" % n)
        if h.digest() == target:
            return n
    raise ValueError("no number up to maxnumber solves it")


def refusal(settings: Settings, concert_id: int, e: ChallengeRefused,
            why: str = "") -> ChallengeRefused:
    """The issue script's refusal, said for a person (``why``: the engine's own reason) and
    with a fresh challenge at the concert's complexity (the script's reply), so that a client
    solves it and issues again without another call."""
    complexity = int(e.reply[-1])
    if isinstance(e, ChallengeInvalid):
        detail = "'altcha' is refused: " + (
            why, "its challenge expired", "it was spent on a token already (a solution makes "
            "one token)")[e.reason] + "; solve this problem's challenge and issue again."
        out: ChallengeRefused = ChallengeInvalid(detail, e.reply)
    else:
        out = ChallengeRequired(
            f"A new token for concert {concert_id} needs a solved proof of work as 'altcha': "
            "solve this problem's challenge (or GET /api/token/challenge?concertId="
            f"{concert_id}'s) and issue again.", e.reply)
    key = hmac_key(settings)
    if key is not None:
        out.challenge = new(key, concert_id, complexity, settings.challenge_ttl_seconds)
    return out
