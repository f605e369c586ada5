"""The monitoring files load and agree with the app: the Grafana dashboard's schema-level
fields, every metric its queries use is one ``/metrics`` really exports (names read from
``api.metrics``, not copied), Prometheus scrapes the API's ``/metrics``, and the dashboard
names the provisioned datasource. No network, no Docker, no YAML library: the YAML files are
read with plain string checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from api import metrics

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "ticketing.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = MONITORING / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
PROMETHEUS = MONITORING / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("_sum", "_count", "_created"),
}
ROW = {"concertId": 2, "waiting": 1, "active": 1, "holds": 0, "sold": 0, "freeSeats": 50}


def exported() -> dict[str, set[str]]:
    """Every series name ``/metrics`` can show, mapped to the labels it carries."""
    series: dict[str, set[str]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            labels = set(obj._labelnames)
            for suffix in SUFFIXES[obj._type]:
                series[obj._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    for family in metrics._Gauges([ROW]).collect():
        series[family.name] = {k for s in family.samples for k in s.labels}
    return series


def families() -> set[str]:
    """The metric families (base names) the app defines."""
    names = {o._name for o in vars(metrics).values() if isinstance(o, MetricWrapperBase)}
    return names | {f.name for f in metrics._Gauges([ROW]).collect()}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    """All panels, those inside collapsed rows included."""
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def test_the_app_exports_what_the_test_reads() -> None:
    # Guards the introspection itself: were it to find nothing, every expr check would be moot.
    series = exported()
    for name in (
        "ticketing_http_requests_total",
        "ticketing_http_request_duration_seconds_bucket",
        "ticketing_redis_call_duration_seconds_bucket",
        "ticketing_events_total",
        "ticketing_charged_points_total",
        "ticketing_redis_events_total",
        "ticketing_queue_waiting",
        "ticketing_queue_active",
        "ticketing_holds",
        "ticketing_seats_sold",
        "ticketing_seats_free",
    ):
        assert name in series
    assert series["ticketing_queue_waiting"] == {"concert"}
    assert series["ticketing_http_request_duration_seconds_bucket"] == {"route", "le"}


def test_dashboard_top_level_fields(dashboard: dict) -> None:
    assert dashboard["title"] == "Ticketing engine"
    assert dashboard["uid"] == "ticketing"
    assert type(dashboard["schemaVersion"]) is int and dashboard["schemaVersion"] >= 36
    assert dashboard["time"] == {"from": "now-15m", "to": "now"}
    assert dashboard["refresh"] == "5s"
    assert isinstance(dashboard["panels"], list) and dashboard["panels"]
    assert dashboard.get("id") is None  # provisioned dashboards must not carry a database id


def test_panels_are_well_formed(dashboard: dict) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert all(type(i) is int for i in ids)
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels(dashboard):
        assert isinstance(p["type"], str) and p["type"]
        assert isinstance(p["title"], str) and p["title"]
        g = p["gridPos"]
        assert all(type(g[k]) is int for k in ("x", "y", "w", "h")), p["title"]
        assert 0 <= g["x"] and 1 <= g["w"] and g["x"] + g["w"] <= 24, p["title"]
        assert 0 <= g["y"] and 1 <= g["h"], p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert isinstance(t["expr"], str) and t["expr"].strip(), p["title"]
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]


IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SELECTOR = re.compile(r"\b(ticketing_[A-Za-z0-9_:]*)\s*(?:\{([^}]*)\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def test_every_metric_in_a_query_is_exported(dashboard: dict) -> None:
    series = exported()
    used: set[str] = set()
    for expr in exprs(dashboard):
        names = [m[1] for m in SELECTOR.finditer(expr)]
        assert names, f"no ticketing metric in {expr!r}"
        for name in names:
            assert name in series, f"{name} (in {expr!r}) is not exported by api.metrics"
        labels = set().union(*(series[n] for n in names))
        for m in SELECTOR.finditer(expr):
            for matcher in filter(None, (m[2] or "").split(",")):
                label = IDENT.match(matcher.strip())
                assert label and label[0] in series[m[1]], f"{matcher!r} on {m[1]}"
        for m in GROUPING.finditer(expr):
            for label in filter(None, (s.strip() for s in m[1].split(","))):
                assert label in labels, f"{label!r} in {expr!r}: no such label"
        used.update(names)
    # And the converse: every family the app defines has a panel.
    for family in families():
        assert any(u == family or u.startswith(family + "_") for u in used), (
            f"{family} is exported but on no panel"
        )


def test_concert_variable(dashboard: dict) -> None:
    (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "concert"]
    query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
    m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
    assert m, query
    assert m[2] in exported()[m[1]]


def yaml_value(text: str, key: str) -> list[str]:
    """The scalar values of ``key:`` lines, quotes stripped (enough for these small files)."""
    return [
        v.strip().strip("'\"")
        for v in re.findall(rf"^\s*(?:-\s+)?{key}:\s*(\S[^#\n]*?)\s*(?:#.*)?$", text, re.M)
    ]


def test_datasource_uid_matches_the_dashboard(dashboard: dict) -> None:
    text = DATASOURCES.read_text()
    (uid,) = yaml_value(text, "uid")
    assert yaml_value(text, "type") == ["prometheus"]
    assert yaml_value(text, "url") == ["http://prometheus:9090"]
    refs = []
    for p in panels(dashboard):
        refs.append(p.get("datasource"))
        refs.extend(t.get("datasource") for t in p.get("targets", []))
    refs.extend(v["datasource"] for v in dashboard["templating"]["list"] if v["type"] == "query")
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": uid}, ref


def test_dashboards_are_provisioned_from_the_mounted_folder() -> None:
    text = PROVIDERS.read_text()
    assert yaml_value(text, "type") == ["file"]
    (path,) = yaml_value(text, "path")
    compose = COMPOSE.read_text()
    assert f"./monitoring/grafana/dashboards:{path}" in compose
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning" in compose


def test_prometheus_scrapes_the_api_metrics() -> None:
    text = PROMETHEUS.read_text()
    assert yaml_value(text, "job_name") == ["ticketing-api"]
    assert yaml_value(text, "metrics_path") in ([], ["/metrics"])  # /metrics is the default
    assert "5s" in yaml_value(text, "scrape_interval")
    (targets,) = yaml_value(text, "targets")
    assert json.loads(targets) == ["api:8000"]
    compose = COMPOSE.read_text()
    assert re.search(r"^  api:\n", compose, re.M), "no api service in docker-compose.yml"
    assert "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml" in compose
    # and the API really serves GET /metrics
    from api.app import app

    assert any(getattr(r, "path", None) == "/metrics" for r in app.routes)
