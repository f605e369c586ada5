"""Settings from the environment, each with a default (see README, "Configuration")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    value = default if raw is None or raw == "" else float(raw)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {raw!r}")
    return value


def _whole(name: str, default: int) -> int:
    """A count that may be 0 (a knob that 0 turns off)."""
    raw = os.environ.get(name)
    value = default if raw is None or raw == "" else int(raw)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {raw!r}")
    return value


def _count(name: str, default: int) -> int:
    raw = os.environ.get(name)
    value = default if raw is None or raw == "" else int(raw)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Queue: how many tokens a concert keeps ACTIVE at once, and how fast it admits new ones.
    active_limit: int = 1000
    admit_per_second: int = 200
    active_ttl_seconds: float = 600.0
    waiting_idle_seconds: float = 120.0
    # The queue's cap per concert: past it a new customer gets 503 QUEUE_FULL, so fake
    # arrivals cannot fill Redis (1,000,000 waiters take ~230 MB; redis.conf allows 1 GB).
    max_waiting: int = 1_000_000
    # Seats: how long a hold lasts before its seat is free again.
    hold_ttl_seconds: float = 300.0
    # A pay stuck in PAYING this long (a crashed payer) is finished from the balance's record.
    pay_stale_seconds: float = 10.0
    # The API's background tick: admission, sweeps and stale-pay recovery.
    tick_seconds: float = 1.0
    # Redis client: fail fast so a hung Redis becomes a quick 503, never a hang.
    redis_connect_timeout: float = 0.25
    redis_command_timeout: float = 0.5
    # Commands waiting on the worker's Redis connection before new ones fail fast (503).
    redis_max_pending: int = 20_000
    # Requests in progress per worker before new ones get 503 OVERLOADED at once (0: no
    # bound). A served request waits behind at most this many: 512 at the ~30-45k point
    # reads/s of a worker is ~11-17 ms. 256 halves that but refused 0.05-0.3 % of 10,000
    # users' polls at 5k req/s under granian, which hands requests over in bursts
    # (loadtests/bench_overload.py, bench_connections.py).
    max_in_flight: int = 512
    # Replicated acknowledgements: an answer to a change waits until this many replicas took
    # it (a WAIT per batch of writes; 0: off), for at most the timeout (then 503).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 200
    idempotency_ttl_seconds: float = 86400.0
    history_limit: int = 100

    # The *_seconds above in whole milliseconds, as the scripts take them (computed once).
    idle_ms: int = field(init=False, repr=False, compare=False)
    hold_ms: int = field(init=False, repr=False, compare=False)
    active_ttl_ms: int = field(init=False, repr=False, compare=False)
    stale_ms: int = field(init=False, repr=False, compare=False)
    keep_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "idle_ms", self.ms("waiting_idle_seconds"))
        object.__setattr__(self, "hold_ms", self.ms("hold_ttl_seconds"))
        object.__setattr__(self, "active_ttl_ms", self.ms("active_ttl_seconds"))
        object.__setattr__(self, "stale_ms", self.ms("pay_stale_seconds"))
        object.__setattr__(self, "keep_ms", self.ms("idempotency_ttl_seconds"))

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        return cls(
            redis_url=os.environ.get("REDIS_URL", d.redis_url),
            active_limit=_count("ACTIVE_LIMIT", d.active_limit),
            admit_per_second=_count("ADMIT_PER_SECOND", d.admit_per_second),
            active_ttl_seconds=_seconds("ACTIVE_TTL_SECONDS", d.active_ttl_seconds),
            waiting_idle_seconds=_seconds("WAITING_IDLE_SECONDS", d.waiting_idle_seconds),
            max_waiting=_count("MAX_WAITING", d.max_waiting),
            hold_ttl_seconds=_seconds("HOLD_TTL_SECONDS", d.hold_ttl_seconds),
            pay_stale_seconds=_seconds("PAY_STALE_SECONDS", d.pay_stale_seconds),
            tick_seconds=_seconds("TICK_SECONDS", d.tick_seconds),
            redis_connect_timeout=_seconds("REDIS_CONNECT_TIMEOUT", d.redis_connect_timeout),
            redis_command_timeout=_seconds("REDIS_COMMAND_TIMEOUT", d.redis_command_timeout),
            redis_max_pending=_count("REDIS_MAX_PENDING", d.redis_max_pending),
            max_in_flight=_whole("MAX_IN_FLIGHT", d.max_in_flight),
            redis_wait_replicas=_whole("REDIS_WAIT_REPLICAS", d.redis_wait_replicas),
            redis_wait_timeout_ms=_count("REDIS_WAIT_TIMEOUT_MS", d.redis_wait_timeout_ms),
            idempotency_ttl_seconds=_seconds("IDEMPOTENCY_TTL_SECONDS",
                                             d.idempotency_ttl_seconds),
            history_limit=_count("HISTORY_LIMIT", d.history_limit),
        )

    def ms(self, name: str) -> int:
        """A *_seconds setting in whole milliseconds, as the Lua scripts take it."""
        return max(1, round(getattr(self, name) * 1000))


SETTING_NAMES = [f.name for f in fields(Settings) if f.init]
