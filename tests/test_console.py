"""The operators' console (/console: api/static/console.*): served only with ADMIN_TOKEN set,
then driven in headless Chromium against a real server and Redis as an operator would: sign
in (the token kept in this tab's sessionStorage only), pause a drop and watch admission stop,
resume and watch it start; change settings, load a catalogue, export the sales, refund a
sale, revoke a token, try a check-in. axe-core finds no serious or critical violation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.a11y import assert_accessible
from tests.test_page import (  # noqa: F401 (browser, shot: the fixtures)
    Api,
    browser,
    by_id,
    shot,
    text_of,
    wait_for,
)

try:
    from selenium.webdriver.common.by import By
except ImportError:
    pass

ADMIN = "console-test-token"


def test_the_console_is_served_only_with_an_admin_token(make_client: Callable) -> None:
    plain = make_client().get("/console")
    assert plain.status_code == 404 and plain.json()["code"] == "NOT_FOUND"
    page = make_client(admin_token=ADMIN).get("/console")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'data-testid="console-login"' in page.text and "/static/console.js" in page.text


def stat(driver: object, name: str) -> int:
    return int(text_of(driver, f"stat-{name}").replace(",", ""))


def sign_in(driver: object, base: str) -> None:
    driver.get(f"{base}/console")
    wait_for(driver, lambda d: by_id(d, "console-login").is_displayed())
    driver.find_element(By.ID, "token").send_keys(ADMIN)
    driver.find_element(By.ID, "login").click()
    wait_for(driver, lambda d: by_id(d, "console-stats").is_displayed())


def test_an_operator_pauses_and_resumes_a_drop(browser, live_server: Callable,  # noqa: F811
                                               shot: Callable[[str], None]) -> None:  # noqa: F811
    server = live_server(ADMIN_TOKEN=ADMIN, TICK_SECONDS="0.2", ADMIT_PER_SECOND="2")
    api = Api(server)
    browser.get(f"{server.base}/console")
    wait_for(browser, lambda d: by_id(d, "console-login").is_displayed())
    assert_accessible(browser, "the console's sign-in")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "login").click()
    wait_for(browser, lambda d: "not accepted" in text_of(d, "error"))
    shot("console-sign-in-refused")
    sign_in(browser, server.base)
    assert browser.execute_script("return sessionStorage.getItem('ticketing.adminToken')") == ADMIN
    assert browser.execute_script("return localStorage.length") == 0
    wait_for(browser, lambda d: text_of(d, "console-state") == "Admitting")
    assert browser.find_element(By.ID, "title").text == "Test Concert"  # the first on sale

    by_id(browser, "console-pause").click()
    wait_for(browser, lambda d: text_of(d, "console-state") == "Paused")
    tokens = [api.issue(c) for c in range(1, 7)]
    assert {t["status"] for t in tokens} == {"WAITING"}  # paused: nobody is let in
    wait_for(browser, lambda d: stat(d, "waiting") == 6)
    time.sleep(1.0)  # five ticks: admission stays stopped
    assert stat(browser, "waiting") == 6 and stat(browser, "active") == 0
    assert_accessible(browser, "the console, paused")
    shot("console-paused")

    by_id(browser, "console-resume").click()
    wait_for(browser, lambda d: text_of(d, "console-state") == "Admitting")
    wait_for(browser, lambda d: 0 < stat(d, "active") < 6, timeout=5)  # 2 a second: in steps
    wait_for(browser, lambda d: stat(d, "waiting") == 0 and stat(d, "active") == 6, timeout=8)
    assert float(text_of(browser, "stat-rate")) > 0
    lines = browser.find_elements(By.CSS_SELECTOR, '[data-testid="console-chart"] polyline')
    assert len(lines) == 4
    # The waiting line came down: its last point is lower on the chart than its highest.
    ys = [float(p.split(",")[1]) for p in lines[0].get_attribute("points").split()]
    assert ys[-1] > min(ys)
    shot("console-resumed")


def test_settings_catalogue_sales_refund_revoke_and_check_in(
        browser, live_server: Callable, tmp_path: Path,  # noqa: F811
        shot: Callable[[str], None]) -> None:  # noqa: F811
    server = live_server(ADMIN_TOKEN=ADMIN, TICK_SECONDS="0.2")
    api = Api(server)
    sign_in(browser, server.base)
    def settings() -> dict:
        return api.call("GET", "/admin/concerts/2/settings", token=ADMIN)[1]

    # A setting changed live, then back to its default (an emptied field).
    wait_for(browser, lambda d: d.find_elements(By.ID, "set-activeLimit"))
    browser.find_element(By.ID, "set-activeLimit").send_keys("3")
    browser.find_element(By.ID, "settings-save").click()
    wait_for(browser, lambda d: "Saved: activeLimit" in d.find_element(By.ID,
                                                                       "settings-result").text)
    assert settings()["settings"]["activeLimit"] == 3
    browser.find_element(By.ID, "set-activeLimit").clear()
    browser.find_element(By.ID, "settings-save").click()
    wait_for(browser, lambda d: settings()["overridden"] == [])

    # A catalogue document loaded from a file: the console moves to its concert.
    document = {"concertId": 7, "name": "Stadium night", "options": [
        {"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00", "sections": [
            {"name": "A", "price": 1500, "rows": [{"name": "1", "seats": 10}]}]}]}
    path = tmp_path / "stadium.json"
    path.write_text(json.dumps(document))
    browser.find_element(By.ID, "catalog-file").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#catalog-form button[type=submit]").click()
    wait_for(browser, lambda d: "Concert 7 loaded: 1 performance(s) created" in
             d.find_element(By.ID, "catalog-result").text)
    wait_for(browser, lambda d: d.find_element(By.ID, "title").text == "Stadium night")

    # A sale, exported; then refunded from the console.
    token = api.call("POST", "/api/token/issue", {"customerId": 40, "concertId": 7})[1]
    held = api.call("POST", "/api/reserve", {"concertOptionId": 70001, "seatId": 7000101},
                    token["tokenValue"])[1]
    assert "reservationId" in held, held
    assert api.call("POST", "/api/pay", {"reservationId": held["reservationId"]},
                    token["tokenValue"])[0] == 200
    by_id(browser, "console-sales").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "sales-result").text.startswith("1 sale"))
    link = browser.find_element(By.CSS_SELECTOR, "#sales-result a")
    assert link.get_attribute("download") == "sales-7.csv"
    assert link.get_attribute("href").startswith("blob:")  # the CSV the API streamed
    browser.find_element(By.ID, "refund-id").send_keys(held["reservationId"])
    browser.find_element(By.CSS_SELECTOR, "#refund-form button").click()
    wait_for(browser, lambda d: "1,500 points back to customer 40" in
             d.find_element(By.ID, "refund-result").text)
    assert api.balance(40) == 10_000

    # A token revoked: its next use is refused.
    other = api.call("POST", "/api/token/issue", {"customerId": 41, "concertId": 7})[1]
    browser.find_element(By.ID, "revoke-id").send_keys("41")
    browser.find_element(By.CSS_SELECTOR, "#revoke-form button").click()
    wait_for(browser, lambda d: "Token of customer 41 revoked" in
             d.find_element(By.ID, "revoke-result").text)
    assert api.call("GET", "/api/token/status", token=other["tokenValue"])[0] == 401

    # A check-in posts and shows the answer (the route is another change's: 404 here).
    browser.find_element(By.ID, "checkin-ticket").send_keys("7.ticket")
    browser.find_element(By.CSS_SELECTOR, "#checkin-form button").click()
    wait_for(browser, lambda d: "(404)" in d.find_element(By.ID, "checkin-result").text)
    assert_accessible(browser, "the console after its tools")
    shot("console-tools")

    # Signing out forgets the token.
    browser.find_element(By.ID, "sign-out").click()
    assert browser.execute_script("return sessionStorage.length") == 0
    assert by_id(browser, "console-login").is_displayed()
