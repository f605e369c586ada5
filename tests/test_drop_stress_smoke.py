"""Smoke tests of the ticket-drop runner and the stress ramp, at a tiny scale: ``python -m
loadtests run drop`` (a 60-seat venue, a few hundred buyers, asyncio and locust) and ``python
-m loadtests run stress`` (two short steps of §6 and §7), each against the Redis + API it
starts; plus the pure parts (the plan, rank correlation, histograms, the ramp's levels)."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from devstack import REPO
from loadtests import dropgen, stressgen

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


def run(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadtests", "run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(200)
@pytest.mark.parametrize("generator, users, mode", [
    ("asyncio", 300, "single"), ("locust", 200, "single"), ("asyncio", 300, "cluster")])
def test_drop_runs_and_balances_its_books(tmp_path: Path, generator: str, users: int,
                                          mode: str) -> None:
    """On a cluster the pay runs as three steps over two slots, with WAIT on the writes."""
    out = tmp_path / "drop"
    proc = run("drop", "-u", str(users), "--catalog", str(tiny_catalog(tmp_path / "v.json")),
               "--generator", generator, "--target", "3", "--lead", "2", "-t", "40",
               "--hold-ttl", "3", "--out", str(out), *(["--cluster"] if mode == "cluster" else []))
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
        assert k["knee"] is not None and k["knee"]["users"] == 40, (k, proc.stdout[-2000:])
        assert k["knee"]["req_s"] > 0 and k["steps"] == 2
        assert (out / k["scenario"] / f"stress_{k['scenario']}.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "knee" in report and f"| {scenarios} |" in report


# --- the pure parts -------------------------------------------------------------------------
def config(buyers: int = 1000, seed: int = 13) -> dropgen.DropConfig:
    return dropgen.DropConfig(base="http://127.0.0.1:1", concert=13, buyers=buyers,
                              options=[{"id": 1, "sections": ["A", "B"], "seats": 10},
                                       {"id": 2, "sections": ["A", "B"], "seats": 10}],
                              t_start=1000.0, opens_at=1008.0, active_ttl=90, out_dir="/tmp",
                              seed=seed)


def test_the_plan_is_a_pure_function_of_its_seed() -> None:
    first, second = dropgen.make_plan(config()), dropgen.make_plan(config())
    assert first == second
    assert dropgen.make_plan(config(seed=14)) != first
    assert [p.index for p in first] == list(range(1000))
    assert all(x.arrival <= y.arrival for x, y in itertools.pairwise(first))
    pre = sum(1 for p in first if p.arrival < 8)
    assert 60 < pre < 140  # pre_share 0.1
    assert len({p.customer for p in first}) == 1000
    assert all(p.quantity == 4 and p.after == "pay" for p in first if p.greedy)
    assert 1.5 < dropgen.expected_seats(first) < 2.3


def test_spearman_and_fifo_inversions() -> None:
    xs = list(range(200))
    assert dropgen.spearman(xs, xs) == pytest.approx(1)
    assert dropgen.spearman(xs, xs[::-1]) == pytest.approx(-1)
    rng = random.Random(1)
    shuffled = xs[:]
    rng.shuffle(shuffled)
    assert abs(dropgen.spearman(xs, shuffled)) < 0.2
    assert dropgen.ranks([3, 1, 3, 2]) == [3.5, 1, 3.5, 2]
    assert dropgen.inversions_beyond([(0, 0), (1, 1), (2, 5), (3, 2)], 0.5) == 1
    assert dropgen.percentile([1, 2, 3, 4], 0.5) == 2.5


def test_histogram_percentiles_err_high_by_under_a_bucket() -> None:
    rng = random.Random(2)
    values = [rng.lognormvariate(0, 1) for _ in range(20_000)]
    hist = Counter(stressgen.bucket(v) for v in values)
    exact = sorted(values)
    for q in (0.5, 0.99):
        got = stressgen.hist_percentile(hist, q)
        want = exact[int(q * len(exact))]
        assert want <= got * 1.001 and got <= want * stressgen.BUCKET ** 2


def test_ramp_levels() -> None:
    from loadtests.stress import build_parser, levels

    args = build_parser().parse_args(["--start", "100", "--max-users", "400"])
    assert levels(args) == [100, 150, 225, 338, 400]
    args = build_parser().parse_args(["--start", "100", "--step", "100", "--max-users", "300"])
    assert levels(args) == [100, 200, 300]
