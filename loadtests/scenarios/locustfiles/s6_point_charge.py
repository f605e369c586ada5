# ruff: noqa: E501, RUF012 -- the report's code as it was (long Korean comments, tasks = [...])
"""§6 point charge (load test), the report's script: PATCH /api/point/charge of 5,000.00 for
customers 1..10,000 in turn, 1-3 s between requests. Report: 10,000 users, 180 s; 149,787
requests, 12 failures, avg 4.7 s, p99 75 s. Added: the body check (the new balance of the
asked customer, at least the amount charged)."""

import itertools

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import expect, json_body, spread_start


class PointChargeTasks(TaskSet):
    customer_id_generator = itertools.cycle(range(1, 10001))  # 1부터 10000까지 순차적으로 customerId 생성

    @task
    def charge_point(self):
        customer_id = next(self.customer_id_generator)
        with self.client.patch(
            "/api/point/charge",
            json={
                "customerId": customer_id,
                "amount": 5000.00
            },
            headers={"Content-Type": "application/json"},
            catch_response=True,
        ) as resp:
            body = json_body(resp, "customerId", "balance")
            if body is not None and expect(resp, body["customerId"] == customer_id,
                                           f"balance of customer {body['customerId']}"):
                expect(resp, isinstance(body["balance"], int | float)
                       and body["balance"] >= 5000, f"bad balance {body['balance']!r}")


class PointChargeUser(HttpUser):
    tasks = [PointChargeTasks]
    wait_time = between(1, 3)  # 사용자 요청 간의 대기 시간 (1초에서 3초 사이)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
