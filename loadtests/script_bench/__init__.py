"""The Redis-side benchmarks: each Lua script alone on Redis (``scripts``), and its cost as
the queue and the customer base grow (``scaling``), both driving the engine's own functions
through a pipelined connection that meters Redis's CPU (``driver``)."""
