"""The operators' commands of ``python -m engine``, the CLI twins of the admin API: load a
catalogue, a concert's settings, revoke a token, refund a sale, export the sales, check a
ticket in, make and export presale codes; and a new ticket signing key. They run the same
engine functions through the same Store, on one Redis or a cluster (REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from engine import access_codes, concert_settings, operator, tickets, venue
from engine.config import Settings
from engine.errors import EngineError
from engine.ids import parse_reservation
from engine.store import Store, connect


def _run(settings: Settings, work: Callable[[Store], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        store = Store(connect(settings), settings)
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(go())


def _print(answer: object) -> int:
    print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    return 0


def _refused(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def cmd_catalog(settings: Settings, args: argparse.Namespace) -> int:
    try:
        parsed = venue.parse(orjson.loads(Path(args.file).read_bytes()))
        return _print(_run(settings, lambda store: venue.load(store, parsed)))
    except orjson.JSONDecodeError as e:
        return _refused(f"{args.file}: not JSON ({e})")
    except venue.DocumentError as e:
        return _refused(f"{args.file}: {e.path}: {e.message}")


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    for item in args.set or ():
        name, eq, value = item.partition("=")
        if not eq:
            return _refused(f"--set {item!r}: name=value (value as JSON: 500, true, "
                            '"2027-03-01T10:00:00+09:00", null)')
        try:
            changes[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            changes[name] = value  # a bare word: fifo, random, a date
    try:
        if changes:
            return _print(_run(settings, lambda s: concert_settings.patch(s, args.concert,
                                                                          changes)))
        return _print(_run(settings, lambda s: concert_settings.get(s, args.concert)))
    except concert_settings.SettingError as e:
        return _refused(f"{e.field}: {e.message}")


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    return _print(_run(settings, lambda s: operator.revoke(s, args.concert, args.customer)))


def cmd_refund(settings: Settings, args: argparse.Namespace) -> int:
    parsed = parse_reservation(args.reservation)
    if parsed is None:
        return _refused(f"{args.reservation!r} is not a reservation id")
    return _print(_run(settings, lambda s: operator.refund_sale(s, *parsed, force=args.force)))


def cmd_checkin(settings: Settings, args: argparse.Namespace) -> int:
    try:
        key = tickets.TicketKey.from_pem(settings.ticket_signing_key)
    except ValueError as e:
        return _refused(str(e))
    if key is None:
        return _refused("checkin needs the API's key: TICKET_SIGNING_KEY or "
                        "TICKET_SIGNING_KEY_FILE (make run's: var/ticket-signing-key.pem)")
    return _print(_run(settings, lambda s: tickets.check_in(s, key, args.ticket.strip())))


def cmd_ticket_key(settings: Settings, args: argparse.Namespace) -> int:
    pem = tickets.new_key_pem()
    if not args.out:
        sys.stdout.write(pem)
        return 0
    try:  # readable by its owner only, and never over a key that signed tickets already
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _refused(f"{args.out} exists: its key may have signed tickets; not replaced")
    with os.fdopen(fd, "w") as out:
        out.write(pem)
    print(f"a new ticket signing key in {args.out}", file=sys.stderr)
    return 0


def cmd_sales(settings: Settings, args: argparse.Namespace) -> int:
    async def export(store: Store) -> int:
        out = open(args.out, "wb") if args.out else sys.stdout.buffer
        rows = -1  # the header
        try:
            async for chunk in operator.sales_csv(store, args.concert):
                out.write(chunk)
                rows += chunk.count(b"\r\n")
        finally:
            if args.out:
                out.close()
        return rows

    rows = _run(settings, export)
    if args.out:
        print(f"{rows} sales written to {args.out}", file=sys.stderr)
    return 0


def cmd_codes(settings: Settings, args: argparse.Namespace) -> int:
    """New codes, one a line (to --out, or standard output); or with --export every code of
    the concert and its uses left, as CSV."""
    async def export(store: Store) -> None:
        out = open(args.out, "wb") if args.out else sys.stdout.buffer
        try:
            async for chunk in access_codes.export_csv(store, args.concert):
                out.write(chunk)
        finally:
            if args.out:
                out.close()

    if args.export:
        _run(settings, export)
        return 0
    if not (1 <= args.count <= access_codes.MAX_PER_CALL
            and 1 <= args.uses <= access_codes.MAX_USES):
        return _refused(f"--count 1..{access_codes.MAX_PER_CALL}, --uses 1..."
                        f"{access_codes.MAX_USES}")
    codes = _run(settings, lambda s: access_codes.make(s, args.concert, args.count, args.uses))
    text = "".join(f"{c}\n" for c in codes)
    if args.out:
        Path(args.out).write_text(text)
        print(f"{len(codes)} codes of {args.uses} uses written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("catalog", help="load a catalogue document (create what is missing)")
    s.add_argument("action", choices=["load"])
    s.add_argument("file", help="the document (see catalog/demo.json, docs/operators.md)")
    s.set_defaults(func=cmd_catalog)
    s = sub.add_parser("settings", help="show or change a concert's settings")
    s.add_argument("concert", type=int)
    s.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="e.g. paused=true activeLimit=500 opensAt=2027-03-01T10:00:00+09:00 "
                   "queueing=random; null: back to the default")
    s.set_defaults(func=cmd_settings)
    s = sub.add_parser("revoke", help="end a customer's token, release its holds")
    s.add_argument("concert", type=int)
    s.add_argument("customer", type=int)
    s.set_defaults(func=cmd_revoke)
    s = sub.add_parser("refund", help="refund a paid reservation (points back, seat on sale)")
    s.add_argument("reservation")
    s.add_argument("--force", action="store_true",
                   help="refund a ticket checked in at the door too")
    s.set_defaults(func=cmd_refund)
    s = sub.add_parser("checkin", help="check a ticket in at the door (once)")
    s.add_argument("ticket", help="the ticket's text (its QR code's)")
    s.set_defaults(func=cmd_checkin)
    s = sub.add_parser("ticket-key", help="make a new Ed25519 key for TICKET_SIGNING_KEY")
    s.add_argument("--out", help="a new file (mode 600); default: standard output")
    s.set_defaults(func=cmd_ticket_key, settings=False)  # it makes the key the settings name
    s = sub.add_parser("sales", help="the concert's paid reservations as CSV")
    s.add_argument("concert", type=int)
    s.add_argument("--out", help="a file (default: standard output)")
    s.set_defaults(func=cmd_sales)
    s = sub.add_parser("codes", help="make presale codes (or --export them with their uses "
                       "left)")
    s.add_argument("concert", type=int)
    s.add_argument("--count", type=int, default=1, help="how many new codes")
    s.add_argument("--uses", type=int, default=1, help="new tokens each code lets in")
    s.add_argument("--export", action="store_true", help="every code and its uses left, CSV")
    s.add_argument("--out", help="a file (default: standard output)")
    s.set_defaults(func=cmd_codes)


def refusal(e: EngineError) -> int:
    return _refused(f"refused: {e.code.name}: {e.detail}")
