# ruff: noqa: RUF012 -- the report's code as it was (tasks = [...])
"""§3 available dates (load test), the report's script: GET /api/2/available-dates, 1-5 s
between requests. Report: 10,000 users, 100/s, 600 s; 108,126 requests, 1 failure, avg
1,647.22 ms, max 62,173 ms. Changed: a fresh ACTIVE token per user instead of the hard-coded
one. Added: the body check (concert 2's four dates, each with its free seats)."""

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import (
    ActiveToken,
    expect,
    next_customer_id,
    spread_start,
)


class AvailableDatesTaskSet(TaskSet):
    @task
    def get_available_dates(self):
        token = self.user.token
        with self.client.get(
            "/api/2/available-dates",
            headers={"Authorization": token.value},
            catch_response=True,
        ) as resp:
            body = token.check(resp, "concertId", "dates")
            if body is not None and expect(resp, body["concertId"] == 2, "another concert"):
                dates = body["dates"]
                expect(resp, isinstance(dates, list) and len(dates) > 0
                       and all({"concertOptionId", "date", "availableSeats"} <= d.keys()
                               for d in dates), f"bad dates: {resp.text[:120]!r}")


class AvailableDatesUser(HttpUser):
    tasks = [AvailableDatesTaskSet]
    wait_time = between(1, 5)  # 사용자 요청 간의 대기 시간 (1초에서 5초 사이)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
        self.token = ActiveToken(self, next_customer_id(self.environment))
