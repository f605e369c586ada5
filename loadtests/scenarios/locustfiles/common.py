"""What the report's scripts share once their hard-coded tokens are gone: a fresh ACTIVE token
per user, obtained the way a client gets one (issue, then poll the status until ACTIVE), and
the body checks that turn a wrong 200 into a locust failure.

Knobs (environment variables, set by ``python -m loadtests run``):

- ``LOADTEST_ID_STRIDE``: how many locust worker processes share the run (default 1). User
  ``n`` of worker ``i`` takes customer id ``1 + i + n * stride``, so ids are distinct across
  processes (and machines, when the stride is the total worker count).
- ``LOADTEST_TOKEN_WAIT``: seconds a user polls a WAITING token before it gives up (120).
- ``LOADTEST_SPAWN_JITTER``: seconds over which a new user spreads its first request (1; 0
  turns it off). Locust starts ``floor(spawn rate)`` users at the same instant once a second,
  and each runs its first task at once: at 100/s that is a burst of 100 requests on 100 new
  connections every second, whose queueing (~50 ms at p95 here) is the generator's lockstep,
  not the service. A random pause in ``[0, jitter)`` makes them arrive over the second, as
  "100 users a second" means.
- ``LOADTEST_FINAL_CSV``: a path prefix; at exit the master (or the only process) writes
  ``<prefix>_final_stats.csv`` and ``<prefix>_final_failures.csv``, locust's own CSV format
  with the final figures (its ``--csv`` files are refreshed once a second, so they can miss
  the last second of a run).
"""

from __future__ import annotations

import csv
import itertools
import os
import random
import time
from datetime import datetime
from typing import Any

import gevent
from locust import events
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

CONCERT_ID = 2
TOKEN_WAIT_SECONDS = float(os.environ.get("LOADTEST_TOKEN_WAIT", "120"))
SPAWN_JITTER = float(os.environ.get("LOADTEST_SPAWN_JITTER", "1"))
SETUP = " [setup]"  # the requests a user makes to get its token, apart from the scenario's own
SEAT_TAKEN_NAME = "/api/reserve [409 seat taken]"
TICKET_LIMIT_NAME = "/api/reserve [409 ticket limit]"

_user_numbers = itertools.count()


@events.init.add_listener
def _write_final_stats_at_exit(environment: Any, **_: Any) -> None:
    prefix = os.environ.get("LOADTEST_FINAL_CSV")
    if not prefix or isinstance(environment.runner, WorkerRunner):
        return

    @environment.events.quit.add_listener
    def _write(**_: Any) -> None:
        stats = StatsCSV(environment, PERCENTILES_TO_REPORT)
        with open(f"{prefix}_final_stats.csv", "w", newline="") as f:
            stats.requests_csv(csv.writer(f))
        with open(f"{prefix}_final_failures.csv", "w", newline="") as f:
            stats.failures_csv(csv.writer(f))


def spread_start() -> None:
    """Call first in a user's on_start: see LOADTEST_SPAWN_JITTER."""
    if SPAWN_JITTER > 0:
        gevent.sleep(random.random() * SPAWN_JITTER)


def next_customer_id(environment: Any) -> int:
    """A customer id no other user of this run has (see LOADTEST_ID_STRIDE)."""
    stride = max(1, int(os.environ.get("LOADTEST_ID_STRIDE", "1")))
    index = getattr(environment.runner, "worker_index", 0) or 0
    return 1 + index % stride + stride * next(_user_numbers)


def problem_code(resp: Any) -> str:
    """The problem+json ``code`` of an error answer, or ''."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def json_body(resp: Any, *fields: str) -> dict | None:
    """The JSON object of a 200 answer holding every one of ``fields``. Anything else (another
    status, a body that is not a JSON object, a missing field) marks ``resp`` failed and gives
    None. ``resp`` comes from a request made with ``catch_response=True``."""
    if resp.status_code != 200:
        code = problem_code(resp)
        resp.failure(f"HTTP {resp.status_code}{' ' + code if code else ''}")
        return None
    try:
        body = resp.json()
    except ValueError:
        resp.failure(f"body is not JSON: {resp.text[:120]!r}")
        return None
    if not isinstance(body, dict):
        resp.failure(f"body is not a JSON object: {resp.text[:120]!r}")
        return None
    missing = [f for f in fields if f not in body]
    if missing:
        resp.failure(f"body lacks {', '.join(missing)}: {resp.text[:120]!r}")
        return None
    return body


def expect(resp: Any, ok: bool, message: str) -> bool:
    """Mark ``resp`` failed with ``message`` unless ``ok``."""
    if not ok:
        resp.failure(message)
    return ok


def rename(resp: Any, name: str) -> None:
    """Count ``resp`` as a success under its own name (an expected outcome, kept apart)."""
    resp.request_meta["name"] = name
    resp.success()


def expected_reserve_refusal(resp: Any) -> bool:
    """Count a reserve's expected 409 apart: the seat went to a racing user (SEAT_TAKEN), or
    the customer already has the concert's maxTicketsPerCustomer (TICKET_LIMIT: users that
    share a customer, as §7's ``randint(1, 500)`` makes them, can together reach it)."""
    if resp.status_code != 409:
        return False
    name = {"SEAT_TAKEN": SEAT_TAKEN_NAME, "TICKET_LIMIT": TICKET_LIMIT_NAME}.get(
        problem_code(resp))
    if name is not None:
        rename(resp, name)
    return name is not None


