"""The booking page (api/static/, served by api/pages.py): how it is served, then the page in
headless Chromium against a real server: a visit from the waiting room to a receipt, a seat
taken under the visitor's eyes (shown in place as taken), and the keyboard path on the seat
map. tests/test_page_map.py has the map's own flows. Each browser step is saved as a
full-page screenshot at desktop (1280x900) and phone (375x812) width in var/screenshots/.

The browser tests need Chromium and chromedriver (Debian's `chromium` and `chromium-driver`;
`make install` installs them as root) and skip without them. Both are passed to Selenium by
path: its own driver manager would try to download a browser, and there may be no internet."""

from __future__ import annotations

import base64
import http.client
import itertools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from devstack.api_server import Server
from engine.seed import Option, Seat, create_concert
from tests.conftest import CONCERT, OPTION, OTHER_OPTION, seat_id

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the serving tests still run; the browser fixture skips
    webdriver = None

REPO = Path(__file__).resolve().parent.parent
STATIC = REPO / "api" / "static"
SHOTS = REPO / "var" / "screenshots"  # git-ignored (var/)
VIEWPORTS = {"desktop": (1280, 900, False), "phone": (375, 812, True)}
TEST_IDS = ["customer-id", "join", "status", "position", "eta", "dates", "seat", "hold",
            "countdown", "pay", "receipt", "balance", "error", "seat-map", "sold-out",
            "access-code", "challenge", "ticket-qr", "concerts", "concert-name"]
# No network here: nothing in Chromium may try to reach out (updates, sync, first-run).
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-extensions", "--mute-audio",
                  "--lang=en-US"]


