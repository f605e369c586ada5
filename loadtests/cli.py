"""``python -m loadtests``: the load tests' command line.

- ``run <s1..s7|all|soak>``: the report's locust scenarios (``loadtests/scenarios/``);
- ``run drop``: a ticket drop end to end (``loadtests/drop/``; ``run drop --help``);
- ``run stress``: the stress ramp of §6 and §7 (``loadtests/stress/``; ``run stress --help``);
- ``charts <history.csv>``: PNG charts from a locust stats history.

The benchmarks have commands of their own (``python -m loadtests.http_bench.endpoints``, ...;
see loadtests/README.md), and the local cluster is ``python -m devstack cluster``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from loadtests.drop import runner as drop_runner
from loadtests.scenarios import charts
from loadtests.scenarios.runner import run_scenarios
from loadtests.stress import ramp as stress_ramp

RUNNERS = {"drop": drop_runner.main, "stress": stress_ramp.main}  # runners with flags of their own


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h30m`` -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 90s, 5m, 1h30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)




def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenarios and write a report folder",
                         description="Run one scenario or all seven. Defaults are the report's "
                         "own users, spawn rate and duration; the flags scale them (the report "
                         "says so).")
    run.add_argument("scenario", help="all, s1..s7 (or 1..7, or a name like available_dates), "
                     "or soak")
    run.add_argument("-u", "--users", type=int, help="peak users (default: the report's)")
    run.add_argument("-r", "--spawn-rate", type=float, help="users started per second")
    run.add_argument("-t", "--time", type=parse_duration,
                     help="run time per scenario: 90, 90s, 5m (default: the report's)")
    run.add_argument("--scale", choices=["report", "small"], default="report",
                     help="small: every scenario scaled to finish `all` in about 4 minutes on "
                     "2 cores (explicit -u/-r/-t still win)")
    run.add_argument("--as-printed", action="store_true",
                     help="the report's scripts exactly as it prints them (scenarios/as_printed/:"
                     " no body checks, one shared token for §2-§4) against an API with every "
                     "default setting (the queue's limits included)")
    run.add_argument("-p", "--processes", type=int, default=1,
                     help="locust processes (fork); -1 = one per core. Default 1")
    run.add_argument("--host", help="target this API instead of starting Redis + API here")
    run.add_argument("--cluster", action="store_true",
                     help="start a local 3-master cluster (a replica each, REDIS_WAIT_REPLICAS=1) "
                     "instead of one redis-server")
    run.add_argument("--api-workers", type=int, default=1,
                     help="workers of the API started here (default 1)")
    run.add_argument("--server", choices=["granian", "uvicorn"],
                     help="the API's server (default: $SERVER, else api/serve.py's)")
    run.add_argument("--out", type=Path, help="report folder (default "
                     "loadtests/results/<timestamp>/)")
    run.add_argument("--sample-every", type=float, default=5.0,
                     help="soak: seconds between samples (default 5)")
    run.add_argument("--warmup", type=parse_duration,
                     help="soak: seconds not judged at the start (default: half the run)")
    run.add_argument("--redis-url", help="soak with --host: the Redis to sample")
    run.add_argument("--api-pid", type=int, action="append", default=[],
                     help="soak with --host: a process of the API whose RSS to sample "
                     "(repeatable)")
    charts = sub.add_parser("charts", help="PNG charts from a locust *_stats_history.csv "
                            "(e.g. of a distributed run)")
    charts.add_argument("history", type=Path, help="a locust <prefix>_stats_history.csv")
    charts.add_argument("--title", help="chart title (default: the file's name)")
    charts.add_argument("--window", type=float, default=3.0,
                        help="seconds per requests/s point (default 3: workers report every 3 s)")
    return p




def charts_command(args: argparse.Namespace) -> int:
    history: Path = args.history
    stem = history.name.removesuffix("_stats_history.csv")
    if stem == history.name:
        print(f"{history} is not a locust *_stats_history.csv", file=sys.stderr)
        return 2
    for png in charts.history_charts(history, args.title or stem, history.parent, stem,
                                     args.window):
        print(png)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "run" and argv[1] in RUNNERS:
        return RUNNERS[argv[1]](argv[2:])
    args = build_parser().parse_args(argv)
    if args.command == "charts":
        return charts_command(args)
    return run_scenarios(args, argv)
