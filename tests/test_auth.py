"""AUTH_MODE=jwt: requests that name a customer need a bearer JWT of that customer, a charge
needs the payment back end's scope, and the queue token travels in X-Queue-Token; HS256,
RS256 and ES256 keys, expiry, issuer, audience and unsigned tokens. AUTH_MODE=open keeps the
report's contract."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient

from api import auth
from api.app import create_app
from devstack.api_server import Uvicorn
from engine.config import Settings
from tests.conftest import OPTION, TICKET_KEY, seat_id

SECRET = "a-test-secret-that-is-32-bytes-long!"
ISSUER, AUDIENCE = "https://id.example.test", "ticketing"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs256(key: str = SECRET, **claims: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, key, algorithm="HS256")


def issue(client: TestClient, customer: int, headers: dict[str, str]):
    return client.post("/api/token/issue", json={"customerId": customer, "concertId": 2},
                       headers=headers)


def problem(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == code, resp.json()
    assert resp.json()["detail"]


@pytest.fixture
def jwt_client(make_client: Callable[..., TestClient], catalog: redis.Redis) -> TestClient:
    return make_client(ticket_signing_key=TICKET_KEY, auth_mode="jwt", auth_jwt_secret=SECRET)


# --- customers ------------------------------------------------------------------------------
def test_a_customer_token_opens_that_customers_requests_only(jwt_client: TestClient) -> None:
    seven = bearer(hs256(sub="7"))
    assert issue(jwt_client, 7, seven).status_code == 200
    assert jwt_client.get("/api/point?customerId=7", headers=seven).json()["balance"] == 10_000
    assert jwt_client.get("/api/point/history?customerId=7", headers=seven).status_code == 200
    for resp in (issue(jwt_client, 8, seven),
                 jwt_client.get("/api/point?customerId=8", headers=seven),
                 jwt_client.get("/api/point/history?customerId=8", headers=seven),
                 jwt_client.get("/api/point?customerId=7", headers=bearer(hs256(sub="07"))),
                 jwt_client.get("/api/point?customerId=7", headers=bearer(hs256()))):  # no sub
        problem(resp, 403, "FORBIDDEN_CUSTOMER")


def test_no_bearer_token_is_401_asking_for_one(jwt_client: TestClient) -> None:
    for headers in ({}, {"Authorization": hs256(sub="7")}, {"Authorization": "Basic dTpw"},
                    {"Authorization": "Bearer "}):
        resp = jwt_client.get("/api/point?customerId=7", headers=headers)
        problem(resp, 401, "AUTH_REQUIRED")
        assert resp.headers["www-authenticate"] == "Bearer"


def test_the_401_comes_before_input_errors_and_the_403_after(jwt_client: TestClient) -> None:
    problem(jwt_client.get("/api/point?customerId=abc"), 401, "AUTH_REQUIRED")
    seven = bearer(hs256(sub="7"))
    problem(jwt_client.get("/api/point?customerId=abc", headers=seven), 400, "INVALID_ID")
    problem(jwt_client.get("/api/point?customerId=8", headers=seven), 403, "FORBIDDEN_CUSTOMER")


@pytest.mark.parametrize("token", [
    pytest.param(lambda: hs256(sub="7", exp=int(time.time()) - 31), id="expired-past-leeway"),
    pytest.param(lambda: jwt.encode({"sub": "7"}, SECRET, algorithm="HS256"), id="no-exp"),
    pytest.param(lambda: jwt.encode({"sub": "7", "exp": int(time.time()) + 60}, None,
                                    algorithm="none"), id="alg-none"),
    pytest.param(lambda: hs256("another-secret-that-is-32-bytes-long", sub="7"), id="bad-sig"),
    pytest.param(lambda: hs256(sub="7", nbf=int(time.time()) + 120), id="not-yet-valid"),
    pytest.param(lambda: hs256(sub="7", aud="someone-else"), id="audience-unasked-for"),
    pytest.param(lambda: hs256(sub=7), id="sub-not-a-string"),
    pytest.param(lambda: hs256(sub="7", scope=["points:charge"]), id="scope-not-a-string"),
    pytest.param(lambda: "not.a.jwt", id="garbage"),
    pytest.param(lambda: hs256(sub="7")[:-3] + "abc", id="tampered"),
])
def test_a_bad_token_is_401(jwt_client: TestClient, token: Callable[[], str]) -> None:
    resp = jwt_client.get("/api/point?customerId=7", headers=bearer(token()))
    problem(resp, 401, "AUTH_INVALID")
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_just_expired_passes_within_the_leeway(jwt_client: TestClient) -> None:
    late = hs256(sub="7", exp=int(time.time()) - 10)  # leeway 30 s by default
    assert jwt_client.get("/api/point?customerId=7", headers=bearer(late)).status_code == 200


def test_issuer_and_audience_when_configured(make_client: Callable[..., TestClient],
                                             catalog: redis.Redis) -> None:
    client = make_client(ticket_signing_key=TICKET_KEY, auth_mode="jwt", auth_jwt_secret=SECRET,
                         auth_jwt_issuer=ISSUER, auth_jwt_audience=AUDIENCE)
    good = hs256(sub="7", iss=ISSUER, aud=AUDIENCE)
    assert client.get("/api/point?customerId=7", headers=bearer(good)).status_code == 200
    for claims in ({"iss": ISSUER, "aud": "other"}, {"iss": "https://evil.test", "aud": AUDIENCE},
                   {"aud": AUDIENCE}, {"iss": ISSUER}):
        resp = client.get("/api/point?customerId=7", headers=bearer(hs256(sub="7", **claims)))
        problem(resp, 401, "AUTH_INVALID")


# --- charges --------------------------------------------------------------------------------
def test_a_charge_needs_the_back_ends_scope(jwt_client: TestClient) -> None:
    body = {"customerId": 7, "amount": 10}
    problem(jwt_client.patch("/api/point/charge", json=body), 401, "AUTH_REQUIRED")
    own = jwt_client.patch("/api/point/charge", json=body, headers=bearer(hs256(sub="7")))
    problem(own, 403, "FORBIDDEN_SCOPE")
    assert 'scope="points:charge"' in own.headers["www-authenticate"]
    near = bearer(hs256(sub="payments", scope="points:read points:chargeX"))
    problem(jwt_client.patch("/api/point/charge", json=body, headers=near), 403, "FORBIDDEN_SCOPE")
    back_end = bearer(hs256(sub="payments", scope="points:read points:charge"))
    resp = jwt_client.patch("/api/point/charge", json=body, headers=back_end)
    assert resp.status_code == 200 and resp.json() == {"customerId": 7, "balance": 10_010}
    # the back end's token names no customer: it cannot read a balance
    problem(jwt_client.get("/api/point?customerId=7", headers=back_end), 403,
            "FORBIDDEN_CUSTOMER")


# --- the queue token in X-Queue-Token -------------------------------------------------------
def test_the_queue_token_travels_in_x_queue_token(jwt_client: TestClient) -> None:
    resp = issue(jwt_client, 7, bearer(hs256(sub="7")))
    assert resp.json()["status"] == "ACTIVE", resp.text
    q = {"X-Queue-Token": resp.json()["tokenValue"]}
    assert jwt_client.get("/api/token/status", headers=q).json()["customerId"] == 7
    # Authorization carries JWTs in this mode, not the queue token
    problem(jwt_client.get("/api/token/status", headers=bearer(q["X-Queue-Token"])), 401,
            "TOKEN_UNKNOWN")
    assert jwt_client.get("/api/2/available-dates", headers=q).status_code == 200
    assert jwt_client.get(f"/api/{OPTION}/available-seats", headers=q).status_code == 200
    holds = [jwt_client.post("/api/reserve", headers=q,
                             json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, n)})
             for n in (1, 2)]
    assert [h.status_code for h in holds] == [200, 200], holds[0].text
    cancelled = jwt_client.delete(f"/api/reserve/{holds[1].json()['reservationId']}", headers=q)
    assert cancelled.json()["status"] == "CANCELLED", cancelled.text
    paid = jwt_client.post("/api/pay", headers=q,
                           json={"reservationId": holds[0].json()["reservationId"]})
    assert paid.status_code == 200 and paid.json()["status"] == "PAID", paid.text
    # the queue-token endpoints ask for no JWT: the token binds them to its customer
    q2 = {"X-Queue-Token": issue(jwt_client, 9, bearer(hs256(sub="9"))).json()["tokenValue"]}
    assert jwt_client.get("/api/token/status", headers={**q2, **bearer(hs256(sub="8"))}
                          ).json()["customerId"] == 9


# --- public keys ----------------------------------------------------------------------------
def hmac_signed(claims: dict, key: bytes) -> str:
    """An HS256 JWT by hand (PyJWT refuses to key HMAC with a PEM, as it should)."""
    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_public_key_allows_its_own_algorithm_only(
    make_client: Callable[..., TestClient], catalog: redis.Redis, algorithm: str
) -> None:
    private = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
               if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    public = pem(private)
    client = make_client(ticket_signing_key=TICKET_KEY, auth_mode="jwt", auth_jwt_public_key=public)
    exp = int(time.time()) + 300

    def get(token: str):
        return client.get("/api/point?customerId=7", headers=bearer(token))

    assert get(jwt.encode({"sub": "7", "exp": exp}, private, algorithm=algorithm)
               ).status_code == 200
    problem(get(jwt.encode({"sub": "8", "exp": exp}, private, algorithm=algorithm)), 403,
            "FORBIDDEN_CUSTOMER")
    expired = jwt.encode({"sub": "7", "exp": exp - 3600}, private, algorithm=algorithm)
    problem(get(expired), 401, "AUTH_INVALID")
    problem(get(jwt.encode({"sub": "7", "exp": exp}, None, algorithm="none")), 401,
            "AUTH_INVALID")
    # The classic confusion: HS256 keyed with the public key's PEM text.
    forged = hmac_signed({"sub": "7", "exp": exp}, public.encode())
    problem(get(forged), 401, "AUTH_INVALID")
    other = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
             if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    problem(get(jwt.encode({"sub": "7", "exp": exp}, other, algorithm=algorithm)), 401,
            "AUTH_INVALID")


# --- start-up -------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    ({"auth_mode": "jwt"}, "needs exactly one key"),
    ({"auth_mode": "jwt", "auth_jwt_secret": SECRET, "auth_jwt_public_key": "x"},
     "needs exactly one key"),
    ({"auth_mode": "jwt", "auth_jwt_secret": "short"}, "at least 32 bytes"),
    ({"auth_mode": "JWT"}, "AUTH_MODE must be"),
    ({"auth_mode": "jwt", "auth_jwt_public_key": "not a pem"}, "not a PEM public key"),
    ({"auth_mode": "jwt", "auth_jwt_public_key": pem(ec.generate_private_key(ec.SECP384R1()))},
     "P-256"),
])
def test_a_mode_that_cannot_work_stops_the_start(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(Settings(**settings))


def test_uvicorn_in_jwt_mode_without_a_key_exits_saying_why(
        live_server: Callable[..., Uvicorn]) -> None:
    with pytest.raises(RuntimeError, match="exited"):
        live_server(AUTH_MODE="jwt")


def test_the_key_can_come_from_the_environment_in_one_line(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    public = pem(ec.generate_private_key(ec.SECP256R1()))
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_JWT_PUBLIC_KEY", public.replace("\n", "\\n"))
    s = Settings.from_env()
    assert s.auth_jwt_public_key == public and "PUBLIC KEY" not in repr(s)
    assert auth.Auth(s).jwt is not None


# --- the cache of verified tokens -----------------------------------------------------------
def test_a_verified_token_is_kept_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = auth.JwtVerifier(Settings(auth_mode="jwt", auth_jwt_secret=SECRET,
                                         auth_jwt_leeway_seconds=0, auth_jwt_cache_size=2))
    calls = []
    real = jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    now = time.time()
    token = hs256(sub="7", exp=int(now) + 5)
    scope = {"headers": [(b"authorization", f"Bearer {token}".encode())]}
    assert verifier.claims(scope).sub == "7" and verifier.claims(scope).sub == "7"
    assert len(calls) == 1  # the second came from the cache
    # Past its exp the entry is not trusted: the token is verified again (and then refused,
    # as test_a_bad_token_is_401 shows for an expired one).
    monkeypatch.setattr(auth.time, "time", lambda: now + 6)
    verifier.claims(scope)
    assert len(calls) == 2
    for sub in "abc":  # bounded: the cache never holds more than its size
        verifier.claims({"headers": [(b"authorization",
                                      f"Bearer {hs256(sub=sub, exp=int(now) + 60)}".encode())]})
        assert len(verifier.cache) <= 2


# --- open mode ------------------------------------------------------------------------------
def test_open_mode_asks_nobody_and_takes_either_queue_header(client: TestClient) -> None:
    assert client.get("/api/point?customerId=8").json()["balance"] == 10_000
    assert client.patch("/api/point/charge", json={"customerId": 8, "amount": 1}
                        ).status_code == 200
    tok = issue(client, 7, {}).json()["tokenValue"]
    for headers in ({"Authorization": tok}, bearer(tok), {"X-Queue-Token": tok},
                    {"X-Queue-Token": tok, **bearer(tok)}):
        assert client.get("/api/token/status", headers=headers).status_code == 200, headers
    other = issue(client, 8, {}).json()["tokenValue"]
    problem(client.get("/api/token/status", headers={"X-Queue-Token": tok, **bearer(other)}),
            401, "TOKEN_UNKNOWN")
    problem(client.get("/api/token/status", headers={"X-Queue-Token": tok,
                                                     "Authorization": "garbage"}),
            401, "TOKEN_UNKNOWN")
