"""The OpenAPI document is the API's contract: it validates as OpenAPI 3.1, lists every route
the app serves, and a tool nobody here wrote (schemathesis) finds the live API true to it:
every operation, its examples, the coverage phase's edge cases, generated valid and invalid
requests and stateful chains along the document's links, under all of schemathesis's checks
(server errors, status codes, content types, response headers and bodies, acceptance of
valid and rejection of invalid data, authentication, allowed methods)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from openapi_spec_validator import validate
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api import gates, tickets
from api.app import OPERATIONS, App, openapi
from api.asgi import routes
from api.auth import Auth
from api.contract import ID, Field, Gate, Operation, Reply, Security, obj
from api.problems import ApiError
from devstack import REPO
from devstack.api_server import Uvicorn
from engine.config import Settings
from engine.keys import CustomerKeys
from engine.seed import fund_customers
from tests.conftest import TICKET_KEY
from tests.test_page import browser, page_errors  # noqa: F401 (browser: the fixture)

SECRET = "contract-test-secret-of-32-bytes-or-more"
ADMIN = "contract-test-admin-token"
EXAMPLES = 40  # per operation and phase: ~1,500 requests, ~10 s a mode here
ADMIN_EXAMPLES = 20  # the operators' routes: ~1,000 requests, ~25 s (42 s at 40)
# Served but not API operations: the booking page and this reference.
NOT_OPERATIONS = {"/", "/static", "/console", "/openapi.json", "/docs", "/docs/init.js",
                  "/docs/assets/{name}"}


def doc(**settings: object) -> dict:
    return openapi(OPERATIONS, Auth(Settings(**settings)))  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [{}, {"auth_mode": "jwt", "auth_jwt_secret": SECRET}],
                         ids=["open", "jwt"])
def test_the_document_is_valid_openapi_3_1(settings: dict) -> None:
    d = doc(**settings)
    validate(d)
    assert d["openapi"].startswith("3.1")
    # With a ticket key and ADMIN_TOKEN: the tickets, the door's check-in, the proof of
    # work's challenge and the presale codes too.
    full = openapi([*OPERATIONS, *tickets.OPERATIONS, *tickets.ADMIN_OPERATIONS,
                    *gates.OPERATIONS, *gates.ADMIN_OPERATIONS],
                   Auth(Settings(**settings)))  # type: ignore[arg-type]
    validate(full)
    assert {"ticketPublicKey", "getTicket", "checkIn", "tokenChallenge", "makeAccessCodes",
            "exportAccessCodes"} <= {
        op["operationId"] for ops in full["paths"].values() for op in ops.values()}


def test_every_route_is_an_operation_of_the_document(client: TestClient) -> None:
    served = {(r.path, m) for r in client.app.routes if isinstance(r, Route)
              for m in r.methods or () if m != "HEAD"}
    served |= {(r.path, "GET") for r in client.app.routes if isinstance(r, Mount)}
    documented = {(path, m.upper()) for path, ops in doc()["paths"].items() for m in ops}
    assert {s for s in served if s[0] not in NOT_OPERATIONS} == documented


class AdminToken(Security):
    """What an admin module would declare: its own bearer scheme."""

    class _Gate:
        passes, authorize = False, None

        @staticmethod
        def authenticate(scope: dict) -> None:
            if (b"authorization", b"Bearer s3cret") not in scope["headers"]:
                raise ApiError(401, "AUTH_REQUIRED", "An admin token is required.", "Unauthorized")

    def schemes(self, auth: Auth) -> dict[str, dict]:
        return {"adminToken": {"type": "http", "scheme": "bearer"}}

    def requirement(self, auth: Auth) -> list[dict[str, list[str]]]:
        return [{"adminToken": []}]

    def codes(self, auth: Auth) -> tuple[str, ...]:
        return ("AUTH_REQUIRED",)

    def gate(self, auth: Auth, inputs: tuple[Field, ...]) -> Gate:
        return self._Gate()  # type: ignore[return-value]


def test_an_operation_declared_elsewhere_is_served_and_documented() -> None:
    async def stats(_: dict, concert_id: int) -> dict:
        return {"concertId": concert_id, "waiting": 0}

    concert = Field("concertId", ID, "The concert.", example=2).at("path")
    common = {"tag": "admin", "inputs": (concert,), "security": AdminToken(), "store": False,
              "ok": Reply(obj({"concertId": ID.schema()}))}
    extra = [Operation("GET", "/admin/concerts/{concertId}", stats, "adminStats",
                       summary="A concert's numbers", **common),  # type: ignore[arg-type]
             Operation("DELETE", "/admin/concerts/{concertId}", stats, "adminForget",
                       summary="Forget a concert", **common)]  # type: ignore[arg-type]
    auth = Auth(Settings())
    d = openapi([*OPERATIONS, *extra], auth)
    validate(d)
    assert d["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    assert set(d["paths"]["/admin/concerts/{concertId}"]) == {"get", "delete"}
    assert d["tags"][-1]["name"] == "admin"
    client = TestClient(App(routes=routes([*OPERATIONS, *extra], auth)))
    admin = {"Authorization": "Bearer s3cret"}
    assert client.get("/admin/concerts/2", headers=admin).json() == {"concertId": 2, "waiting": 0}
    assert client.delete("/admin/concerts/3", headers=admin).status_code == 200
    assert client.get("/admin/concerts/2").json()["code"] == "AUTH_REQUIRED"
    assert client.get("/admin/concerts/x", headers=admin).json()["code"] == "INVALID_ID"
    assert client.put("/admin/concerts/2", headers=admin).status_code == 405


def test_jwt_mode_documents_its_schemes_and_codes() -> None:
    d = doc(auth_mode="jwt", auth_jwt_secret=SECRET)
    schemes = d["components"]["securitySchemes"]
    assert schemes["queueToken"] == {**schemes["queueToken"], "type": "apiKey",
                                     "in": "header", "name": "X-Queue-Token"}
    assert schemes["bearerJwt"]["scheme"] == "bearer" and "queueTokenBearer" not in schemes
    charge = d["paths"]["/api/point/charge"]["patch"]
    assert charge["security"] == [{"bearerJwt": ["points:charge"]}]
    codes = charge["responses"]["403"]["content"]["application/problem+json"]["schema"]
    assert codes["properties"]["code"]["enum"] == ["FORBIDDEN_SCOPE"]
    issue = d["paths"]["/api/token/issue"]["post"]["responses"]
    assert "FORBIDDEN_CUSTOMER" in json.dumps(issue["403"])
    assert {"AUTH_REQUIRED", "AUTH_INVALID"} <= set(
        issue["401"]["content"]["application/problem+json"]["schema"]["properties"]["code"][
            "enum"])
    # open mode: no JWT, and the report's Authorization header as a second way for the token
    o = doc()
    assert "bearerJwt" not in o["components"]["securitySchemes"]
    assert "security" not in o["paths"]["/api/point"]["get"]
    assert o["paths"]["/api/token/status"]["get"]["security"] == [
        {"queueToken": []}, {"queueTokenBearer": []}]


def test_openapi_json_and_docs_are_served(client: TestClient) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == doc()
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text):
        asset = client.get(src)
        assert asset.status_code == 200 and len(asset.content) > 100, src
    assert "SwaggerUIBundle" in client.get("/docs/init.js").text
    assert client.get("/docs/assets/swagger-editor-bundle.js").status_code == 404


def test_docs_render_in_chromium_from_our_own_assets(
    browser: object, live_server: Callable[..., Uvicorn]  # noqa: F811
) -> None:
    """Swagger UI draws every operation under the page's CSP, with nothing from elsewhere."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server()
    browser.get(f"{server.base}/docs")  # type: ignore[attr-defined]
    WebDriverWait(browser, 15).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(OPERATIONS))
    assert "Auth mode: open" in browser.page_source  # type: ignore[attr-defined]
    assert not page_errors(browser)  # type: ignore[arg-type]


