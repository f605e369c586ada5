"""``python -m loadtests.script_bench.issue_steps``: where a token issue's Redis CPU goes.

The issue script (lua/issue.lua, expanded) is run whole and cut short before each of its steps
(``do return {0} end`` inserted there), each variant for new customers, pipelined, alone on a
redis-server from redis.conf; each step's cost is the difference to the variant before it. The
first variant returns right after the header: what the call itself costs (its keys and
arguments, a reply), before any line of the script runs. The cut points are the script's own
lines: if one moves, this says so and stops. Each call carries a worker view's pace, as the
API's issues do once the view is read (issue.lua's ARGV[15], ARGV[16]).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import redis

from devstack.redis_server import temp_redis
from engine.ids import use_token_key
from engine.scripts import load_sources
from engine.seed import Option, Seat, create_concert
from loadtests.script_bench import hot

STOP = "do return {0} end\n"
HEADER_END = "]]\n"  # the end of the script's header comment: nothing runs before it
# (the step, the line of issue.lua before which the variant stops; None: after the header)
STEPS = (
    ("the call: its keys and arguments, and a reply", None),
    ("the includes' functions, built on every call", "local k = {concert = KEYS[1]"),
    ("the keys and arguments as locals", "local now = time_ms()\n"),
    ("the clock (TIME)", "local cfg = configured("),
    ("the settings (HGETALL) and their defaults", "local entry = redis.call('HGET', k.tokens"),
    ("the customer's entry (HGET)", "local c = queue_counts(k, cfg, now)\n"),
    ("the queue's fields (HMGET)", "local drawn = {}\n"),
    ("the rate limits and the gates, off", "for _, d in ipairs(drawn) do"),
    ("the join: the seq, the tokens and seqs hashes (three writes)", "if waiting == 0 then\n"),
)
LAST = "the standing and the answer"


def variants() -> Iterator[tuple[str, str]]:
    """(step, script) for each cut, then the whole script."""
    src = load_sources()["issue"]
    for step, line in STEPS:
        if line is None:
            at = src.index(HEADER_END) + len(HEADER_END)
        elif src.count(line) < 1:
            raise SystemExit(f"issue.lua no longer has the line {line.strip()!r}: update STEPS")
        else:
            at = src.rindex(line)  # the script's own line, after its includes
        yield step, src[:at] + STOP + src[at:]
    yield LAST, src


def measure(calls: int = 10_000, rounds: int = 3) -> list[tuple[str, float]]:
    """Each variant's Redis CPU µs a call (the median of ``rounds``), in STEPS order."""
    use_token_key(b"bench-queue-token-key-0123456789")
    with temp_redis() as server:
        r = redis.Redis.from_url(server.url)
        bench = hot.Bench(r)
        seat = Seat(hot.CONCERT * 10_000 + 1, 1, 100)
        create_concert(r, hot.CONCERT, "Issue steps",
                       [Option(hot.CONCERT * 10, "2027-05-01T19:00:00+09:00", (seat,))])
        scripts = [(step, r.script_load(src)) for step, src in variants()]
        customer = 10**6

        def run(sha: str, n: int) -> float:
            nonlocal customer
            before = bench._cpu()
            for lo in range(0, n, 500):
                with r.pipeline(transaction=False) as p:
                    for _ in range(min(500, n - lo)):
                        customer += 1
                        keys, args = bench.issue_call(customer, ("1.000", 0))
                        p.evalsha(sha, len(keys), *keys, *args)
                    p.execute()
            return (bench._cpu() - before) / n * 1e6

        for _, sha in scripts:  # warm
            run(sha, min(calls, 2000))
        costs: dict[str, list[float]] = {step: [] for step, _ in scripts}
        for _ in range(rounds):
            for step, sha in scripts:
                costs[step].append(run(sha, calls))
        r.close()
    return [(step, sorted(v)[len(v) // 2]) for step, v in costs.items()]


def report(costs: list[tuple[str, float]]) -> str:
    lines = ["| step | Redis CPU µs a call, cut after it | the step's own |", "|---|---:|---:|"]
    before = 0.0
    for step, us in costs:
        lines.append(f"| {step} | {us:.1f} | {us - before:+.1f} |")
        before = us
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000, help="new customers a variant a round")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(report(measure(a.calls, a.rounds)))


if __name__ == "__main__":
    main()
