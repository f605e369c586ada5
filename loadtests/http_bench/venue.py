"""``make bench-endpoints``, second part: big venues. Catalogues of 50 to 100,000 seats a
performance loaded through the engine's loader (timed, with Redis memory a seat), then the
seat list of each under wrk, whole and one section, against one uvicorn worker: the API's
CPU per returned seat should stay flat from 50 to 100,000 seats. Writes
loadtests/results/venue.md. Everything on 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import argparse
import time

from devstack.api_server import Uvicorn
from devstack.demo_stack import issue_tokens
from devstack.redis_server import temp_redis
from engine.sync import sync_client
from engine.venue import load_sync, parse
from loadtests.http_bench.wrk import endpoint_run
from loadtests.reporting import bench_report, publish

SIZES = (50, 1_000, 10_000, 100_000)


def venue(concert: int, seats: int) -> dict:
    """Sections of at most 5,000 seats in rows of 50 (or fewer)."""
    per_row = min(50, seats)
    rows = seats // per_row
    per_section = max(1, min(rows, 100))
    sections = [{"name": f"S{i}", "price": 1000 + i, "rows": [
        {"name": str(n + 1), "seats": per_row} for n in range(per_section)]}
        for i in range(rows // per_section)]
    return {"concertId": concert, "name": f"{seats} seats", "options": [{
        "concertOptionId": concert * 10, "date": "2027-05-01T19:00:00+09:00",
        "sections": sections}]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    args = p.parse_args(argv)
    rows, loads = [], []
    with temp_redis(prefix="bench-venue-") as rs:
        r = sync_client(rs.url)
        for i, seats in enumerate(SIZES):
            doc = venue(100 + i, seats)
            m0 = r.info("memory")["used_memory"]
            t0 = time.monotonic()
            load_sync(r, parse(doc))
            took = time.monotonic() - t0
            per_seat = (r.info("memory")["used_memory"] - m0) / seats
            loads.append(f"| {seats:,} | {took:.2f} | {per_seat:.0f} |")
        toks = issue_tokens(rs.url, [(1, 100 + i) for i in range(len(SIZES))])
        env = {"REDIS_URL": rs.url, "ACTIVE_TTL_SECONDS": "3600"}
        with Uvicorn("api.app:app", env) as api:
            for i, seats in enumerate(SIZES):
                first_section = venue(100 + i, seats)["options"][0]["sections"][0]
                in_section = sum(x["seats"] for x in first_section["rows"])
                for label, query, returned in (("whole", "", seats),
                                               (f"?section={first_section['name']}",
                                                f"?section={first_section['name']}",
                                                in_section)):
                    e = {"BENCH_TOKEN": toks[i], "BENCH_OPTION": str((100 + i) * 10),
                         "BENCH_QUERY": query}
                    endpoint_run(api.base, "seats", 1, args.connections, e, api.pids(),
                                 rs.pids())
                    run = endpoint_run(api.base, "seats", args.seconds, args.connections, e,
                                       api.pids(), rs.pids())
                    cpu_us = run.server_cpu / run.rps * 1e6  # API CPU per request
                    rows.append(f"| {seats:,} | {label} | {returned:,} | {run.rps:,.0f} | "
                                f"{run.p99_ms:.2f} | {cpu_us:,.0f} | "
                                f"{cpu_us * 1000 / returned:,.1f} | {run.non2xx} |")
    body = "\n".join([
        "### Loading a performance (engine/venue.py, calls of 5,000 seats)\n",
        "| seats | load s | Redis bytes a seat |", "|---:|---:|---:|", *loads, "",
        f"### The seat list, one uvicorn worker (wrk -t1 -c{args.connections}, "
        f"{args.seconds:g} s; every seat free)\n",
        "| seats | list | seats returned | req/s | p99 ms | API CPU µs a request | "
        "API CPU ns a returned seat | non-2xx |",
        "|---:|---|---:|---:|---:|---:|---:|---:|", *rows, ""])
    publish(bench_report("Big venues", body), "venue.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
