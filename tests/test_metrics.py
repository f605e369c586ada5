"""/metrics: request counts and latencies per route and status, Redis call latency, business
events, and the per-concert gauges; correct when several workers answer (uvicorn's or
granian's: each worker is a process writing its own files in PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from devstack.api_server import SERVER_CLASSES, server
from tests.conftest import OPTION, active_token, auth, seat_id
from tests.http import fire

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample line (0 when absent), its labels given in any order."""
    for line in text.splitlines():
        m = re.match(rf"{name}{{(.*)}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m[1].split(",") for k, v in labels.items()):
            return float(m[2])
    return 0.0


COUNTERS = [
    ("ticketing_http_requests_total", {"route": "/api/point", "method": "GET", "status": "200"}),
    ("ticketing_http_requests_total", {"route": "/api/point", "method": "GET", "status": "400"}),
    ("ticketing_http_request_duration_seconds_count", {"route": "/api/reserve"}),
    ("ticketing_redis_call_duration_seconds_count", {"script": "reserve"}),
    ("ticketing_events_total", {"event": "hold"}),
    ("ticketing_events_total", {"event": "sale"}),
]


def counters(text: str) -> list[float]:
    # Counters are process-wide (one registry for all the apps of this test process): deltas.
    return [sample(text, name, **labels) for name, labels in COUNTERS]


def test_metrics_move_with_the_requests(client: TestClient) -> None:
    before = counters(client.get("/metrics").text)
    token = active_token(client, 1)
    for _ in range(3):
        client.get("/api/point", params={"customerId": 1})
    client.get("/api/point", params={"customerId": "x"})
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)}).json()
    text = client.get("/metrics").text
    delta = [a - b for a, b in zip(counters(text), before, strict=True)]
    assert delta == [3, 1, 1, 1, 1, 0]
    assert sample(text, "ticketing_queue_active", concert="2") == 1
    assert sample(text, "ticketing_holds", concert="2") == 1
    assert sample(text, "ticketing_seats_free", concert="2") == 7  # 8 seats, one held
    client.post("/api/pay", headers=auth(token), json={"reservationId": held["reservationId"]})
    text = client.get("/metrics").text
    assert counters(text)[5] - before[5] == 1
    assert sample(text, "ticketing_seats_sold", concert="2") == 1
    assert sample(text, "ticketing_queue_active", concert="2") == 0  # the pay finished it


@pytest.mark.parametrize("kind", list(SERVER_CLASSES))
def test_metrics_sum_over_workers(kind: str, mode: str, tmp_path: Path, settings,
                                  catalog: redis.Redis) -> None:
    if kind != "uvicorn" and mode != "single":
        pytest.skip("the server's process model does not depend on the Redis mode")
    prom = tmp_path / "prom"
    prom.mkdir()
    env = {"REDIS_URL": settings.redis_url, "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    with server(kind, "api.app:app", env, workers=2) as api:
        fire("127.0.0.1", api.port, [[("GET", "/api/point?customerId=3", None, {})] * 10
                                     for _ in range(20)])
        time.sleep(1.5)  # each worker moves its tallies into the shared files every second
        for _ in range(4):  # whichever worker answers the scrape, the sum is the same
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read().decode()
            conn.close()
            assert sample(body, "ticketing_http_requests_total", route="/api/point",
                          method="GET", status="200") == 200
            assert sample(body, "ticketing_http_request_duration_seconds_count",
                          route="/api/point") == 200


def test_batched_tallies_equal_prometheus_observe() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from api.metrics import LATENCY_BUCKETS, _Tally

    reg = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", buckets=LATENCY_BUCKETS, registry=reg)
    batched = Histogram("batched_seconds", "b", buckets=LATENCY_BUCKETS, registry=reg)
    tally = _Tally(batched)
    for value in [0, 0.0005, 0.00051, 0.001, 0.003, 0.3, 2.5, 2.6, 100]:  # edges included
        direct.observe(value)
        tally.add(value)
    tally.flush()
    tally.flush()  # a second flush adds nothing

    def samples(prefix: str) -> list[tuple[str, float]]:
        return [(s.name.removeprefix(prefix), s.value) for m in reg.collect()
                if m.name == prefix for s in m.samples if not s.name.endswith("_created")]

    assert samples("direct_seconds") == samples("batched_seconds")


def test_answers_before_any_route_are_counted(client: TestClient) -> None:
    labels = {"route": "(unmatched)", "method": "ANY"}
    before = [sample(client.get("/metrics").text, "ticketing_http_requests_total",
                     status=s, **labels) for s in ("404", "405")]
    client.get("/no/such/path")
    client.put("/api/pay")
    text = client.get("/metrics").text
    after = [sample(text, "ticketing_http_requests_total", status=s, **labels)
             for s in ("404", "405")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]
