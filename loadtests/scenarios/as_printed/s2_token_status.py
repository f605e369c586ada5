# ruff: noqa -- §2 of the load-test report, exactly as it prints it (its hard-coded token
# "2e11aad1-b325-477e-8d36-6f15d1f14afe" read from REPORT_TOKEN: see __init__.py)
import os
from locust import HttpUser, TaskSet, task, between, LoadTestShape

class TokenStatusTasks(TaskSet):
    @task
    def get_token_status(self):
        self.client.get(
            "/api/token/status",
            headers={"Authorization": os.environ["REPORT_TOKEN"]}
        )

class TokenStatusLoadTest(HttpUser):
    tasks = [TokenStatusTasks]
    wait_time = between(1, 5)  # 사용자 요청 간의 대기 시간 (1초에서 5초 사이)

class SteadyLoadTestShape(LoadTestShape):
    spawn_rate = 50  # 초당 사용자 수 증가 비율
    user_count = 2000  # 목표 사용자 수
    run_time = 300  # 테스트 지속 시간

    def tick(self):
        run_time = self.get_run_time()
        if run_time > self.run_time:
            return None
        return (self.user_count, self.spawn_rate)