# --- schemathesis against a real uvicorn ----------------------------------------------------
def _operation_of(d: dict) -> Callable[[str, str], str]:
    table = [(m.upper(), re.compile("^" + re.sub(r"{\w+}", "[^/]+", path) + "$"),
              op["operationId"]) for path, ops in d["paths"].items() for m, op in ops.items()]
    # Exact paths before templated ones (/api/point/history is not /api/{id}/...).
    table.sort(key=lambda t: "[^/]+" in t[1].pattern)

    def find(method: str, path: str) -> str:
        return next((op for m, rx, op in table if m == method and rx.match(path)), "?")

    return find


def schemathesis(server: Uvicorn, tmp: Path, env: dict[str, str], seed: int,
                 only: tuple[str, ...] = (), examples: int = EXAMPLES) -> Counter:
    """Run schemathesis on the live API (``only``: more filters, e.g. a tag); fail with its
    report on any finding. Returns the answers it got, as (operationId, status) counts."""
    har = tmp / "run.har"
    cmd = [sys.executable, "-m", "schemathesis.cli", "--no-color",
           "--config-file", str(REPO / "tests" / "schemathesis.toml"), "run",
           f"{server.base}/openapi.json", "--checks", "all", "--max-examples", str(examples),
           "--seed", str(seed), "--workers", "1", "--request-timeout", "5",
           "--report", "har", "--report-har-path", str(har), *only]
    # Run from tmp: schemathesis keeps a cache in its working directory.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
                              "PYTHONPATH": path, "CONTRACT_API": server.base, **env})
    (tmp / "schemathesis.txt").write_text(out.stdout + out.stderr)
    findings = out.stdout[out.stdout.find("=== FAILURES"):] if "=== FAILURES" in out.stdout \
        else out.stdout[-5000:] + out.stderr[-5000:]
    assert out.returncode == 0, findings  # warnings (e.g. "missing test data") do not fail
    find = _operation_of(json.loads((tmp / "doc.json").read_text()))
    seen: Counter = Counter()
    for e in json.loads(har.read_text())["log"]["entries"]:
        path = "/" + e["request"]["url"].split("/", 3)[3].split("?")[0]
        seen[(find(e["request"]["method"], path), e["response"]["status"])] += 1
    print(out.stdout[-3000:])
    print(sorted(seen.items()))
    return seen


