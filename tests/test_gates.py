"""The issue's gates (lua/include/gates.lua, engine/access_codes.py, engine/challenge.py,
api/gates.py): presale codes made by operators (admin API and CLI), spent one use per new
token, exactly, under concurrent issues; the proof of work's challenges, solutions refused
when wrong, expired, another concert's or replayed, and one solution one token under
concurrent issues; a re-issue of a live token needs neither; bad input a 4xx naming the field."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis
from altcha import create_challenge_v1, solve_challenge_v1
from starlette.testclient import TestClient

from devstack import REPO
from devstack.api_server import Server
from engine import challenge
from engine.config import Settings
from engine.keys import concert_keys
from tests.conftest import CONCERT, TICKET_KEY
from tests.http import HOST, fire

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

ADMIN_TOKEN = "op-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEY = "a-challenge-hmac-key-of-32-bytes-or-more"
EASY = 1000  # a complexity the tests solve in ~1 ms


@pytest.fixture
def box(make_client: Callable[..., TestClient], catalog: redis.Redis) -> TestClient:
    return make_client(admin_token=ADMIN_TOKEN, challenge_hmac_key=KEY)


def settings_of(client: TestClient, **changes: object) -> None:
    resp = client.patch(f"/admin/concerts/{CONCERT}/settings", headers=ADMIN, json=changes)
    assert resp.status_code == 200, resp.text


def issue(client: TestClient, customer: int, **body: object):
    return client.post("/api/token/issue",
                       json={"customerId": customer, "concertId": CONCERT, **body})


def refused(resp, status: int, code: str, names: str = "") -> dict:
    assert resp.status_code == status and resp.json()["code"] == code, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert names in resp.json()["detail"], resp.json()
    return resp.json()


def codes(client: TestClient, count: int, uses: int) -> list[str]:
    resp = client.post(f"/admin/concerts/{CONCERT}/access-codes", headers=ADMIN,
                       json={"count": count, "uses": uses})
    assert resp.status_code == 200, resp.text
    return resp.json()["codes"]


def uses_left(r: redis.Redis, code: str) -> int:
    return int(r.hget(concert_keys(CONCERT).codes, code))


def solve(c: dict) -> str:
    """The widget's payload for a challenge: base64 of its JSON with the number found."""
    found = solve_challenge_v1(c["challenge"], c["salt"], c["algorithm"], c["maxnumber"])
    assert found is not None
    return base64.b64encode(orjson.dumps({**c, "number": found.number})).decode()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=60)


# --- presale codes --------------------------------------------------------------------------
def test_operators_make_codes_by_api_and_cli_and_export_them(
        box: TestClient, catalog: redis.Redis, redis_url: str) -> None:
    made = codes(box, 3, 2)
    assert len(set(made)) == 3 and all(len(c) == 16 and c.isalnum() and c.isupper()
                                       for c in made)  # 80 bits of base32
    out = cli({"REDIS_URL": redis_url}, "codes", str(CONCERT), "--count", "2", "--uses", "5")
    assert out.returncode == 0, out.stderr
    by_cli = out.stdout.split()
    assert len(by_cli) == 2
    csv = box.get(f"/admin/concerts/{CONCERT}/access-codes.csv", headers=ADMIN)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.splitlines()
    assert rows[0] == "code,usesLeft"
    assert sorted(rows[1:]) == sorted([f"{c},2" for c in made] + [f"{c},5" for c in by_cli])
    exported = cli({"REDIS_URL": redis_url}, "codes", str(CONCERT), "--export")
    assert exported.returncode == 0 and sorted(exported.stdout.splitlines()) == sorted(
        csv.text.splitlines())
    assert cli({"REDIS_URL": redis_url}, "codes", str(CONCERT), "--count", "0").returncode == 2


