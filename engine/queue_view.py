"""Polls without a call each: an API worker answers the status poll of a WAITING token from its
view of the concert's queue, read from Redis about once a second (queue_view.lua), and marks
the polled waiters seen in one call a second (seen.lua). A token carries its seq (engine/
ids.py), and a waiter's position follows from it: the places ahead of it not yet passed
(lua/include/admission.lua). This is a serving counter, as AWS's virtual waiting room keeps
one; what it gives up, said in docs/fair-drop.md: a position counts the waiters ahead who
left until the queue passes them, and it is as old as the view (a second): a token admitted
learns it at the first poll after the next read, and so does one revoked, replaced or gone
idle (each read brings the seqs of the waiters who left since the last). A token the view
says is near the head (as many places as the queue passes in a second, and the first) or
past it, one issued after the view was read, one that left, and random queueing, are asked
of Redis (queue.token_status), as is every poll with
QUEUE_VIEW_SECONDS=0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass

from engine import queue
from engine.ids import Token, iso_ms, order_key
from engine.keys import concert_keys
from engine.order import slot_of
from engine.store import Store

log = logging.getLogger(__name__)

MARKS_A_CALL = 5000  # seen marks sent in one seen.lua call
# Views go stale at the same instants in every worker, PHASE s past each whole
# QUEUE_VIEW_SECONDS of the clock: after the tick, which passes in the first ~20 ms of each
# second (api/background.py). So every worker answers from the same tick's state, and a
# position does not go back from one worker's answer to the next one's.
PHASE = 0.1
GONE_KEPT = 200_000  # seqs of waiters who left a worker keeps, a concert (~15 MB at most)


@dataclass(frozen=True, slots=True)
class View:
    """Where a concert's queue stood when read (queue_view.lua), and when (this worker's
    monotonic clock, and Redis's time then)."""

    read_at: float
    now_ms: int
    seq: int
    head: int
    prefirst: int
    premax: int
    prehead: int
    live: int
    passed_per_second: float
    sold_out: int
    paused: int
    opens_at: int
    queueing: int
    idle_ms: int
    left: int  # departures in all when read (the concert hash's leftn)
    rmax: int  # the last seq random queueing admitted (behind the head: Redis knows it)

    def ahead(self, seq: int, concert_id: int) -> int | None:
        """Places ahead of ``seq`` not yet passed; None: past the head, or unknown here."""
        m = self.premax - self.prefirst + 1 if self.prefirst and self.premax else 0
        if self.prefirst and not self.premax:
            return None  # a pre-queue not yet opened in this view
        if m and self.prefirst <= seq <= self.premax:
            slot = slot_of(order_key(concert_id), m, seq - self.prefirst)
            return slot - self.prehead if slot >= self.prehead else None
        if seq < self.head:
            return None
        return (m - self.prehead) + (seq - self.head)


