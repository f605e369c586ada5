# ruff: noqa: E501, RUF012 -- the report's code as it was (long Korean comments, tasks = [...])
"""§7 the booking flow (composite load test), the report's script: each iteration issues a
token for the user's customer (randint(1, 500), so several users may share a customer and its
token), reads option 41150's free seats, reserves the first and pays for it; 1-5 s between
iterations. Report: 500 users, 10/s, 120 s; 4,224 requests, 3,887 failures (3,860 of them
token issue), avg 250.76 ms, max 36,111 ms.

Kept: the classes, the flow, the paths and bodies. Added: the body checks, and three expected
outcomes counted apart instead of as failures:

- ``POST /api/reserve [409 seat taken]``: users race for the first free seat; exactly one wins
  each seat, the others get 409 SEAT_TAKEN.
- ``POST /api/reserve [409 ticket limit]``: the users that share a customer have together reached
  the concert's maxTicketsPerCustomer (4 by default), which the report's service did not have.
- ``<request> [401 token finished]``: a pay finishes the customer's token, so a user sharing
  that customer can find the token gone (401 TOKEN_UNKNOWN) mid-flow. It drops the token and
  re-issues on its next iteration; if that issue hands back the very token that got the 401,
  the 401 was wrong and the issue is marked failed.
"""

from random import randint

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import (
    check_token_body,
    expect,
    expected_reserve_refusal,
    json_body,
    problem_code,
    rename,
    spread_start,
)


class ConcertTasks(TaskSet):

    def on_start(self):
        self.customer_id = randint(1, 500)
        self.token_value = None
        self.token_gone = None  # the token that last answered 401, to check the next issue

    def _token_finished(self, response):
        """A 401 TOKEN_UNKNOWN: the token was finished by a pay (ours or a sibling user's)."""
        if response.status_code == 401 and problem_code(response) == "TOKEN_UNKNOWN":
            rename(response, f"{response.request_meta['name']} [401 token finished]")
            self.token_gone, self.token_value = self.token_value, None
            return True
        return False

    @task
    def issue_token(self):
        with self.client.post(
            "/api/token/issue",
            json={"customerId": self.customer_id, "concertId": 2},
            headers={"Content-Type": "application/json"},
            catch_response=True,
        ) as response:
            response_data = json_body(response, "tokenValue", "status")
            self.token_value = None
            if check_token_body(response, response_data, self.customer_id) and expect(
                response, response_data["tokenValue"] != self.token_gone,
                "issue returned the token that had just answered 401",
            ):
                self.token_value = response_data.get('tokenValue') if response_data.get('status') == 'ACTIVE' else None
        if self.token_value:
            self.get_available_seats()

    def get_available_seats(self):
        if not self.token_value:
            return

        seats = []
        with self.client.get(
            "/api/41150/available-seats",
            headers={
                "Content-Type": "application/json",
                "Authorization": self.token_value
            },
            catch_response=True,
        ) as response:
            if not self._token_finished(response):
                body = json_body(response, "concertOptionId", "seats")
                if body is not None and expect(response, isinstance(body["seats"], list)
                                               and all("id" in s for s in body["seats"]),
                                               f"bad seats: {response.text[:120]!r}"):
                    seats = body["seats"]
        if seats:
            seat_id = seats[0]['id']
            self.reserve_seat(seat_id)

    def reserve_seat(self, seat_id):
        if not self.token_value:
            return

        reservation_id = None
        with self.client.post(
            "/api/reserve",
            json={
                "concertOptionId": 41150,
                "seatId": seat_id
            },
            headers={
                "Content-Type": "application/json",
                "Authorization": self.token_value
            },
            catch_response=True,
        ) as response:
            if not expected_reserve_refusal(response) and not self._token_finished(response):
                body = json_body(response, "reservationId", "status", "seatId")
                if body is not None and expect(response, body["status"] == "HELD"
                                               and body["seatId"] == seat_id,
                                               f"bad hold: {response.text[:120]!r}"):
                    reservation_id = body.get('reservationId')
        if reservation_id:
            self.pay_for_reservation(reservation_id)

    def pay_for_reservation(self, reservation_id):
        if not self.token_value:
            return

        with self.client.post(
            "/api/pay",
            json={"reservationId": reservation_id},
            headers={
                "Content-Type": "application/json",
                "Authorization": self.token_value
            },
            catch_response=True,
        ) as response:
            if not self._token_finished(response):
                body = json_body(response, "reservationId", "status", "balance")
                expect(response, body is None or (body["status"] == "PAID"
                                                  and body["reservationId"] == reservation_id),
                       f"bad payment: {response.text[:120]!r}")


class ConcertUser(HttpUser):
    tasks = [ConcertTasks]
    wait_time = between(1, 5)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
