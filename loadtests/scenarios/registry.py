"""The scenarios the runner knows: the report's seven (its own user counts, spawn rates and
durations as defaults, its published figures beside ours) and the soak run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"
AS_PRINTED = Path(__file__).resolve().parent / "as_printed"


@dataclass(frozen=True)
class Published:
    """Figures the report gives for a scenario (None where it gives nothing)."""

    requests: int | None = None
    failures: int | str | None = None
    avg_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class Load:
    users: int
    spawn_rate: float
    seconds: float


@dataclass(frozen=True)
class Scenario:
    key: str  # s1 .. s7, soak
    file: str  # the locustfile's name without .py
    title: str
    load: Load  # the report's (or, for soak, ours)
    small: Load  # --scale small: the whole set in a few minutes on 2 cores
    published: Published | None = None
    rate_from_report: bool = True  # False: the report gives no spawn rate, this one is ours
    shape: bool = False  # a LoadTestShape drives the users (§2)
    env: dict[str, str] = field(default_factory=dict)  # extra settings of our own API

    @property
    def path(self) -> Path:
        return LOCUSTFILES / f"{self.file}.py"

    @property
    def printed(self) -> Path | None:
        """The report's own script, as it prints it (the soak has none)."""
        path = AS_PRINTED / f"{self.file}.py"
        return path if path.is_file() else None

    @property
    def shared_token(self) -> bool:
        """The printed script sends one token of its own for every user (§2-§4)."""
        return self.printed is not None and "REPORT_TOKEN" in self.printed.read_text()


# The soak stack shortens every lifetime so a run of minutes goes through many of them, and
# keeps histories short so that 200 customers' histories fill up during the warm-up.
SOAK_ENV = {"ACTIVE_TTL_SECONDS": "30", "HOLD_TTL_SECONDS": "10", "WAITING_IDLE_SECONDS": "20",
            "IDEMPOTENCY_TTL_SECONDS": "60", "HISTORY_LIMIT": "10"}
SOAK_LONGEST_TTL = 60.0

SCENARIOS: dict[str, Scenario] = {s.key: s for s in [
    Scenario("s1", "s1_token_issue", "§1 token issue", Load(10_000, 10, 600),
             Load(1000, 100, 30), Published(failures="HTTP 500s past ~500 tokens")),
    Scenario("s2", "s2_token_status", "§2 token status", Load(2000, 50, 300),
             Load(1000, 100, 30), Published(178_923, 0, avg_ms=5.79, max_ms=689), shape=True),
    Scenario("s3", "s3_available_dates", "§3 available dates", Load(10_000, 100, 600),
             Load(1000, 100, 30), Published(108_126, 1, avg_ms=1647.22, max_ms=62_173)),
    Scenario("s4", "s4_available_seats", "§4 available seats", Load(1200, 50, 360),
             Load(1200, 100, 30), Published(182_304, 0, p50_ms=3, p99_ms=17, max_ms=68_326),
             rate_from_report=False),
    Scenario("s5", "s5_point", "§5 point balance", Load(10_000, 100, 120),
             Load(1000, 100, 30), Published(108_126, 0, p95_ms=3500), rate_from_report=False),
    Scenario("s6", "s6_point_charge", "§6 point charge", Load(10_000, 100, 180),
             Load(1000, 100, 30), Published(149_787, 12, avg_ms=4700, p99_ms=75_000),
             rate_from_report=False),
    Scenario("s7", "s7_booking_flow", "§7 booking flow", Load(500, 10, 120),
             Load(500, 50, 30), Published(4224, 3887, avg_ms=250.76, max_ms=36_111)),
    Scenario("soak", "soak", "soak (endurance)", Load(200, 20, 1800), Load(200, 50, 300),
             env=SOAK_ENV),
]}
REPORT_SEVEN = [k for k in SCENARIOS if k != "soak"]


def resolve(name: str) -> list[Scenario]:
    """``all``, a key (``s3``, ``3``), a file name (``s3_available_dates``) or a title word."""
    name = name.strip().lower().removeprefix("§")
    if name == "all":
        return [SCENARIOS[k] for k in REPORT_SEVEN]
    for s in SCENARIOS.values():
        if name in (s.key, s.key.removeprefix("s"), s.file, s.file.split("_", 1)[-1]):
            return [s]
    known = ", ".join(f"{s.key} ({s.file})" for s in SCENARIOS.values())
    raise ValueError(f"unknown scenario {name!r}: one of all, {known}")


def describe(load: Load, ref: Load | None = None, rate_ours: bool = False) -> str:
    def part(value: str, ref_value: str | None) -> str:
        return f"{value} (report {ref_value})" if ref_value and ref_value != value else value

    users = f"{load.users:,} users"
    rate = f"{load.spawn_rate:g}/s"
    secs = f"{load.seconds:g} s"
    if ref is None:
        return f"{users}, {rate}{' (ours)' if rate_ours else ''}, {secs}"
    return ", ".join([part(users, f"{ref.users:,} users"),
                      part(rate, f"{ref.spawn_rate:g}/s") if not rate_ours else rate,
                      part(secs, f"{ref.seconds:g} s")])


def stack_env(s: Scenario, load: Load) -> dict[str, str]:
    """Our API's settings for a scenario: enough ACTIVE room and admissions that the queue
    never holds the scenario's users back, tokens that outlive the run; the soak's short TTLs."""
    env = {"ACTIVE_LIMIT": str(max(20_000, 2 * load.users)), "ADMIT_PER_SECOND": "2000",
           "ACTIVE_TTL_SECONDS": str(int(max(600, load.seconds + 300)))}
    return {**env, **s.env}
