"""Schemathesis hooks for tests/test_contract.py (loaded by ``SCHEMATHESIS_HOOKS``): credentials
for the operations whose security the document declares, so that generated requests reach
past authentication too.

- Queue-token operations get an ACTIVE queue token of customer 1 for concert 2 (issued once
  from the API under test) in place of the credentials schemathesis made up, unless a link
  already put an issued token in X-Queue-Token. In open mode every other request carries it
  in Authorization instead (the report's header), so both ways are tested.
- In jwt mode (``CONTRACT_JWT_SECRET`` set), a request that names a customer gets a bearer
  JWT whose sub is that customer (one in eight another customer's: 403), and a charge the
  back end's JWT with points:charge (one in eight a customer's own token: 403).
- Admin operations get ``Authorization: Bearer <CONTRACT_ADMIN_TOKEN>`` (one in eight a wrong
  token: 401).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import urllib.request

import jwt
import schemathesis

BASE = os.environ["CONTRACT_API"]
SECRET = os.environ.get("CONTRACT_JWT_SECRET", "")
ADMIN = os.environ.get("CONTRACT_ADMIN_TOKEN", "")
TOKEN = re.compile(r"[1-9][0-9]*\.[1-9][0-9]*\.[0-9a-f]{32}")
_turn = itertools.count()


def mint(**claims: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 600, **claims}, SECRET, algorithm="HS256")


def _schemes(case: schemathesis.Case) -> set[str]:
    return {name for req in case.operation.definition.raw.get("security", []) for name in req}


def _customer(case: schemathesis.Case) -> object:
    for where in (case.query, case.body):
        if isinstance(where, dict) and "customerId" in where:
            return where["customerId"]
    return None


@schemathesis.auth()
class Credentials:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        if ADMIN:
            return ADMIN
        headers = {"Content-Type": "application/json"}
        if SECRET:
            headers["Authorization"] = f"Bearer {mint(sub='1')}"
        req = urllib.request.Request(f"{BASE}/api/token/issue", method="POST", headers=headers,
                                     data=json.dumps({"customerId": 1, "concertId": 2}).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["tokenValue"]

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        schemes = _schemes(case)
        h = case.headers = dict(case.headers or {})
        if "adminToken" in schemes:
            h["Authorization"] = f"Bearer {'wrong' if next(_turn) % 8 == 0 else ADMIN}"
        if "queueToken" in schemes:
            if TOKEN.fullmatch(str(h.get("X-Queue-Token", ""))):  # from a link: keep it
                if not SECRET:
                    h.pop("Authorization", None)
            elif SECRET or next(_turn) % 2:
                h["X-Queue-Token"] = data
                if not SECRET:
                    h.pop("Authorization", None)
            else:
                h.pop("X-Queue-Token", None)
                h["Authorization"] = f"Bearer {data}"
        if "bearerJwt" in schemes:
            scopes = [s for req in case.operation.definition.raw["security"]
                      for s in req.get("bearerJwt", [])]
            wrong = next(_turn) % 8 == 0
            if scopes:
                claims = {"sub": "payments", "scope": "" if wrong else " ".join(scopes)}
            else:
                claims = {"sub": "424242" if wrong else str(_customer(case))}
            h["Authorization"] = f"Bearer {mint(**claims)}"
