"""ALTCHA's widget as vendored (api/static/altcha/), in headless Chromium under the booking
page's CSP: it fetches a concert's challenge from the API, solves it, and its payload lets a
new token through the proof-of-work gate (tests/test_gates.py tests the gate itself)."""

from __future__ import annotations

from collections.abc import Callable

import redis
from starlette.testclient import TestClient

from devstack.api_server import Server
from devstack.browser import widget_solve
from engine.keys import concert_keys
from tests.conftest import CONCERT
from tests.http import HOST, fire
from tests.test_page import browser, page_errors  # noqa: F401 (browser: the fixture)

KEY = "a-challenge-hmac-key-of-32-bytes-or-more"


def test_the_widget_files_are_served(client: TestClient) -> None:
    for name, kind in [("altcha.js", "javascript"), ("worker.js", "javascript"),
                       ("altcha.css", "text/css"), ("LICENSE.txt", "text/plain")]:
        resp = client.get(f"/static/altcha/{name}")
        assert resp.status_code == 200 and kind in resp.headers["content-type"], name
    assert "MIT License" in client.get("/static/altcha/LICENSE.txt").text


def test_the_widget_solves_a_challenge_that_lets_a_new_token_in(
        browser: object, live_server: Callable[..., Server],  # noqa: F811
        catalog: redis.Redis) -> None:
    server = live_server(CHALLENGE_HMAC_KEY=KEY)
    catalog.hset(concert_keys(CONCERT).settings, "challengeComplexity", 2000)
    browser.get(f"{server.base}/")  # type: ignore[attr-defined]
    page_errors(browser)  # type: ignore[arg-type]
    payload, ms = widget_solve(browser, CONCERT)
    assert ms > 0
    issue = ("POST", "/api/token/issue", {"customerId": 9, "concertId": CONCERT}, {})
    [[(refused, problem)], [(status, token)]] = [
        fire(HOST, server.port, [[issue]])[0],
        fire(HOST, server.port, [[(*issue[:2], {**issue[2], "altcha": payload}, {})]])[0]]
    assert refused == 403 and problem["code"] == "CHALLENGE_REQUIRED"
    assert status == 200 and token["customerId"] == 9, token
    # Nothing refused by the page's CSP (a worker from blob:, an inline style), no error.
    assert page_errors(browser) == []  # type: ignore[arg-type]
