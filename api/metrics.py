"""Prometheus metrics at ``GET /metrics``, correct with several uvicorn workers.

Counters and histograms use prometheus-client; with ``PROMETHEUS_MULTIPROC_DIR`` set (``make
run`` sets it) every worker writes its own files and a scrape sums them, so the answer does
not depend on which worker it reached. The queue, hold and sale gauges are not kept in any
worker: a scrape reads them from Redis (stats.lua), where the truth is.

A request does not touch prometheus-client: it adds to plain per-route tallies (~0.3 µs), and
``flush()`` moves them into the metrics once a second (the API's tick) and before a scrape.
Measured here, prometheus-client's own observe + inc cost ~2 µs in multiprocess mode (its
values are locked mmap files), ~5 µs a request with the Redis histogram: about a tenth of
what a whole request costs.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
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
REDIS_EVENTS = Counter("ticketing_redis_events_total",
                       "Redis answers worth watching: wait_timeout (a WAIT saw too few replicas "
                       "take a write: answered 503), replicas_missing (a write refused unsent, "
                       "its master short of replicas: answered 503), redirect (a cluster MOVED "
                       "or ASK followed)",
                       ["event"])

_events = {e: EVENTS.labels(e) for e in ("token_issued", "hold", "sale", "charge", "cancel")}


def event(name: str) -> None:
    _events[name].inc()


_redis_events = {e: REDIS_EVENTS.labels(e) for e in ("wait_timeout", "replicas_missing",
                                                    "redirect")}


def redis_event(name: str) -> None:
    _redis_events[name].inc()


class _Tally:
    """Observations of one histogram child since the last flush: a count per bucket (the
    buckets prometheus-client keeps, +Inf last) and their sum."""

    __slots__ = ("buckets", "child", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # bucket i: value <= bound i
        self.total += seconds

    def flush(self) -> None:
        # The same two updates Histogram.observe makes, once for the whole batch.
        for i, n in enumerate(self.buckets):
            if n:
                self.child._buckets[i].inc(n)
                self.buckets[i] = 0
        if self.total:
            self.child._sum.inc(self.total)
            self.total = 0.0


class RouteMetrics:
    """The tallies of one route: answers by status, and their latency."""

    __slots__ = ("counts", "latency", "method", "route")

    def __init__(self, route: str, method: str) -> None:
        self.route, self.method = route, method
        self.latency = _Tally(LATENCY.labels(route))
        self.counts: dict[int, int] = {}
        _ROUTES.append(self)

    def observe(self, status: int, started: float) -> None:
        self.latency.add(time.perf_counter() - started)
        self.counts[status] = self.counts.get(status, 0) + 1

    def flush(self) -> None:
        self.latency.flush()
        for status, n in self.counts.items():
            if n:
                REQUESTS.labels(self.route, self.method, str(status)).inc(n)
                self.counts[status] = 0


_ROUTES: list[RouteMetrics] = []
_BY_ROUTE: dict[tuple[str, str], RouteMetrics] = {}


def route_metrics(route: str, method: str) -> RouteMetrics:
    """The one tally of a route in this process, however many apps serve it (the tests build
    many)."""
    found = _BY_ROUTE.get((route, method))
    if found is None:
        found = _BY_ROUTE[(route, method)] = RouteMetrics(route, method)
    return found
_REDIS: dict[str, _Tally] = {}


def observe_redis(script: str, seconds: float) -> None:
    tally = _REDIS.get(script)
    if tally is None:
        tally = _REDIS[script] = _Tally(REDIS_LATENCY.labels(script))
    tally.add(seconds)


def flush() -> None:
    """Move this worker's tallies into the metrics (the tick calls it every second)."""
    for route in _ROUTES:
        route.flush()
    for tally in _REDIS.values():
        tally.flush()


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
        flush()
        reg = registry()
        try:
            rows = await asyncio.gather(*(queue.concert_stats(store, c)
                                          for c in await queue.concerts(store)))
        except StoreUnavailable:
            rows = []  # the request metrics still answer when Redis does not
        scrape = CollectorRegistry()
        scrape.register(_Gauges(rows))
        body = generate_latest(reg) + generate_latest(scrape)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
