"""Money: integer minor units (x100) inside, validated decimals at the edge."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MINOR_PER_UNIT = 100
MAX_CHARGE = 10_000_000 * MINOR_PER_UNIT  # per charge, in minor units
MAX_BALANCE = 10**12 * MINOR_PER_UNIT  # a balance never exceeds 10^12 points


def to_minor(value: object) -> int:
    """A JSON amount (int or float from orjson) as minor units; ValueError if it is not a
    positive number with at most two decimals. Floats go through their shortest repr, which is
    the literal the client wrote for any amount with up to 15 significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("amount must be a JSON number")
    try:
        exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    except InvalidOperation as e:  # pragma: no cover - orjson never yields NaN/Infinity
        raise ValueError("amount must be finite") from e
    if not exact.is_finite():
        raise ValueError("amount must be finite")
    minor = exact * MINOR_PER_UNIT
    if minor != minor.to_integral_value():
        raise ValueError("amount has more than two decimals")
    return int(minor)


def from_minor(minor: int) -> int | float:
    """Minor units as the JSON number the API shows (an int when there are no cents)."""
    units, cents = divmod(minor, MINOR_PER_UNIT)
    return units if cents == 0 else minor / MINOR_PER_UNIT