@pytest.fixture
def contract_data(catalog: redis.Redis) -> redis.Redis:
    # The queue-token operations run as customer 1: enough points to pay every seat many times.
    catalog.delete(CustomerKeys(1).balance)
    fund_customers(catalog, 1, 1, 10**9 * 100)
    return catalog


def _reached(seen: Counter) -> set[str]:
    return {op for (op, status), _ in seen.items() if 200 <= status < 300}


@pytest.mark.parametrize("auth_mode", ["open", "jwt"])
def test_schemathesis_finds_the_live_api_true_to_its_document(
    auth_mode: str, contract_data: redis.Redis, live_server: Callable[..., Uvicorn],
    tmp_path: Path
) -> None:
    env = {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": SECRET} if auth_mode == "jwt" else {}
    # Holds expire within the run, so seats come free again for later reserves.
    server = live_server(HOLD_TTL_SECONDS="2", TICKET_SIGNING_KEY=TICKET_KEY, **env)
    with urllib.request.urlopen(f"{server.base}/openapi.json", timeout=5) as resp:
        (tmp_path / "doc.json").write_bytes(resp.read())
    seen = schemathesis(server, tmp_path, {"CONTRACT_JWT_SECRET": SECRET} if env else {},
                        seed=12)
    # Past validation and authentication: every operation answered 2xx at least once, but
    # cancel and pay, which only a chain along the links reaches (a fresh hold first), and a
    # ticket, which needs a paid reservation of the customer named; the flow tests and
    # tests/test_tickets.py reach them for certain.
    ops = {op["operationId"] for ops in json.loads((tmp_path / "doc.json").read_text())[
        "paths"].values() for op in ops.values()}
    assert {"ticketPublicKey", "getTicket", "tokenChallenge"} <= ops  # served with the key
    assert _reached(seen) >= ops - {"cancelReservation", "pay", "getTicket"}, sorted(seen)


def test_schemathesis_finds_the_admin_api_true_to_its_document(
    contract_data: redis.Redis, live_server: Callable[..., Uvicorn], tmp_path: Path
) -> None:
    """The operators' routes under the same checks, apart from the public run (they change
    the concerts that run uses): loads, settings, revokes, refunds, exports, stats, the
    door's check-in and presale codes."""
    # Presale codes: a bound that keeps generated calls (up to 100,000 codes each) quick.
    server = live_server(ADMIN_TOKEN=ADMIN, TICKET_SIGNING_KEY=TICKET_KEY,
                         ACCESS_CODES_PER_CONCERT="20000")
    with urllib.request.urlopen(f"{server.base}/openapi.json", timeout=5) as resp:
        (tmp_path / "doc.json").write_bytes(resp.read())
    admin = {op["operationId"] for ops in json.loads((tmp_path / "doc.json").read_text())[
        "paths"].values() for op in ops.values() if op.get("tags") == ["admin"]}
    assert len(admin) == 10
    seen = schemathesis(server, tmp_path, {"CONTRACT_ADMIN_TOKEN": ADMIN}, seed=12,
                        only=("--include-tag", "admin"), examples=ADMIN_EXAMPLES)
    assert {op for op, _ in seen} - {"?"} == admin  # "?": methods no operation takes (405)
    assert {op for op, status in seen if status == 401} == admin  # the wrong tokens
    # Past validation: every read and the revoke answered 2xx (a made-up document,
    # reservation id or ticket is rightly refused; tests/test_admin.py loads and refunds for
    # certain, tests/test_tickets.py checks in).
    assert _reached(seen) >= admin - {"loadCatalog", "refundSale", "checkIn"}, sorted(seen)
