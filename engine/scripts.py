"""The script registry: every ``lua/*.lua`` file by its name.

``Store.run`` sends EVALSHA and, on NOSCRIPT (after a restart or SCRIPT FLUSH), EVAL with the
source, which also caches it again: the registry keeps no cache state of its own. (The
seeding code uses redis-py's ``register_script``, which does the same.)
"""

from __future__ import annotations

from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"

# Scripts that change nothing: a transport error on them cannot have half-applied anything.
READ_ONLY = frozenset({"balance", "catalog", "history", "stats"})


def load_sources(lua_dir: Path = LUA_DIR) -> dict[str, str]:
    """``{name: source}`` for every script file, ``name`` being the file name without .lua."""
    sources = {p.stem: p.read_text() for p in sorted(lua_dir.glob("*.lua"))}
    if not sources:
        raise RuntimeError(f"no Lua scripts found in {lua_dir}")
    return sources
