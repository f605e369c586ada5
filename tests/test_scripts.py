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
    token = "2.7.1." + "a" * 32
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
    # tick's, only with something to forget; lease: the tick's, only when Redis is full (each
    # tested apart). pay.lua: only on one Redis (a cluster pays in steps).
    cluster = {"pay"} if settings.redis_url.startswith(SCHEME) else set()
    assert {name for name, _, _ in calls} == set(SOURCES) - {
        "create_option", "reprice", "configure", "forget", "lease"} - cluster
    for name, keys, args in calls:
        header = SOURCES[name].split("]]", 1)[0]
        named_keys = re.findall(r"KEYS\[(\d+)\]", header)
        named_args = re.findall(r"ARGV\[(\d+)\]", header)
        optional = len(re.findall(r"KEYS\[\d+\] \w+\s+\w+\s+\(optional\)", header))
        assert len(named_keys) - optional <= len(keys) <= len(named_keys), name
        rest = re.search(r"ARGV\[(\d+)\.\.\]", header)  # "ARGV[13..] per row: ..."
        # "ARGV[17] (optional) ...": the engine leaves out the empty ones at the end.
        optional_args = len(re.findall(r"ARGV\[\d+\] \(optional\)", header))
        if rest:
            assert len(args) >= int(rest[1]) - 1, name
        else:
            assert len(named_args) - optional_args <= len(args) <= len(named_args), name
        # Keys by name: each key's kind (what follows its hash tag: tk:{c:2}:tokens is
        # "tokens", tk:{c:2}:seats:41150 "seats") is the name its header gives that place.
        names = re.findall(r"KEYS\[\d+\]\s+(\w+)", header)
        kinds = [k.split("}:", 1)[1].split(":", 1)[0] for k in keys]
        assert kinds == names[:len(kinds)], f"{name}: sent {kinds}, the header names {names}"
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


LUA_KEYWORDS = set("and break do else elseif end false for function if in local nil not or "
                   "repeat return then true until while".split())
LUA_GLOBALS = {"redis", "cjson", "string", "math", "table", "tonumber", "tostring", "ipairs",
               "pairs", "unpack", "type", "error", "select", "bit"}


def _code(text: str) -> str:
    """Lua text without its comments and strings (each string becomes "")."""
    text = re.sub(r"--\[\[.*?\]\]", " ", text, flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    return re.sub(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", '""', text)


def _declared(code: str) -> set[str]:
    """Every name a chunk declares: locals, functions, parameters, loop variables."""
    names: set[str] = set()
    for group in re.findall(r"\blocal\s+(?:function\s+)?([\w,\s]+?)(?:=|\n|\()", code):
        names |= set(re.findall(r"\w+", group))
    for params in re.findall(r"\bfunction\b[\w.:\s]*\(([^)]*)\)", code):
        names |= set(re.findall(r"\w+", params))
    for group in re.findall(r"\bfor\s+([\w,\s]+?)\s+(?:in|=)", code):
        names |= set(re.findall(r"\w+", group))
    return names


def _functions(code: str) -> set[str]:
    return set(re.findall(r"^local function (\w+)", code, re.M))


INCLUDES = {p.stem: p.read_text() for p in INCLUDE_DIR.glob("*.lua")}


@pytest.mark.parametrize("name", sorted(INCLUDES))
def test_an_include_reads_only_what_it_is_given(name: str) -> None:
    """An include defines functions that take their inputs as parameters (BullMQ's
    includes/*.lua): every name it reads is its own, a parameter, a function of an include it
    pulls in itself, or Redis's Lua (redis, cjson, string, ...). Never a caller's local."""
    code = _code(INCLUDES[name])
    known = _declared(code) | LUA_KEYWORDS | LUA_GLOBALS
    for other in includes_of(INCLUDES[name]):
        known |= _functions(_code(expand(f"-- @include {other}\n")))
    read = {m.group(1) for m in re.finditer(r"(?<![.:\w])([A-Za-z_]\w*)(?!\w)(?!\s*=[^=])",
                                            code)}
    assert read <= known, f"include/{name}.lua reads names it is not given: {read - known}"
    assert not re.search(r"\b(KEYS|ARGV)\b", code), f"include/{name}.lua reads KEYS or ARGV"


@pytest.mark.parametrize("path", sorted(LUA_DIR.glob("*.lua")), ids=lambda p: p.stem)
def test_a_script_includes_what_it_calls_and_nothing_else(path) -> None:
    """A script names only the includes whose functions it calls itself (what those need
    comes with them), and defines none of their functions again."""
    raw = path.read_text()
    own = _code(raw)
    for name in includes_of(raw):
        defined = _functions(_code(INCLUDES[name]))
        assert re.search(rf"\b({'|'.join(defined)})\s*\(", own), (
            f"{path.name} includes {name} and calls none of {defined}")
        assert not _functions(own) & defined, f"{path.name} redefines {defined}"


def test_every_include_is_used() -> None:
    used = {n for p in LUA_DIR.glob("*.lua") for n in includes_of(p.read_text())}
    used |= {n for text in INCLUDES.values() for n in includes_of(text)}
    assert used == set(INCLUDES)


def test_expand_emits_each_include_once_and_refuses_loops(tmp_path) -> None:
    (tmp_path / "a.lua").write_text("-- @include b\nlocal function a() end")
    (tmp_path / "b.lua").write_text("local function b() end")
    with pytest.raises(RuntimeError, match="no file"):
        expand("-- @include zzz\n", tmp_path)
    assert expand("x\n-- @include a\n-- @include b\ny\n", tmp_path) == (
        "x\n-- >>> include/a.lua\n-- >>> include/b.lua\nlocal function b() end\n"
        "-- <<< include/b.lua\nlocal function a() end\n-- <<< include/a.lua\n"
        "-- (include/b.lua: above)\ny\n")
    (tmp_path / "b.lua").write_text("-- @include c\n")
    (tmp_path / "c.lua").write_text("-- @include a\n")
    with pytest.raises(RuntimeError, match="include loop: a -> b -> c -> a"):
        expand("-- @include a\n", tmp_path)
