# ruff: noqa -- §6 of the load-test report, exactly as it prints it
from locust import HttpUser, TaskSet, task, between
import itertools

class PointChargeTasks(TaskSet):
    customer_id_generator = itertools.cycle(range(1, 10001))  # 1부터 10000까지 순차적으로 customerId 생성

    @task
    def charge_point(self):
        customer_id = next(self.customer_id_generator)
        self.client.patch(
            "/api/point/charge",
            json={
                "customerId": customer_id,
                "amount": 5000.00
            },
            headers={"Content-Type": "application/json"}
        )

class PointChargeUser(HttpUser):
    tasks = [PointChargeTasks]
    wait_time = between(1, 3)  # 사용자 요청 간의 대기 시간 (1초에서 3초 사이)
