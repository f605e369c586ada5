"""python -m engine: idempotent seed, stats, and the debug line."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from devstack import REPO
from engine.keys import CustomerKeys, concert_keys
from engine.seed import DEMO_BALANCE, DEMO_CONCERT, DEMO_OPTIONS
from tests.conftest import auth

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)


def engine_cli(url: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, text=True,
                         capture_output=True, env={**os.environ, "REDIS_URL": url}, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_seed_creates_the_demo_and_never_resets(
    r: redis.Redis, redis_url: str, mode: str, make_client
) -> None:
    first = orjson.loads(engine_cli(redis_url, "seed", "--customers", "300"))
    assert first == {"concert": 2, "options": list(DEMO_OPTIONS), "funded": 300}
    k = concert_keys(DEMO_CONCERT)
    assert r.hlen(k.options) >= 4 and r.hget(k.options, "41150")
    assert all(r.hlen(k.seats(o)) == 50 for o in DEMO_OPTIONS)
    assert int(r.get(CustomerKeys(300).balance)) == DEMO_BALANCE

    client: TestClient = make_client()
    token = client.post("/api/token/issue", json={"customerId": 5, "concertId": 2}).json()[
        "tokenValue"]
    seat = client.get("/api/41150/available-seats", headers=auth(token)).json()["seats"][0]
    sold = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": 41150, "seatId": seat["id"]}).json()
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": 41150, "seatId": seat["id"] + 1}).json()
    client.post("/api/pay", headers=auth(token), json={"reservationId": sold["reservationId"]})
    state = {key: r.dump(key) for key in r.keys("*")}

    again = orjson.loads(engine_cli(redis_url, "seed", "--customers", "300"))
    assert again["funded"] == 0
    assert {key: r.dump(key) for key in r.keys("*")} == state  # balances, holds, sales kept
    assert held["status"] == "HELD"

    stats = orjson.loads(engine_cli(redis_url, "stats", "--json"))
    if mode == "cluster":  # where the concert lives: the master of its slot
        owner = r.get_node_from_key(concert_keys(2).concert)
        assert stats[0].pop("node") == f"{owner.host}:{owner.port}"
    assert 0 < stats[0].pop("admissionsPerSecond") <= 1  # one admission, decaying after
    assert stats == [{"concertId": 2, "waiting": 0, "active": 1, "holds": 1, "paying": 0,
                      "sold": 1, "freeSeats": 198, "seats": 200, "offered": 0, "checkedIn": 0,
                      "soldOut": False, "soldOutSince": None, "paused": False,
                      "opensAt": None}]
    assert "concertId" in engine_cli(redis_url, "stats")


def test_debug_prints_a_runnable_line(redis_url: str, mode: str, catalog: redis.Redis) -> None:
    line = engine_cli(redis_url, "debug", "balance", "--customer", "3").strip()
    # The file Redis runs: the script with its includes expanded, written by the command.
    assert line.endswith("--eval var/lua/balance.lua 'tk:{u:3}:balance' ,")
    out = subprocess.run(line, shell=True, cwd=REPO, capture_output=True, text=True, timeout=10)
    assert out.stdout.split() == ["0", str(10_000 * 100)]
    steps = engine_cli(redis_url, "debug", "pay", "--ldb", "--token", "2.1.1." + "c" * 32,
                       "--reservation", "2." + "d" * 32)
    if mode == "cluster":  # the concert's keys and the customer's are in two slots
        assert steps.count("--ldb --eval") == 3
        assert all(f"var/lua/{s}.lua" in steps for s in ("pay_begin", "debit", "pay_finish"))
        expanded = (REPO / "var" / "lua" / "pay_begin.lua").read_text()
    else:  # one Redis: one script
        assert steps.count("--ldb --eval") == 1 and "var/lua/pay.lua" in steps
        expanded = (REPO / "var" / "lua" / "pay.lua").read_text()
        assert "local function debit_step(" in expanded
    assert "-- @include" not in expanded and "local function token_state(k, " in expanded
