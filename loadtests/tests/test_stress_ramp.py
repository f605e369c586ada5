"""The stress ramp's steps: their users from --start, --factor or --step, --max-users."""

from __future__ import annotations

from loadtests.stress.ramp import build_parser
from loadtests.stress.steps import levels


def test_ramp_levels() -> None:
    args = build_parser().parse_args(["--start", "100", "--max-users", "400"])
    assert levels(args) == [100, 150, 225, 338, 400]
    args = build_parser().parse_args(["--start", "100", "--step", "100", "--max-users", "300"])
    assert levels(args) == [100, 200, 300]