def check_token_body(resp: Any, body: dict | None, customer_id: int | None = None) -> bool:
    """A token answer (issue or status): a tokenValue, a known status, our customer."""
    if body is None:
        return False
    if not expect(resp, body.get("status") in ("ACTIVE", "WAITING"),
                  f"unknown token status {body.get('status')!r}"):
        return False
    if not expect(resp, isinstance(body.get("tokenValue"), str) and body["tokenValue"] != "",
                  "empty tokenValue"):
        return False
    if customer_id is not None:
        return expect(resp, body.get("customerId") == customer_id,
                      f"token of customer {body.get('customerId')}, asked for {customer_id}")
    return True


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class ActiveToken:
    """An ACTIVE queue token of one customer, got over HTTP like a client gets one.

    ``value`` is what goes in ``Authorization``. ``check(resp, fields)`` is the body check of a
    request made with it: a 401 after the token's ``expiresAt`` is the token ending as designed
    (counted apart under ``<name> [401 token expired]``, and the next ``value`` re-issues); a
    401 before it is a failure."""

    def __init__(self, user: Any, customer_id: int, concert_id: int = CONCERT_ID) -> None:
        self.user, self.customer_id, self.concert_id = user, customer_id, concert_id
        self._value: str | None = None
        self.expires_at = 0.0
        self.refresh()

    @property
    def value(self) -> str:
        if self._value is None:
            self.refresh()
        assert self._value is not None
        return self._value

    def refresh(self) -> None:
        """Issue a token and poll its status until it is ACTIVE (bounded by
        LOADTEST_TOKEN_WAIT); stops the user when it never gets there."""
        deadline = time.monotonic() + TOKEN_WAIT_SECONDS
        body = None
        while body is None:
            with self.user.client.post(
                "/api/token/issue", json={"customerId": self.customer_id,
                                          "concertId": self.concert_id},
                name="/api/token/issue" + SETUP, catch_response=True,
            ) as resp:
                body = json_body(resp, "tokenValue", "status", "expiresAt")
                if not check_token_body(resp, body, self.customer_id):
                    body = None
            if body is None:
                if time.monotonic() > deadline:
                    raise StopUser()
                gevent.sleep(1)
        while body["status"] != "ACTIVE":
            if time.monotonic() > deadline:
                self.user.environment.events.request.fire(
                    request_type="GET", name="/api/token/status" + SETUP, response_time=0,
                    response_length=0, response=None, context={},
                    exception=RuntimeError(f"token still WAITING after {TOKEN_WAIT_SECONDS} s"))
                raise StopUser()
            gevent.sleep(min(max(float(body.get("estimatedWaitSeconds") or 1), 0.5), 5))
            with self.user.client.get(
                "/api/token/status", headers={"Authorization": body["tokenValue"]},
                name="/api/token/status" + SETUP, catch_response=True,
            ) as resp:
                polled = json_body(resp, "tokenValue", "status", "expiresAt")
                if check_token_body(resp, polled, self.customer_id):
                    body = polled
                # else: a failed poll is a failure already; poll again until the deadline
        self._value = body["tokenValue"]
        self.expires_at = epoch(body["expiresAt"])

    def check(self, resp: Any, *fields: str) -> dict | None:
        """``json_body`` for a request made with this token, with the 401 rule above."""
        if resp.status_code == 401 and problem_code(resp) == "TOKEN_UNKNOWN":
            if time.time() >= self.expires_at - 1:  # a second of clock skew
                rename(resp, f"{resp.request_meta['name']} [401 token expired]")
                self._value = None
            else:
                resp.failure("401 TOKEN_UNKNOWN before the token's expiresAt")
            return None
        return json_body(resp, *fields)
