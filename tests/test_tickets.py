"""Tickets and check-in (engine/tickets.py, lua/checkin.lua, api/tickets.py): a paid
reservation's signed ticket and QR code, verified offline with the public key; the door's
check-in exactly once under concurrent scans, on several workers; altered, forged and
refunded tickets refused; a refund after check-in only when forced; the CLI twins; what the
API does without a key."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import os
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import jwt
import orjson
import pytest
import redis
import segno
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_public_key,
)
from starlette.testclient import TestClient

from api.app import create_app
from devstack import REPO
from devstack.api_server import default_server, server
from engine import tickets
from engine.config import Settings
from engine.errors import TicketInvalid
from engine.keys import CustomerKeys, concert_keys
from engine.store import Store, connect
from tests.conftest import (
    CONCERT,
    NO_LIMITS_ENV,
    OPTION,
    SEAT_PRICE,
    TICKET_KEY,
    active_token,
    auth,
    seat_id,
)
from tests.http import HOST, fire

BOTH = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)
KEY_PEM = TICKET_KEY  # this run's box office
KEY = tickets.TicketKey(KEY_PEM)
ADMIN_TOKEN = "op-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def box(make_client: Callable[..., TestClient], catalog: redis.Redis) -> TestClient:
    """The API with a ticket key and the admin routes."""
    return make_client(ticket_signing_key=KEY_PEM, admin_token=ADMIN_TOKEN)


def paid(client: TestClient, customer: int, number: int = 1) -> str:
    """A reservation of seat ``number`` of OPTION, held and paid by ``customer``."""
    token = active_token(client, customer)
    rid = client.post("/api/reserve", headers=auth(token), json={
        "concertOptionId": OPTION, "seatId": seat_id(OPTION, number)}).json()["reservationId"]
    resp = client.post("/api/pay", headers=auth(token), json={"reservationId": rid})
    assert resp.status_code == 200, resp.text
    return rid


def problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status and resp.json()["code"] == code, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    return resp.json()


def record(r: redis.Redis, rid: str) -> dict:
    return orjson.loads(r.hget(concert_keys(CONCERT).res, rid.split(".")[1]))


# --- the ticket -----------------------------------------------------------------------------
@BOTH
def test_a_paid_reservation_is_a_ticket_verifiable_offline(box: TestClient, tmp_path: Path
                                                          ) -> None:
    rid = paid(box, 7, 2)
    resp = box.get(f"/api/tickets/{rid}?customerId=7")
    assert resp.status_code == 200, resp.text
    t = resp.json()
    assert {k: t[k] for k in ("reservationId", "concertId", "concertOptionId", "seatId",
                              "section", "row", "number", "checkedInAt")} == {
        "reservationId": rid, "concertId": CONCERT, "concertOptionId": OPTION,
        "seatId": seat_id(OPTION, 2), "section": "A", "row": "1", "number": 2,
        "checkedInAt": None}
    secret = rid.split(".")[1]
    assert t["ticket"].startswith(f"TK1.{CONCERT}.{secret}.{OPTION}.{seat_id(OPTION, 2)}.")
    # The QR code holds exactly the ticket (segno's own rendering of that text).
    out = io.BytesIO()
    segno.make(t["ticket"], error="m").save(out, kind="svg", xmldecl=False, scale=4)
    assert t["qrSvg"] == out.getvalue().decode() and t["qrSvg"].startswith("<svg")
    again = box.get(f"/api/tickets/{rid}?customerId=7").json()
    assert again["ticket"] == t["ticket"]  # Ed25519 is deterministic: one ticket a sale

    # Offline: the published key verifies it, with nothing of ours but the key.
    published = box.get("/api/tickets/public-key").json()
    assert published["algorithm"] == "Ed25519" and published["jwk"]["crv"] == "Ed25519"
    public = load_pem_public_key(published["publicKey"].encode())
    body, _, signature = t["ticket"].rpartition(".")
    public.verify(base64.urlsafe_b64decode(signature + "=="), body.encode())  # no raise
    assert base64.urlsafe_b64decode(published["jwk"]["x"] + "=") == public.public_bytes_raw()
    # docs/tickets.md's way: examples/verify_ticket.py with the key in a file.
    pem = tmp_path / "ticket-key.pub.pem"
    pem.write_text(published["publicKey"])
    example = [sys.executable, str(REPO / "examples" / "verify_ticket.py"), str(pem)]
    ok = subprocess.run([*example, t["ticket"]], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and f"seat {seat_id(OPTION, 2)}" in ok.stdout, ok
    altered = t["ticket"][:-3] + ("A" if t["ticket"][-3] != "A" else "B") + t["ticket"][-2:]
    bad = subprocess.run([*example, altered], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "NOT a valid ticket" in bad.stdout


@BOTH
def test_no_ticket_for_another_customer_an_unpaid_or_a_refunded_reservation(
        box: TestClient) -> None:
    rid = paid(box, 7, 1)
    problem(box.get(f"/api/tickets/{rid}?customerId=8"), 404, "RESERVATION_NOT_FOUND")
    problem(box.get(f"/api/tickets/{CONCERT}.{'e' * 32}?customerId=7"), 404,
            "RESERVATION_NOT_FOUND")
    problem(box.get(f"/api/tickets/3.{rid.split('.')[1]}?customerId=7"), 404,
            "RESERVATION_NOT_FOUND")  # the same secret under another concert
    token = active_token(box, 9)
    held = box.post("/api/reserve", headers=auth(token), json={
        "concertOptionId": OPTION, "seatId": seat_id(OPTION, 3)}).json()["reservationId"]
    problem(box.get(f"/api/tickets/{held}?customerId=9"), 409, "NOT_PAID")
    assert box.post(f"/admin/reservations/{rid}/refund", headers=ADMIN).status_code == 200
    p = problem(box.get(f"/api/tickets/{rid}?customerId=7"), 409, "RESERVATION_REFUNDED")
    assert "refunded" in p["detail"]
    # Bad input names what was wrong, before Redis.
    assert "'customerId'" in problem(box.get(f"/api/tickets/{rid}"), 400,
                                     "MISSING_PARAMETER")["detail"]
    assert "'customerId'" in problem(box.get(f"/api/tickets/{rid}?customerId=x"), 400,
                                     "INVALID_ID")["detail"]
    assert "'reservationId'" in problem(box.get("/api/tickets/2.XYZ?customerId=7"), 400,
                                        "INVALID_FIELD")["detail"]


def test_in_jwt_mode_a_ticket_is_its_customers_only(make_client, catalog: redis.Redis) -> None:
    secret = "a-test-secret-that-is-32-bytes-long!"
    client = make_client(auth_mode="jwt", auth_jwt_secret=secret, ticket_signing_key=KEY_PEM)

    def bearer(sub: str) -> dict[str, str]:
        import time
        return {"Authorization": "Bearer " + jwt.encode({"sub": sub, "exp": time.time() + 60},
                                                        secret, algorithm="HS256")}

    token = client.post("/api/token/issue", headers=bearer("7"),
                        json={"customerId": 7, "concertId": CONCERT}).json()["tokenValue"]
    q = {"X-Queue-Token": token}
    rid = client.post("/api/reserve", headers=q, json={
        "concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)}).json()["reservationId"]
    assert client.post("/api/pay", headers=q, json={"reservationId": rid}).status_code == 200
    problem(client.get(f"/api/tickets/{rid}?customerId=7"), 401, "AUTH_REQUIRED")
    problem(client.get(f"/api/tickets/{rid}?customerId=7", headers=bearer("8")), 403,
            "FORBIDDEN_CUSTOMER")
    mine = client.get(f"/api/tickets/{rid}?customerId=7", headers=bearer("7"))
    assert mine.status_code == 200 and KEY.verify(mine.json()["ticket"]).secret in rid


# --- check-in -------------------------------------------------------------------------------
@BOTH
def test_twenty_concurrent_scans_on_two_workers_check_in_once(
        settings: Settings, catalog: redis.Redis) -> None:
    """Real concurrent requests, to two workers of one server: the ticket one worker signed
    checks in on either, and of 20 scans at once exactly one is CHECKED_IN."""
    api = server(default_server(), "api.app:app", {
        "REDIS_URL": settings.redis_url, "TICK_SECONDS": "3600", "ADMIN_TOKEN": ADMIN_TOKEN,
        "TICKET_SIGNING_KEY": KEY_PEM, **NO_LIMITS_ENV}, workers=2).start()
    try:
        [[(_, tok)]] = fire(HOST, api.port, [[("POST", "/api/token/issue",
                                               {"customerId": 7, "concertId": CONCERT}, {})]])
        [[(_, held)]] = fire(HOST, api.port, [[
            ("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)},
             auth(tok["tokenValue"]))]])
        rid = held["reservationId"]
        [[(status, _)]] = fire(HOST, api.port, [[("POST", "/api/pay", {"reservationId": rid},
                                                  auth(tok["tokenValue"]))]])
        assert status == 200
        # Many connections: several workers sign; every one signs the same ticket.
        views = fire(HOST, api.port, [[("GET", f"/api/tickets/{rid}?customerId=7", None, {})]
                                      for _ in range(8)])
        assert len({body["ticket"] for [(_, body)] in views}) == 1
        ticket = views[0][0][1]["ticket"]
        scans = fire(HOST, api.port, [[("POST", "/admin/checkin", {"ticket": ticket}, ADMIN)]
                                      for _ in range(20)])
    finally:
        api.stop()
    answers = [(status, body) for [(status, body)] in scans]
    assert Counter(s for s, _ in answers) == {200: 1, 409: 19}, answers
    [first] = [body for status, body in answers if status == 200]
    assert first == {"status": "CHECKED_IN", "reservationId": rid,
                     "seatId": seat_id(OPTION, 1), "at": first["at"]}
    for status, body in answers:
        if status == 409:  # each later scan names the first scan's time
            assert body["code"] == "ALREADY_CHECKED_IN" and body["checkedInAt"] == first["at"]
            assert first["at"] in body["detail"]
    k = concert_keys(CONCERT)
    events = [e for _, e in catalog.xrange(k.events) if e[b"type"] == b"CHECKED_IN"]
    assert len(events) == 1 and events[0][b"reservationId"] == rid.encode()
    assert events[0][b"seatId"] == str(seat_id(OPTION, 1)).encode()
    assert events[0][b"customerId"] == b"7"
    assert int(catalog.hget(k.concert, "checkedin")) == 1


@BOTH
def test_the_stats_and_the_ticket_show_the_check_in(box: TestClient) -> None:
    rids = [paid(box, 7, n) for n in (1, 2, 3)]
    for rid in rids[:2]:
        ticket = box.get(f"/api/tickets/{rid}?customerId=7").json()["ticket"]
        assert box.post("/admin/checkin", headers=ADMIN, json={"ticket": ticket}
                        ).status_code == 200
    stats = box.get("/admin/concerts/2/stats", headers=ADMIN).json()
    assert (stats["sold"], stats["checkedIn"]) == (3, 2)
    shown = box.get(f"/api/tickets/{rids[0]}?customerId=7").json()
    assert shown["checkedInAt"].endswith("Z")
    assert box.get(f"/api/tickets/{rids[2]}?customerId=7").json()["checkedInAt"] is None
    # The operators' export says it too: the door's time, or nothing yet.
    sales = box.get("/admin/concerts/2/sales.csv", headers=ADMIN).text
    at = {row["reservationId"]: row["checkedInAt"] for row in csv.DictReader(io.StringIO(sales))}
    assert at[rids[0]] == shown["checkedInAt"] and at[rids[1]].endswith("Z")
    assert at[rids[2]] == ""


@BOTH
def test_a_ticket_altered_by_one_byte_is_refused(box: TestClient, catalog: redis.Redis) -> None:
    rid = paid(box, 7, 1)
    ticket = box.get(f"/api/tickets/{rid}?customerId=7").json()["ticket"]
    # Every character, changed to every other one of the signature's alphabet (and to a
    # character outside it): none verifies. The last character's spare base64 bits included.
    for i, ch in enumerate(ticket):
        for other in [*ALPHABET, "."]:
            if other != ch:
                with pytest.raises(TicketInvalid):
                    KEY.verify(ticket[:i] + other + ticket[i + 1:])
    # Through the API, one change at each position: 400 TICKET_INVALID, nothing checked in.
    for i, ch in enumerate(ticket):
        altered = ticket[:i] + ("7" if ch != "7" else "8") + ticket[i + 1:]
        p = problem(box.post("/admin/checkin", headers=ADMIN, json={"ticket": altered}), 400,
                    "TICKET_INVALID")
        assert "ticket" in p["detail"]
    assert "checkedIn" not in record(catalog, rid)
    assert box.post("/admin/checkin", headers=ADMIN, json={"ticket": ticket}).status_code == 200


@BOTH
def test_forged_tickets_and_bad_input_are_refused(box: TestClient, catalog: redis.Redis) -> None:
    rid = paid(box, 7, 1)
    secret = rid.split(".")[1]
    forger = tickets.TicketKey(tickets.new_key_pem())
    forged = forger.sign(CONCERT, secret, OPTION, seat_id(OPTION, 1))
    problem(box.post("/admin/checkin", headers=ADMIN, json={"ticket": forged}), 400,
            "TICKET_INVALID")
    # Signed with our key but for no such sale (what a leaked key could make): the record
    # decides. A held reservation, and another seat than the sale's.
    token = active_token(box, 8)
    held = box.post("/api/reserve", headers=auth(token), json={
        "concertOptionId": OPTION, "seatId": seat_id(OPTION, 2)}).json()["reservationId"]
    for wrong in (KEY.sign(CONCERT, held.split(".")[1], OPTION, seat_id(OPTION, 2)),
                  KEY.sign(CONCERT, secret, OPTION, seat_id(OPTION, 3))):
        problem(box.post("/admin/checkin", headers=ADMIN, json={"ticket": wrong}), 400,
                "TICKET_INVALID")
    for body, code in [({}, "MISSING_FIELD"), ({"ticket": 7}, "TICKET_INVALID"),
                       ({"ticket": ""}, "TICKET_INVALID"), ({"ticket": "x" * 5000},
                                                            "TICKET_INVALID")]:
        assert "'ticket'" in problem(box.post("/admin/checkin", headers=ADMIN, json=body), 400,
                                     code)["detail"]
    problem(box.post("/admin/checkin", headers=ADMIN, content=b"{"), 400, "INVALID_JSON")
    problem(box.post("/admin/checkin", json={"ticket": forged}), 401, "ADMIN_UNAUTHORIZED")
    assert "checkedIn" not in record(catalog, rid)
    assert not [e for _, e in catalog.xrange(concert_keys(CONCERT).events)
                if e[b"type"] == b"CHECKED_IN"]


@BOTH
def test_check_in_after_a_refund_is_refused(box: TestClient, catalog: redis.Redis) -> None:
    rid = paid(box, 7, 1)
    ticket = box.get(f"/api/tickets/{rid}?customerId=7").json()["ticket"]
    assert box.post(f"/admin/reservations/{rid}/refund", headers=ADMIN).status_code == 200
    problem(box.post("/admin/checkin", headers=ADMIN, json={"ticket": ticket}), 409,
            "TICKET_REFUNDED")
    # Long after, the tick forgets the refunded record (admit.lua): still refunded.
    catalog.hdel(concert_keys(CONCERT).res, rid.split(".")[1])
    problem(box.post("/admin/checkin", headers=ADMIN, json={"ticket": ticket}), 409,
            "TICKET_REFUNDED")
    assert not catalog.hget(concert_keys(CONCERT).concert, "checkedin")


@BOTH
def test_a_refund_after_check_in_is_refused_unless_forced(box: TestClient,
                                                          catalog: redis.Redis) -> None:
    rid = paid(box, 7, 1)
    ticket = box.get(f"/api/tickets/{rid}?customerId=7").json()["ticket"]
    scanned = box.post("/admin/checkin", headers=ADMIN, json={"ticket": ticket}).json()
    balance = catalog.get(CustomerKeys(7).balance)
    refused = problem(box.post(f"/admin/reservations/{rid}/refund", headers=ADMIN), 409,
                      "ALREADY_CHECKED_IN")
    assert scanned["at"] in refused["detail"] and "force" in refused["detail"]
    problem(box.post(f"/admin/reservations/{rid}/refund?force=false", headers=ADMIN), 409,
            "ALREADY_CHECKED_IN")
    assert catalog.get(CustomerKeys(7).balance) == balance  # nothing changed
    assert record(catalog, rid)["status"] == "PAID"
    assert "'force'" in problem(box.post(f"/admin/reservations/{rid}/refund?force=yes",
                                         headers=ADMIN), 400, "INVALID_PARAMETER")["detail"]
    forced = box.post(f"/admin/reservations/{rid}/refund?force=true", headers=ADMIN)
    assert forced.status_code == 200 and forced.json()["status"] == "REFUNDED"
    assert int(catalog.get(CustomerKeys(7).balance)) == int(balance) + SEAT_PRICE
    assert catalog.getbit(concert_keys(CONCERT).taken, 0) == 0  # on sale again
    again = box.post(f"/admin/reservations/{rid}/refund", headers=ADMIN)  # idempotent
    assert again.status_code == 200 and again.json() == forced.json()
    problem(box.post("/admin/checkin", headers=ADMIN, json={"ticket": ticket}), 409,
            "TICKET_REFUNDED")
    stats = box.get("/admin/concerts/2/stats", headers=ADMIN).json()
    assert (stats["sold"], stats["checkedIn"]) == (0, 1)  # an entry stays an entry


# --- the CLI twins --------------------------------------------------------------------------
def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=60)


@BOTH
def test_the_cli_checks_in_and_forces_a_refund(box: TestClient, redis_url: str,
                                               tmp_path: Path) -> None:
    rid = paid(box, 7, 1)
    ticket = box.get(f"/api/tickets/{rid}?customerId=7").json()["ticket"]
    key_file = tmp_path / "ticket.pem"
    key_file.write_text(KEY_PEM)
    env = {"REDIS_URL": redis_url, "TICKET_SIGNING_KEY_FILE": str(key_file)}
    first = cli(env, "checkin", ticket)
    assert first.returncode == 0, first.stderr
    answer = orjson.loads(first.stdout)
    assert answer["status"] == "CHECKED_IN" and answer["reservationId"] == rid
    second = cli(env, "checkin", ticket)
    assert second.returncode == 2 and "ALREADY_CHECKED_IN" in second.stderr
    assert answer["at"] in second.stderr
    altered = ticket[:-9] + ("a" if ticket[-9] != "a" else "b") + ticket[-8:]
    assert "TICKET_INVALID" in cli(env, "checkin", altered).stderr
    no_key = cli({"REDIS_URL": redis_url, "TICKET_SIGNING_KEY": "",
                  "TICKET_SIGNING_KEY_FILE": ""}, "checkin", ticket)
    assert no_key.returncode == 2 and "TICKET_SIGNING_KEY" in no_key.stderr
    refused = cli(env, "refund", rid)
    assert refused.returncode == 2 and "ALREADY_CHECKED_IN" in refused.stderr
    forced = cli(env, "refund", rid, "--force")
    assert forced.returncode == 0 and orjson.loads(forced.stdout)["status"] == "REFUNDED"


def test_ticket_key_makes_a_key_file_and_never_replaces_one(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    made = cli({}, "ticket-key", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = tickets.TicketKey(out.read_text())
    before = out.read_text()
    again = cli({}, "ticket-key", "--out", str(out))
    assert again.returncode == 2 and "not replaced" in again.stderr
    assert out.read_text() == before and key.verify(key.sign(2, "a" * 32, 1, 2))


# --- the key's configuration ----------------------------------------------------------------
def test_without_a_key_open_mode_serves_no_tickets_and_jwt_mode_does_not_start(
        make_client, catalog: redis.Redis) -> None:
    plain = make_client(admin_token=ADMIN_TOKEN)
    for method, path in [("GET", "/api/tickets/public-key"), ("POST", "/admin/checkin"),
                         ("GET", f"/api/tickets/2.{'a' * 32}?customerId=7")]:
        problem(plain.request(method, path, headers=ADMIN, json={}), 404, "NOT_FOUND")
    with pytest.raises(ValueError, match="TICKET_SIGNING_KEY"):
        create_app(Settings(auth_mode="jwt", auth_jwt_secret="x" * 32))
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    for bad, message in [("not a key", "not an unencrypted PEM"), (rsa_pem, "Ed25519")]:
        with pytest.raises(ValueError, match=message):
            create_app(Settings(ticket_signing_key=bad))


def test_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TICKET_SIGNING_KEY", KEY_PEM.replace("\n", "\\n"))  # one line
    s = Settings.from_env()
    assert s.ticket_signing_key == KEY_PEM and "PRIVATE" not in repr(s)
    (tmp_path / "k.pem").write_text(KEY_PEM)
    monkeypatch.setenv("TICKET_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    with pytest.raises(ValueError, match="not both"):
        Settings.from_env()
    monkeypatch.delenv("TICKET_SIGNING_KEY")
    assert Settings.from_env().ticket_signing_key == KEY_PEM
    monkeypatch.setenv("TICKET_SIGNING_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="cannot read"):
        Settings.from_env()


@BOTH
def test_check_in_through_the_engine_names_the_first_scan(settings: Settings,
                                                          box: TestClient) -> None:
    """The engine function the route and the CLI share, on the real store."""
    from engine.errors import AlreadyCheckedIn

    ticket = box.get(f"/api/tickets/{paid(box, 7, 1)}?customerId=7").json()["ticket"]

    async def go() -> tuple[dict, AlreadyCheckedIn]:
        store = Store(connect(settings), settings)
        try:
            first = await tickets.check_in(store, KEY, ticket)
            with pytest.raises(AlreadyCheckedIn) as later:
                await tickets.check_in(store, KEY, ticket)
            return first, later.value
        finally:
            await store.aclose()

    first, later = asyncio.run(go())
    assert first["at"] in later.detail