# --- served by the API (no browser) ---------------------------------------------------------
def test_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in [("page.js", "javascript"), ("page.css", "text/css"),
                        ("seatmap.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        assert f"/static/{asset}" in page.text
        resp = client.get(f"/static/{asset}")
        assert resp.status_code == 200 and kind in resp.headers["content-type"], asset
    for path in ["/static/missing.js", "/static/", "/static/../app.py"]:
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["code"] == "NOT_FOUND"


def test_page_is_self_contained() -> None:
    """Nothing is fetched from elsewhere (the service may run offline), and every test id the
    tests and other clients rely on is there."""
    # The page's own files (api/static/altcha/ is ALTCHA's widget, vendored: its links to its
    # makers are links, and tests/test_gates.py runs it under the page's CSP).
    text = "\n".join(p.read_text() for p in sorted(STATIC.iterdir()) if p.is_file())
    assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text)
    for test_id in TEST_IDS:
        assert (f'data-testid="{test_id}"' in text or f'testid = "{test_id}"' in text), test_id


# --- the browser --------------------------------------------------------------------------
def _executable(env: str, *names: str) -> str | None:
    """``$env`` if set (and there), else the first of ``names`` on PATH."""
    if os.environ.get(env):
        return shutil.which(os.environ[env])
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if webdriver is None:
        pytest.skip("selenium is not installed: `make install` installs the dev dependencies")
    chromium = _executable("CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver_path = _executable("CHROMEDRIVER", "chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("no Chromium/chromedriver on PATH: `make install` installs Debian's chromium "
                    "and chromium-driver as root (apt-get install chromium chromium-driver), "
                    "or set CHROMIUM and CHROMEDRIVER")
    profile = tempfile.mkdtemp(prefix="page-test-chromium-")
    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # see page_errors()
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        set_viewport(driver, "desktop")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(driver: webdriver.Chrome, name: str) -> None:
    driver.viewport = name  # shot() comes back to it
    width, height, mobile = VIEWPORTS[name]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def page_errors(driver: webdriver.Chrome) -> list[str]:
    """The console's errors since the last call (script errors, CSP refusals), less the
    refusals the tests provoke on purpose, which Chromium logs as failed loads."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and "Failed to load resource: the server responded" not in e["message"]]


@pytest.fixture
def shot(browser: webdriver.Chrome,
         request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """``shot("step")``: the whole page at each width, as var/screenshots/<test>-NN-step-*.png."""
    prefix = request.node.name.removeprefix("test_")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob(f"{prefix}-*.png"):
        old.unlink()
    count = 0

    def take(step: str) -> None:
        nonlocal count
        count += 1
        was = getattr(browser, "viewport", "desktop")
        scrolled = browser.execute_script("const y = window.scrollY; scrollTo(0, 0); return y;")
        for name in VIEWPORTS:
            set_viewport(browser, name)
            # From the top: a sticky element (the error) then sits where it is in the flow.
            width, height = browser.execute_script(
                "const e = document.documentElement; return [e.clientWidth, e.scrollHeight];")
            png = browser.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
            (SHOTS / f"{prefix}-{count:02d}-{step}-{name}.png").write_bytes(
                base64.b64decode(png["data"]))
        set_viewport(browser, was)
        browser.execute_script("scrollTo(0, arguments[0]);", scrolled)

    # What earlier tests left: their page is closed first, or its polls of a server that has
    # stopped would be logged during this test.
    browser.get("about:blank")
    page_errors(browser)
    yield take
    assert page_errors(browser) == []


# Wraps the page's fetch before any of its scripts run: records each call's path, time,
# method and body in window.__calls, lets a test rewrite answers with
# window.__rewrite(path, response), or answer instead of the API (the request is not sent)
# with window.__instead(path, init) returning a Response (or nothing: sent as usual).
FETCH_WRAPPER = """
(() => {
  const realFetch = window.fetch.bind(window);
  window.__calls = [];
  window.__rewrite = null;
  window.__instead = null;
  window.fetch = async (input, init) => {
    const path = new URL(typeof input === "string" ? input : input.url, location.href).pathname;
    window.__calls.push({path, at: performance.now(), method: (init && init.method) || "GET",
                         body: init && init.body, url: String(input)});
    const instead = window.__instead ? await window.__instead(path, init) : null;
    const resp = instead || await realFetch(input, init);
    return window.__rewrite ? (await window.__rewrite(path, resp)) || resp : resp;
  };
})();
"""


@pytest.fixture
def rewrite(browser: webdriver.Chrome) -> Iterator[Callable[[str], None]]:
    """Pages loaded from now on answer through FETCH_WRAPPER; ``rewrite(js)`` sets
    window.__rewrite to the async function ``js`` (or null)."""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": FETCH_WRAPPER})
    yield lambda js: browser.execute_script(f"window.__rewrite = {js};")
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                            {"identifier": added["identifier"]})


def calls(driver: webdriver.Chrome, path: str) -> list[float]:
    """When (ms) the page called ``path``, in order."""
    return driver.execute_script(
        "return window.__calls.filter(c => c.path === arguments[0]).map(c => c.at);", path)


def by_id(driver: webdriver.Chrome, test_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')


def text_of(driver: webdriver.Chrome, test_id: str) -> str:
    return by_id(driver, test_id).text.strip()


def wait_for(driver: webdriver.Chrome, what: Callable[[webdriver.Chrome], object],
             timeout: float = 10) -> object:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: what(d))


def seats_shown(driver: webdriver.Chrome, state: str | None = None) -> list[int]:
    """The seats on the map (in ``state`` only: free, taken, held-by-me)."""
    return [int(s.get_attribute("data-seat-id"))
            for s in driver.find_elements(By.CSS_SELECTOR, '[data-testid="seat"]')
            if state is None or s.get_attribute("data-state") == state]


def seat(driver: webdriver.Chrome, seat_id: int) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="seat"][data-seat-id="{seat_id}"]')


def open_concert(driver: webdriver.Chrome, server: Server, concert: int = CONCERT) -> None:
    driver.get(f"{server.base}/?concert={concert}")
    wait_for(driver, lambda d: by_id(d, "customer-id").is_displayed())


def date_button(driver: webdriver.Chrome, option: int) -> WebElement:
    return by_id(driver, "dates").find_element(By.CSS_SELECTOR, f'[data-option-id="{option}"]')


def focused(driver: webdriver.Chrome) -> WebElement:
    return driver.switch_to.active_element


def press(driver: webdriver.Chrome, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


class Api:
    """Other customers, acting through the API while the page is open."""

    def __init__(self, server: Server) -> None:
        self.port = server.port

    def call(self, method: str, path: str, body: object | None = None,
             token: str | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=None if body is None else orjson.dumps(body),
                     headers=headers)
        resp = conn.getresponse()
        status, data = resp.status, orjson.loads(resp.read() or b"{}")
        conn.close()
        return status, data

    def issue(self, customer: int) -> dict:
        status, token = self.call("POST", "/api/token/issue",
                                  {"customerId": customer, "concertId": CONCERT})
        assert status == 200, token
        return token

    def wait_active(self, token: dict) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, body = self.call("GET", "/api/token/status", token=token["tokenValue"])
            assert status == 200, body
            if body["status"] == "ACTIVE":
                return
            time.sleep(0.05)
        raise AssertionError(f"customer {token['customerId']} was never admitted")

    def reserve(self, token: dict, option: int, seat: int) -> dict:
        status, held = self.call("POST", "/api/reserve",
                                 {"concertOptionId": option, "seatId": seat},
                                 token["tokenValue"])
        assert status == 200, held
        return held

    def buy(self, token: dict, option: int, seat: int) -> None:
        """Reserve and pay: the pay of the customer's last hold finishes its token."""
        held = self.reserve(token, option, seat)
        status, paid = self.call("POST", "/api/pay", {"reservationId": held["reservationId"]},
                                 token["tokenValue"])
        assert status == 200, paid

    def balance(self, customer: int) -> float:
        return self.call("GET", f"/api/point?customerId={customer}")[1]["balance"]


def join(driver: webdriver.Chrome, customer: int) -> None:
    by_id(driver, "customer-id").send_keys(str(customer))
    by_id(driver, "join").click()


def wait_active_with_dates(driver: webdriver.Chrome) -> None:
    wait_for(driver, lambda d: text_of(d, "status") == "ACTIVE")
    wait_for(driver, lambda d: len(by_id(d, "dates").find_elements(By.TAG_NAME, "button")) == 2)


# --- (a) the waiting room to a receipt --------------------------------------------------------
def test_waiting_room_to_receipt(browser: webdriver.Chrome, live_server: Callable[..., Server],
                                 shot: Callable[[str], None]) -> None:
    # One ACTIVE slot, a fast tick: the visitor waits behind three customers and moves up as
    # each of them pays (which finishes their token) and the tick admits the next.
    server = live_server(ACTIVE_LIMIT="1", ADMIT_PER_SECOND="100", TICK_SECONDS="0.2")
    api = Api(server)
    ahead = [api.issue(1), api.issue(3), api.issue(4)]
    assert [t["status"] for t in ahead] == ["ACTIVE", "WAITING", "WAITING"]

    open_concert(browser, server)
    assert browser.title == "Tickets · Test Concert"
    shot("start")
    join(browser, 2)
    wait_for(browser, lambda d: text_of(d, "status") == "WAITING" and text_of(d, "position") == "3")
    assert text_of(browser, "eta").startswith("about")
    progress = browser.find_element(By.ID, "progress")
    assert progress.get_attribute("aria-valuenow") == "0"
    shot("waiting")

    # The bar fills from the first position seen (3) to 0.
    for number, (token, position, filled) in enumerate(
            zip(ahead, ["2", "1", "0"], ["33", "67", "100"], strict=True), start=1):
        api.wait_active(token)
        api.buy(token, OTHER_OPTION, seat_id(OTHER_OPTION, number))
        wait_for(browser, lambda d, p=position: text_of(d, "position") == p)
        assert progress.get_attribute("aria-valuenow") == filled
        if position == "1":
            shot("moving-up")
    wait_active_with_dates(browser)
    assert text_of(browser, "eta") == "Now"
    assert text_of(browser, "balance") == "10,000"
    assert "4 seats free" in date_button(browser, OPTION).text
    assert "1 seat free" in date_button(browser, OTHER_OPTION).text  # the others bought 3
    shot("dates")

    date_button(browser, OPTION).click()
    wait_for(browser, lambda d: len(seats_shown(d, "free")) == 4)
    second = seat(browser, seat_id(OPTION, 2))
    assert second.text == "2"
    assert second.get_attribute("aria-label") == "Section A, Row 1, Seat 2, 1,000 points, free"
    shot("seats")

    second.click()
    wait_for(browser, lambda d: by_id(d, "hold").is_displayed())
    hold = text_of(browser, "hold")
    assert "Seat 2" in hold and "1,000 points" in hold
    first = text_of(browser, "countdown")
    assert re.fullmatch(r"0[45]:\d\d", first), first  # HOLD_TTL_SECONDS: 300
    wait_for(browser, lambda d: text_of(d, "countdown") != first, timeout=3)  # it runs
    assert "1,000" in text_of(browser, "pay")
    shot("hold")

    by_id(browser, "pay").click()
    wait_for(browser, lambda d: by_id(d, "receipt").is_displayed())
    receipt = text_of(browser, "receipt")
    assert re.search(r"\b2\.[0-9a-f]{32}\b", receipt), receipt  # the reservation id
    assert "Seat 2" in receipt and "1,000 points" in receipt and "9,000 points" in receipt
    assert "Test Concert" in receipt and "Sun, Jan 10, 2027, 19:00" in receipt
    assert text_of(browser, "balance") == "9,000"
    assert api.balance(2) == 9000
    assert text_of(browser, "error") == ""
    shot("receipt")


# --- (b) a contested seat -----------------------------------------------------------------
def test_seat_taken_after_the_page_showed_it(
        browser: webdriver.Chrome, live_server: Callable[..., Server],
        shot: Callable[[str], None]) -> None:
    server = live_server(TICK_SECONDS="0.2")
    api = Api(server)
    open_concert(browser, server)
    join(browser, 5)
    wait_active_with_dates(browser)
    date_button(browser, OPTION).click()
    wait_for(browser, lambda d: len(seats_shown(d, "free")) == 4)
    contested = seat_id(OPTION, 3)

    api.reserve(api.issue(6), OPTION, contested)  # another customer, after the map was shown
    seat(browser, contested).click()
    wait_for(browser, lambda d: "just taken" in text_of(d, "error"))
    assert "Seat 3" in text_of(browser, "error")
    # Still in its place on the map, now as taken: the row keeps its shape.
    wait_for(browser, lambda d: seat(d, contested).get_attribute("data-state") == "taken")
    assert seats_shown(browser) == [seat_id(OPTION, n) for n in range(1, 5)]
    assert seat(browser, contested).get_attribute("aria-label").endswith("1,000 points, taken")
    assert seat(browser, contested).get_attribute("aria-disabled") == "true"
    assert not by_id(browser, "hold").is_displayed()
    shot("seat-taken")
    seat(browser, contested).click()  # a taken seat does nothing
    assert not by_id(browser, "hold").is_displayed()

    # The page goes on: another seat can be held, and the message goes away.
    seat(browser, seat_id(OPTION, 4)).click()
    wait_for(browser, lambda d: by_id(d, "hold").is_displayed())
    assert "Seat 4" in text_of(browser, "hold")
    assert text_of(browser, "error") == ""


# --- (c) the keyboard alone ---------------------------------------------------------------
def test_keyboard_only(browser: webdriver.Chrome, live_server: Callable[..., Server],
                       shot: Callable[[str], None]) -> None:
    server = live_server(TICK_SECONDS="0.2")
    api = Api(server)
    api.buy(api.issue(7), OTHER_OPTION, seat_id(OTHER_OPTION, 2))  # taken before the visit
    open_concert(browser, server)
    assert by_id(browser, "error").get_attribute("role") == "alert"
    assert browser.find_element(By.CSS_SELECTOR, ".stats").get_attribute("aria-live") == "polite"

    press(browser, Keys.TAB)
    assert focused(browser).text == "CONCERT TICKETS"  # the way back to the concerts on sale
    press(browser, Keys.TAB)
    assert focused(browser).get_attribute("data-testid") == "customer-id"
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="customer-id"]').text == "Customer id"
    press(browser, "8", Keys.ENTER)
    wait_active_with_dates(browser)
    # Focus follows the visit: the dates' heading, the first date, the seats' heading, ...
    wait_for(browser, lambda d: focused(d).get_attribute("id") == "dates-title")
    shot("keyboard-dates")
    press(browser, Keys.TAB)
    assert focused(browser).get_attribute("data-option-id") == str(OTHER_OPTION)  # earliest
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: focused(d).get_attribute("id") == "seats-title")
    # The map is one Tab stop, on its first free seat; the arrows move from seat to seat,
    # over the taken one (named so, and Enter does nothing there).
    press(browser, Keys.TAB)
    assert focused(browser).get_attribute("data-seat-id") == str(seat_id(OTHER_OPTION, 1))
    press(browser, Keys.ARROW_RIGHT)
    assert focused(browser).get_attribute("aria-label") == (
        "Section A, Row 1, Seat 2, 1,000 points, taken")
    assert "Seat 2: 1,000 points, taken" in text_of(browser, "seat-info")
    press(browser, Keys.ENTER)
    press(browser, Keys.ARROW_RIGHT)
    assert focused(browser).get_attribute("data-seat-id") == str(seat_id(OTHER_OPTION, 3))
    press(browser, Keys.END)
    assert focused(browser).get_attribute("data-seat-id") == str(seat_id(OTHER_OPTION, 4))
    press(browser, Keys.HOME)
    assert focused(browser).get_attribute("data-seat-id") == str(seat_id(OTHER_OPTION, 1))
    assert not by_id(browser, "hold").is_displayed()
    press(browser, Keys.TAB)  # out of the map (to its zoom) and back: to the same seat
    assert focused(browser).get_attribute("aria-label") == "Zoom out"
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    assert focused(browser).get_attribute("data-seat-id") == str(seat_id(OTHER_OPTION, 1))
    shot("keyboard-seat-focused")
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: focused(d).get_attribute("id") == "hold-title")
    press(browser, Keys.TAB)
    assert focused(browser).get_attribute("data-testid") == "pay"
    shot("keyboard-hold")
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: focused(d).get_attribute("id") == "receipt-title")
    assert text_of(browser, "balance") == "9,000"
    assert api.balance(8) == 9000
    assert "Seat 1" in text_of(browser, "receipt")
    shot("keyboard-receipt")


