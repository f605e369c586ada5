"""The Lua scripts as files: headers that match what the engine sends, runnable as-is with
redis-cli --eval, and still working after SCRIPT FLUSH (NOSCRIPT reload)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import shlex
import subprocess
from argparse import Namespace

import pytest
import redis
from starlette.testclient import TestClient

from devstack import REPO
from engine import catalog
from engine.cli import OPS, _operation, _Recorder, eval_line
from engine.cluster import SCHEME
from engine.config import Settings
from engine.scripts import INCLUDE_DIR, LUA_DIR, expand, includes_of, load_sources
from tests.conftest import OPTION, active_token, auth, seat_id

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

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
    calls = []
    catalog._VIEWS.clear()  # the worker's seat-list cache would skip catalog.lua
    # Pay twice: in one call (one Redis) and in its three steps (a cluster, PAY_ONE_CALL=0).
    for way, ops in ((settings, OPS), (dataclasses.replace(settings, pay_one_call=False),
                                       ("pay",))):
        rec = _Recorder(way)
        for op in ops:
            args = Namespace(op=op, token=token, reservation=reservation, customer=7,
                             concert=2, option=OPTION, seat=seat_id(OPTION, 1),
                             amount_minor=500, quantity=1)
            asyncio.run(_operation(rec, args))
        calls += rec.calls
    return calls


def test_engine_sends_each_script_the_keys_and_args_its_header_names(settings: Settings) -> None:
    calls = _recorded_calls(settings)
    # create_option, reprice, configure: the operators' loads and settings; forget: the
    # tick's, only with something to forget (each tested apart).
    # pay.lua: only on one Redis (a cluster pays in steps).
    cluster = {"pay"} if settings.redis_url.startswith(SCHEME) else set()
    assert {name for name, _, _ in calls} == set(SOURCES) - {"create_option", "reprice",
                                                             "configure", "forget"} - cluster
    for name, keys, args in calls:
        header = SOURCES[name].split("]]", 1)[0]
        named_keys = re.findall(r"KEYS\[(\d+)\]", header)
        named_args = re.findall(r"ARGV\[(\d+)\]", header)
        optional = len(re.findall(r"KEYS\[\d+\] \(optional\)", header))
        assert len(named_keys) - optional <= len(keys) <= len(named_keys), name
        rest = re.search(r"ARGV\[(\d+)\.\.\]", header)  # "ARGV[13..] per row: ..."
        if rest:
            assert len(args) >= int(rest[1]) - 1, name
        else:
            assert len(args) == len(named_args), name
        tags = {re.search(r"\{[^}]*\}", k).group(0) for k in keys}
        # pay.lua alone spans a concert and a customer: it runs only where they share a Redis.
        assert len(tags) == (2 if name == "pay" else 1), f"{name}: keys span {tags}"


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


def test_shared_lines_live_in_includes_only() -> None:
    """A helper that several scripts need is written once in lua/include/ and pulled in with
    ``-- @include``; no script file defines one of its own, and every include a script pulls
    in finds the locals it needs bound before the include line."""
    includes = {p.stem: p.read_text() for p in INCLUDE_DIR.glob("*.lua")}
    defined = {name: set(re.findall(r"^local function (\w+)", text, re.M))
               for name, text in includes.items()}
    users: dict[str, int] = {}
    for path in sorted(LUA_DIR.glob("*.lua")):
        raw = path.read_text()
        own = set(re.findall(r"^local function (\w+)", raw, re.M))
        for name in includes_of(raw):
            users[name] = users.get(name, 0) + 1
            assert not own & defined[name], f"{path.name} redefines {own & defined[name]}"
            # "needs locals: a, b, c [and the includes x, y]" in the include's header
            needs = includes[name].split("needs locals:", 1)[1].split("]]", 1)[0]
            locals_part, _, includes_part = needs.partition("and the include")
            before_raw = raw.split(f"-- @include {name}\n", 1)[0]
            before = expand(before_raw)  # earlier includes too
            bound = set(re.findall(r"\b(\w+)\b", " ".join(
                re.findall(r"^local ([\w, ]+?)(?: =|$)", before, re.M))))
            for local in re.findall(r"\w+", locals_part.replace("(none)", "")):
                assert local in bound, f"{path.name}: include {name} needs local {local!r}"
            for other in re.findall(r"\w+", includes_part.removeprefix("s")):
                assert other in includes_of(before_raw), f"{path.name}: {name} needs {other}"
    assert set(users) == set(includes), "an include that no script uses"
    assert all(n >= 2 for n in users.values()), users


def test_expand_refuses_unknown_and_nested_includes(tmp_path) -> None:
    (tmp_path / "a.lua").write_text("-- @include b\n")
    with pytest.raises(RuntimeError, match="no file"):
        expand("-- @include zzz\n", tmp_path)
    with pytest.raises(RuntimeError, match="do not nest"):
        expand("-- @include a\n", tmp_path)
    (tmp_path / "b.lua").write_text("local x = 1")
    assert expand("x\n-- @include b\ny\n", tmp_path) == (
        "x\n-- >>> include/b.lua\nlocal x = 1\n-- <<< include/b.lua\ny\n")
