"""The script registry: every ``lua/*.lua`` file by its name, with its includes expanded.

Helpers that several scripts share (the token check, the hold release, admission) live once
in ``lua/include/<name>.lua`` as functions that take what they need as parameters, and a
script pulls one in with a line ``-- @include <name>``; the registry replaces that line with
the include's text before the script is loaded (as BullMQ's loader does). An include may pull
in another the same way: each is emitted once per script, before what needs it, and a loop is
refused. A copy per script drifts; an include cannot. The price: a script file is not
runnable by itself, so ``expanded_file`` writes the text Redis runs to ``var/lua/`` and
``python -m engine debug`` prints the ``redis-cli --eval``/``--ldb`` line for that file.

``Store.run`` sends EVALSHA and, on NOSCRIPT (after a restart or SCRIPT FLUSH), EVAL with the
source, which also caches it again: the registry keeps no cache state of its own.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
INCLUDE_DIR = LUA_DIR / "include"
EXPANDED_DIR = LUA_DIR.parent / "var" / "lua"

# Scripts that change nothing: a transport error on them cannot have half-applied anything.
READ_ONLY = frozenset({"balance", "catalog", "concert_card", "history", "stats"})
# Scripts whose changes a customer is told about (a token, a hold, a payment, points): with
# REDIS_WAIT_REPLICAS their answer waits until replicas have them. The reads' own small
# writes (a poll's time, an expired hold swept) and the tick's are not waited for: a lost one
# is redone by the next call. pay_begin is not either: nobody is told of it, and the WAIT of
# pay_finish, on the same master, covers it (a WAIT waits for every earlier write there).
WRITES = frozenset({"issue", "reserve", "cancel", "pay", "debit", "pay_finish", "charge",
                    "refund", "checkin"})

_INCLUDE = re.compile(r"^-- @include (\w+)[ \t]*$", re.M)


def expand(source: str, include_dir: Path = INCLUDE_DIR) -> str:
    """``source`` with each ``-- @include name`` line replaced by ``include/name.lua`` (marked
    with a comment line before and after), whose own include lines are expanded the same
    way: each include once, at its first use, so before whatever needs it. A loop raises."""
    emitted: set[str] = set()

    def one(name: str, stack: tuple[str, ...]) -> str:
        if name in stack:
            raise RuntimeError(f"include loop: {' -> '.join((*stack, name))}")
        if name in emitted:
            return f"-- (include/{name}.lua: above)"
        path = include_dir / f"{name}.lua"
        if not path.is_file():
            raise RuntimeError(f"-- @include {name}: no file {path}")
        emitted.add(name)
        body = _INCLUDE.sub(lambda m: one(m[1], (*stack, name)), path.read_text().rstrip("\n"))
        return f"-- >>> include/{name}.lua\n{body}\n-- <<< include/{name}.lua"

    return _INCLUDE.sub(lambda m: one(m[1], ()), source)


def includes_of(source: str) -> list[str]:
    """The names a script includes, in order."""
    return _INCLUDE.findall(source)


@cache
def load_sources(lua_dir: Path = LUA_DIR) -> dict[str, str]:
    """``{name: expanded source}`` for every script file, ``name`` being the file name
    without .lua. Read once per process: scripts are code, not data."""
    sources = {p.stem: expand(p.read_text(), lua_dir / "include")
               for p in sorted(lua_dir.glob("*.lua"))}
    if not sources:
        raise RuntimeError(f"no Lua scripts found in {lua_dir}")
    return sources


def expanded_file(name: str) -> Path:
    """The text Redis runs for script ``name``, written to ``var/lua/<name>.lua`` (rewritten
    only when it changed), for ``redis-cli --eval`` and its Lua debugger."""
    source = load_sources()[name]
    path = EXPANDED_DIR / f"{name}.lua"
    if not path.is_file() or path.read_text() != source:
        EXPANDED_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return path