# --- seats in sections and rows, and a seat beyond the balance --------------------------------
BIG_OPTION = 41152


def test_seat_map_in_sections_and_rows_and_a_pay_beyond_the_balance(
        browser: webdriver.Chrome, live_server: Callable[..., Server], catalog: redis.Redis,
        rewrite: Callable[[str], None], shot: Callable[[str], None]) -> None:
    # The demo's 50-seat layout (VIP 150,000 / R 120,000 / S 90,000 points) on a third date,
    # in sections and rows of ten, as the API lists them.
    def tier(n: int) -> tuple[str, int]:
        return ("VIP", 15_000_000) if n <= 10 else ("R", 12_000_000) if n <= 30 else (
            "S", 9_000_000)

    create_concert(catalog, CONCERT, "Test Concert", [Option(
        BIG_OPTION, "2027-01-11T19:00:00+09:00",
        tuple(Seat(seat_id(BIG_OPTION, n), (n - 1) % 10 + 1, tier(n)[1], tier(n)[0],
                   str((n - 1) // 10 + 1)) for n in range(1, 51)))])
    server = live_server(TICK_SECONDS="0.2")
    open_concert(browser, server)
    join(browser, 9)
    wait_for(browser, lambda d: len(by_id(d, "dates").find_elements(By.TAG_NAME, "button")) == 3)
    date_button(browser, BIG_OPTION).click()
    wait_for(browser, lambda d: len(seats_shown(d)) == 50)
    sections = browser.find_elements(By.CSS_SELECTOR, ".map-section")
    assert [s.find_element(By.TAG_NAME, "h3").text for s in sections] == [
        "Section VIP", "Section R", "Section S"]  # in the API's order (by seat number)
    rows = [[r.get_attribute("aria-label") for r in s.find_elements(By.CSS_SELECTOR, ".map-row")]
            for s in sections]
    assert rows == [["Section VIP, Row 1"], ["Section R, Row 2", "Section R, Row 3"],
                    ["Section S, Row 4", "Section S, Row 5"]]
    vip = seat(browser, seat_id(BIG_OPTION, 1))
    assert vip.get_attribute("aria-label") == "Section VIP, Row 1, Seat 1, 150,000 points, free"
    legend = browser.find_element(By.ID, "legend").text.splitlines()
    assert legend == ["150,000 points", "120,000 points", "90,000 points", "Taken",
                      "Held for you"]
    shot("sections")

    vip.click()
    wait_for(browser, lambda d: by_id(d, "hold").is_displayed())
    assert "Section VIP · Row 1 · Seat 1" in text_of(browser, "hold")
    by_id(browser, "pay").click()
    wait_for(browser, lambda d: "Not enough points" in text_of(d, "error"))
    assert "10,000 points" in text_of(browser, "error")  # the balance shown before paying
    assert by_id(browser, "hold").is_displayed()  # 402 changes nothing: the hold stays
    assert by_id(browser, "pay").is_enabled()
    assert text_of(browser, "balance") == "10,000"
    shot("insufficient-balance")


# --- the rate the API suggests --------------------------------------------------------------
def test_polls_at_the_rate_the_api_suggests(
        browser: webdriver.Chrome, live_server: Callable[..., Server],
        rewrite: Callable[[str], None], shot: Callable[[str], None]) -> None:
    server = live_server(ACTIVE_LIMIT="1", TICK_SECONDS="0.2")
    Api(server).issue(1)  # holds the only ACTIVE slot: the visitor waits throughout
    open_concert(browser, server)
    status_path = "/api/token/status"
    # pollAfterSeconds in the body (a later change adds it): 0.3 s instead of the default 1 s.
    rewrite("""async (path, resp) => {
      if (path !== "/api/token/status" || !resp.ok) return;
      const body = await resp.json();
      body.pollAfterSeconds = 0.3;
      return new Response(JSON.stringify(body), {status: resp.status, headers: resp.headers});
    }""")
    join(browser, 2)
    wait_for(browser, lambda d: text_of(d, "status") == "WAITING")
    wait_for(browser, lambda d: len(calls(d, status_path)) >= 4, timeout=3)
    gaps = [b - a for a, b in itertools.pairwise(calls(browser, status_path))]
    assert all(250 <= g < 800 for g in gaps), gaps

    # A 503 with Retry-After: the next poll waits at least that long, and the page says so.
    rewrite("""async (path, resp) => {
      if (path !== "/api/token/status") return;
      return new Response(JSON.stringify({type: "/problems/store-unavailable",
        title: "Service unavailable", status: 503, code: "STORE_UNAVAILABLE",
        detail: "Redis did not answer in time"}),
        {status: 503, headers: {"Content-Type": "application/problem+json",
                                "Retry-After": "1.5"}});
    }""")
    wait_for(browser, lambda d: "Service busy" in text_of(d, "error"), timeout=3)
    failed = len(calls(browser, status_path))  # the last call got the 503
    rewrite("null")  # the service is back: the message goes, the visitor still waits
    shot("service-busy")
    wait_for(browser, lambda d: text_of(d, "error") == "", timeout=4)
    at = calls(browser, status_path)
    assert at[failed] - at[failed - 1] >= 1450, at[failed - 1:]
    assert text_of(browser, "status") == "WAITING" and text_of(browser, "position") == "1"


# --- a token that ended -----------------------------------------------------------------------
def test_an_ended_token_offers_to_join_again(
        browser: webdriver.Chrome, live_server: Callable[..., Server],
        shot: Callable[[str], None]) -> None:
    server = live_server(ACTIVE_TTL_SECONDS="1", TICK_SECONDS="0.2")
    open_concert(browser, server)
    join(browser, 4)
    wait_active_with_dates(browser)
    time.sleep(1.2)  # the ACTIVE token's life ends
    date_button(browser, OPTION).click()
    wait_for(browser, lambda d: "Your turn has ended" in text_of(d, "error"))
    assert focused(browser).text == "Join again"  # focus on the way out
    assert text_of(browser, "status") == "ENDED" and text_of(browser, "position") == "\u2013"
    assert not by_id(browser, "dates").is_displayed()
    shot("token-ended")
    press(browser, Keys.ENTER)
    wait_active_with_dates(browser)
    assert text_of(browser, "error") == ""
