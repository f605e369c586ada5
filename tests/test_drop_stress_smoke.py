"""Smoke tests of the ticket-drop runner and the stress ramp, at a tiny scale: ``python -m
loadtests run drop`` (a 60-seat venue, a few hundred buyers, asyncio and locust) and ``python
-m loadtests run stress`` (two short steps of §6 and §7), each against the Redis + API it
starts. Only through the command line: nothing here imports loadtests/ (the pure parts, the
plan, rank correlation, histograms and the ramp's levels, are tested in loadtests/tests/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import REPO

CORRECTNESS = ("0 oversold", "0 double charged", "events = outcomes",
               "0 failures other than the expected 409/429", "sold out",
               "FIFO after the opening", "positions never move backwards")


@pytest.fixture(autouse=True)
def _redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)


def tiny_catalog(path: Path) -> Path:
    rows = [{"name": str(i), "seats": 10} for i in range(1, 4)]
    doc = {"concertId": 13, "name": "tiny drop", "options": [
        {"concertOptionId": oid, "date": date, "sections": [
            {"name": "VIP", "price": 150000, "rows": rows[:1]},
            {"name": "R", "price": 90000, "rows": rows[1:]}]}
        for oid, date in ((130001, "2027-09-04T19:00:00+09:00"),
                          (130002, "2027-09-05T19:00:00+09:00"))]}
    path.write_text(json.dumps(doc))
    return path


def run(*args: str, timeout: float = 150, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadtests", "run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


@pytest.mark.timeout(200)
@pytest.mark.parametrize("generator, users, mode", [
    ("asyncio", 300, "single"), ("locust", 200, "single"), ("asyncio", 300, "cluster")])
def test_drop_runs_and_balances_its_books(tmp_path: Path, generator: str, users: int,
                                          mode: str) -> None:
    """On a cluster the pay runs as three steps over two slots, with WAIT on the writes.
    ACTIVE tokens live 20 s: with admission bound by the stock (admitPerSeat), shoppers who
    gave up hold the room for the last seats until their tokens end, so a last seat that came
    back and was not wanted by the waiter it admitted waits for them (90 s by default: past
    the run, as two CI runs saw; 10 s ended the tokens of shoppers still looking, a 401).
    The buyers arrive within 10 s of the opening, and an idle limit of 15 s has the waiters
    poll every 5 s at most, so that all are told SOLD_OUT soon after the sell-out: the run
    ends ~20 s after the opening (~50 s with the defaults' 30 s and 120 s)."""
    out = tmp_path / "drop"
    proc = run("drop", "-u", str(users), "--catalog", str(tiny_catalog(tmp_path / "v.json")),
               "--generator", generator, "--target", "3", "--lead", "2", "-t", "55",
               "--arrivals", "10", "--hold-ttl", "3", "--active-ttl", "20", "--out", str(out),
               *(["--cluster"] if mode == "cluster" else []), WAITING_IDLE_SECONDS="15")
    checks = json.loads((out / "checks.json").read_text())[0]
    detail = proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in CORRECTNESS:
        assert checks["verdicts"][name], (name, detail)
    assert checks["buyers"] == users and checks["sales_rows"] == 60
    assert checks["oversold"] == 0 and checks["double_charged"] == 0
    assert checks["events"]["PAID"] == 60
    assert checks["admit_rate_max"] <= checks["admitPerSecond"], checks
    assert checks["admit_rate_min"] in (None, checks["admitPerSecond"]), checks
    assert {"issue", "status", "dates", "pay"} <= set(checks["steps"])
    assert checks["eta_all"]["n"] > 0
    report = (out / "report.md").read_text()
    for section in ("### Checks", "### Time to sell out", "### Per step", "### Fairness",
                    "### ETA accuracy", "### The generator"):
        assert section in report
    for chart in ("stats", "admissions", "requests", "latency", "eta", "fairness", "cpu"):
        png = out / f"drop_{chart}.png"
        assert png.stat().st_size > 10_000, png
        assert f"drop_{chart}.png" in report
    assert (out / "events.csv").exists()
    assert not list(out.glob(".progress-*"))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("generator", ["asyncio", "locust"])
def test_stress_ramp_finds_a_knee(tmp_path: Path, generator: str) -> None:
    out = tmp_path / "stress"
    scenarios = "s6" if generator == "asyncio" else "s7"  # each shape once, each generator
    proc = run("stress", scenarios, "--generator", generator, "--start", "20",
               "--factor", "2", "--max-users", "40", "--step-seconds", "4", "--warmup", "1",
               "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    knees = json.loads((out / "knees.json").read_text())
    assert [k["scenario"] for k in knees] == scenarios.split(",")
    for k in knees:
        # 40 users are far below this box's knee, but a busy box (a test run beside another)
        # can break a 4-second step's p99: the knee is then the first step.
        assert k["knee"] is not None and k["knee"]["users"] in (20, 40), (k, proc.stdout[-2000:])
        assert k["knee"]["req_s"] > 0 and k["steps"] == 2
        assert (out / k["scenario"] / f"stress_{k['scenario']}.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "knee" in report and f"| {scenarios} |" in report
