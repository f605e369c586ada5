"""The hot concert's queue (engine/queue_view.py, lua/include/admission.lua): the pre-queue's
order the same in Lua and Python, polls answered from a worker's view as Redis would answer
them, the seen marks that keep a polling waiter in the queue, positions that never go back
under any mix of issues, polls, admissions and departures, and the queue's bounded work."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable

import pytest
import redis
from starlette.testclient import TestClient

from engine import concert_settings, operator, queue
from engine.config import Settings
from engine.errors import TokenUnknown
from engine.ids import order_key, parse_token
from engine.keys import concert_keys
from engine.order import place_at, slot_of
from engine.queue_view import QueueViews, View, answer, read_view
from engine.scripts import expand
from engine.store import Store, connect
from engine.tick import tick as tick_once
from tests.conftest import CONCERT, waiting_count

ORDER = """-- @include order
local key, m, out = ARGV[1], tonumber(ARGV[2]), {}
for i = 0, m - 1 do out[#out + 1] = slot_of(key, m, i) end
for s = 0, m - 1 do out[#out + 1] = place_at(key, m, s) end
return out"""


def issue(client: TestClient, customer: int) -> dict:
    resp = client.post("/api/token/issue", json={"customerId": customer, "concertId": CONCERT})
    assert resp.status_code == 200, resp.text
    return resp.json()


def poll(client: TestClient, token: str) -> tuple[int, dict]:
    resp = client.get("/api/token/status", headers={"Authorization": token})
    return resp.status_code, resp.json()


def test_the_pre_queue_order_is_one_permutation_in_lua_and_python(r: redis.Redis) -> None:
    """Workers compute a pre-queue waiter's slot in Python, the scripts in Lua: both must be
    the same permutation (and place_at its inverse), for any size and key."""
    script = expand(ORDER)
    for m in (1, 2, 3, 4, 5, 17, 256, 257, 4099):
        key = order_key(random.randrange(1, 10**6))
        lua = r.eval(script, 0, key, m)
        slots = [slot_of(key, m, i) for i in range(m)]
        assert sorted(slots) == list(range(m)), m
        assert lua[:m] == slots, m
        assert lua[m:] == [place_at(key, m, s) for s in range(m)]
        assert all(place_at(key, m, slots[i]) == i for i in range(m))


@pytest.mark.both_modes
def test_polls_are_answered_from_the_view_as_redis_would(
        make_client: Callable[..., TestClient], catalog: redis.Redis, settings: Settings) -> None:
    """With a view a minute old at most, 40 waiters' polls make no call each (but the few
    nearest the head): their answers are Redis's own (status, position, paused, opensAt) and
    the marks go in one call."""
    client = make_client(active_limit=1, queue_view_seconds=60)
    tokens = [issue(client, c)["tokenValue"] for c in range(1, 42)]
    views: QueueViews = client.app_state["views"]
    local = [poll(client, t) for t in tokens[1:]]
    # The first two or so are asked of Redis (near the head: the queue passed one place
    # this second), the others answered from the view.
    answered = views.local
    assert answered >= 37 and all(code == 200 for code, _ in local)
    assert [body["position"] for _, body in local] == list(range(1, 41))

    async def from_redis() -> list[dict]:
        s = dataclasses.replace(settings, active_limit=1)
        store = Store(connect(s), s)
        try:
            return [await queue.token_status(store, parse_token(t)) for t in tokens[1:]]
        finally:
            await store.aclose()

    for (_, mine), theirs in zip(local, asyncio.run(from_redis()), strict=True):
        for field in ("tokenValue", "status", "position", "paused", "expiresAt"):
            assert mine[field] == theirs[field], (field, mine, theirs)
        assert 1 <= mine["pollAfterSeconds"] <= 30
    assert client.portal.call(views.flush) == answered
    k = concert_keys(CONCERT)
    bitmaps = [catalog.get(key) or b"" for key in (k.seen0, k.seen1, k.seen2)]
    for t in tokens[-answered:]:
        seq = parse_token(t).seq
        assert any(len(b) > seq // 8 and b[seq // 8] >> (7 - seq % 8) & 1 for b in bitmaps)
    # The ACTIVE token is asked of Redis (its seq is past the view's head): its expiry.
    code, body = poll(client, tokens[0])
    assert code == 200 and body["status"] == "ACTIVE" and views.local == answered


@pytest.mark.both_modes
def test_a_waiter_polled_from_the_view_stays_and_a_silent_one_goes(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """Idle limit 0.5 s: a waiter whose polls are all answered from the view is kept by the
    marks the worker sends (every eighth of a second here); one that never polls is dropped
    within two idle limits, and learns it at its first poll after the next view read."""
    client = make_client(active_limit=1, waiting_idle_seconds=0.5, tick_seconds=0.1,
                         queue_view_seconds=0.05)
    issue(client, 1)
    silent, kept = issue(client, 2)["tokenValue"], issue(client, 3)["tokenValue"]
    views: QueueViews = client.app_state["views"]
    for _ in range(15):
        time.sleep(0.1)
        code, body = poll(client, kept)
        assert code == 200 and body["status"] == "WAITING", body
    assert views.local >= 10
    k = concert_keys(CONCERT)
    assert waiting_count(catalog) == 1
    assert catalog.hexists(k.seqs, parse_token(kept).seq)
    assert not catalog.hexists(k.seqs, parse_token(silent).seq)
    # The view read since it went names it: its poll is Redis's 401.
    code, body = poll(client, silent)
    assert code == 401 and body["code"] == "TOKEN_UNKNOWN"
    assert parse_token(silent).seq in views.gone[CONCERT]
    assert poll(client, kept)[1]["status"] == "WAITING"


def test_a_new_idle_limit_keeps_the_waiters(make_client: Callable[..., TestClient],
                                            catalog: redis.Redis, settings: Settings) -> None:
    """The seen marks' periods are the idle limit: a new one must not make every mark made
    under the old one an older period's, or the next sweep drops the whole queue (each
    waiter then polls a 401). It keeps them; a silent one still goes in two new limits."""
    client = make_client(active_limit=1, waiting_idle_seconds=60)
    issue(client, 1)
    tokens = [issue(client, c)["tokenValue"] for c in range(2, 22)]
    for t in tokens:
        assert poll(client, t)[0] == 200

    async def go() -> None:
        s = dataclasses.replace(settings, active_limit=1, waiting_idle_seconds=60)
        store = Store(connect(s), s)
        for idle in (127, 1):
            await concert_settings.patch(store, CONCERT, {"waitingIdleSeconds": idle})
            await tick_once(store, CONCERT)  # admits nobody (full), sweeps the queue
            assert waiting_count(catalog) == 20, idle
        code, body = poll(client, tokens[0])
        assert code == 200 and body["status"] == "WAITING", body
        time.sleep(2.05)  # past two new limits: all are idle now
        await tick_once(store, CONCERT)
        assert waiting_count(catalog) == 0
        await store.aclose()

    asyncio.run(go())


def test_the_tick_takes_over_a_former_queue_of_a_paused_concert(
        catalog: redis.Redis, settings: Settings) -> None:
    """A paused (or sold-out, or not yet open) concert admits nobody: the tick's admission
    must still take over the former version's queue, or stats and /metrics count its places
    as waiting and an opening is refused (409) while nobody waits, until someone issues."""
    k = concert_keys(CONCERT)
    catalog.hdel(k.concert, "qv")
    catalog.hset(k.concert, "seq", 50)

    async def go() -> None:
        store = Store(connect(settings), settings)
        await concert_settings.patch(store, CONCERT, {"paused": True})
        await tick_once(store, CONCERT)
        await concert_settings.patch(store, CONCERT, {"opensAt": "2099-01-01T00:00:00Z"})
        await store.aclose()

    asyncio.run(go())
    assert waiting_count(catalog) == 0
    assert catalog.hget(k.concert, "qv") == b"2"


def test_after_random_queueing_the_ones_drawn_are_told_active(
        make_client: Callable[..., TestClient], catalog: redis.Redis, settings: Settings) -> None:
    """Random queueing admits behind the head; once FIFO is back, a view must not answer those
    tokens WAITING from their seq (they are ACTIVE): their polls go to Redis (rmax)."""
    client = make_client(active_limit=1, queue_view_seconds=60)
    tokens = [issue(client, c)["tokenValue"] for c in range(1, 41)]

    async def go() -> None:
        s = dataclasses.replace(settings, active_limit=1)
        store = Store(connect(s), s)
        await concert_settings.patch(store, CONCERT, {"queueing": "random", "activeLimit": 6})
        await tick_once(store, CONCERT)  # draws 5 from anywhere in the line
        await concert_settings.patch(store, CONCERT, {"queueing": "fifo"})
        await store.aclose()

    asyncio.run(go())
    k = concert_keys(CONCERT)
    active = {int(c) for c, e in catalog.hgetall(k.tokens).items() if b"@" in e}
    assert len(active) == 6
    for c, t in enumerate(tokens, 1):
        code, body = poll(client, t)
        assert code == 200 and (body["status"] == "ACTIVE") == (c in active), (c, body)


def test_a_queue_of_the_former_version_is_taken_over_once(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """A concert whose queue the former version left (its seq counted a sorted set's places;
    no head, no qv; tokens of the former shape): at the first call its places count as passed,
    so the first new waiter is position 1 and none of the former is counted as waiting; its
    tokens are 401s. A concert made by this version is never taken over (its load sets
    qv), though its seq may run ahead of a head not written yet."""
    k = concert_keys(CONCERT)
    assert catalog.hget(k.concert, "qv") == b"2"  # made by this version
    catalog.hdel(k.concert, "qv")
    catalog.hset(k.concert, "seq", 5)
    catalog.hset(k.tokens, mapping={100 + i: f"{i:02d}ab34cd" for i in range(5)})
    client = make_client(active_limit=1)
    assert issue(client, 1)["status"] == "ACTIVE"
    second = issue(client, 2)
    assert (second["status"], second["position"]) == ("WAITING", 1)
    # The former 5 passed and admitted, then customer 1 ACTIVE.
    assert catalog.hmget(k.concert, "qv", "head", "admitted") == [b"2", b"7", b"6"]
    assert waiting_count(catalog) == 1
    assert issue(client, 3)["position"] == 2  # once: the head is not moved again
    assert catalog.hget(k.concert, "head") == b"7"
    former = f"{CONCERT}.100.00ab34cd"
    resp = client.get("/api/token/status", headers={"Authorization": former})
    assert resp.status_code == 401 and resp.json()["code"] == "TOKEN_UNKNOWN"


@pytest.mark.both_modes
def test_positions_never_go_back_under_random_interleavings(settings: Settings,
                                                           catalog: redis.Redis) -> None:
    """300 random steps (issue, poll from a fresh or a stale view and from Redis, tick,
    revoke, a new token replacing a live one, pause and resume): every WAITING token's
    position never grows, a fresh view answers as Redis does (paused: Redis's poll admits
    nobody; else Redis may admit first, never further back), and
    the queue's count is the waiters Redis knows."""
    s = dataclasses.replace(settings, active_limit=3, admit_per_second=2,
                            active_ttl_seconds=0.3, queue_view_seconds=3600)
    rnd = random.Random(21)

    async def go() -> int:
        store = Store(connect(s), s)
        views = QueueViews(store)
        last: dict[str, int] = {}
        tokens: dict[int, str] = {}
        compared = 0
        try:
            for _ in range(300):
                step = rnd.random()
                if step < 0.3:
                    c = rnd.randrange(1, 60)
                    tokens[c] = (await queue.issue_token(store, c, CONCERT))["tokenValue"]
                elif step < 0.4:
                    await tick_once(store, CONCERT)
                elif step < 0.45 and tokens:
                    await operator.revoke(store, CONCERT, rnd.choice(list(tokens)))
                elif step < 0.5:
                    await concert_settings.patch(store, CONCERT, {"paused": rnd.random() < 0.5})
                elif step < 0.55:
                    views.views.clear()  # a fresh view next
                elif tokens:
                    value = rnd.choice(list(tokens.values()))
                    tok = parse_token(value)
                    if rnd.random() < 0.5:
                        views.views.clear()  # this poll reads a fresh view
                    fresh = not views.views
                    mine = await _ask(views.status(tok)) if rnd.random() < 0.7 else None
                    if fresh and mine is not None:
                        view = views.views[CONCERT]
                        again = answer(view, tok, view.now_ms)
                        theirs = await _ask(queue.token_status(store, tok))
                        if again is not None and theirs is not None and view.paused:
                            # Paused, Redis's poll admits nobody: the very same answer.
                            assert (again["position"], again["status"]) == (
                                theirs["position"], theirs["status"]), (again, theirs)
                            compared += 1
                        elif again is not None and theirs and theirs["status"] == "WAITING":
                            # Redis's poll may admit first: never a place further back.
                            assert theirs["position"] <= again["position"], (again, theirs)
                    got = mine or await _ask(queue.token_status(store, tok))
                    if got and got["status"] != "ACTIVE" and got["position"] is not None:
                        assert got["position"] <= last.get(value, got["position"]), value
                        last[value] = got["position"]
                await asyncio.sleep(rnd.random() * 0.01)
            k = concert_keys(CONCERT)
            assert waiting_count(catalog) == catalog.hlen(k.seqs)
        finally:
            await store.aclose()
        return compared

    assert asyncio.run(go()) > 5


