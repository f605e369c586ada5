"""Bad input gets a clear 4xx problem+json and changes nothing."""

from __future__ import annotations

import pytest
import redis
from starlette.testclient import TestClient

from tests.conftest import OPTION, active_token, seat_id

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

MAX = 2**53 - 1


def snapshot(r: redis.Redis) -> dict[bytes, bytes]:
    return {k: r.dump(k) for k in sorted(r.keys("*"))}


def cases(token: str) -> list[tuple[str, str, object, dict, int, str]]:
    """(method, path, body: bytes | JSON | None, headers, status, code)."""
    a = {"Authorization": token}
    seat = seat_id(OPTION, 1)
    rows: list[tuple[str, str, object, dict, int, str]] = [
        # bodies
        ("POST", "/api/token/issue", b"", {}, 400, "INVALID_JSON"),
        ("POST", "/api/token/issue", b'{"customerId": 1,', {}, 400, "INVALID_JSON"),
        ("POST", "/api/token/issue", b"[1, 2]", {}, 400, "INVALID_JSON"),
        ("POST", "/api/token/issue", b'"text"', {}, 400, "INVALID_JSON"),
        ("POST", "/api/token/issue", b"[" * 5000 + b"]" * 5000, {}, 400, "INVALID_JSON"),
        ("POST", "/api/token/issue", b'{"customerId": NaN, "concertId": 2}', {}, 400,
         "INVALID_JSON"),
        ("POST", "/api/token/issue", b'{"customerId": Infinity, "concertId": 2}', {}, 400,
         "INVALID_JSON"),
        ("POST", "/api/token/issue", b'{"customerId": 1' + b" " * 70_000 + b"}", {}, 413,
         "BODY_TOO_LARGE"),
        ("POST", "/api/token/issue", {"concertId": 2}, {}, 400, "MISSING_FIELD"),
        ("PATCH", "/api/point/charge", "not json", {}, 400, "INVALID_JSON"),
        ("POST", "/api/token/issue", b'{"customerId": 1e400, "concertId": 2}', {}, 400,
         "INVALID_JSON"),
    ]
    for bad in ["1", 1.5, 2.0**53, True, None, [1], {"id": 1}, 0, -3, 0.0, MAX + 1, 10**30,
                "1; DROP TABLE tokens", "{c:2}", "2..3"]:
        rows.append(("POST", "/api/token/issue", {"customerId": bad, "concertId": 2}, {}, 400,
                     "INVALID_FIELD"))
        rows.append(("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": bad}, a, 400,
                     "INVALID_FIELD"))
    for bad in ["5000", True, None, 0, -1, 0.001, 12.345, 10_000_000.01, 1e20, [5]]:
        rows.append(("PATCH", "/api/point/charge", {"customerId": 1, "amount": bad}, {}, 400,
                     "INVALID_AMOUNT"))
    rows.append(("PATCH", "/api/point/charge", {"customerId": 1}, {}, 400, "MISSING_FIELD"))
    # path and query ids
    for path in ["/api/abc/available-dates", "/api/0/available-dates", "/api/-1/available-dates",
                 f"/api/{MAX + 1}/available-dates", "/api/1.5/available-seats",
                 "/api/%7Bc:2%7D/available-seats"]:
        rows.append(("GET", path, None, a, 400, "INVALID_ID"))
    for query in ["", "?customerId=", "?customerId=abc", "?customerId=0", "?customerId=1.0",
                  "?customerId=-5", f"?customerId={MAX + 1}", "?customerId=1%20OR%201=1"]:
        code = "MISSING_PARAMETER" if query in ("",) else "INVALID_ID"
        rows.append(("GET", "/api/point" + query, None, {}, 400, code))
    rows.append(("GET", "/api/point?customerId=1&customerId=2", None, {}, 400,
                 "DUPLICATE_PARAMETER"))
    rows.append(("GET", "/api/point/history?customerId=1&limit=0", None, {}, 400, "INVALID_ID"))
    # reservation ids
    for bad in [123, None, "", "abc", "2." + "g" * 32, "2.{x}", "2.." + "a" * 32,
                "2." + "A" * 32, token]:
        rows.append(("POST", "/api/pay", {"reservationId": bad}, a, 400, "INVALID_FIELD"))
    rows.append(("POST", "/api/pay", {}, a, 400, "MISSING_FIELD"))
    rows.append(("DELETE", "/api/reserve/not-an-id", None, a, 400, "INVALID_FIELD"))
    # tokens
    for bad in ["", "x" * 5000, token + "0", "2.1.{" + "a" * 30 + "}", "../../etc"]:
        rows.append(("GET", "/api/2/available-dates", None, {"Authorization": bad}, 401,
                     "TOKEN_UNKNOWN"))
    rows.append(("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": seat},
                 {"Authorization": "Bearer 2.1." + "0" * 32}, 401, "TOKEN_UNKNOWN"))
    rows.append(("GET", "/api/token/status", None, {"Authorization": "Bearer é".encode()}, 401,
                 "TOKEN_UNKNOWN"))  # non-ASCII
    rows.append(("GET", "/api/point?customerId=1", None, {"X-Padding": "a" * 20_000}, 431,
                 "HEADERS_TOO_LARGE"))
    # routes and methods
    rows += [
        ("GET", "/api/nothing/here", None, {}, 404, "NOT_FOUND"),
        ("GET", "/nothing", None, {}, 404, "NOT_FOUND"),
        ("GET", "/static/nothing.js", None, {}, 404, "NOT_FOUND"),
        ("GET", "/static/../app.py", None, {}, 404, "NOT_FOUND"),
        ("POST", "/", {}, {}, 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/static/page.js", {}, {}, 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/api/pay", {}, a, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/api/token/issue", None, {}, 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/api/point", {}, {}, 405, "METHOD_NOT_ALLOWED"),
    ]
    return rows


def test_malformed_requests_are_4xx_problems_and_change_nothing(
    client: TestClient, catalog: redis.Redis
) -> None:
    token = active_token(client, 1)
    before = snapshot(catalog)
    tried = 0
    for method, path, body, headers, status, code in cases(token):
        kwargs: dict = {"headers": headers}
        if isinstance(body, bytes | str):
            kwargs["content"] = body
        elif body is not None:
            kwargs["json"] = body
        resp = client.request(method, path, **kwargs)
        where = f"{method} {path} {str(body)[:60]!r}"
        assert resp.status_code == status, (where, resp.text)
        assert resp.headers["content-type"] == "application/problem+json", where
        problem = resp.json()
        assert problem["code"] == code, (where, problem)
        assert problem["status"] == status and problem["title"] and problem["detail"], where
        assert problem["type"].startswith("/problems/"), where
        tried += 1
    assert tried >= 80
    assert snapshot(catalog) == before


@pytest.mark.parametrize("header", ["Bearer", "bearer", "BEARER"])
def test_bearer_prefix_is_case_insensitive(client: TestClient, header: str) -> None:
    token = active_token(client, 1)
    resp = client.get("/api/token/status", headers={"Authorization": f"{header} {token}"})
    assert resp.status_code == 200


def test_a_whole_number_is_an_integer(client: TestClient) -> None:
    """JSON has one number type: 1.0 is the integer 1, as JSON Schema (the OpenAPI document's
    dialect) and every JavaScript client read it; a fraction is not an id."""
    resp = client.post("/api/token/issue", content=b'{"customerId": 1.0, "concertId": 2e0}')
    assert resp.status_code == 200 and resp.json()["customerId"] == 1, resp.text
    assert client.get("/api/point?customerId=1.0").status_code == 400  # text: digits only
