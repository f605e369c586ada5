"""Read a concert's event stream with a consumer group: every hold, cancel, expiry, payment,
refund, revoke and admission batch, each delivered to one consumer of the group and
acknowledged once handled (XREADGROUP, XACK). Run several with the same group to share the
work; a consumer that dies leaves its unacknowledged events pending for another to claim.

    .venv/bin/python examples/events_consumer.py --concert 2 --group billing --name c1

REDIS_URL selects the Redis (redis:// or redis+cluster://); the stream is
tk:{c:<concertId>}:events (engine/keys.py), in the concert's own slot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from engine.keys import concert_keys
from engine.sync import sync_client


def handle(event_id: bytes, fields: dict[bytes, bytes]) -> None:
    """What a consumer does with an event; here: print it."""
    f = {k.decode(): v.decode() for k, v in fields.items()}
    print(f"{event_id.decode()} {f.pop('type'):9} " + " ".join(f"{k}={v}" for k, v in f.items()
                                                            if v), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concert", type=int, default=2)
    p.add_argument("--group", default="example")
    p.add_argument("--name", default="consumer-1")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    p.add_argument("--from-start", action="store_true",
                   help="a new group reads the stream from its start, not only new events")
    args = p.parse_args(argv)
    r = sync_client(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    stream = concert_keys(args.concert).events
    try:
        r.xgroup_create(stream, args.group, id="0" if args.from_start else "$", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):  # the group exists: join it
            raise
    deadline = time.monotonic() + args.seconds if args.seconds else None
    handled = 0
    # First what this consumer was given before and did not acknowledge, then new events.
    cursor = "0"
    while deadline is None or time.monotonic() < deadline:
        reply = r.xreadgroup(args.group, args.name, {stream: cursor}, count=100, block=1000)
        events = reply[0][1] if reply else []
        if cursor == "0" and not events:
            cursor = ">"
            continue
        for event_id, fields in events:
            handle(event_id, fields)
            r.xack(stream, args.group, event_id)
            handled += 1
    print(f"{handled} events handled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
