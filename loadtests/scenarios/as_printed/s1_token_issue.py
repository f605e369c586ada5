# ruff: noqa -- §1 of the load-test report, exactly as it prints it
from locust import HttpUser, TaskSet, task, between
import itertools

class TokenTaskSet(TaskSet):
    customer_id_generator = itertools.cycle(range(1, 10001))  # 1부터 10000까지 순차적으로 customerId 생성

    @task
    def issue_token(self):
        customer_id = next(self.customer_id_generator)  # 중복되지 않는 customerId 사용
        self.client.post("/api/token/issue", json={
            "customerId": customer_id,
            "concertId": 2
        })

class TokenUser(HttpUser):
    tasks = [TokenTaskSet]
    wait_time = between(1, 5)  # 사용자 요청 간의 대기 시간 (1초에서 5초 사이)
