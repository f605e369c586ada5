# ruff: noqa: E501, RUF012 -- the report's code as it was (long Korean comments, tasks = [...])
"""§1 token issue (stress test), the report's script: sequential customer ids 1..10,000,
concert 2, 1-5 s between requests. Report: 10,000 users, 10/s, 600 s; HTTP 500s past ~500
tokens. Added: the body check (a token of the asked customer, ACTIVE or WAITING)."""

import itertools

from locust import HttpUser, TaskSet, between, task

from loadtests.scenarios.locustfiles.common import check_token_body, json_body, spread_start


class TokenTaskSet(TaskSet):
    customer_id_generator = itertools.cycle(range(1, 10001))  # 1부터 10000까지 순차적으로 customerId 생성

    @task
    def issue_token(self):
        customer_id = next(self.customer_id_generator)  # 중복되지 않는 customerId 사용
        with self.client.post("/api/token/issue", json={
            "customerId": customer_id,
            "concertId": 2
        }, catch_response=True) as resp:
            check_token_body(resp, json_body(resp, "tokenValue", "status"), customer_id)


class TokenUser(HttpUser):
    tasks = [TokenTaskSet]
    wait_time = between(1, 5)  # 사용자 요청 간의 대기 시간 (1초에서 5초 사이)

    def on_start(self):
        spread_start()  # see common.py: locust starts each second's users at once
