"""Property-based fuzzing of the HTTP surface: thousands of generated requests, none answered
with a 5xx, every error a problem+json, and no 4xx changing what Redis holds."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import active_token

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

PATHS = [
    "/api/token/issue", "/api/token/status", "/api/point", "/api/point/charge",
    "/api/point/history", "/api/reserve", "/api/pay", "/api/{x}/available-dates",
    "/api/{x}/available-seats", "/api/reserve/{x}", "/api/{x}", "/{x}", "/healthz", "/readyz",
    "/static/{x}",
]
METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]
FIELDS = ["customerId", "concertId", "concertOptionId", "seatId", "amount", "reservationId",
          "limit"]
NASTY = ["{c:2}", "}", "..", "../../etc/passwd", "' OR 1=1 --", "\u0000", "é", "1e400",
         "NaN", "-0", "2.7." + "a" * 32, "2." + "b" * 32, "41150", "2", "0", "-1", " 1"]

segments = st.one_of(st.integers(-10, 10**17).map(str), st.sampled_from(NASTY),
                     st.text(string.printable, max_size=12))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(NASTY))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
bodies = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
    json_values,
    st.binary(max_size=64),
    st.sampled_from([b"{", b"NaN", b'{"amount": Infinity}', b"[" * 300, b'{"customerId": 1e999}']),
)
header_values = st.one_of(st.sampled_from(NASTY), st.text(string.printable, max_size=40),
                          st.binary(max_size=40).map(lambda b: b.decode("latin-1")))


def snapshot(r: redis.Redis) -> dict[bytes, bytes]:
    keys = sorted(r.keys("tk:*"))
    with r.pipeline(transaction=False) as p:
        for k in keys:
            p.dump(k)
        return dict(zip(keys, p.execute(), strict=True))


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_requests_never_5xx_and_4xx_change_nothing(
    data: st.DataObject, client: TestClient, catalog: redis.Redis
) -> None:
    state = test_generated_requests_never_5xx_and_4xx_change_nothing.__dict__
    if "token" not in state:  # one valid token for the whole run, so auth passes sometimes
        state["token"] = active_token(client, 1)
    method = data.draw(st.sampled_from(METHODS))
    path = data.draw(st.sampled_from(PATHS)).replace("{x}", quote(data.draw(segments), safe=""))
    query = data.draw(st.lists(st.tuples(st.sampled_from(FIELDS), segments), max_size=3))
    body = data.draw(bodies)
    headers = {}
    auth = data.draw(st.one_of(st.none(), st.just(state["token"]), header_values))
    if auth is not None:
        headers["Authorization"] = auth.encode("latin-1", "replace")
    if data.draw(st.booleans()):
        headers["Idempotency-Key"] = data.draw(header_values).encode("latin-1", "replace")
    kwargs: dict = {"headers": headers, "params": query}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body

    before = snapshot(catalog)
    resp = client.request(method, path, **kwargs)
    assert resp.status_code < 500, (method, path, body, resp.text)
    if resp.status_code >= 400:
        if method != "HEAD":
            assert resp.headers["content-type"] == "application/problem+json", resp.text
            assert resp.json()["status"] == resp.status_code
        assert snapshot(catalog) == before, (method, path, body, resp.status_code)
