# ruff: noqa: RUF012 -- the report's code as it was (tasks = [...])
"""§4 available seats (load test), the report's script: GET /api/41150/available-seats, 1-5 s
between requests. Report: 1,200 users, 360 s; 182,304 requests, 0 failures, p50 3 ms, p99
17 ms, max 68,326 ms. Changed: a fresh ACTIVE token per user instead of the hard-coded one.
Added: the body check (option 41150's free seats, each with id, number and price)."""

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import (
    ActiveToken,
    expect,
    next_customer_id,
    spread_start,
)


class AvailableSeatsTasks(TaskSet):
    @task
    def get_available_seats(self):
        token = self.user.token
        with self.client.get(
            "/api/41150/available-seats",
            headers={"Authorization": token.value},
            catch_response=True,
        ) as resp:
            body = token.check(resp, "concertOptionId", "seats")
            if body is not None and expect(resp, body["concertOptionId"] == 41150,
                                           "another option"):
                seats = body["seats"]
                expect(resp, isinstance(seats, list)
                       and all({"id", "number", "price"} <= s.keys() for s in seats),
                       f"bad seats: {resp.text[:120]!r}")


class AvailableSeatsUser(HttpUser):
    tasks = [AvailableSeatsTasks]
    wait_time = between(1, 5)  # 사용자 요청 간의 대기 시간 (1초에서 5초 사이)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
        self.token = ActiveToken(self, next_customer_id(self.environment))
