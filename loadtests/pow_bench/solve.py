"""``python -m loadtests.pow_bench.solve``: what the proof-of-work gate costs each side.

- A visitor: the vendored widget (api/static/altcha/) in headless Chromium, on the booking
  page of an API this starts (its Redis with the demo data), solving the demo concert's
  challenges at each complexity: ms from ``verify()`` to its payload (the challenge's fetch
  and the Web Workers' start included), mean, 95th percentile and worst of ``--runs``.
- Python on this machine: the library's solver and the lean one (``challenge.solve``): ms a
  token, and hashes a second.
- A bot farm: CPU seconds per 1,000 tokens at each complexity, the expected work being
  complexity / 2 hashes a token (the number is drawn uniformly in [0, complexity]), at Python's
  rate and at OpenSSL's (``openssl speed sha256``, one core, 64-byte inputs: a native solver).
- The server: µs of CPU to make a challenge and to verify a payload (engine/challenge.py).
- Redis: bytes a spent solution's record and a presale code take (used_memory over many).

Writes loadtests/results/pow.md.
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import subprocess
import time
from pathlib import Path

import orjson
import redis
from altcha import solve_challenge_v1

from devstack.browser import available, chromium, widget_solve
from devstack.demo_stack import DemoStack
from devstack.redis_server import temp_redis
from engine import access_codes, challenge
from engine.keys import concert_keys
from engine.seed import DEMO_CONCERT
from loadtests.reporting import RESULTS, bench_report, publish

KEY = "pow-bench-challenge-hmac-key-of-32-bytes"
COMPLEXITIES = (10_000, 25_000, 50_000, 100_000)


def spread(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.mean(ms):,.0f} | {p95:,.0f} | {ordered[-1]:,.0f}"


def browser_rows(complexities: tuple[int, ...], runs: int) -> list[str]:
    """Per complexity: the widget's ms (mean, p95, worst) in headless Chromium."""
    why = available()
    if why:
        return [f"| {c:,} | (no browser: {why}) | | |" for c in complexities]
    stack = DemoStack({"CHALLENGE_HMAC_KEY": KEY}, workers=1).start()
    rows = []
    try:
        r = redis.Redis.from_url(stack.redis.url)
        assert stack.api is not None
        with chromium() as driver:
            driver.get(f"{stack.api.base}/")
            widget_solve(driver, DEMO_CONCERT)  # the script loaded and compiled once
            for c in complexities:
                r.hset(concert_keys(DEMO_CONCERT).settings, "challengeComplexity", c)
                ms = [widget_solve(driver, DEMO_CONCERT)[1] for _ in range(runs)]
                rows.append(f"| {c:,} | {spread(ms)} |")
        r.close()
    finally:
        stack.stop()
    return rows


def openssl_rate() -> float | None:
    """SHA-256 of 64-byte inputs a second on one core, by OpenSSL (None without it)."""
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "64", "sha256"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^sha256\s+([\d.]+)k", out, re.M)
    return float(m[1]) * 1000 / 64 if m else None


