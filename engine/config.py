"""Settings from the environment, each with a default (docs/configuration.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: float, cast: type, zero_ok: bool) -> float:
    """A number from the environment: > 0, or >= 0 for a knob that 0 turns off."""
    raw = os.environ.get(name)
    value = default if raw is None or raw == "" else cast(raw)
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>=' if zero_ok else '>'} 0, got {raw!r}")
    return value


def _seconds(name: str, default: float) -> float:
    return _env(name, default, float, zero_ok=False)


def _count(name: str, default: int) -> int:
    return int(_env(name, default, int, zero_ok=False))


def _whole(name: str, default: int) -> int:
    """A count that may be 0 (a knob that 0 turns off)."""
    return int(_env(name, default, int, zero_ok=True))


def _rate(name: str, default: float) -> float:
    """A rate a second that may be 0 (off)."""
    return _env(name, default, float, zero_ok=True)


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "1", "true", "0", "false"):
        return default if raw == "" else raw in ("1", "true")
    raise ValueError(f"{name} must be 1, 0, true or false, got {raw!r}")


def _ticket_key() -> str:
    """TICKET_SIGNING_KEY (a PEM, ``\\n`` escapes allowed for a one-line value), or the file
    TICKET_SIGNING_KEY_FILE names (a mounted secret; what `make run` makes in var/)."""
    text = os.environ.get("TICKET_SIGNING_KEY", "").replace("\\n", "\n")
    path = os.environ.get("TICKET_SIGNING_KEY_FILE", "")
    if text and path:
        raise ValueError("set TICKET_SIGNING_KEY or TICKET_SIGNING_KEY_FILE, not both")
    if path:
        try:
            return Path(path).read_text()
        except OSError as e:
            raise ValueError(f"TICKET_SIGNING_KEY_FILE: cannot read {path}: {e}") from e
    return text


def _challenge_key() -> str:
    """CHALLENGE_HMAC_KEY, or the file CHALLENGE_HMAC_KEY_FILE names (a mounted secret)."""
    text = os.environ.get("CHALLENGE_HMAC_KEY", "")
    path = os.environ.get("CHALLENGE_HMAC_KEY_FILE", "")
    if text and path:
        raise ValueError("set CHALLENGE_HMAC_KEY or CHALLENGE_HMAC_KEY_FILE, not both")
    if path:
        try:
            text = Path(path).read_text().strip()
        except OSError as e:
            raise ValueError(f"CHALLENGE_HMAC_KEY_FILE: cannot read {path}: {e}") from e
    if text and len(text.encode()) < 32:
        raise ValueError("CHALLENGE_HMAC_KEY must be at least 32 bytes")
    return text


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Queue: how many tokens a concert keeps ACTIVE at once, and how fast it admits new ones.
    active_limit: int = 1000
    admit_per_second: int = 200
    # Admission sized to the stock: ACTIVE tokens at most this many per seat still free or
    # held (0: no such bound), plus one per returned seat on offer to the queue.
    admit_per_seat: float = 2.0
    # A seat that comes back (a hold ended without a sale, a refund) while customers wait is
    # offered to those admitted after its return for this long (0: to anyone at once).
    return_hold_seconds: float = 30.0
    active_ttl_seconds: float = 600.0
    waiting_idle_seconds: float = 120.0
    # The queue's cap per concert: past it a new customer gets 503 QUEUE_FULL, so fake
    # arrivals cannot fill Redis (1,000,000 waiters take ~230 MB; redis.conf allows 1 GB).
    max_waiting: int = 1_000_000
    # Seats: how long a hold lasts before its seat is free again.
    hold_ttl_seconds: float = 300.0
    # Open holds plus paid seats of one customer in one concert (0: no limit).
    max_tickets_per_customer: int = 4
    # Rate limits a second (0: off), a token bucket of RATE_BURST in the script itself:
    # issue and reserve per customer; issue per client address (off unless asked for, with
    # X-Forwarded-For believed only from TRUSTED_PROXIES).
    issue_rate_per_customer: float = 2.0
    reserve_rate_per_customer: float = 2.0
    issue_rate_per_address: float = 0.0
    rate_burst: int = 5
    trusted_proxies: str = ""
    # The key queue tokens are made with (engine/ids.py): at least 16 bytes, the same for every
    # worker; "": one Redis keeps, made at first use.
    queue_token_key: str = field(default="", repr=False)
    # How old a worker's view of a queue may be when it answers a poll from it (0: every poll
    # of a WAITING token asks Redis, engine/queue_view.py).
    queue_view_seconds: float = 1.0
    # Entries kept (about) in each concert's event stream.
    events_maxlen: int = 100_000
    # The admin API (/admin/...) exists only when this is set; requests carry it as a Bearer.
    admin_token: str = field(default="", repr=False)  # a secret: never in a log line
    # A pay stuck in PAYING this long (a crashed payer) is finished from the balance's record.
    pay_stale_seconds: float = 10.0
    # On one Redis (not a cluster) a pay is one script (lua/pay.lua), not its three steps.
    pay_one_call: bool = True
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
    # (loadtests/http_bench/overload.py, connections.py).
    max_in_flight: int = 512
    # Replicated acknowledgements: an answer to a change waits until this many replicas took
    # it (a WAIT per batch of writes; 0: off), for at most the timeout (then 503).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 200
    idempotency_ttl_seconds: float = 86400.0
    # A hold closed (cancelled or expired) that no pay ever touched is kept this long instead
    # (its late pay is 409 within it, 404 after): it has no pay records, and a token's holds
    # closed this way are what anyone with a token can make Redis keep (lua/admit.lua).
    closed_hold_keep_seconds: float = 900.0
    history_limit: int = 100
    # Past this share of a master's maxmemory, a charge that would create a customer's balance
    # or a new Idempotency-Key record there is refused (503 STORE_FULL; 0: never): what an
    # anonymous flood can grow without bound stops here, and the rest stays for the queue,
    # holds and pays (engine/memory.py).
    memory_watermark: float = 0.75
    # Customer authentication (api/auth.py): "open" (the report's contract: nobody is asked
    # who they are) or "jwt" (a bearer JWT names the customer; charges need a scope).
    auth_mode: str = "open"
    auth_jwt_secret: str = field(default="", repr=False)  # HS256
    auth_jwt_public_key: str = field(default="", repr=False)  # PEM: RS256 (RSA) or ES256 (P-256)
    auth_jwt_issuer: str = ""  # "": iss not checked
    auth_jwt_audience: str = ""  # "": a token with an aud claim is refused
    auth_jwt_leeway_seconds: float = 30.0  # clock skew allowed on exp and nbf
    auth_jwt_cache_size: int = 10_000  # verified tokens kept by their exact bytes (0: off)
    # Tickets (engine/tickets.py): the Ed25519 private key (PEM) every worker signs with, from
    # TICKET_SIGNING_KEY or the file TICKET_SIGNING_KEY_FILE names. "": no tickets served
    # (open mode; jwt mode refuses to start without one, api/app.py).
    ticket_signing_key: str = field(default="", repr=False)
    # The proof-of-work gate (engine/challenge.py): the HMAC key its challenges are signed
    # with, the same for every worker ("": derived from TICKET_SIGNING_KEY; neither: no
    # challenge is served and a concert behind the gate takes no new token), and how long a
    # challenge may be solved and used (a solution is remembered that long, to be used once).
    challenge_hmac_key: str = field(default="", repr=False)
    challenge_ttl_seconds: float = 120.0
    # Presale codes a concert may hold at most (engine/access_codes.py; ~90 bytes of Redis
    # each): only operators make them, at most 100,000 a call.
    access_codes_per_concert: int = 1_000_000

    # The *_seconds above in whole milliseconds, as the scripts take them (computed once).
    idle_ms: int = field(init=False, repr=False, compare=False)
    hold_ms: int = field(init=False, repr=False, compare=False)
    active_ttl_ms: int = field(init=False, repr=False, compare=False)
    stale_ms: int = field(init=False, repr=False, compare=False)
    return_hold_ms: int = field(init=False, repr=False, compare=False)
    keep_ms: int = field(init=False, repr=False, compare=False)
    closed_keep_ms: int = field(init=False, repr=False, compare=False)
    # A rate-limit bucket untouched this long is full again (the tick drops it).
    bucket_idle_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_auth()
        if not 0 <= self.memory_watermark <= 1:
            raise ValueError(f"MEMORY_WATERMARK must be a share from 0 to 1, got "
                             f"{self.memory_watermark!r}")
        if self.queue_token_key and len(self.queue_token_key.encode()) < 16:
            raise ValueError("QUEUE_TOKEN_KEY needs at least 16 bytes (or empty: one made "
                             "and kept in Redis)")
        object.__setattr__(self, "idle_ms", self.ms("waiting_idle_seconds"))
        object.__setattr__(self, "hold_ms", self.ms("hold_ttl_seconds"))
        object.__setattr__(self, "active_ttl_ms", self.ms("active_ttl_seconds"))
        object.__setattr__(self, "stale_ms", self.ms("pay_stale_seconds"))
        object.__setattr__(self, "return_hold_ms", round(self.return_hold_seconds * 1000))
        object.__setattr__(self, "keep_ms", self.ms("idempotency_ttl_seconds"))
        object.__setattr__(self, "closed_keep_ms", self.ms("closed_hold_keep_seconds"))
        rates = [r for r in (self.issue_rate_per_customer, self.reserve_rate_per_customer,
                             self.issue_rate_per_address) if r > 0]
        object.__setattr__(self, "bucket_idle_ms",
                           max(1000, round(self.rate_burst / min(rates, default=1) * 1000)))

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        return cls(
            redis_url=os.environ.get("REDIS_URL", d.redis_url),
            active_limit=_count("ACTIVE_LIMIT", d.active_limit),
            admit_per_second=_count("ADMIT_PER_SECOND", d.admit_per_second),
            admit_per_seat=_rate("ADMIT_PER_SEAT", d.admit_per_seat),
            return_hold_seconds=_rate("RETURN_HOLD_SECONDS", d.return_hold_seconds),
            active_ttl_seconds=_seconds("ACTIVE_TTL_SECONDS", d.active_ttl_seconds),
            waiting_idle_seconds=_seconds("WAITING_IDLE_SECONDS", d.waiting_idle_seconds),
            max_waiting=_count("MAX_WAITING", d.max_waiting),
            hold_ttl_seconds=_seconds("HOLD_TTL_SECONDS", d.hold_ttl_seconds),
            max_tickets_per_customer=_whole("MAX_TICKETS_PER_CUSTOMER",
                                            d.max_tickets_per_customer),
            issue_rate_per_customer=_rate("ISSUE_RATE_PER_CUSTOMER", d.issue_rate_per_customer),
            reserve_rate_per_customer=_rate("RESERVE_RATE_PER_CUSTOMER",
                                            d.reserve_rate_per_customer),
            issue_rate_per_address=_rate("ISSUE_RATE_PER_ADDRESS", d.issue_rate_per_address),
            rate_burst=_count("RATE_BURST", d.rate_burst),
            trusted_proxies=os.environ.get("TRUSTED_PROXIES", d.trusted_proxies),
            events_maxlen=_count("EVENTS_MAXLEN", d.events_maxlen),
            queue_token_key=os.environ.get("QUEUE_TOKEN_KEY", ""),
            queue_view_seconds=_rate("QUEUE_VIEW_SECONDS", d.queue_view_seconds),
            admin_token=os.environ.get("ADMIN_TOKEN", d.admin_token),
            pay_stale_seconds=_seconds("PAY_STALE_SECONDS", d.pay_stale_seconds),
            pay_one_call=_flag("PAY_ONE_CALL", d.pay_one_call),
            tick_seconds=_seconds("TICK_SECONDS", d.tick_seconds),
            redis_connect_timeout=_seconds("REDIS_CONNECT_TIMEOUT", d.redis_connect_timeout),
            redis_command_timeout=_seconds("REDIS_COMMAND_TIMEOUT", d.redis_command_timeout),
            redis_max_pending=_count("REDIS_MAX_PENDING", d.redis_max_pending),
            max_in_flight=_whole("MAX_IN_FLIGHT", d.max_in_flight),
            redis_wait_replicas=_whole("REDIS_WAIT_REPLICAS", d.redis_wait_replicas),
            redis_wait_timeout_ms=_count("REDIS_WAIT_TIMEOUT_MS", d.redis_wait_timeout_ms),
            idempotency_ttl_seconds=_seconds("IDEMPOTENCY_TTL_SECONDS",
                                             d.idempotency_ttl_seconds),
            closed_hold_keep_seconds=_seconds("CLOSED_HOLD_KEEP_SECONDS",
                                              d.closed_hold_keep_seconds),
            history_limit=_count("HISTORY_LIMIT", d.history_limit),
            memory_watermark=_env("MEMORY_WATERMARK", d.memory_watermark, float, zero_ok=True),
            auth_mode=os.environ.get("AUTH_MODE", d.auth_mode) or d.auth_mode,
            auth_jwt_secret=os.environ.get("AUTH_JWT_SECRET", ""),
            # A PEM in one line (as .env files and CI secrets often hold it) has "\n" escapes.
            auth_jwt_public_key=os.environ.get("AUTH_JWT_PUBLIC_KEY", "").replace("\\n", "\n"),
            auth_jwt_issuer=os.environ.get("AUTH_JWT_ISSUER", ""),
            auth_jwt_audience=os.environ.get("AUTH_JWT_AUDIENCE", ""),
            auth_jwt_leeway_seconds=_rate("AUTH_JWT_LEEWAY_SECONDS",
                                            d.auth_jwt_leeway_seconds),
            auth_jwt_cache_size=_whole("AUTH_JWT_CACHE_SIZE", d.auth_jwt_cache_size),
            ticket_signing_key=_ticket_key(),
            challenge_hmac_key=_challenge_key(),
            challenge_ttl_seconds=_seconds("CHALLENGE_TTL_SECONDS", d.challenge_ttl_seconds),
            access_codes_per_concert=_count("ACCESS_CODES_PER_CONCERT",
                                            d.access_codes_per_concert),
        )

    def _check_auth(self) -> None:
        """A mode that cannot work is a start-up error, not a 401 on every request."""
        if self.auth_mode not in ("open", "jwt"):
            raise ValueError(f"AUTH_MODE must be 'open' or 'jwt', got {self.auth_mode!r}")
        if self.auth_mode == "jwt":
            if bool(self.auth_jwt_secret) == bool(self.auth_jwt_public_key):
                raise ValueError("AUTH_MODE=jwt needs exactly one key: AUTH_JWT_SECRET (HS256) "
                                 "or AUTH_JWT_PUBLIC_KEY (PEM, RS256/ES256)")
            if self.auth_jwt_secret and len(self.auth_jwt_secret.encode()) < 32:
                raise ValueError("AUTH_JWT_SECRET must be at least 32 bytes (HS256, RFC 7518)")
        if self.auth_jwt_leeway_seconds < 0 or self.auth_jwt_cache_size < 0:
            raise ValueError("AUTH_JWT_LEEWAY_SECONDS and AUTH_JWT_CACHE_SIZE must be >= 0")

    def ms(self, name: str) -> int:
        """A *_seconds setting in whole milliseconds, as the Lua scripts take it."""
        return max(1, round(getattr(self, name) * 1000))


SETTING_NAMES = [f.name for f in fields(Settings) if f.init]
