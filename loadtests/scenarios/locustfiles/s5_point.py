# ruff: noqa: E501, RUF012 -- the report's code as it was (long Korean comments, tasks = [...])
"""§5 point balance (load test), the report's script: GET /api/point for customers 1..10,000
in turn, 1-3 s between requests. Report: 10,000 users, 120 s; 108,126 requests, 0 failures,
p95 3,500 ms. Added: the body check (the asked customer's balance, a number), and
``name="/api/point"`` so that locust keeps one row instead of one per customerId."""

import itertools

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import expect, json_body, spread_start


class PointTasks(TaskSet):
    customer_id_generator = itertools.cycle(range(1, 10001))  # 1부터 10000까지 순차적으로 customerId 생성

    @task
    def get_point(self):
        customer_id = next(self.customer_id_generator)
        with self.client.get(
            "/api/point",
            params={"customerId": customer_id},
            headers={"Content-Type": "application/json"},
            name="/api/point",  # one row, not one per customer (locust names by path + query)
            catch_response=True,
        ) as resp:
            body = json_body(resp, "customerId", "balance")
            if body is not None and expect(resp, body["customerId"] == customer_id,
                                           f"balance of customer {body['customerId']}"):
                expect(resp, isinstance(body["balance"], int | float) and body["balance"] >= 0,
                       f"bad balance {body['balance']!r}")


class PointUser(HttpUser):
    tasks = [PointTasks]
    wait_time = between(1, 3)  # 사용자 요청 간의 대기 시간 (1초에서 3초 사이)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