def answer(view: View, token: Token, now_ms: int, passed: int = 0) -> dict | None:
    """The poll's answer from the view, as status.lua would give it; None: ask Redis.
    ``passed``: places the queue passed since the read, as an answer of Redis's showed."""
    if view.queueing == 1 or token.seq > view.seq or token.seq <= view.rmax:
        return None
    state, position, wait = 0, None, 0
    if now_ms < view.opens_at:
        if view.prefirst == 0 or token.seq < view.prefirst:
            return None
        state, wait = 2, math.ceil((view.opens_at - now_ms) / 1000)
    else:
        ahead = view.ahead(token.seq, token.concert_id)
        ahead = None if ahead is None else ahead - passed
        # Near the head, Redis answers (and admits): whoever the queue may have passed since
        # the read, at its rate, and always the first in line.
        age = max(0, now_ms - view.now_ms) / 1000
        if ahead is None or ahead < max(1.0, view.passed_per_second * (age + 1)):
            return None
        position = ahead + 1
        wait = math.ceil(position / max(view.passed_per_second, 1.0))
        if view.sold_out:
            state = 3
    # The next poll, as include/admission.lua's standing() draws it.
    most = max(1, min(30, view.idle_ms // 3000, math.ceil(wait / 4)))
    if view.paused or view.sold_out:
        most = max(1, min(30, view.idle_ms // 3000))
    poll = most - math.floor(random.random() * math.floor(most / 5 + 1))
    body = {"tokenValue": token.value, "concertId": token.concert_id,
            "customerId": token.customer_id,
            "status": "SOLD_OUT" if state == 3 else "WAITING", "position": position,
            "estimatedWaitSeconds": None if view.paused and state != 2 else wait,
            "expiresAt": None, "pollAfterSeconds": poll, "paused": bool(view.paused)}
    if view.opens_at:
        body["opensAt"] = iso_ms(view.opens_at)
    return body


async def read_view(store: Store, concert_id: int, known_left: int = 0
                    ) -> tuple[View, list[int]]:
    """Where the concert's queue stands now (queue_view.lua), and the seqs of the waiters
    who left since ``known_left`` departures (of the last ones Redis keeps)."""
    k = concert_keys(concert_id)
    reply = await store.run("queue_view", (k.concert, k.rate, k.settings, k.left),
                            (store.settings.idle_ms, known_left))
    view = View(time.monotonic(), *(int(x) for x in reply[1:8]), float(reply[8]),
                *(int(x) for x in reply[9:15]), int(reply[16]))
    return view, [int(x) for x in reply[15]]


def seen_keys(concert_id: int) -> tuple[str, ...]:
    """seen.lua's keys."""
    k = concert_keys(concert_id)
    return k.concert, k.seen0, k.seen1, k.seen2, k.settings, k.departed


async def mark_seen(store: Store, concert_id: int, seqs: list[int]) -> tuple[int, list[int]]:
    """These waiters polled (seen.lua): they stay in the queue. Returns the marks written, and
    the seqs among them that are not waiting any more (marked a first time this period)."""
    _, written, gone = await store.run("seen", seen_keys(concert_id),
                                       (store.settings.idle_ms, *seqs))
    return written, [int(x) for x in gone]


def _epoch(max_age: float) -> int:
    return math.floor((time.time() - PHASE) / max_age)


class QueueViews:
    """A worker's views of the queues it answers polls for, and the seen marks it owes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.views: dict[int, View] = {}
        self.epochs: dict[int, int] = {}  # the period of the clock each view was read in
        self.reading: dict[int, asyncio.Task] = {}
        self.marks: dict[int, set[int]] = {}  # a set: a waiter polled often is one mark
        # Seqs of waiters who left (each view read brings the new ones, and the marks of
        # their polls name them again): their polls go to Redis (a 401). At most GONE_KEPT a
        # concert (_forget); one forgotten is named again at its next poll's mark.
        self.gone: dict[int, dict[int, None]] = {}
        self.local = 0  # polls answered from a view (a metric)
        # concert -> (read at, places passed a second, sold out since): the last view read's,
        # for new tokens' estimates (pace); the concerts polled or issued WAITING tokens.
        self.paces: dict[int, tuple[float, float, int]] = {}
        self.pacing: set[int] = set()  # paces being read (warm)
        # concert -> places its queue passed since its view was read, as this worker's
        # answers from Redis showed (a poll near the head, a re-issue): a later answer from
        # the view counts them, so that a waiter's position never goes back up on one worker.
        self.passed: dict[int, int] = {}

    async def status(self, token: Token) -> dict:
        max_age = self.store.settings.queue_view_seconds
        if max_age <= 0:
            return await queue.token_status(self.store, token)
        view = await self.view(token.concert_id, max_age)
        now_ms = view.now_ms + round((time.monotonic() - view.read_at) * 1000)
        gone = self.gone.get(token.concert_id)
        body = None if gone and token.seq in gone else answer(
            view, token, now_ms, self.passed.get(token.concert_id, 0))
        if body is None:
            body = await queue.token_status(self.store, token)
            self.learn(token.concert_id, token.seq, body)
            return body
        self.marks.setdefault(token.concert_id, set()).add(token.seq)
        self.local += 1
        return body

    def learn(self, concert_id: int, seq: int | None, body: dict) -> None:
        """Redis answered this waiter (``body``: a status or an issue; ``seq``: its token's,
        None: read from the token's value): the places passed since the view was read are at
        least the view's count ahead of it less Redis's. An answer older than the view shows
        none (positions only go down), so a late one is harmless."""
        view = self.views.get(concert_id)
        position = body.get("position")
        if view is None or not position or view.queueing == 1:
            return  # no view to correct (an issue's usual case: first, the cheap checks)
        if seq is None:
            seq = int(body["tokenValue"].split(".")[2])  # <concert>.<customer>.<seq>.<mac>
        if seq > view.seq:
            return
        ahead = view.ahead(seq, concert_id)
        if ahead is not None and ahead + 1 > position:
            self.passed[concert_id] = max(self.passed.get(concert_id, 0), ahead + 1 - position)

    def pace(self, concert_id: int) -> tuple[float, int] | None:
        """The places the concert's queue passes a second and since when it is sold out (ms, 0:
        not), as the last view read found them if no older than QUEUE_VIEW_SECONDS (a second
        at least), for a new token's estimate (queue.issue_token); None without one (Redis
        reads them then)."""
        max_age = self.store.settings.queue_view_seconds
        p = self.paces.get(concert_id)
        if max_age <= 0 or p is None or time.monotonic() - p[0] > max(max_age, 1.0):
            return None
        return p[1], p[2]

    def warm(self, concert_id: int) -> None:
        """Read the concert's pace in the background (a concert that exists: its token was
        just issued), so that the next issues find it. Only the pace is kept: the polls' view
        is still read at the first poll of a period."""
        if self.store.settings.queue_view_seconds > 0 and concert_id not in self.pacing:
            self.pacing.add(concert_id)
            task = asyncio.ensure_future(self._read_pace(concert_id))
            # Redis in trouble: nothing to do here; the next poll or issue asks again.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _read_pace(self, concert_id: int) -> None:
        try:
            view, _ = await read_view(self.store, concert_id, known_left=2**52)  # no departures
            self._keep_pace(concert_id, view)
        finally:
            self.pacing.discard(concert_id)

    def _keep_pace(self, concert_id: int, view: View) -> None:
        self.paces[concert_id] = (view.read_at, view.passed_per_second, view.sold_out)

    async def view(self, concert_id: int, max_age: float) -> View:
        view = self.views.get(concert_id)
        if view is not None and self.epochs.get(concert_id) == _epoch(max_age):
            return view
        task = self.reading.get(concert_id)
        if task is None:  # one read at a time a concert, whoever asks meanwhile waits on it
            task = self.reading[concert_id] = asyncio.ensure_future(self._read(concert_id))
            task.add_done_callback(lambda _: self.reading.pop(concert_id, None))
        return await asyncio.shield(task)

    async def _read(self, concert_id: int) -> View:
        known = self.views.get(concert_id)
        epoch = _epoch(self.store.settings.queue_view_seconds)
        view, left = await read_view(self.store, concert_id, known.left if known else 0)
        self.views[concert_id], self.epochs[concert_id] = view, epoch
        self.passed.pop(concert_id, None)  # what Redis showed since the last read is in this one
        self._keep_pace(concert_id, view)
        self._forget(concert_id, left)
        return view

    def _forget(self, concert_id: int, left: list[int]) -> None:
        """These waiters left: their polls go to Redis. Past GONE_KEPT, the line's seqs the
        queue passed go first (a poll of a passed seq goes to Redis anyway: two comparisons a
        seq, where a pre-queue seq's slot would cost the permutation, on the event loop), then
        the oldest."""
        gone = self.gone.setdefault(concert_id, {})
        gone.update(dict.fromkeys(left))
        if len(gone) <= GONE_KEPT:
            return
        view = self.views.get(concert_id)
        if view is not None:
            for seq in [s for s in gone if view.premax < s < view.head]:
                del gone[seq]
        while len(gone) > GONE_KEPT * 3 // 4:  # oldest first (a dict keeps insertion order)
            del gone[next(iter(gone))]

    async def flush(self) -> int:
        """Send the seen marks owed (seen.lua): each concert's, a few thousand a call. The
        marks of a call that failed are owed again (a concert's trouble loses no other's)."""
        marks, self.marks = self.marks, {}
        sent = 0
        for concert_id, seqs in marks.items():
            ordered = sorted(seqs)
            for i in range(0, len(ordered), MARKS_A_CALL):
                chunk = ordered[i:i + MARKS_A_CALL]
                try:
                    _, left = await mark_seen(self.store, concert_id, chunk)
                except Exception as e:
                    log.warning("sending seen marks of concert %s failed: %s", concert_id, e)
                    self.marks.setdefault(concert_id, set()).update(chunk)
                    continue
                sent += len(chunk)
                if left:
                    self._forget(concert_id, left)
        return sent

    async def flush_forever(self) -> None:
        """About once a second, and four times per idle limit at least, so that a waiter that
        polls is never taken for idle (the API's lifespan runs this)."""
        every = min(1.0, self.store.settings.idle_ms / 4000)
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush()  # a call that fails is owed again, to the next flush
            except Exception:  # a bug here must not stop the marks for good
                log.exception("sending seen marks failed")

    async def aclose(self) -> None:
        """Send what is owed before the worker stops."""
        with contextlib.suppress(Exception):
            await self.flush()
