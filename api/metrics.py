"""Prometheus metrics at ``GET /metrics``, correct with several uvicorn workers.

Counters and histograms use prometheus-client; with ``PROMETHEUS_MULTIPROC_DIR`` set (``make
run`` sets it) every worker writes its own files and a scrape sums them, so the answer does
not depend on which worker it reached. The queue, hold and sale gauges are not kept in any
worker: a scrape reads them from Redis (stats.lua), where the truth is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Receive, Scope, Send

from engine import queue
from engine.errors import StoreUnavailable
from engine.store import Store

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("ticketing_http_requests_total", "HTTP requests answered",
                   ["route", "method", "status"])
LATENCY = Histogram("ticketing_http_request_duration_seconds",
                    "Time from the request reaching the app to its answer", ["route"],
                    buckets=LATENCY_BUCKETS)
REDIS_LATENCY = Histogram("ticketing_redis_call_duration_seconds",
                          "Time of one script call on Redis, round trip included", ["script"],
                          buckets=LATENCY_BUCKETS)
EVENTS = Counter("ticketing_events_total",
                 "Business events: tokens issued, holds, sales, charges", ["event"])
CHARGED = Counter("ticketing_charged_points_total", "Points charged (sum of amounts)")

_events = {e: EVENTS.labels(e) for e in ("token_issued", "hold", "sale", "charge", "cancel")}


def event(name: str) -> None:
    _events[name].inc()


class RouteMetrics:
    """The children of one route, bound once: a request pays two dict lookups, not label
    resolution."""

    __slots__ = ("_counts", "latency", "method", "route")

    def __init__(self, route: str, method: str) -> None:
        self.route, self.method = route, method
        self.latency = LATENCY.labels(route)
        self._counts: dict[int, Counter] = {}

    def observe(self, status: int, started: float) -> None:
        self.latency.observe(time.perf_counter() - started)
        child = self._counts.get(status)
        if child is None:
            child = self._counts[status] = REQUESTS.labels(self.route, self.method, str(status))
        child.inc()


_redis_children: dict[str, Histogram] = {}


def observe_redis(script: str, seconds: float) -> None:
    child = _redis_children.get(script)
    if child is None:
        child = _redis_children[script] = REDIS_LATENCY.labels(script)
    child.observe(seconds)


class _Gauges(Collector):
    """Per-concert gauges read from Redis just before the scrape."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        specs = [("waiting", "ticketing_queue_waiting", "Tokens waiting in the queue"),
                 ("active", "ticketing_queue_active", "ACTIVE tokens"),
                 ("holds", "ticketing_holds", "Seats held (PAYING included)"),
                 ("sold", "ticketing_seats_sold", "Seats sold"),
                 ("freeSeats", "ticketing_seats_free", "Seats neither held nor sold")]
        for field, name, doc in specs:
            g = GaugeMetricFamily(name, doc, labels=["concert"])
            for row in self.rows:
                g.add_metric([str(row["concertId"])], row[field])
            yield g


def registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return reg
    from prometheus_client import REGISTRY

    return REGISTRY


class MetricsEndpoint:
    """``GET /metrics``: the workers' counters and histograms plus the Redis gauges."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store: Store = scope["state"]["store"]
        reg = registry()
        try:
            rows = [await queue.concert_stats(store, c) for c in await queue.concerts(store)]
        except StoreUnavailable:
            rows = []  # the request metrics still answer when Redis does not
        scrape = CollectorRegistry()
        scrape.register(_Gauges(rows))
        body = generate_latest(reg) + generate_latest(scrape)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
