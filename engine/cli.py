"""``python -m engine``: seed demo data, show per-concert stats, and print the exact
``redis-cli --eval`` / ``--ldb`` line of an operation so it can be stepped in the Lua debugger."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import unquote, urlparse

import orjson
import redis

from engine import (
    access_codes,
    booking,
    catalog,
    cli_admin,
    on_sale,
    operator,
    pay,
    queue,
    queue_view,
    tick,
    tickets,
    wallet,
)
from engine.cluster import SCHEME, parse_url
from engine.config import Settings
from engine.errors import EngineError, StoreUnavailable
from engine.ids import parse_reservation, parse_token, use_token_key
from engine.keys import TOKEN_KEY, concert_keys
from engine.scripts import expanded_file
from engine.seed import seed_demo
from engine.store import Store, connect, slot_of
from engine.sync import SyncRedis, node_of, sync_client


def _redis(settings: Settings) -> SyncRedis:
    return sync_client(settings.redis_url, socket_timeout=5)


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    print(orjson.dumps(seed_demo(_redis(settings), customers=args.customers)).decode())
    return 0


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    async def collect() -> list[dict]:
        store = Store(connect(settings), settings)
        try:
            ids = args.concert or await queue.concerts(store)
            rows = await asyncio.gather(*(queue.concert_stats(store, c) for c in ids))
            if store.cluster:  # where each concert lives
                for row in rows:
                    host, port = store.redis.node_of(
                        slot_of(concert_keys(row["concertId"]).concert))
                    row["node"] = f"{host}:{port}"
            return list(rows)
        finally:
            await store.aclose()

    rows = asyncio.run(collect())
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    cols = ["concertId", "waiting", "active", "holds", "paying", "sold", "freeSeats", "checkedIn"]
    cols += ["node"] if rows and "node" in rows[0] else []
    print("  ".join(f"{c:>10}" for c in cols))
    for row in rows:
        print("  ".join(f"{row[c]:>10}" for c in cols))
    return 0


class _Recorder:
    """Stands in for the Store: records each script call instead of running it, and answers
    with a plausible OK reply so multi-step operations (pay) show every step."""

    REPLIES: ClassVar[dict[str, list]] = {
        "issue": [0, 1, 0, 1, 1, 0, 0, 1, 0], "status": [0, 0, 1, 1, 0, 0, 1, 0],
        "reserve": [0, 0, 0], "pay": [0, 0, 0], "pay_begin": [0, 0, 1], "debit": [0, 0, 0, 0],
        "charge": [0, 0, 0], "balance": [0, 0], "admit": [0, 0, 0, 0, [], [], []],
        "sweep": [0, 0, 0, 0], "stats": [0, 0, 0, 0, 0, 0, 0, b"0.00", 0, 0, 0, 0, 0, 0],
        "dates": [0, b"[]"], "seats": [0, b"v", 0, 0, b""],
        "catalog": [0, b"v", 0, b'{"id":4115001,"number":1,"price":1000,"section":"A",'
                                b'"row":"1"}'],
        "reserve_best": [0, 0, 1, 0], "revoke": [0, 0, 0, 0],
        "refund_sale": [0, b"REFUNDING", 0, b"1", 1], "checkin": [0, 0], "codes": [0, []],
        "concert_card": [0, b"Demo", 0, 0, 50, b"41150", b"2027-06-05T19:00:00+09:00"],
        "queue_view": [0, 0, 1, 1, 0, 0, 0, 1, b"1.000", 0, 0, 0, 0, 60000, 0, [], 0],
        "seen": [0, 1, []],
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Pay is one script on one Redis, its three steps on a cluster (engine/pay.py).
        self.cluster = settings.redis_url.startswith(SCHEME)
        self.calls: list[tuple[str, Sequence[str], Sequence[object]]] = []
        self.crowded: frozenset = frozenset()  # no master past MEMORY_WATERMARK (a charge runs)

    async def run(self, name: str, keys: Sequence[str], args: Sequence[object] = ()) -> list:
        self.calls.append((name, list(keys), list(args)))
        return self.REPLIES.get(name, [0])


def eval_line(settings: Settings, name: str, keys: Sequence[str], args: Sequence[object],
              ldb: bool) -> str:
    """The redis-cli line that runs one script call: on a cluster, against the master that
    owns the keys' slot (``-c`` follows a redirect should the slot move meanwhile)."""
    if settings.redis_url.startswith(SCHEME):
        seeds, username, password = parse_url(settings.redis_url)
        host, port = node_of(_redis(settings), keys[0]) or seeds[0]
        cli = ["redis-cli", "-c", "-h", host, "-p", str(port)]
    else:
        url = urlparse(settings.redis_url)
        username, password = url.username, url.password
        cli = ["redis-cli", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]
        if url.path.strip("/") not in ("", "0"):
            cli += ["-n", url.path.strip("/")]
    if password:
        cli += [*(["--user", unquote(username)] if username else []), "-a", unquote(password),
                "--no-auth-warning"]
    if ldb:
        cli.append("--ldb")
    # The text Redis runs: the script with its includes expanded (engine/scripts.py).
    cli += ["--eval", os.path.relpath(expanded_file(name)), *keys, ",", *(str(a) for a in args)]
    return shlex.join(cli)


