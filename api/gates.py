"""The issue's gates (engine/access_codes.py, engine/challenge.py): the proof of work's
challenge for a visitor, and the operators' presale codes (api/admin.py's security). The
inputs the issue itself takes for them (``accessCode``, ``altcha``) are declared here and
bound in api/app.py."""

from __future__ import annotations

import logging

from starlette.types import Scope

from api import schemas
from api.admin import ADMIN
from api.asgi import Streamed
from api.contract import ID, Field, Integer, Operation, Reply, Text, obj
from engine import access_codes, challenge
from engine.store import Store

log = logging.getLogger("admin")

ACCESS_CODE = Field(
    "accessCode", Text(r"[A-Za-z0-9 -]{1,64}", "must be 1-64 letters, digits, dashes or spaces",
                       max_length=64),
    "A presale code: needed for a new token while the concert's accessCodeRequired is on "
    "(any case; dashes and spaces are ignored). Ignored otherwise, and by a re-issue of a "
    "live token.", required=False)
ALTCHA = Field(
    "altcha", Text(r"[A-Za-z0-9+/=]{1,4096}", "must be base64 (ALTCHA's payload)",
                   max_length=4096),
    "A solved proof of work, ALTCHA's payload (base64 of {algorithm, challenge, number, salt, "
    "signature}): needed for a new token while the concert's challengeComplexity is above 0; "
    "each solves one new token, once. Ignored otherwise, and by a re-issue of a live token.",
    required=False)


def _store(scope: Scope) -> Store:
    return scope["state"]["store"]


async def token_challenge(scope: Scope, concert_id: int) -> dict:
    return await challenge.challenge(_store(scope), concert_id)


async def make_codes(scope: Scope, concert_id: int, count: int, uses: int) -> dict:
    codes = await access_codes.make(_store(scope), concert_id, count, uses)
    log.info("concert %s: %d presale codes of %d uses made", concert_id, len(codes), uses)
    return {"concertId": concert_id, "uses": uses, "codes": codes}


async def export_codes(scope: Scope, concert_id: int) -> Streamed:
    return Streamed(b"text/csv; charset=utf-8",
                    access_codes.export_csv(_store(scope), concert_id))


CHALLENGE = obj({
    "algorithm": {"const": challenge.ALGORITHM},
    "challenge": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "maxnumber": {"type": "integer", "minimum": 1, "maximum": challenge.MAX_COMPLEXITY},
    "salt": {"type": "string"},
    "signature": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "required": {"type": "boolean", "description": "Whether the concert's gate is on now: "
                                                   "while it is off, issue takes no solution."},
})
CONCERT = Field("concertId", ID, "The concert.", where="path", example=7)

# The visitor's side: served with an HMAC key (CHALLENGE_HMAC_KEY, or a ticket signing key).
OPERATIONS = [
    Operation("GET", "/api/token/challenge", token_challenge, "tokenChallenge", tag="queue",
              summary="A proof of work to solve before joining a concert's queue",
              description="An ALTCHA challenge (its widget solves it: api/static/altcha/), "
                          "signed, for this concert, at its challengeComplexity (maxnumber), "
                          f"valid CHALLENGE_TTL_SECONDS. While the gate is off: one at "
                          f"{challenge.DEFAULT_COMPLEXITY:,} with required false. Its solution "
                          "goes in the issue's 'altcha' and makes one new token, once. A 403 "
                          "CHALLENGE_REQUIRED or CHALLENGE_INVALID to an issue carries a fresh "
                          "one too.",
              inputs=(Field("concertId", ID, "The concert.", where="query", example=2),),
              codes=("CONCERT_NOT_FOUND",),
              ok=Reply(CHALLENGE, "The challenge.", {
                  "algorithm": "SHA-256", "challenge": "5e0f" * 16, "maxnumber": 50000,
                  "salt": "6a1f0c2e9b8d4c3a7e5f1b2d?expires=1795599043&concertId=2&",
                  "signature": "b81c" * 16, "required": True})),
]

# The operators': served with ADMIN_TOKEN.
ADMIN_OPERATIONS = [
    Operation("POST", "/admin/concerts/{concertId}/access-codes", make_codes, "makeAccessCodes",
              tag="admin", summary="Make presale codes",
              description=f"count new codes (at most {access_codes.MAX_PER_CALL:,} a call) of "
                          "uses uses each: 80 random bits, 16 characters of base32. While the "
                          "concert's accessCodeRequired is on, a new token needs one and spends "
                          "a use. A concert holds at most ACCESS_CODES_PER_CONCERT codes (409 "
                          "ACCESS_CODE_LIMIT, nothing made).",
              inputs=(CONCERT,
                      Field("count", Integer(1, access_codes.MAX_PER_CALL), "How many codes.",
                            example=100),
                      Field("uses", Integer(1, access_codes.MAX_USES),
                            "New tokens each code lets in.", example=1)),
              security=ADMIN, writes=True, codes=("CONCERT_NOT_FOUND", "ACCESS_CODE_LIMIT"),
              ok=Reply(obj({"concertId": ID.schema(), "uses": schemas.COUNT,
                            "codes": {"type": "array", "items": {
                                "type": "string", "pattern": "^[A-Z2-7]{16}$"}}}),
                       "The new codes.")),
    Operation("GET", "/admin/concerts/{concertId}/access-codes.csv", export_codes,
              "exportAccessCodes", tag="admin",
              summary="The presale codes and their uses left as CSV (streamed)",
              inputs=(CONCERT,), security=ADMIN,
              ok=Reply({"type": "string"}, "code, usesLeft.", media_type="text/csv")),
]
