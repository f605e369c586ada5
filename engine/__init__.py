"""Concert ticketing engine: Redis holds all state, every change is one atomic Lua script."""
