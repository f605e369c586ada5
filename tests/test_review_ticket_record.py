"""Review of the ticket record ("<paid>|<open ids>|<token>|<its holds>|<bucket>"), the token
entry ("<seq>@<activeUntilMs>" / "<seq>") and reserve's sweep-when-in-the-way:
targeted cases and a random walk whose invariants are read straight from Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from engine.config import Settings
from engine.ids import parse_reservation
from engine.keys import concert_keys
from engine.store import Store, connect
from engine.tick import tick as tick_once
from tests.conftest import CONCERT, OPTION, OTHER_OPTION, active_token, auth, seat_id

ADMIN = {"Authorization": "Bearer op-secret"}
K = concert_keys(CONCERT)


def reserve(client: TestClient, token: str, seat: int, option: int = OPTION):
    return client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": option, "seatId": seat})


def hold(client: TestClient, token: str, seat: int, option: int = OPTION) -> str:
    resp = reserve(client, token, seat, option)
    assert resp.status_code == 200, resp.text
    return resp.json()["reservationId"]


def pay(client: TestClient, token: str, rid: str):
    return client.post("/api/pay", headers=auth(token), json={"reservationId": rid})


def status(client: TestClient, token: str) -> int:
    return client.get("/api/token/status", headers=auth(token)).status_code


def record(r: redis.Redis, customer: int) -> tuple[int, set[str], str, int, str] | None:
    raw = r.hget(K.tickets, str(customer))
    if raw is None:
        return None
    parts = raw.decode().split("|")
    parts += [""] * (5 - len(parts))
    paid, ids, token, held, bucket = parts[:5]
    return int(paid), set(filter(None, ids.split(","))), token, int(held or 0), bucket


def reservations(r: redis.Redis) -> dict[str, dict]:
    return {k.decode(): orjson.loads(v) for k, v in r.hgetall(K.res).items()}



def test_a_former_ticket_record_keeps_the_token_until_its_last_hold_is_paid(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """The customer's record is still "<paid>|<open ids>" and its token's count of 2 is in
    the former held hash. Paying one of the two holds must leave the token ACTIVE: else the
    other hold can never be paid (401) and its seat sits out its hold time."""
    client = make_client()
    token = active_token(client, 1)
    a, b = hold(client, token, seat_id(OPTION, 1)), hold(client, token, seat_id(OPTION, 2))
    ids = [parse_reservation(x)[1] for x in (a, b)]
    catalog.hset(K.tickets, "1", "0|" + ",".join(ids))  # as the former code wrote it
    catalog.hset(f"{K.tag}:held", "1", 2)  # the former held hash
    assert pay(client, token, a).status_code == 200
    assert status(client, token) == 200
    assert pay(client, token, b).status_code == 200


def test_a_hold_after_the_deploy_does_not_end_the_token_of_earlier_open_holds(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """Same deploy: the token made hold a before it; the first hold after it starts the
    count at 1, so paying that one ends the token with a still open."""
    client = make_client()
    token = active_token(client, 1)
    a = hold(client, token, seat_id(OPTION, 1))
    catalog.hset(K.tickets, "1", "0|" + parse_reservation(a)[1])
    catalog.hset(f"{K.tag}:held", "1", 1)
    c = hold(client, token, seat_id(OPTION, 3))
    assert pay(client, token, c).status_code == 200
    assert status(client, token) == 200  # a is open under this token
    assert pay(client, token, a).status_code == 200


SEATS = [(o, seat_id(o, n)) for o in (OPTION, OTHER_OPTION) for n in range(1, 5)]
LIMIT = 3


class Walk:
    """Random calls of three customers through the API, with the invariants of the ticket
    record checked against the reservations' own statuses after every call."""

    def __init__(self, client: TestClient, r: redis.Redis, settings: Settings,
                 rnd: random.Random) -> None:
        self.client, self.r, self.settings, self.rnd = client, r, settings, rnd
        self.tokens: dict[int, str] = {}
        self.log: list[str] = []
        self.buckets: dict[int, tuple[float, int]] = {}  # the reserve bucket last seen

    # --- what Redis says ---------------------------------------------------------------
    def open_of(self, c: int) -> dict[str, dict]:
        return {i: rec for i, rec in reservations(self.r).items()
                if rec["customer"] == str(c) and rec["status"] in ("HELD", "PAYING")}

    def check_bucket(self, c: int, rec: tuple | None) -> None:
        """The reserve rate limit's bucket is neither lost nor refilled beyond its rate: it
        goes only once full again, and each change is one draw from the refilled level."""
        rate, burst = self.settings.reserve_rate_per_customer, self.settings.rate_burst
        if rate <= 0:
            return
        prev = self.buckets.get(c)
        now = self.now()
        if not rec or not rec[4]:
            if prev:
                level = min(burst, prev[0] + (now - prev[1]) * rate / 1000)
                assert level >= burst - 1e-6, (f"bucket of {c} lost at {level}", self.log[-6:])
            self.buckets.pop(c, None)
            return
        level, at = rec[4].split(":")
        cur = (float(level), int(at))
        if prev and cur != prev:
            refilled = min(burst, prev[0] + (cur[1] - prev[1]) * rate / 1000)
            assert cur[0] <= refilled - 1 + 0.002, (f"bucket of {c}: {prev} -> {cur}",
                                                    self.log[-6:])
        self.buckets[c] = cur

    def check(self) -> None:
        res = reservations(self.r)
        for c in (1, 2, 3):
            self.check_bucket(c, record(self.r, c))
            mine = {i: x for i, x in res.items() if x["customer"] == str(c)}
            open_ = {i: x for i, x in mine.items() if x["status"] in ("HELD", "PAYING")}
            paid = sum(x["status"] in ("PAID", "REFUNDING") for x in mine.values())
            rec = record(self.r, c)
            where = f"customer {c} after {self.log[-6:]}: {rec}, open {sorted(open_)}"
            if rec is None:
                assert not open_ and paid == 0, where
                continue
            assert rec[1] == set(open_), where
            assert rec[0] == paid, where
            assert rec[0] + len(rec[1]) <= LIMIT, where
            if rec[1]:
                own = sum(x["token"] == rec[2] for x in open_.values())
                assert rec[3] == own, where

    def seq_of(self, c: int) -> str | None:
        entry = self.r.hget(K.tokens, str(c))
        return entry.decode().split("@")[0] if entry else None

    # --- the calls ---------------------------------------------------------------------
    def issue(self, c: int) -> None:
        resp = self.client.post("/api/token/issue", json={"customerId": c, "concertId": CONCERT})
        assert resp.status_code == 200, resp.text
        self.tokens[c] = resp.json()["tokenValue"]

    def live(self, i: str, x: dict, now: int) -> bool:
        if x["status"] == "PAYING" or x["status"] in ("PAID", "REFUNDING"):
            return True
        score = self.r.zscore(K.holds, i)
        return x["status"] == "HELD" and score is not None and score > now

    def now(self) -> int:
        sec, usec = self.r.time()
        return sec * 1000 + usec // 1000

    def reserve(self, c: int) -> None:
        if c not in self.tokens:
            return
        option, seat = self.rnd.choice(SEATS)
        now = self.now()
        res = reservations(self.r)
        mine = sum(self.live(i, x, now) for i, x in res.items() if x["customer"] == str(c))
        taken = any(x["seat"] == str(seat) and self.live(i, x, now) for i, x in res.items())
        resp = reserve(self.client, self.tokens[c], seat, option)
        code = resp.json().get("code") if resp.status_code != 200 else "OK"
        self.log.append(f"reserve {c} {seat}: {code}")
        if code == "TICKET_LIMIT":
            assert mine >= LIMIT, self.log[-6:]
        if code == "SEAT_TAKEN":
            assert taken, self.log[-6:]

    def reserve_best(self, c: int) -> None:
        if c not in self.tokens:
            return
        q = self.rnd.randint(1, 3)
        resp = self.client.post("/api/reserve", headers=auth(self.tokens[c]), json={
            "concertOptionId": self.rnd.choice((OPTION, OTHER_OPTION)), "quantity": q})
        self.log.append(f"best {c} x{q}: {resp.status_code} {resp.json().get('code')}")

    def cancel(self, c: int) -> None:
        mine = sorted(self.open_of(c))
        if c not in self.tokens or not mine:
            return
        i = self.rnd.choice(mine)
        resp = self.client.delete(f"/api/reserve/{CONCERT}.{i}", headers=auth(self.tokens[c]))
        self.log.append(f"cancel {c} {i[:6]}: {resp.status_code}")

    def pay(self, c: int) -> None:
        mine = sorted(self.open_of(c))
        if c not in self.tokens or not mine:
            return
        i = self.rnd.choice(mine)
        made_under = reservations(self.r)[i]["token"]
        current = self.seq_of(c) == made_under
        resp = pay(self.client, self.tokens[c], f"{CONCERT}.{i}")
        self.log.append(f"pay {c} {i[:6]}: {resp.status_code} {resp.json().get('code')}")
        if resp.status_code == 200 and current:
            still = [j for j, x in self.open_of(c).items() if x["token"] == made_under]
            ended = self.seq_of(c) != made_under
            assert ended == (not still), (self.log[-6:], still)

    def expire_hold(self, c: int) -> None:
        held = [i for i, x in self.open_of(c).items() if x["status"] == "HELD"]
        if not held:
            return
        i = self.rnd.choice(sorted(held))
        rec = reservations(self.r)[i]
        rec["expires"] = 1
        self.r.hset(K.res, i, orjson.dumps(rec))
        self.r.zadd(K.holds, {i: 1})
        self.log.append(f"expire hold {c} {i[:6]}")

    def expire_token(self, c: int) -> None:
        entry = self.r.hget(K.tokens, str(c))
        if entry and b"@" in entry:
            self.r.hset(K.tokens, str(c), entry.split(b"@")[0] + b"@1")
            self.r.zadd(K.active, {str(c): 1})
            self.log.append(f"expire token {c}")

    def revoke(self, c: int) -> None:
        resp = self.client.delete(f"/admin/concerts/{CONCERT}/tokens/{c}", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        self.log.append(f"revoke {c}")

    def refund(self, c: int) -> None:
        sold = [i for i, x in reservations(self.r).items()
                if x["customer"] == str(c) and x["status"] == "PAID"]
        if not sold:
            return
        i = self.rnd.choice(sorted(sold))
        resp = self.client.post(f"/admin/reservations/{CONCERT}.{i}/refund", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        self.log.append(f"refund {c} {i[:6]}")

    def tick(self, c: int) -> None:
        async def go() -> None:
            store = Store(connect(self.settings), self.settings)
            try:
                await tick_once(store, CONCERT)
            finally:
                await store.aclose()

        asyncio.run(go())
        self.log.append("tick")

    def read(self, c: int) -> None:
        if c in self.tokens:
            self.client.get(f"/api/{OPTION}/available-seats", headers=auth(self.tokens[c]))
            self.log.append(f"seats {c}")

    def step(self) -> None:
        op = self.rnd.choices(
            [self.issue, self.reserve, self.reserve_best, self.cancel, self.pay,
             self.expire_hold, self.expire_token, self.revoke, self.refund, self.tick,
             self.read],
            weights=[3, 8, 3, 2, 7, 3, 1, 0.5, 1, 1, 1])[0]
        op(self.rnd.randint(1, 3))
        self.check()


@pytest.mark.parametrize("rate", [0, 8], ids=["unlimited", "rate-limited"])
@pytest.mark.parametrize("one_call", [True, False], ids=["one-call", "steps"])
@pytest.mark.parametrize("seed", range(12))
def test_a_random_walk_keeps_the_ticket_record_true(
        make_client: Callable[..., TestClient], catalog: redis.Redis, settings: Settings,
        seed: int, one_call: bool, rate: int) -> None:
    """Open ids and paid count agree with the reservations' statuses after every call; open
    plus paid never pass the limit; the token's count is its own open holds; a refusal for
    the limit or a taken seat has a live reason; a pay of the token's last own hold ends it
    and no earlier pay does."""
    overrides = {"admin_token": "op-secret", "max_tickets_per_customer": LIMIT,
                 "pay_one_call": one_call, "reserve_rate_per_customer": rate,
                 "rate_burst": 3}
    client = make_client(**overrides)
    walk = Walk(client, catalog, dataclasses.replace(settings, **overrides),
                random.Random(seed))
    for c in (1, 2, 3):
        walk.issue(c)
    for _ in range(200):
        walk.step()


@pytest.mark.parametrize("between", ["same-token-holds", "new-token-holds", "revoke-new-token"])
def test_a_pay_finishing_after_the_token_changed_ends_only_its_own_token(
        settings: Settings, catalog: redis.Redis, between: str) -> None:
    """Pay in steps: between step 1 and step 3 of the pay of hold a, the customer's token
    changes (or not) and a new hold b is made. Step 3 of a must end the token only if b is
    not the same token's; the pay of b then ends the token b was made under."""
    from engine import booking, operator, queue
    from engine import pay as protocol
    from engine.ids import parse_token
    from tests.hooks import HookedStore

    steps = dataclasses.replace(settings, pay_one_call=False)
    plain = Store(connect(steps), steps)

    def seq_now() -> str | None:
        entry = catalog.hget(K.tokens, "1")
        return entry.decode().split("@")[0] if entry else None

    async def go() -> None:
        first = parse_token((await queue.issue_token(plain, 1, CONCERT))["tokenValue"])
        a = await booking.reserve(plain, first, OPTION, seat_id(OPTION, 1))
        later: dict = {}

        async def hook(name: str, keys, args) -> None:
            if name != "pay_finish" or later:
                return
            tok = first
            if between == "new-token-holds":
                catalog.hset(K.tokens, "1", f"{first.seq}@1")
                catalog.zadd(K.active, {"1": 1})
            if between == "revoke-new-token":
                await operator.revoke(plain, CONCERT, 1)
            if between != "same-token-holds":
                tok = parse_token((await queue.issue_token(plain, 1, CONCERT))["tokenValue"])
                assert tok.seq != first.seq
            later["tok"] = tok
            later["b"] = await booking.reserve(plain, tok, OPTION, seat_id(OPTION, 2))

        hooked = HookedStore(steps, hook)
        try:
            await protocol.pay(hooked, first, parse_reservation(a["reservationId"])[1])
        finally:
            await hooked.aclose()
        tok = later["tok"]
        assert seq_now() == str(tok.seq)  # b, open, keeps its token
        await protocol.pay(plain, tok, parse_reservation(later["b"]["reservationId"])[1])
        assert seq_now() is None  # b was the token's last open hold
        rec = record(catalog, 1)
        assert rec is not None and rec[:2] == (2, set())
        await plain.aclose()

    asyncio.run(go())


def test_a_formatted_hold_record_reads_as_cjson_wrote_it(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """reserve and reserve_best format the HELD record by hand: it must decode to the types
    cjson gave (ids as strings, numbers as integers), also for the largest customer id, and
    a script's decode and re-encode (cancel) must keep every value."""
    client = make_client()
    big = 2**53 - 1
    token = active_token(client, big)
    one = hold(client, token, seat_id(OPTION, 1))
    group = client.post("/api/reserve", headers=auth(token),
                        json={"concertOptionId": OTHER_OPTION, "quantity": 2})
    assert group.status_code == 200, group.text
    for rid in [one, *group.json()["reservationIds"]]:
        i = parse_reservation(rid)[1]
        rec = orjson.loads(catalog.hget(K.res, i))
        assert set(rec) == {"customer", "option", "seat", "idx", "price", "status", "token",
                            "expires", "attempt"}
        assert rec["customer"] == str(big) and rec["status"] == "HELD" and rec["attempt"] == 0
        assert isinstance(rec["option"], str) and isinstance(rec["seat"], str)
        assert all(isinstance(rec[f], int) for f in ("idx", "price", "expires"))
        assert rec["expires"] == catalog.zscore(K.holds, i)
        assert rec["token"] == catalog.hget(K.tokens, str(big)).decode().split("@")[0]
    i = parse_reservation(one)[1]
    before = orjson.loads(catalog.hget(K.res, i))
    assert client.delete(f"/api/reserve/{one}", headers=auth(token)).status_code == 200
    after = orjson.loads(catalog.hget(K.res, i))
    assert after == {**before, "status": "CANCELLED"}
