"""One scenario's outcome: locust's figures, the CPU of locust and of the stack, the soak's
verdict, and the warnings that say when a figure is the load generator's or the box's rather
than the engine's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from devstack.cpu import cores
from loadtests.generator.locust_csv import num
from loadtests.scenarios.registry import Load, Scenario

SATURATED = 0.90  # a generator above this share of its cores is the bottleneck


@dataclass
class Result:
    scenario: Scenario
    load: Load
    scaled: bool
    out_dir: Path
    exit_code: int | None = None
    wall: float = 0.0
    total: dict[str, str] = field(default_factory=dict)  # locust's Aggregated row
    rows: list[dict[str, str]] = field(default_factory=list)  # one per request name
    failures_csv: list[dict[str, str]] = field(default_factory=list)
    locust_cpu: float = 0.0  # average cores
    locust_peak: float = 0.0  # highest 5 s average, cores
    locust_cores: int = 1
    server_cpu: float | None = None  # average cores of API + Redis (own stack only)
    machine_peak: float = 0.0  # highest 5 s average of locust + API + Redis, cores
    locust_cpu_warnings: int = 0
    charts: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    soak: tuple | None = None  # (verdict, per-series, sentence, warmup, samples csv, chart)
    as_printed: bool = False  # the report's own script (no body checks, no codes read)

    def figure(self, column: str) -> float | None:
        return num(self.total.get(column))

    @property
    def requests(self) -> int:
        return int(self.figure("Request Count") or 0)

    @property
    def failures(self) -> int:
        return int(self.figure("Failure Count") or 0)

    def count(self, marker: str) -> int:
        return sum(int(num(r["Request Count"]) or 0) for r in self.rows if marker in r["Name"])

    @property
    def reserve_conflicts(self) -> int:
        """A printed §7's 409s on POST /api/reserve: users race for the first free seat, and
        the printed script reads no code (SEAT_TAKEN, or the ticket limit it cannot tell)."""
        return sum(int(num(r.get("Occurrences")) or 0) for r in self.failures_csv
                   if r.get("Name") == "/api/reserve" and "409" in r.get("Error", ""))

    @property
    def unexpected(self) -> int:
        """Failures, a printed §7's seat conflicts aside."""
        return self.failures - (self.reserve_conflicts if self.as_printed else 0)

    @property
    def ok(self) -> bool:
        return (self.exit_code in (0, 1) and self.requests > 0 and self.unexpected == 0
                and (self.soak is None or self.soak[0] != "fail"))


def add_warnings(res: Result) -> None:
    w = res.warnings
    if res.exit_code not in (0, 1):
        w.append(f"locust exited with {res.exit_code}: see {res.out_dir.name}/locust.log")
    if not res.total:
        w.append("locust wrote no statistics")
    if res.locust_peak >= SATURATED * res.locust_cores:
        w.append(f"the load generator saturated: locust used {res.locust_peak:.2f} of its "
                 f"{res.locust_cores} core{'s' if res.locust_cores > 1 else ''} at its peak "
                 "(5 s average), so response times include locust's own queueing; use "
                 "--processes or fewer users, or workers on other machines")
    elif res.locust_cpu_warnings:
        w.append(f"locust logged {res.locust_cpu_warnings} 'CPU usage above 90%' warning(s): "
                 "one of its processes saturated")
    if res.server_cpu is not None and res.machine_peak >= SATURATED * cores():
        w.append(f"the machine's {cores()} cores were saturated ({res.machine_peak:.2f} cores "
                 "busy at the peak between locust, the API and Redis): the figures are the "
                 "box's, not the engine's alone")
    if res.scenario.shape is False and res.load.users / res.load.spawn_rate > res.load.seconds:
        w.append(f"the ramp ({res.load.users / res.load.spawn_rate:.0f} s) is longer than the "
                 "run: the peak user count was never reached")
    if res.soak and res.soak[0] != "pass":
        w.append(f"soak {res.soak[0]}: {res.soak[2]}")
