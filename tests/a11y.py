"""An accessibility check in the real browser: axe-core (tests/vendor/axe.min.js, vendored
from npm for the tests only, never served) injected by Selenium into the page as it stands,
run over the whole document. The tests assert no violation of impact ``serious`` or
``critical``; WCAG 2.2's target size (off in axe by default) is checked too, since the seat
map is a field of small controls."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver

AXE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text()
SERIOUS = {"serious", "critical"}


def violations(driver: WebDriver) -> list[dict]:
    """axe's violations on the page now: [{id, impact, help, nodes: [target, ...]}]."""
    if not driver.execute_script("return typeof window.axe === 'object';"):
        driver.execute_script(AXE)
    result = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {rules: {"target-size": {enabled: true}}, resultTypes: ["violations"]})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))
          .catch(e => done([{id: "axe-error", impact: "critical", help: String(e), nodes: []}]));
    """)
    return list(result)


def assert_accessible(driver: WebDriver, where: str) -> None:
    """No serious or critical violation on the page as it stands (``where`` names the state)."""
    bad = [v for v in violations(driver) if v["impact"] in SERIOUS]
    assert not bad, f"{where}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in bad)
