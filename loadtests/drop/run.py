"""One drop run's record (``Run``: its settings, the stats sampled every second, the CPU, the
analysis) and the names the analysis and the report share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loadtests.drop.plan import DropConfig

ETA_GOAL = 0.20
REFRESH_SECONDS = 2.0  # a buyer who finds nothing looks again after this (buyer.py)
PAY_TOTAL_OFF = "customers whose payments != their seats' prices"
BALANCE_OFF = "customers whose balance != start + charges - payments"


@dataclass
class Run:
    generator: str
    processes: int
    out: Path
    cfg: DropConfig
    seats: int
    admit: int
    per_buyer: float
    catalog: str
    active_limit: int
    hold_ttl: float
    admit_per_seat: float = 0.0  # the concert's admitPerSeat (0: admission not by stock)
    samples: list[dict] = field(default_factory=list)
    sold_out_at: float | None = None  # epoch s, as the sampler saw it
    wall: float = 0.0
    gen_cpu: float = 0.0
    gen_peak: float = 0.0
    server_cpu: float = 0.0
    machine_cpu: float = 0.0  # every process on the box, average cores
    machine_peak: float = 0.0
    warnings: list[str] = field(default_factory=list)
    analysis: dict = field(default_factory=dict)