async def _ask(call: Awaitable[dict]) -> dict | None:
    try:
        return await call
    except TokenUnknown:  # it left
        return None


@pytest.mark.both_modes
def test_the_view_answers_fast_and_bounded(settings: Settings, catalog: redis.Redis) -> None:
    """The view's read is one small script whatever the queue's size, and answering from it
    costs a few microseconds of Python."""
    s = dataclasses.replace(settings, active_limit=1)

    async def go() -> float:
        store = Store(connect(s), s)
        try:
            for c in range(1, 2001):
                await queue.issue_token(store, c, CONCERT)
            view, _ = await read_view(store, CONCERT)
            tok = parse_token((await queue.issue_token(store, 2000, CONCERT))["tokenValue"])
            assert answer(view, tok, view.now_ms)["position"] == 1999
            t0 = time.perf_counter()
            for _ in range(10_000):
                answer(view, tok, view.now_ms)
            return (time.perf_counter() - t0) / 10_000
        finally:
            await store.aclose()

    per_answer = asyncio.run(go())
    assert per_answer < 50e-6, per_answer


def test_marks_that_fail_to_go_are_owed_again_and_lose_no_other_concert(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One concert's failing call neither loses the marks of the concerts after it nor its
    own (sent at the next flush); a waiter polled a thousand times is one mark."""
    from engine import queue_view
    sent: list[tuple[int, list[int]]] = []
    failing = {7}

    async def fake_mark_seen(store: object, concert_id: int, seqs: list[int]
                             ) -> tuple[int, list[int]]:
        if concert_id in failing:
            raise ConnectionError("Redis of concert 7 down")
        sent.append((concert_id, seqs))
        return len(seqs), []

    monkeypatch.setattr(queue_view, "mark_seen", fake_mark_seen)
    views = QueueViews(store=None)  # type: ignore[arg-type]
    for _ in range(1000):
        views.marks.setdefault(7, set()).add(5)
    views.marks[8] = {3, 1, 2}
    assert asyncio.run(views.flush()) == 3
    assert sent == [(8, [1, 2, 3])] and views.marks == {7: {5}}
    failing.clear()
    assert asyncio.run(views.flush()) == 1
    assert sent[-1] == (7, [5]) and views.marks == {}


def test_a_concert_stops_issuing_at_the_last_bit_offset(client: TestClient,
                                                        catalog: redis.Redis) -> None:
    """A seq is a bit offset of the seen bitmaps (at most 2^32 - 1): past it a poll's mark
    would fail (a 500); the concert answers QUEUE_FULL instead, nothing written."""
    k = concert_keys(CONCERT)
    catalog.hset(k.concert, mapping={"seq": 2**32 - 1, "leftn": 2**32 - 1})  # none waiting
    resp = client.post("/api/token/issue", json={"customerId": 1, "concertId": CONCERT})
    assert resp.status_code == 503 and resp.json()["code"] == "QUEUE_FULL", resp.text
    assert catalog.hget(k.concert, "seq") == str(2**32 - 1).encode()
    assert not catalog.hexists(k.tokens, 1)


def test_a_departure_the_view_missed_is_named_by_the_next_mark(
        make_client: Callable[..., TestClient], catalog: redis.Redis, settings: Settings) -> None:
    """A worker learns departures from the `left` list, which keeps the last 100,000: more in
    one second, or a worker started after them, misses some. The first mark of a period of a
    waiter who left names it, so its next poll goes to Redis (a 401), not a WAITING answer."""
    client = make_client(active_limit=1, queue_view_seconds=60)
    issue(client, 1)
    tokens = [issue(client, c)["tokenValue"] for c in range(2, 12)]
    gone = tokens[5]
    views: QueueViews = client.app_state["views"]
    assert poll(client, tokens[0])[0] == 200  # the view is read

    async def go() -> None:
        s = dataclasses.replace(settings, active_limit=1)
        store = Store(connect(s), s)
        await operator.revoke(store, CONCERT, 7)
        await store.aclose()

    asyncio.run(go())
    catalog.delete(concert_keys(CONCERT).left)  # as if more than it keeps left since
    code, body = poll(client, gone)  # the view does not know: WAITING, and a mark owed
    assert code == 200 and body["status"] == "WAITING"
    client.portal.call(views.flush)
    assert parse_token(gone).seq in views.gone[CONCERT]
    code, body = poll(client, gone)
    assert code == 401 and body["code"] == "TOKEN_UNKNOWN", body


def test_a_new_token_behind_waiters_is_estimated_from_the_worker_view(
        make_client: Callable[..., TestClient], catalog: redis.Redis) -> None:
    """A new token that waits behind others is not walked to (the tick and the polls near the
    head admit), and its wait is estimated at the pace of the worker's last view, as a poll's
    is: issue.lua reads no rate hash then. The first one, with no pace known, reads it."""
    client = make_client(active_limit=1, queue_view_seconds=60)
    assert issue(client, 1)["status"] == "ACTIVE"
    assert issue(client, 2)["status"] == "WAITING"  # no view yet: Redis's rate, and a warm-up
    views: QueueViews = client.app_state["views"]
    deadline = time.monotonic() + 5
    while views.pace(CONCERT) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    pace, sold_out = views.pace(CONCERT)
    assert pace <= 1 and sold_out == 0
    # Redis's own pace changes after the read: a script reading it would say a second.
    k = concert_keys(CONCERT)
    catalog.hset(k.rate, mapping={"sec": int(time.time()) + 5, "pn": 1000, "pavg": 1000})
    assert views.pace(CONCERT) is not None  # read under a minute ago
    third = issue(client, 3)
    assert third["status"] == "WAITING" and third["position"] == 2
    assert third["estimatedWaitSeconds"] == 2  # the view's pace, one a second at least
    # Room opens (the ACTIVE token ends): a join behind a waiter still admits nobody.
    catalog.zadd(k.active, {"1": 1})
    assert issue(client, 4)["status"] == "WAITING"
    assert waiting_count(catalog) == 3


async def _issue_with(settings: Settings, customer: int, pace: tuple[float, int]) -> dict:
    store = Store(connect(settings), settings)
    try:
        return await queue.issue_token(store, customer, CONCERT, pace=pace)
    finally:
        await store.aclose()


def test_a_new_token_is_told_sold_out_by_the_view(settings: Settings,
                                                  catalog: redis.Redis) -> None:
    s = dataclasses.replace(settings, active_limit=1)
    assert asyncio.run(_issue_with(s, 1, (3.0, 0)))["status"] == "ACTIVE"
    waiting = asyncio.run(_issue_with(s, 2, (3.0, 0)))
    assert waiting["status"] == "WAITING" and waiting["estimatedWaitSeconds"] == 1
    told = asyncio.run(_issue_with(s, 3, (0.5, 1_700_000_000_000)))
    assert told["status"] == "SOLD_OUT" and told["position"] == 2
    assert told["estimatedWaitSeconds"] == 2


def test_every_worker_reads_its_view_in_the_same_periods_of_the_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers whose views were read at different moments would answer one token with
    different positions (one before a tick, one after), and a client moving between them
    would see its position go back. A view goes stale 0.1 s past each whole
    QUEUE_VIEW_SECONDS of the clock, whenever it was read: both re-read after the tick."""
    from engine import queue_view
    clock = [1000.05]
    reads: list[float] = []
    monkeypatch.setattr(queue_view.time, "time", lambda: clock[0])

    async def fake_read(store: object, concert_id: int, known_left: int = 0
                        ) -> tuple[View, list[int]]:
        reads.append(clock[0])
        return View(0.0, 0, 0, 1, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 60_000, 0, 0), []

    monkeypatch.setattr(queue_view, "read_view", fake_read)
    store = type("S", (), {"settings": Settings(queue_view_seconds=1)})()
    a, b = QueueViews(store), QueueViews(store)  # type: ignore[arg-type]

    async def at(t: float, views: QueueViews) -> None:
        clock[0] = t
        await views.view(CONCERT, 1)

    async def go() -> None:
        await at(1000.05, a)  # read in the period that began at 999.1
        await at(1000.90, b)  # read in the one that began at 1000.1
        await at(1001.00, a)  # stale: a period began since its read
        await at(1001.05, b)  # fresh: the same period as its read
        await at(1001.15, b)  # stale: the tick at 1001.0 passed, and 1001.1 with it
        await at(1001.20, a)

    asyncio.run(go())
    assert reads == [1000.05, 1000.90, 1001.00, 1001.15, 1001.20]  # b not at 1001.05