def python_rows(complexities: tuple[int, ...], runs: int) -> tuple[list[str], float]:
    """Per complexity: ms a token by the library's solver and the lean one; and the lean
    solver's hashes a second."""
    key = KEY.encode()
    rows, hashes, seconds = [], 0, 0.0
    for c in complexities:
        lean, library = [], []
        for i in range(runs):
            ch = challenge.new(key, DEMO_CONCERT, c, 60)
            t = time.perf_counter()
            n = challenge.solve(ch)
            lean.append((time.perf_counter() - t) * 1000)
            hashes, seconds = hashes + n + 1, seconds + lean[-1] / 1000
            if i < max(3, runs // 3):
                t = time.perf_counter()
                solve_challenge_v1(ch["challenge"], ch["salt"], ch["algorithm"], c)
                library.append((time.perf_counter() - t) * 1000)
        rows.append(f"| {c:,} | {spread(library)} | {spread(lean)} |")
    return rows, hashes / seconds


def server_costs(n: int = 5000) -> tuple[float, float]:
    """µs of CPU to make a challenge, and to verify a payload (the issue's part in Python)."""
    key = KEY.encode()
    t = time.process_time()
    made = [challenge.new(key, DEMO_CONCERT, 100, 60) for _ in range(n)]
    make_us = (time.process_time() - t) / n * 1e6
    payloads = [base64.b64encode(orjson.dumps({**c, "number": challenge.solve(c)})).decode()
                for c in made]
    t = time.process_time()
    for p in payloads:
        challenge.verify(key, p, DEMO_CONCERT)
    return make_us, (time.process_time() - t) / n * 1e6


def redis_bytes(n: int = 100_000) -> tuple[float, float]:
    """Bytes of Redis a spent solution's record takes (a key with an expiry, as the issue
    script writes it), and a presale code (a field of the concert's codes hash)."""
    with temp_redis(prefix="bench-pow-") as rs:
        r = redis.Redis.from_url(rs.url)
        k = concert_keys(DEMO_CONCERT)
        until = int(time.time() * 1000) + 3_600_000
        base = r.info("memory")["used_memory"]
        for i in range(0, n, 5000):
            with r.pipeline(transaction=False) as p:
                for j in range(i, min(n, i + 5000)):
                    p.set(k.solved(f"{j:064x}"), "1", pxat=until)
                p.execute()
        solved = (r.info("memory")["used_memory"] - base) / n
        base = r.info("memory")["used_memory"]
        codes = [access_codes.new_code() for _ in range(n)]
        for i in range(0, n, 5000):
            r.hset(k.codes, mapping=dict.fromkeys(codes[i:i + 5000], 1))
        code = (r.info("memory")["used_memory"] - base) / n
        r.close()
    return solved, code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="challenges solved per complexity")
    p.add_argument("--complexities", type=int, nargs="+", default=list(COMPLEXITIES))
    p.add_argument("--out", type=Path, default=RESULTS / "pow.md")
    args = p.parse_args(argv)
    cs = tuple(args.complexities)
    browser = browser_rows(cs, args.runs)
    py, rate = python_rows(cs, args.runs)
    native = openssl_rate()
    make_us, verify_us = server_costs()
    solved_b, code_b = redis_bytes()
    farm = "\n".join(
        f"| {c:,} | {1000 * c / 2 / rate:,.1f} | "
        + (f"{1000 * c / 2 / native:,.1f}" if native else "-") + " |" for c in cs)
    body = (
        f"`python -m loadtests.pow_bench.solve --runs {args.runs}`; the default complexity "
        f"is {challenge.DEFAULT_COMPLEXITY:,}.\n\n"
        "**A visitor**: the widget in headless Chromium (its Web Workers: one a core), ms from "
        "verify() to the payload, the challenge's fetch included.\n\n"
        "| complexity | mean | p95 | worst |\n|---:|---:|---:|---:|\n" + "\n".join(browser)
        + "\n\n**Python**, one core, ms a token: the library's solver (mean, p95, worst), then "
        f"the lean one (engine/challenge.py `solve`, {rate / 1e6:.2f} M hashes/s).\n\n"
        "| complexity | library mean | p95 | worst | lean mean | p95 | worst |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(py)
        + "\n\n**A bot farm**: CPU seconds per 1,000 tokens (complexity / 2 hashes a token), "
        "in Python and natively (OpenSSL, "
        + (f"{native / 1e6:.1f} M hashes/s a core" if native else "not found") + ").\n\n"
        "| complexity | Python | native |\n|---:|---:|---:|\n" + farm
        + f"\n\n**The server**: {make_us:.1f} µs of CPU to make a challenge, {verify_us:.1f} µs "
        "to verify a payload (before the issue script).\n\n"
        f"**Redis**: {solved_b:.0f} bytes a spent solution's record (until its challenge "
        f"expires), {code_b:.0f} bytes a presale code.\n")
    publish(bench_report("The proof of work, both sides", body), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
