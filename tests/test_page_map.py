"""The booking page's seat map in headless Chromium against a real server and Redis: a fan
on a phone picks a concert from the list, opens a section of a big venue from its overview,
holds the best two seats together and pays; the states other changes add to the API (sold
out, a presale code, a proof-of-work challenge, the ticket's QR, a 429), each rendered when
the API answers so; and axe-core finds no serious or critical violation on the way.
Screenshots at desktop and phone width in var/screenshots/ (tests/test_page.py's ``shot``)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator

import pytest
import redis

from engine.venue import load_sync, parse
from tests.a11y import assert_accessible
from tests.test_page import (  # noqa: F401 (browser, shot, rewrite: the fixtures)
    Api,
    browser,
    by_id,
    calls,
    date_button,
    join,
    open_concert,
    rewrite,
    seat,
    seats_shown,
    set_viewport,
    shot,
    text_of,
    wait_active_with_dates,
    wait_for,
)

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:
    pass

# 700 seats: past the 600 the page draws at once, so it shows its sections first.
STADIUM = {"concertId": 7, "name": "Stadium night", "options": [
    {"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00", "sections": [
        {"name": "A", "price": 1500, "rows": [
            {"name": str(n), "seats": 30, **({"price": 1200} if n > 5 else {})}
            for n in range(1, 11)]},
        {"name": "B", "price": 900, "rows": [{"name": str(n), "seats": 40}
                                               for n in range(1, 11)]}]}]}


def stadium_seat(section: str, row: int, number: int) -> int:
    per_row = 30 if section == "A" else 40
    before = 0 if section == "A" else 300
    return 70001000 + before + (row - 1) * per_row + number


@pytest.fixture
def phone(browser) -> Iterator[None]:  # noqa: F811
    set_viewport(browser, "phone")
    yield
    set_viewport(browser, "desktop")


def test_a_fan_buys_two_seats_together_from_the_map_on_a_phone(
        browser, live_server: Callable, catalog: redis.Redis, phone: None,  # noqa: F811
        shot: Callable[[str], None]) -> None:  # noqa: F811
    load_sync(catalog, parse(STADIUM))
    server = live_server(TICK_SECONDS="0.2")
    api = Api(server)
    taken = stadium_seat("A", 1, 15)  # another fan's, before ours: shown in place as taken
    status, other = api.call("POST", "/api/token/issue", {"customerId": 31, "concertId": 7})
    status, held = api.call("POST", "/api/reserve", {"concertOptionId": 70001, "seatId": taken},
                            other["tokenValue"])
    assert status == 200, held

    # Any concert on sale: the list, then one by its link.
    browser.get(f"{server.base}/")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "a.concert")) == 3)
    names = [a.find_element(By.CSS_SELECTOR, ".concert-name").text
             for a in browser.find_elements(By.CSS_SELECTOR, "a.concert")]
    assert names == ["Test Concert", "Other Concert", "Stadium night"]  # by next date
    assert_accessible(browser, "the concerts on sale")
    shot("concerts")
    browser.find_element(By.CSS_SELECTOR, 'a.concert[data-concert-id="7"]').click()
    wait_for(browser, lambda d: text_of(d, "concert-name") == "Stadium night")
    assert text_of(browser, "concert-dates") == "Mon, Mar 1, 2027 · 1 performance"
    assert browser.title == "Tickets · Stadium night"
    join(browser, 11)
    wait_for(browser, lambda d: len(by_id(d, "dates").find_elements(By.TAG_NAME, "button")) == 1)
    assert "699 seats free" in date_button(browser, 70001).text
    date_button(browser, 70001).click()

    # The overview first: a card a section, with its free seats and prices.
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="section"]'))
             == 2)
    cards = browser.find_elements(By.CSS_SELECTOR, '[data-testid="section"]')
    assert [c.text.splitlines() for c in cards] == [
        ["Section A", "299 of 300 free", "1,200\u20131,500 points"],
        ["Section B", "400 of 400 free", "900 points"]]
    assert seats_shown(browser) == []  # no seat drawn before a section is chosen
    assert_accessible(browser, "the overview")
    shot("overview")

    cards[0].click()
    wait_for(browser, lambda d: len(seats_shown(d)) == 300)
    assert seat(browser, taken).get_attribute("data-state") == "taken"
    assert seats_shown(browser, "taken") == [taken]
    assert browser.find_element(By.ID, "map-nav").text.split() == [
        "All", "sections", "\u203a", "Section", "A"]
    assert "299 of 300 seats in Section A free" in browser.find_element(By.ID, "seats-hint").text
    assert_accessible(browser, "a section's seats")
    shot("section")

    # The best two together in section A (the one on show), from the map.
    form = by_id(browser, "best-available")
    Select(by_id(browser, "best-quantity")).select_by_value("2")
    assert Select(by_id(browser, "best-section")).first_selected_option.text == "section A"
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(browser, lambda d: by_id(d, "hold").is_displayed())
    mine = seats_shown(browser, "held-by-me")
    assert mine == [stadium_seat("A", 1, 1), stadium_seat("A", 1, 2)]  # dearest row, together
    assert seat(browser, mine[0]).get_attribute("aria-label") == (
        "Section A, Row 1, Seat 1, 1,500 points, held for you")
    hold = text_of(browser, "hold")
    assert "Seats (2)" in hold and "Section A · Row 1 · Seats 1, 2" in hold
    assert "3,000 points" in hold and text_of(browser, "pay") == "Pay 3,000 points"
    assert_accessible(browser, "two seats held")
    shot("held")

    by_id(browser, "pay").click()
    wait_for(browser, lambda d: by_id(d, "receipt").is_displayed())
    receipt = text_of(browser, "receipt")
    assert "Stadium night" in receipt and "Mon, Mar 1, 2027, 19:00" in receipt
    assert "Seats (2)" in receipt and "Section A · Row 1 · Seats 1, 2" in receipt
    assert "3,000 points" in receipt and "7,000 points" in receipt
    assert api.balance(11) == 7000
    assert_accessible(browser, "the receipt")
    shot("receipt")
    # Sold, in the engine: the seats map's bits say so to everyone.
    status, token = api.call("POST", "/api/token/issue", {"customerId": 12, "concertId": 7})
    status, bits = api.call("GET", "/api/70001/taken-seats?section=A", token=token["tokenValue"])
    assert status == 200 and bits["free"] == 297


def alt_challenge(number: int) -> dict:
    salt = "s4lt?expires=9999999999&"
    return {"algorithm": "SHA-256", "salt": salt, "signature": "not-checked-here",
            "challenge": hashlib.sha256(f"{salt}{number}".encode()).hexdigest(),
            "maxnumber": 20_000}


def problem(status: int, code: str, detail: str, **more: object) -> str:
    return json.dumps({"type": f"/problems/{code.lower()}", "title": code.title(),
                       "status": status, "code": code, "detail": detail, **more})


def bodies(driver: object, path: str) -> list[dict]:
    return [json.loads(b) for b in driver.execute_script(
        "return window.__calls.filter(c => c.path === arguments[0] && c.body)"
        ".map(c => c.body);", path)]


def test_states_the_api_may_give_are_shown(
        browser, live_server: Callable, rewrite: Callable[[str], None],  # noqa: F811
        shot: Callable[[str], None]) -> None:  # noqa: F811
    """Presale code, proof of work, sold out and back, a 429 with Retry-After, the ticket's
    QR: each drawn when the API answers so (rewritten answers here: the back ends are other
    changes'), and gone when it does not."""
    server = live_server(TICK_SECONDS="0.2")
    open_concert(browser, server)
    for test_id in ("sold-out", "access-code", "challenge", "ticket-qr"):
        assert not by_id(browser, test_id).is_displayed(), test_id
    issue = "/api/token/issue"
    rewrite(f"""async (path, resp) => {{
      if (path !== "{issue}") return;
      const calls = window.__calls.filter(c => c.path === "{issue}").length;
      const problem = calls === 1 ? {problem(403, "ACCESS_CODE_REQUIRED", "A presale.")!r}
        : calls === 2 ? {problem(403, "CHALLENGE_REQUIRED", "Prove some work.",
                                 challenge=alt_challenge(1234))!r} : null;
      if (problem) return new Response(problem, {{status: 403,
        headers: {{"Content-Type": "application/problem+json"}}}});
    }}""")
    join(browser, 21)
    wait_for(browser, lambda d: by_id(d, "access-code").is_displayed())
    assert "Access code needed" in text_of(browser, "error")
    assert_accessible(browser, "the access code asked for")
    shot("access-code")
    by_id(browser, "access-code").send_keys("FANCLUB-1")
    by_id(browser, "join").click()
    # The challenge is solved in the page, then the join sent again with its payload.
    wait_active_with_dates(browser)
    sent = bodies(browser, issue)
    assert [b.get("accessCode") for b in sent] == [None, "FANCLUB-1", "FANCLUB-1"]
    payload = json.loads(base64.b64decode(sent[2]["altcha"]))
    assert payload["number"] == 1234 and payload["signature"] == "not-checked-here"
    assert not by_id(browser, "challenge").is_displayed()

    # A 429 on a reserve: nothing is tried again before Retry-After, then it is.
    rewrite("null")
    browser.execute_script(f"""window.__instead = async (path) => {{
      if (path !== "/api/reserve" || window.__limited) return;
      window.__limited = true;  // the first reserve only, and it never reaches the API
      return new Response({problem(429, "RATE_LIMITED", "Slow down.")!r}, {{status: 429,
        headers: {{"Content-Type": "application/problem+json", "Retry-After": "2"}}}});
    }};""")
    date_button(browser, 41150).click()
    wait_for(browser, lambda d: len(seats_shown(d, "free")) == 4)
    first = seats_shown(browser)[0]
    seat(browser, first).click()
    wait_for(browser, lambda d: "Too many requests" in text_of(d, "error"))
    assert "try again in 2 s" in text_of(browser, "error")
    shot("rate-limited")
    seat(browser, first).click()  # still cooling down: not sent
    assert len(calls(browser, "/api/reserve")) == 1
    wait_for(browser, lambda d: text_of(d, "error") == "", timeout=4)
    seat(browser, first).click()
    wait_for(browser, lambda d: by_id(d, "hold").is_displayed())
    assert len(calls(browser, "/api/reserve")) == 2

    # The receipt with the ticket's QR code, when the ticket endpoint answers with one.
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4" onload="alert(1)">'
           '<script>alert(2)</script><rect width="2" height="2"/></svg>')
    ticket = json.dumps({"ticket": "TK1.2.x", "qrSvg": svg})
    browser.execute_script(f"""window.__instead = async (path) => {{
      if (!path.startsWith("/api/tickets/")) return;
      return new Response({ticket!r}, {{status: 200,
        headers: {{"Content-Type": "application/json"}}}});
    }};""")
    by_id(browser, "pay").click()
    wait_for(browser, lambda d: by_id(d, "ticket-qr").is_displayed())
    # As an image: an SVG in <img> runs nothing (its onload and script stay inert).
    qr = by_id(browser, "ticket-qr").find_element(By.TAG_NAME, "img")
    assert qr.get_attribute("alt").startswith("Ticket QR code for reservation 2.")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].naturalWidth > 0;", qr))
    asked = browser.execute_script(
        "return window.__calls.filter(c => c.path.startsWith('/api/tickets/')).map(c => c.url)")
    assert len(asked) == 1 and asked[0].endswith("?customerId=21")
    assert_accessible(browser, "the receipt with its QR code")
    shot("ticket-qr")


