"""The script registry: every ``lua/*.lua`` file, registered once by its name.

redis-py's ``Script`` runs EVALSHA and, on NOSCRIPT (after a restart or SCRIPT FLUSH), loads
the script and retries by itself, so the registry keeps no cache state of its own.
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
