# ruff: noqa: RUF012 -- locust's idiom: tasks = [...]
"""Soak (endurance), the report's §2.4 request: a long mixed run over every endpoint that
creates state, so that whatever should expire (ACTIVE tokens, holds, closed reservations,
Idempotency-Keys) has to, again and again. Run it with ``python -m loadtests run soak --time
30m``: the runner samples Redis ``used_memory``, key counts and the API's RSS and fails the run
if they keep growing after warm-up (see ../README.md for the rule). Its own stack shortens the
TTLs (tokens 30 s, holds 10 s, Idempotency-Keys and closed reservations 60 s) so a run of
minutes goes through many lifetimes.

Each user plays a customer from 1..LOADTEST_SOAK_CUSTOMERS (default 200: all are touched
early and their histories, 10 entries in the soak stack, fill up during the warm-up, so they
are not growth) and now and then moves to another one. It never pays: pay sells seats for
good, and the demo concert has 200. Holds are either cancelled or left to expire. 409
SEAT_TAKEN, 409 TICKET_LIMIT (a customer's holds left to expire count until they do) and a 401
after the token's expiresAt are expected and counted apart; anything else that is not a good
200 is a failure."""

import os
import uuid
from random import choice, randint, random

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import (
    ActiveToken,
    check_token_body,
    expect,
    expected_reserve_refusal,
    json_body,
    spread_start,
)

CUSTOMERS = int(os.environ.get("LOADTEST_SOAK_CUSTOMERS", "200"))
OPTIONS = (41150, 41151, 41152, 41153)


class SoakTasks(TaskSet):
    def on_start(self):
        self.switch_customer()

    @task(1)
    def switch_customer(self):
        """Another customer, another token; the old one is left to expire."""
        self.customer_id = randint(1, CUSTOMERS)
        self.token = ActiveToken(self.user, self.customer_id)

    @task(4)
    def token_status(self):
        with self.client.get("/api/token/status", headers={"Authorization": self.token.value},
                             catch_response=True) as resp:
            check_token_body(resp, self.token.check(resp, "tokenValue", "status"),
                             self.customer_id)

    @task(2)
    def dates(self):
        with self.client.get("/api/2/available-dates", headers={"Authorization": self.token.value},
                             catch_response=True) as resp:
            body = self.token.check(resp, "dates")
            if body is not None:
                expect(resp, len(body["dates"]) == len(OPTIONS), f"dates: {resp.text[:120]!r}")

    @task(4)
    def seats(self):
        self.free_seats(choice(OPTIONS))

    def free_seats(self, option):
        with self.client.get(f"/api/{option}/available-seats", name="/api/[option]/available-seats",
                             headers={"Authorization": self.token.value},
                             catch_response=True) as resp:
            body = self.token.check(resp, "seats")
            return body["seats"] if body is not None else []

    @task(2)
    def point(self):
        with self.client.get("/api/point", params={"customerId": self.customer_id},
                             name="/api/point", catch_response=True) as resp:
            body = json_body(resp, "customerId", "balance")
            if body is not None:
                expect(resp, body["customerId"] == self.customer_id, "another customer")

    @task(1)
    def charge(self):
        with self.client.patch("/api/point/charge",
                               json={"customerId": self.customer_id, "amount": 10.50},
                               headers={"Idempotency-Key": uuid.uuid4().hex},
                               catch_response=True) as resp:
            body = json_body(resp, "customerId", "balance")
            if body is not None:
                expect(resp, body["balance"] >= 10.5, f"balance {body['balance']}")

    @task(1)
    def history(self):
        with self.client.get("/api/point/history", params={"customerId": self.customer_id},
                             name="/api/point/history", catch_response=True) as resp:
            body = json_body(resp, "customerId", "entries")
            if body is not None:
                expect(resp, isinstance(body["entries"], list), "entries is not a list")

    @task(2)
    def hold(self):
        """Hold a free seat, then cancel it or leave it to expire."""
        option = choice(OPTIONS)
        seats = self.free_seats(option)
        if not seats:
            return
        seat_id = choice(seats)["id"]
        reservation_id = None
        with self.client.post("/api/reserve", json={"concertOptionId": option, "seatId": seat_id},
                              headers={"Authorization": self.token.value},
                              catch_response=True) as resp:
            if not expected_reserve_refusal(resp):
                body = self.token.check(resp, "reservationId", "status")
                if body is not None and expect(resp, body["status"] == "HELD", "not HELD"):
                    reservation_id = body["reservationId"]
        if reservation_id is None or random() < 0.5:
            return
        with self.client.delete(f"/api/reserve/{reservation_id}", name="/api/reserve/[id]",
                                headers={"Authorization": self.token.value},
                                catch_response=True) as resp:
            body = self.token.check(resp, "reservationId", "status")
            if body is not None:
                expect(resp, body["status"] == "CANCELLED", f"cancel: {resp.text[:120]!r}")


class SoakUser(HttpUser):
    tasks = [SoakTasks]
    wait_time = between(0.5, 2)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