def _operation(rec: _Recorder, a: argparse.Namespace):
    tok = parse_token(a.token, verify=False) if a.token else None
    need = {"status", "seen", "dates", "seats", "reserve", "best", "cancel", "pay"}
    if a.op in need and tok is None:
        raise SystemExit(f"{a.op} needs --token <tokenValue> (one issued by the API)")
    if a.op in {"cancel", "pay", "refund", "checkin"}:
        parsed = parse_reservation(a.reservation or "")
        if parsed is None:
            raise SystemExit(f"{a.op} needs --reservation <reservationId>")
    ops = {
        "issue": lambda: queue.issue_token(rec, a.customer, a.concert),
        "status": lambda: queue.token_status(rec, tok),
        "dates": lambda: catalog.available_dates(rec, tok, tok.concert_id),
        "seats": lambda: catalog.available_seats(rec, tok, a.option),
        "reserve": lambda: booking.reserve(rec, tok, a.option, a.seat),
        "best": lambda: booking.reserve_best(rec, tok, a.option, a.quantity),
        "revoke": lambda: operator.revoke(rec, a.concert, a.customer),
        "refund": lambda: operator.refund_sale(rec, parsed[0], parsed[1]),
        # The ticket of that reservation and seat, its signature taken as verified.
        "checkin": lambda: tickets.enter(rec, tickets.Ticket(parsed[0], parsed[1], a.option,
                                                             a.seat)),
        "cancel": lambda: booking.cancel(rec, tok, parsed[1]),
        "pay": lambda: pay.pay(rec, tok, parsed[1]),
        "balance": lambda: wallet.balance(rec, a.customer),
        "charge": lambda: wallet.charge(rec, a.customer, a.amount_minor),
        "history": lambda: wallet.history(rec, a.customer, 20),
        "admit": lambda: tick.tick(rec, a.concert),
        "stats": lambda: queue.concert_stats(rec, a.concert),
        # What an API worker reads of a queue a second, and the polls it answered from it.
        "view": lambda: queue_view.read_view(rec, a.concert),
        "seen": lambda: queue_view.mark_seen(rec, tok.concert_id, [tok.seq]),
        "concert": lambda: on_sale.concert_card(rec, a.concert),
        "codes": lambda: access_codes.make(rec, a.concert, 2, 1),  # two new presale codes
    }
    return ops[a.op]()


OPS = ("issue", "status", "view", "seen", "dates", "seats", "reserve", "best", "cancel", "pay",
       "balance", "charge", "history", "admit", "stats", "revoke", "refund", "checkin",
       "concert", "codes")


def _use_token_key(settings: Settings, op: str) -> None:
    """The deployment's queue token key, for the pre-queue's order the queue scripts take
    (ARGV): QUEUE_TOKEN_KEY, else the one Redis keeps (engine/queue.py token_key)."""
    key = settings.queue_token_key.encode()
    if not key:
        try:
            key = _redis(settings).get(TOKEN_KEY) or b""
        except (redis.exceptions.RedisError, OSError):
            pass
    if not key and op in ("issue", "status", "admit"):
        print("# no queue token key in Redis yet (no API has started): the order key shown "
              "is a stand-in", file=sys.stderr)
    use_token_key(key or b"<no queue token key yet>")


def cmd_debug(settings: Settings, args: argparse.Namespace) -> int:
    _use_token_key(settings, args.op)
    rec = _Recorder(settings)
    asyncio.run(_operation(rec, args))
    for i, (name, keys, argv) in enumerate(rec.calls, 1):
        if len(rec.calls) > 1:
            print(f"# step {i} of {len(rec.calls)}: lua/{name}.lua")
        print(eval_line(settings, name, keys, argv, args.ldb))
    if args.op == "pay" and len(rec.calls) > 1:
        print("# steps 2 and 3 take the price and attempt from step 1's reply (shown here as 0 "
              "and 1); PAYING blocks a second step 1 until step 3 ran.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed", help="create the demo concert and customers (idempotent)")
    s.add_argument("--customers", type=int, default=10_000)
    s.set_defaults(func=cmd_seed)
    s = sub.add_parser("stats", help="per concert: waiting, active, holds, sold")
    s.add_argument("--concert", type=int, action="append")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stats)
    s = sub.add_parser("debug", help="print the redis-cli --eval line of an operation")
    s.add_argument("op", choices=OPS)
    s.add_argument("--ldb", action="store_true", help="step it in the Lua debugger")
    s.add_argument("--token", help="tokenValue (status, dates, seats, reserve, cancel, pay)")
    s.add_argument("--reservation", help="reservationId (cancel, pay, refund, checkin)")
    s.add_argument("--customer", type=int, default=1)
    s.add_argument("--concert", type=int, default=2)
    s.add_argument("--option", type=int, default=41150)
    s.add_argument("--seat", type=int, default=4115001)
    s.add_argument("--quantity", type=int, default=1, help="best: seats together")
    s.add_argument("--amount-minor", type=int, default=500000, help="charge, in minor units")
    s.set_defaults(func=cmd_debug)
    cli_admin.add_parsers(sub)
    args = p.parse_args(argv)
    try:  # a command that reads no settings (ticket-key) works whatever the environment says
        settings = Settings.from_env() if getattr(args, "settings", True) else Settings()
    except ValueError as e:
        print(f"bad setting: {e}", file=sys.stderr)
        return 2
    try:
        return args.func(settings, args)
    except (redis.exceptions.ConnectionError, redis.exceptions.ClusterError,
            StoreUnavailable) as e:
        print(f"cannot reach Redis: {e}", file=sys.stderr)
        return 1
    except EngineError as e:
        return cli_admin.refusal(e)