def test_sold_out_and_back_on_sale(
        browser, live_server: Callable, rewrite: Callable[[str], None],  # noqa: F811
        shot: Callable[[str], None]) -> None:  # noqa: F811
    server = live_server(ACTIVE_LIMIT="1", TICK_SECONDS="0.2")
    Api(server).issue(1)  # the only ACTIVE slot: the visitor waits
    open_concert(browser, server)
    rewrite("""async (path, resp) => {
      if (path !== "/api/token/status" || !resp.ok || !window.__soldOut) return;
      const body = await resp.json();
      body.status = "SOLD_OUT";
      body.pollAfterSeconds = 0.3;
      return new Response(JSON.stringify(body), {status: 200, headers: resp.headers});
    }""")
    browser.execute_script("window.__soldOut = true;")
    join(browser, 22)
    wait_for(browser, lambda d: by_id(d, "sold-out").is_displayed())
    assert text_of(browser, "status") == "SOLD_OUT" and text_of(browser, "eta") == "\u2013"
    assert_accessible(browser, "sold out")
    shot("sold-out")
    browser.execute_script("window.__soldOut = false;")  # back on sale: still in the queue
    wait_for(browser, lambda d: not by_id(d, "sold-out").is_displayed())
    assert text_of(browser, "status") == "WAITING" and text_of(browser, "position") == "1"
