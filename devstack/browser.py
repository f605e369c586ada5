"""Headless Chromium under Selenium, for what runs the page's scripts outside the tests (the
proof-of-work bench, loadtests/pow_bench/): Debian's ``chromium`` and ``chromedriver`` by path
(``$CHROMIUM`` and ``$CHROMEDRIVER`` when set), as tests/test_page.py starts them, since
Selenium's own driver manager would try to download a browser and there may be no network;
nothing in it reaches out (no updates, sync or first run)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
except ImportError:  # a dev dependency: available() says so
    webdriver = None

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-extensions", "--mute-audio", "--lang=en-US"]


def executable(env: str, *names: str) -> str | None:
    """``$env`` if set (and there), else the first of ``names`` on PATH."""
    if os.environ.get(env):
        return shutil.which(os.environ[env])
    return next((p for p in map(shutil.which, names) if p), None)


def available() -> str | None:
    """None when a browser can start here, else why not."""
    if webdriver is None:
        return "selenium is not installed (make install installs the dev dependencies)"
    if executable("CHROMIUM", "chromium", "chromium-browser", "google-chrome") is None or \
            executable("CHROMEDRIVER", "chromedriver") is None:
        return "no chromium and chromedriver (apt-get install chromium chromium-driver)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a ``selenium.webdriver.Chrome``) with a profile of its own, and
    its console kept (``driver.get_log("browser")``); quit at the end."""
    why = available()
    if why:
        raise RuntimeError(why)
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    options = Options()
    options.binary_location = executable("CHROMIUM", "chromium", "chromium-browser",
                                         "google-chrome")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable("CHROMEDRIVER", "chromedriver")),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# The ALTCHA widget (api/static/altcha/) in a page of the API, as the booking page would use
# it: its script and style sheet from /static/altcha/, an <altcha-widget> whose challengeurl is
# the concert's challenge; verify() once it has loaded, then its payload. Under the page's CSP.
_WIDGET_SOLVE = """
const [concert, done] = arguments;
const loaded = customElements.get("altcha-widget") ? Promise.resolve() : new Promise((ok, no) => {
  const css = document.createElement("link");
  css.rel = "stylesheet"; css.href = "/static/altcha/altcha.css";
  document.head.append(css);
  const js = document.createElement("script");
  js.type = "module"; js.src = "/static/altcha/altcha.js";
  js.onload = () => customElements.whenDefined("altcha-widget").then(ok);
  js.onerror = () => no(new Error("the widget's script did not load"));
  document.head.append(js);
});
loaded.then(() => {
  const w = document.createElement("altcha-widget");
  w.setAttribute("challengeurl", `/api/token/challenge?concertId=${concert}`);
  let t0 = 0;
  w.addEventListener("statechange", (ev) => {
    const s = ev.detail.state;
    if (s === "verified" || s === "error") {
      const ms = performance.now() - t0;
      w.remove();
      done(s === "verified" ? {payload: ev.detail.payload, ms} : {error: "widget error"});
    }
  });
  w.addEventListener("load", () => { t0 = performance.now(); w.verify(); });
  document.body.append(w);
}).catch((e) => done({error: String(e)}));
"""


def widget_solve(driver: Any, concert_id: int) -> tuple[str, float]:
    """The widget's payload for a challenge of the concert, on the page the driver has open
    (one of the API's), and the ms from verify() to it (the challenge's fetch included)."""
    driver.set_script_timeout(30)
    out = driver.execute_async_script(_WIDGET_SOLVE, concert_id)
    if "error" in out:
        raise RuntimeError(f"the widget failed: {out['error']}")
    return out["payload"], float(out["ms"])
