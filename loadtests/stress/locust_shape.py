"""The stress ramp as a locust ``LoadTestShape``, loaded beside a scenario's locustfile
(``-f s6_point_charge.py,locust_shape.py``) by ``python -m loadtests run stress --generator
locust``: step k holds ``levels[k]`` users for ``step_seconds``, a step's new users spawned
over 2 s; it ends after the last step or as soon as the controller writes its ``STOP`` file.
Knob: ``LOADTEST_STRESS_CONFIG`` (the run's StressConfig JSON)."""

from __future__ import annotations

import os
from pathlib import Path

from locust import LoadTestShape

from loadtests.stress.users import StressConfig

CONFIG = StressConfig.load(Path(os.environ["LOADTEST_STRESS_CONFIG"]))


class StepRamp(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        k = int(self.get_run_time() // CONFIG.step_seconds)
        if k >= CONFIG.steps or CONFIG.stop_file.exists():
            return None
        users = CONFIG.users_at(k)
        added = users - (CONFIG.users_at(k - 1) if k else 0)
        return users, max(1.0, added / 2)