def test_code_calls_are_bounded_and_bad_ones_change_nothing(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    box = make_client(admin_token=ADMIN_TOKEN, access_codes_per_concert=5)
    path = f"/admin/concerts/{CONCERT}/access-codes"
    for body, name in [({"count": 0, "uses": 1}, "count"), ({"count": 100_001, "uses": 1}, "count"),
                       ({"count": 1, "uses": 0}, "uses"), ({"count": "2", "uses": 1}, "count"),
                       ({"uses": 1}, "count")]:
        resp = box.post(path, headers=ADMIN, json=body)
        assert resp.status_code == 400 and name in resp.json()["detail"], (body, resp.text)
    refused(box.post("/admin/concerts/99/access-codes", headers=ADMIN,
                     json={"count": 1, "uses": 1}), 404, "CONCERT_NOT_FOUND")
    assert box.post(path, json={"count": 1, "uses": 1}).status_code == 401
    codes(box, 4, 1)
    refused(box.post(path, headers=ADMIN, json={"count": 2, "uses": 1}), 409,
            "ACCESS_CODE_LIMIT", "ACCESS_CODES_PER_CONCERT")
    assert catalog.hlen(concert_keys(CONCERT).codes) == 4  # all or nothing
    codes(box, 1, 1)
    assert catalog.hlen(concert_keys(CONCERT).codes) == 5


def test_a_presale_takes_new_tokens_with_a_code_and_spends_one_use_each(
        box: TestClient, catalog: redis.Redis) -> None:
    [code] = codes(box, 1, 2)
    k = concert_keys(CONCERT)
    # Off (the default): a code is neither needed nor spent.
    assert issue(box, 1, accessCode=code).status_code == 200
    assert uses_left(catalog, code) == 2
    settings_of(box, accessCodeRequired=True)
    before = (catalog.hlen(k.tokens), catalog.hlen(k.seqs), catalog.zcard(k.active))
    refused(issue(box, 2), 403, "ACCESS_CODE_REQUIRED", "accessCode")
    refused(issue(box, 2, accessCode="NOTACODEATALL234"), 403, "ACCESS_CODE_INVALID",
            "accessCode")
    assert (catalog.hlen(k.tokens), catalog.hlen(k.seqs), catalog.zcard(k.active)) == before
    for bad, status in [(7, 400), ("", 400), ("x" * 65, 400), ("a;b", 400)]:
        resp = issue(box, 2, accessCode=bad)
        assert resp.status_code == status and "accessCode" in resp.json()["detail"], resp.text
    # Typed in any case, with dashes: one use for customer 2's new token.
    typed = "-".join(code[i:i + 4] for i in range(0, 16, 4)).lower()
    token = issue(box, 2, accessCode=typed).json()["tokenValue"]
    assert uses_left(catalog, code) == 1
    # Customer 1's token from before the presale, and 2's again: re-issues, nothing spent.
    assert issue(box, 1).status_code == 200
    assert issue(box, 2).json()["tokenValue"] == token
    assert uses_left(catalog, code) == 1
    assert issue(box, 3, accessCode=code).status_code == 200
    assert uses_left(catalog, code) == 0
    refused(issue(box, 4, accessCode=code), 403, "ACCESS_CODE_INVALID")
    assert uses_left(catalog, code) == 0 and catalog.hget(k.tokens, 4) is None


def test_fifty_concurrent_issues_with_one_single_use_code_make_one_token(
        live_server: Callable[..., Server], catalog: redis.Redis) -> None:
    server = live_server(ADMIN_TOKEN=ADMIN_TOKEN)
    catalog.hset(concert_keys(CONCERT).settings, "accessCodeRequired", 1)
    [[(status, made)]] = fire(HOST, server.port, [[
        ("POST", f"/admin/concerts/{CONCERT}/access-codes", {"count": 1, "uses": 1}, ADMIN)]])
    assert status == 200
    code = made["codes"][0]
    batches = [[("POST", "/api/token/issue",
                 {"customerId": c, "concertId": CONCERT, "accessCode": code}, {})]
               for c in range(1, 51)]
    results = [res[0] for res in fire(HOST, server.port, batches)]
    assert sorted(s for s, _ in results).count(200) == 1, results
    assert {b["code"] for s, b in results if s != 200} == {"ACCESS_CODE_INVALID"}
    assert catalog.hlen(concert_keys(CONCERT).tokens) == 1
    assert uses_left(catalog, code) == 0


# --- the proof of work ----------------------------------------------------------------------
def test_a_challenge_for_each_concert_signed_and_at_its_complexity(box: TestClient) -> None:
    off = box.get("/api/token/challenge", params={"concertId": CONCERT}).json()
    assert off["required"] is False and off["maxnumber"] == challenge.DEFAULT_COMPLEXITY
    settings_of(box, challengeComplexity=EASY)
    on = box.get("/api/token/challenge", params={"concertId": CONCERT}).json()
    assert on["required"] is True and on["maxnumber"] == EASY and on["algorithm"] == "SHA-256"
    assert f"concertId={CONCERT}&" in on["salt"] and "expires=" in on["salt"]
    assert on["challenge"] != off["challenge"]
    refused(box.get("/api/token/challenge", params={"concertId": 99}), 404, "CONCERT_NOT_FOUND")
    refused(box.get("/api/token/challenge", params={"concertId": "x"}), 400, "INVALID_ID",
            "concertId")
    refused(box.get("/api/token/challenge"), 400, "MISSING_PARAMETER", "concertId")


def test_a_solution_makes_one_new_token_once(box: TestClient, catalog: redis.Redis) -> None:
    settings_of(box, challengeComplexity=EASY)
    k = concert_keys(CONCERT)
    problem = refused(issue(box, 1), 403, "CHALLENGE_REQUIRED", "altcha")
    assert problem["challenge"]["maxnumber"] == EASY  # a fresh one, to solve at once
    payload = solve(problem["challenge"])
    token = issue(box, 1, altcha=payload).json()["tokenValue"]
    # The record of the spent solution lives as long as its challenge.
    solved = k.solved(problem["challenge"]["challenge"])
    assert 0 < catalog.pttl(solved) <= 120_000
    # A re-issue of the live token needs no solution; the solution again is refused.
    assert issue(box, 1).json()["tokenValue"] == token
    again = refused(issue(box, 2, altcha=payload), 403, "CHALLENGE_INVALID", "spent")
    assert catalog.hget(k.tokens, 2) is None
    assert issue(box, 2, altcha=solve(again["challenge"])).status_code == 200


def test_wrong_foreign_and_expired_solutions_are_refused(box: TestClient,
                                                         catalog: redis.Redis) -> None:
    settings_of(box, challengeComplexity=EASY)
    c = box.get("/api/token/challenge", params={"concertId": CONCERT}).json()
    good = orjson.loads(base64.b64decode(solve(c)))

    def b64(obj: object) -> str:
        return base64.b64encode(orjson.dumps(obj)).decode()

    other = box.get("/api/token/challenge", params={"concertId": 3}).json()
    foreign_key = create_challenge_v1(algorithm="SHA-256", max_number=EASY, hmac_key="other" * 8,
                                      params={"concertId": str(CONCERT)}, salt="", number=None,
                                      expires=datetime.now(UTC) + timedelta(minutes=1),
                                      salt_length=12).to_dict()
    past = create_challenge_v1(algorithm="SHA-256", max_number=EASY, hmac_key=KEY,
                               params={"concertId": str(CONCERT)}, salt="", number=None,
                               expires=datetime.now(UTC) - timedelta(seconds=5),
                               salt_length=12).to_dict()
    for payload, why in [
            (b64({**good, "number": good["number"] + 1}), "does not solve"),
            (b64({**good, "number": str(good["number"])}), "malformed"),
            (b64({**good, "signature": "0" * 64}), "signature"),
            (b64({**good, "algorithm": "SHA-1"}), "malformed"),
            (solve({**other, "maxnumber": other["maxnumber"]}), "another concert"),
            (solve({**foreign_key, "maxnumber": EASY}), "signature"),
            (solve({**past, "maxnumber": EASY}), "expired"),
            ("bm90IGpzb24=", "base64 of a JSON object"), ("abc", "base64"),
            (b64([1, 2]), "JSON object")]:
        refused(issue(box, 5, altcha=payload), 403, "CHALLENGE_INVALID", why)
    assert catalog.hget(concert_keys(CONCERT).tokens, 5) is None
    assert not catalog.exists(concert_keys(CONCERT).solved(c["challenge"]))  # nothing written
    for bad in [7, "", "not base64!", "A" * 4097]:
        resp = issue(box, 5, altcha=bad)
        assert resp.status_code == 400 and "altcha" in resp.json()["detail"], resp.text
    assert issue(box, 5, altcha=b64(good)).status_code == 200


def test_both_gates_at_once_spend_only_with_the_token(box: TestClient,
                                                      catalog: redis.Redis) -> None:
    settings_of(box, challengeComplexity=EASY, accessCodeRequired=True)
    [code] = codes(box, 1, 1)
    c = box.get("/api/token/challenge", params={"concertId": CONCERT}).json()
    payload = solve(c)
    refused(issue(box, 1, altcha=payload), 403, "ACCESS_CODE_REQUIRED")
    refused(issue(box, 1, accessCode=code), 403, "CHALLENGE_REQUIRED")
    assert uses_left(catalog, code) == 1  # the code refused with the missing solution: kept
    assert issue(box, 1, accessCode=code, altcha=payload).status_code == 200
    assert uses_left(catalog, code) == 0
    settings_of(box, challengeComplexity=0, accessCodeRequired=None)  # off again
    assert issue(box, 2).status_code == 200


def test_two_concurrent_issues_with_one_solution_make_one_token(
        live_server: Callable[..., Server], catalog: redis.Redis) -> None:
    server = live_server(CHALLENGE_HMAC_KEY=KEY)
    catalog.hset(concert_keys(CONCERT).settings, "challengeComplexity", EASY)
    [[(status, c)]] = fire(HOST, server.port, [[
        ("GET", f"/api/token/challenge?concertId={CONCERT}", None, {})]])
    assert status == 200
    payload = solve(c)
    batches = [[("POST", "/api/token/issue",
                 {"customerId": n, "concertId": CONCERT, "altcha": payload}, {})]
               for n in range(1, 21)]
    results = [res[0] for res in fire(HOST, server.port, batches)]
    assert [s for s, _ in results].count(200) == 1, results
    assert {b["code"] for s, b in results if s != 200} == {"CHALLENGE_INVALID"}
    assert catalog.hlen(concert_keys(CONCERT).tokens) == 1


def test_every_worker_agrees_on_the_key(make_client: Callable[..., TestClient],
                                        catalog: redis.Redis) -> None:
    """Two workers with one ticket key: a challenge of one is solved on the other (the key is
    derived from it); a CHALLENGE_HMAC_KEY wins; without either, no challenge is served and
    the gate stays shut."""
    one, two = (make_client(ticket_signing_key=TICKET_KEY) for _ in range(2))
    catalog.hset(concert_keys(CONCERT).settings, "challengeComplexity", EASY)
    c = one.get("/api/token/challenge", params={"concertId": CONCERT}).json()
    assert issue(two, 1, altcha=solve(c)).status_code == 200
    assert challenge.hmac_key(Settings(challenge_hmac_key=KEY, ticket_signing_key=TICKET_KEY)) \
        == KEY.encode()
    shut = make_client()
    assert shut.get("/api/token/challenge", params={"concertId": CONCERT}).status_code == 404
    problem = refused(issue(shut, 2), 403, "CHALLENGE_REQUIRED")
    assert "challenge" not in problem
    refused(issue(shut, 2, altcha=solve(c)), 403, "CHALLENGE_INVALID", "no CHALLENGE_HMAC_KEY")


def test_the_settings_are_checked(box: TestClient) -> None:
    path = f"/admin/concerts/{CONCERT}/settings"
    for changes, name in [({"accessCodeRequired": 1}, "accessCodeRequired"),
                          ({"challengeComplexity": -1}, "challengeComplexity"),
                          ({"challengeComplexity": 10**7 + 1}, "challengeComplexity"),
                          ({"challengeComplexity": 1.5}, "challengeComplexity")]:
        refused(box.patch(path, headers=ADMIN, json=changes), 400, "INVALID_SETTING", name)
    settings_of(box, challengeComplexity=50_000, accessCodeRequired=True)
    now = box.get(path, headers=ADMIN).json()["settings"]
    assert now["challengeComplexity"] == 50_000 and now["accessCodeRequired"] is True
