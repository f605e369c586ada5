"""The Lua scripts as files: headers that match what the engine sends, runnable as-is with
redis-cli --eval, and still working after SCRIPT FLUSH (NOSCRIPT reload)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shlex
import subprocess
from argparse import Namespace

import pytest
import redis
from starlette.testclient import TestClient

from engine.cli import OPS, _operation, _Recorder, eval_line
from engine.config import Settings
from engine.scripts import LUA_DIR, load_sources
from loadtests.stack import REPO
from tests.conftest import OPTION, active_token, auth, seat_id

SOURCES = load_sources()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_header_names_every_key_argument_and_return(name: str) -> None:
    src = SOURCES[name]
    assert src.startswith("#!lua"), "a shebang, so Redis knows the script's flags"
    header = src.split("]]", 1)[0]
    body = src.split("]]", 1)[1]
    used_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)}
    used_args = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", body)}
    named_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", header)}
    named_args = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", header)}
    assert used_keys <= named_keys and used_args <= named_args
    assert "Returns" in header
    for code in {int(c) for c in re.findall(r"return \{(\d+)", body)}:
        assert f"{{{code}" in header, f"return code {code} is not in the header"


def _recorded_calls(settings: Settings) -> list[tuple[str, list[str], list[object]]]:
    token = "2.7." + "a" * 32
    reservation = "2." + "b" * 32
    rec = _Recorder(settings)
    for op in OPS:
        args = Namespace(op=op, token=token, reservation=reservation, customer=7, concert=2,
                         option=OPTION, seat=seat_id(OPTION, 1), amount_minor=500)
        asyncio.run(_operation(rec, args))
    return rec.calls


def test_engine_sends_each_script_the_keys_and_args_its_header_names(settings: Settings) -> None:
    calls = _recorded_calls(settings)
    # create_option: seeding only; refund: the pay protocol's safety net (tested apart).
    assert {name for name, _, _ in calls} == set(SOURCES) - {"create_option", "refund"}
    for name, keys, args in calls:
        header = SOURCES[name].split("]]", 1)[0]
        named_keys = re.findall(r"KEYS\[(\d+)\]", header)
        named_args = re.findall(r"ARGV\[(\d+)\]", header)
        optional = len(re.findall(r"KEYS\[\d+\] \(optional\)", header))
        assert len(named_keys) - optional <= len(keys) <= len(named_keys), name
        assert len(args) == len(named_args), name
        tags = {re.search(r"\{[^}]*\}", k).group(0) for k in keys}
        assert len(tags) == 1, f"{name}: keys span several hash tags {tags}"


def test_every_script_runs_as_is_in_redis_cli(settings: Settings, catalog: redis.Redis) -> None:
    for name, keys, args in _recorded_calls(settings):
        line = eval_line(settings, name, keys, args, ldb=False)
        out = subprocess.run(shlex.split(line), cwd=REPO, capture_output=True, text=True,
                             timeout=10)
        assert out.returncode == 0 and "ERR" not in out.stdout + out.stderr, (line, out)
        assert out.stdout.strip(), line  # every script replies with at least its code


def test_scripts_reload_after_script_flush(client: TestClient, catalog: redis.Redis) -> None:
    token = active_token(client, 1)
    catalog.script_flush()
    shas = [hashlib.sha1(src.encode()).hexdigest() for src in SOURCES.values()]
    assert catalog.script_exists(*shas) == [False] * len(shas)
    assert client.get("/api/token/status", headers=auth(token)).status_code == 200
    assert client.get("/api/2/available-dates", headers=auth(token)).status_code == 200
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": OPTION, "seatId": seat_id(OPTION, 1)})
    assert held.status_code == 200
    catalog.script_flush()
    assert client.post("/api/pay", headers=auth(token),
                       json={"reservationId": held.json()["reservationId"]}).status_code == 200
    catalog.script_flush()
    assert client.patch("/api/point/charge", json={"customerId": 1, "amount": 5}).status_code == 200
    assert client.get("/api/point/history", params={"customerId": 1}).status_code == 200


def test_lua_dir_holds_only_scripts() -> None:
    assert sorted(p.stem for p in LUA_DIR.glob("*.lua")) == sorted(SOURCES)


def _blocks(src: str) -> dict[str, str]:
    """Each ``local function name(...) ... end`` block of a script, with its comment."""
    pattern = re.compile(r"((?:--[^\n]*\n)*local function (\w+)\(.*?\n)end\n", re.S)
    return {m[2]: m[0] for m in pattern.finditer(src)}


def test_repeated_idioms_are_identical_in_every_script() -> None:
    """Scripts are self-contained, so a few helpers stand in several files; they must stay the
    same lines everywhere, or one copy has drifted."""
    copies: dict[str, set[str]] = {}
    for src in SOURCES.values():
        for name, block in _blocks(src).items():
            copies.setdefault(name, set()).add(block)
    assert {"release", "token_state", "admit", "estimate"} <= set(copies)
    for name, versions in copies.items():
        assert len(versions) == 1, f"local function {name} differs between scripts"
