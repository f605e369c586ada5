"""The ticket drop's plan: how buyers behave (``Mix``), the run's configuration
(``DropConfig``, a JSON file the runner writes and every generator process reads), and
``make_plan``, a pure function of that configuration and its seed: arrivals (a share before
the opening, uniform over the lead time; the rest just after it, an exponential burst), and
per buyer its choices (one seat or best-available, a section, a date, pay, cancel or
abandon, greedy, top-up)."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Mix:
    """How buyers behave; shares are of all buyers unless said otherwise."""

    pre_share: float = 0.1  # arrive before the opening (uniform over the lead time)
    post_mean: float = 6.0  # the others: opening + an exponential of this mean (s) ...
    post_max: float = 30.0  # ... cut at this many seconds after the opening
    queue_abandon: float = 0.03  # give up waiting after `patience` (uniform 15-60 s)
    single: float = 0.45  # pick one seat from the list; the others: best-available 2-4
    section: float = 0.5  # ask one section (single: ?section=; best: "section")
    first_date: float = 0.6  # prefer the first date (else either)
    cancel: float = 0.05  # cancel the holds and leave
    cancel_rebuy: float = 0.04  # cancel, hold again (best-available 1-2), pay
    abandon: float = 0.06  # leave the holds to expire
    greedy: float = 0.03  # hold 4 together, then ask a fifth (409 TICKET_LIMIT)
    topup: float = 0.10  # a customer with no points: charges before paying
    think_min: float = 0.2  # seconds between a buyer's steps once ACTIVE
    think_max: float = 1.0
    refreshes: int = 5  # found nothing: look again this many times, 2 s apart


@dataclass
class DropConfig:
    base: str  # http://127.0.0.1:PORT
    concert: int
    options: list[dict]  # [{"id": 130001, "sections": ["VIP", ...], "seats": 2500}]
    buyers: int
    t_start: float  # epoch s: the plan's time zero
    opens_at: float  # epoch s
    active_ttl: float  # s: admission time = expiresAt - this
    out_dir: str
    seed: int = 13
    funded_base: int = 100_000  # customer of a funded buyer: funded_base + index + 1
    topup_base: int = 200_000  # of a buyer with no points: topup_base + index + 1
    connections: int = 64  # per generator process
    deadline: float = 0.0  # epoch s: every buyer stops by then
    mix: Mix = field(default_factory=Mix)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @staticmethod
    def load(path: Path) -> DropConfig:
        raw = json.loads(Path(path).read_text())
        raw["mix"] = Mix(**raw.get("mix", {}))
        return DropConfig(**raw)


@dataclass(frozen=True, slots=True)
class BuyerPlan:
    index: int  # arrival order
    customer: int
    arrival: float  # s after t_start
    patience: float | None  # s of waiting before giving up (None: waits)
    single: bool
    quantity: int  # best-available: 2-4 (greedy: 4)
    section: str | None
    option: int  # preferred option id (when it has seats)
    after: str  # pay | cancel | cancel-rebuy | abandon
    greedy: bool
    topup: bool
    seed: int


def make_plan(cfg: DropConfig) -> list[BuyerPlan]:
    """Every buyer of the run, in arrival order; a pure function of ``cfg``."""
    m, rng = cfg.mix, random.Random(cfg.seed)
    lead = cfg.opens_at - cfg.t_start
    arrivals = []
    for _ in range(cfg.buyers):
        if rng.random() < m.pre_share:
            arrivals.append(rng.uniform(min(0.5, lead / 4), max(lead - 0.5, lead * 3 / 4)))
        else:
            arrivals.append(lead + min(rng.expovariate(1 / m.post_mean), m.post_max))
    arrivals.sort()
    plans = []
    for i, at in enumerate(arrivals):
        greedy = rng.random() < m.greedy
        single = not greedy and rng.random() < m.single
        opt = cfg.options[0] if rng.random() < m.first_date else rng.choice(cfg.options)
        section = rng.choice(opt["sections"]) if rng.random() < m.section else None
        u = rng.random()
        after = ("cancel" if u < m.cancel else "cancel-rebuy" if u < m.cancel + m.cancel_rebuy
                 else "abandon" if u < m.cancel + m.cancel_rebuy + m.abandon else "pay")
        if greedy:
            after = "pay"
        topup = rng.random() < m.topup
        patience = rng.uniform(15, 60) if rng.random() < m.queue_abandon else None
        plans.append(BuyerPlan(
            index=i, customer=(cfg.topup_base if topup else cfg.funded_base) + i + 1,
            arrival=at, patience=patience, single=single,
            quantity=4 if greedy else rng.randint(2, 4), section=section, option=opt["id"],
            after=after, greedy=greedy, topup=topup, seed=rng.getrandbits(32)))
    return plans


def expected_seats(plans: list[BuyerPlan]) -> float:
    """Seats an admission sells, on average over the plan, while seats are free: a buyer who
    cancels buys none, cancel-rebuy 1.5 on average, and one who left the queue none (its token
    is still admitted when its turn comes within the idle limit, and takes an admission)."""
    total = sum({"pay": 1 if p.single else p.quantity, "cancel": 0, "abandon": 0,
                 "cancel-rebuy": 1.5}[p.after] for p in plans if p.patience is None)
    return total / len(plans) if plans else 0.0
