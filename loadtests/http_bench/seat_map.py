"""The seat map's first paint for a 100,000-seat performance, in headless Chromium: from the
click on the date to the section overview painted, and from the click on a section to its
5,000 seats painted (the page's performance marks, api/static/seats.js), cold (the API
worker's first build of that layout) and warm (kept). Beside them, the bytes each answer
weighs against the whole seat list of /available-seats.

    .venv/bin/python -m loadtests.http_bench.seat_map [--rounds 5]

Redis, one API worker and Chromium on 127.0.0.1 (Debian's chromium and chromedriver, as the
browser tests use); stops by itself. Writes loadtests/results/seat_map.md."""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from selenium import webdriver  # a dev dependency, as for the browser tests
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from devstack.api_server import api_server
from devstack.redis_server import RedisServer
from engine.seed import fund_customers
from engine.sync import sync_client
from engine.venue import load_sync, parse
from loadtests.reporting import publish

SECTIONS, ROWS, PER_ROW = 20, 100, 50  # 100,000 seats: 20 sections of 5,000
CONCERT, OPTION = 9, 90001
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-extensions", "--mute-audio", "--lang=en-US"]


def venue() -> dict:
    return {"concertId": CONCERT, "name": "100,000 seats", "options": [{
        "concertOptionId": OPTION, "date": "2027-05-01T19:00:00+09:00", "sections": [
            {"name": chr(65 + s), "price": 2000 - 50 * s,
             "rows": [{"name": str(n), "seats": PER_ROW} for n in range(1, ROWS + 1)]}
            for s in range(SECTIONS)]}]}


def call(port: int, method: str, path: str, body: dict | None = None,
         token: str = "") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                 headers={"X-Queue-Token": token} if token else {})
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def sizes(port: int) -> list[tuple[str, int]]:
    _, issued = call(port, "POST", "/api/token/issue", {"customerId": 1, "concertId": CONCERT})
    token = json.loads(issued)["tokenValue"]
    out = []
    for what, path in [
            ("the seat map's overview", f"/api/{OPTION}/seat-map"),
            ("one section's layout (5,000 seats)", f"/api/{OPTION}/seat-map?section=C"),
            ("the taken seats, whole", f"/api/{OPTION}/taken-seats"),
            ("the taken seats, one section", f"/api/{OPTION}/taken-seats?section=C"),
            ("for comparison: /available-seats, whole", f"/api/{OPTION}/available-seats")]:
        status, body = call(port, "GET", path, token=token)
        assert status == 200, (path, body[:200])
        out.append((what, len(body)))
    return out


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    return driver


def mark_gap(driver: webdriver.Chrome, start: str, end: str, timeout: float = 30) -> float:
    """ms from performance mark ``start`` to ``end`` (waiting for ``end``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gap = driver.execute_script(
            "const [a] = performance.getEntriesByName(arguments[0]).slice(-1);"
            "const [b] = performance.getEntriesByName(arguments[1]).slice(-1);"
            "return a && b && b.startTime > a.startTime ? b.startTime - a.startTime : null;",
            start, end)
        if gap is not None:
            return gap
        time.sleep(0.02)
    raise TimeoutError(f"no {end} mark")


def one_round(driver: webdriver.Chrome, base: str, customer: int, section: str
              ) -> tuple[float, float]:
    driver.get(f"{base}/?concert={CONCERT}")
    driver.find_element(By.ID, "customer-id").send_keys(str(customer))
    driver.find_element(By.ID, "join").click()
    deadline = time.monotonic() + 20
    while not driver.find_elements(By.CSS_SELECTOR, f'button.date[data-option-id="{OPTION}"]'):
        assert time.monotonic() < deadline, "no date shown"
        time.sleep(0.02)
    driver.find_element(By.CSS_SELECTOR, f'button.date[data-option-id="{OPTION}"]').click()
    overview = mark_gap(driver, "seatmap:asked", "seatmap:overview")
    driver.find_element(By.CSS_SELECTOR, f'.section-card[data-section="{section}"]').click()
    drawn = mark_gap(driver, "seatmap:section-asked", "seatmap:section")
    seats = driver.execute_script("return document.querySelectorAll('[data-testid=seat]').length")
    assert seats == ROWS * PER_ROW, seats
    return overview, drawn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-seat-map-") as tmp, \
            RedisServer(Path(tmp)) as rs:
        r = sync_client(rs.url)
        load_sync(r, parse(venue()))
        fund_customers(r, 1, 1000, 100_000)
        with api_server({"REDIS_URL": rs.url, "MAX_TICKETS_PER_CUSTOMER": "0",
                         "ISSUE_RATE_PER_CUSTOMER": "0", "RESERVE_RATE_PER_CUSTOMER": "0"}) as api:
            driver = browser()
            try:
                # Cold: the worker builds the overview and section C's layout for this round.
                cold = one_round(driver, api.base, 100, "C")
                warm = [one_round(driver, api.base, 101 + i, "C") for i in range(args.rounds)]
            finally:
                driver.quit()
            weights = sizes(api.port)
    med = (statistics.median(w[0] for w in warm), statistics.median(w[1] for w in warm))
    worst = (max(w[0] for w in warm), max(w[1] for w in warm))
    lines = [
        "# The seat map's first paint: 100,000 seats (20 sections of 5,000)",
        "",
        f"`python -m loadtests.http_bench.seat_map --rounds {args.rounds}`, "
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, headless Chromium 1280x900, "
        "one API worker (the default server), Redis on 127.0.0.1.",
        "",
        "| from the click to painted | cold (first of the worker) | warm: median | warm: worst |",
        "|---|---|---|---|",
        f"| the date: the section overview | {cold[0]:.0f} ms | {med[0]:.0f} ms | "
        f"{worst[0]:.0f} ms |",
        f"| a section: its 5,000 seats | {cold[1]:.0f} ms | {med[1]:.0f} ms | "
        f"{worst[1]:.0f} ms |",
        "",
        "| answer | bytes |",
        "|---|---|",
        *(f"| {what} | {n:,} |" for what, n in weights),
    ]
    publish("\n".join(lines) + "\n", "seat_map.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
