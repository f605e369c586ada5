"""Smoke test of the load tests: a few seconds of each of the report's seven scenarios and of
the soak run, through ``python -m loadtests run``, against a Redis + API this module starts
(the demo data seeded). Every scenario must answer with zero failures (a contested seat's 409
is counted apart as a success, not a failure) and leave its CSVs and charts in the report
folder. Only through the command line: nothing here imports loadtests/."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack import REPO
from devstack.api_server import Server, api_server
from devstack.redis_server import RedisServer
from engine.seed import seed_demo

CHARTS = ("rps", "response_times", "users")
SEVEN = [f"s{i}" for i in range(1, 8)]  # the report's scenarios, in its order
S7 = "s7_booking_flow"  # a scenario's folder and files are named after its locustfile


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Server]]:
    if shutil.which("redis-server") is None:
        pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)
    server = RedisServer(tmp_path_factory.mktemp("loadtest-redis")).start()
    client = redis.Redis.from_url(server.url)
    seed_demo(client)
    client.close()
    api = api_server({"REDIS_URL": server.url, "ACTIVE_LIMIT": "20000",
                      "ADMIT_PER_SECOND": "2000"})
    try:
        api.start()
        yield server, api
    finally:
        api.stop()
        server.stop()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadtests", "run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=100)


def totals(folder: Path, name: str) -> dict[str, str]:
    with open(folder / f"{name}_final_stats.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


def test_the_seven_scenarios_run_clean(stack: tuple[RedisServer, Server],
                                       tmp_path: Path) -> None:
    _, api = stack
    out = tmp_path / "report"
    proc = run("all", "--host", api.base, "-u", "12", "-r", "12", "-t", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = (out / "report.md").read_text()
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert [f.name.split("_")[0] for f in folders] == SEVEN, folders
    for folder in folders:
        name = folder.name
        total = totals(folder, name)
        assert int(total["Request Count"]) > 0, (name, total)
        assert int(total["Failure Count"]) == 0, (folder / "locust.log").read_text()[-3000:]
        for chart in CHARTS:
            png = folder / f"{name}_{chart}.png"
            assert png.stat().st_size > 5000, png  # a real chart, not an empty file
        assert (folder / f"{name}_stats_history.csv").exists()
        assert f"Files: [`{name}/`]({name}/)" in report  # its section in the report
    assert report.count("| report |") == 7  # each scenario beside the report's figures


def test_soak_samples_memory_and_keys(stack: tuple[RedisServer, Server],
                                      tmp_path: Path) -> None:
    server, api = stack
    out = tmp_path / "soak"
    pids = [arg for pid in api.pids() for arg in ("--api-pid", str(pid))]
    proc = run("soak", "--host", api.base, "--redis-url", server.url, *pids, "-u", "8",
               "-r", "8", "-t", "4", "--sample-every", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    folder = out / "soak"
    assert int(totals(folder, "soak")["Failure Count"]) == 0
    with open(folder / "soak_samples.csv", newline="") as f:
        samples = list(csv.DictReader(f))
    assert len(samples) >= 3
    assert all(float(s["redis_used_memory"]) > 0 and float(s["redis_keys"]) >= 10_000
               and float(s["api_rss"]) > 0 for s in samples)
    assert (folder / "soak_memory.png").stat().st_size > 5000
    # Four seconds cannot show a trend: the verdict must say so rather than pass.
    assert "Soak verdict: INCONCLUSIVE" in (out / "report.md").read_text()


def test_the_runner_starts_its_own_cluster(tmp_path: Path) -> None:
    """``--cluster``: the runner's own 3-master cluster (WAIT 1) under the booking flow."""
    out = tmp_path / "cluster"
    proc = run("s7", "--cluster", "-u", "10", "-r", "10", "-t", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    total = totals(out / S7, S7)
    assert int(total["Request Count"]) > 0 and int(total["Failure Count"]) == 0, total


def test_booking_flow_counts_the_ticket_limit_apart(tmp_path: Path) -> None:
    """§7's users share customers (``randint(1, 500)``), so together they can reach the
    concert's ticket limit: a correct 409 TICKET_LIMIT, counted apart like a lost seat race,
    not a failure (CI once saw one at the default 4; a limit of 1 makes it certain here)."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    seed_demo(client)
    client.close()
    api = api_server({"REDIS_URL": server.url, "ACTIVE_LIMIT": "20000",
                      "ADMIT_PER_SECOND": "2000", "MAX_TICKETS_PER_CUSTOMER": "1"})
    try:
        api.start()
        out = tmp_path / "report"
        proc = run("s7", "--host", api.base, "-u", "20", "-r", "20", "-t", "5", "--out",
                   str(out))
    finally:
        api.stop()
        server.stop()
    folder = out / S7
    with open(folder / f"{S7}_final_stats.csv", newline="") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert int(rows["/api/reserve [409 ticket limit]"]["Request Count"]) > 0, rows.keys()
    assert int(rows["Aggregated"]["Failure Count"]) == 0, (folder / "locust.log").read_text()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "ticket limit)" in (out / "report.md").read_text()


def test_the_report_scripts_as_printed_run_clean_with_the_defaults(tmp_path: Path) -> None:
    """The report's scripts exactly as it prints them, each against its own stack with every
    default setting (the queue's limits included): no failure but §7's 409s on a contested
    seat. One of each kind, a few seconds each: a shared token (§4), a charge per customer
    (§6), the flow (§7); the whole set at the report's loads is `--as-printed all`."""
    out = tmp_path / "printed"
    for scenario in ("s4", "s6", "s7"):
        proc = run(scenario, "--as-printed", "-u", "30", "-r", "30", "-t", "4", "--out",
                   str(out / scenario))
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        report = (out / scenario / "report.md").read_text()
        assert "(as printed)" in report and "as_printed/" in report
