# ruff: noqa -- §4 of the load-test report, exactly as it prints it (its hard-coded token
# "5204b7c6-1282-4ce3-a774-2fb318c2d37a" read from REPORT_TOKEN: see __init__.py)
import os
from locust import HttpUser, TaskSet, task, between

class AvailableSeatsTasks(TaskSet):
    @task
    def get_available_seats(self):
        self.client.get(
            "/api/41150/available-seats",
            headers={"Authorization": os.environ["REPORT_TOKEN"]}
        )

class AvailableSeatsUser(HttpUser):
    tasks = [AvailableSeatsTasks]
    wait_time = between(1, 5)  # 사용자 요청 간의 대기 시간 (1초에서 5초 사이)
