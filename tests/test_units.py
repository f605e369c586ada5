"""Python-only logic: key names (exact strings), money, ids, settings, error codes."""

from __future__ import annotations

import random

import pytest

from engine import errors
from engine.config import Settings
from engine.ids import iso_ms, mint, parse_reservation, parse_token, use_token_key
from engine.keys import CONCERTS, CustomerKeys, concert_keys
from engine.money import from_minor, to_minor
from tests.conftest import QUEUE_TOKEN_KEY


def test_key_names_are_exact() -> None:
    k = concert_keys(2)
    assert (k.concert, k.tokens, k.seqs, k.seen0, k.active, k.seats(41150)) == (
        "tk:{c:2}:concert", "tk:{c:2}:tokens", "tk:{c:2}:seqs", "tk:{c:2}:seen0",
        "tk:{c:2}:active", "tk:{c:2}:seats:41150")
    assert (k.codes, k.solved("ab" * 32)) == ("tk:{c:2}:codes", "tk:{c:2}:solved:" + "ab" * 32)
    c = CustomerKeys(7)
    assert (c.balance, c.history, c.debits, c.idempotency("ab")) == (
        "tk:{u:7}:balance", "tk:{u:7}:history", "tk:{u:7}:debits", "tk:{u:7}:idem:ab")
    assert CONCERTS == "tk:concerts"
    # Every concert key carries the concert's tag (one Redis Cluster slot per concert).
    assert all(getattr(k, s).startswith("tk:{c:2}") for s in k.__slots__)


@pytest.mark.parametrize(("value", "minor"), [
    (1, 100), (0.01, 1), (0.1, 10), (5000.0, 500000), (12.34, 1234), (10_000_000, 10**9),
    (1e3, 100000), (99999.99, 9999999),
])
def test_to_minor_exact(value: object, minor: int) -> None:
    assert to_minor(value) == minor


@pytest.mark.parametrize("value", [0.001, 1.005, 12.345, True, "5", None, [1], float("nan"),
                                   float("inf")])
def test_to_minor_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        to_minor(value)


def test_from_minor() -> None:
    assert from_minor(500000) == 5000 and isinstance(from_minor(500000), int)
    assert from_minor(30) == 0.3 and from_minor(100000000000005) == 1000000000000.05


def test_ids_parse_only_our_shapes() -> None:
    use_token_key(b"k" * 32)
    good = mint(2, 7, 3)
    tok = parse_token(good.value)
    assert tok == good and (tok.concert_id, tok.customer_id, tok.seq) == (2, 7, 3)
    mac = good.mac
    for bad in ["02.7.3." + mac, "2.7.3." + mac[:31], "2.7.3." + mac.upper(), "2.7.03." + mac,
                "2.7.3.{" + mac[1:], f"{2**53}.7.3." + mac, "2.7.3." + mac + "\n",
                " 2.7.3." + mac, "2.7.4." + mac, "2.8.3." + mac, "3.7.3." + mac,
                "2.7." + mac, "2.7.3." + "a" * 32]:
        assert parse_token(bad) is None, bad
    assert parse_token("2.7.4." + mac, verify=False) == (2, 7, 4, mac)  # the CLI's reading
    use_token_key(b"another key, 32 bytes long......")  # another deployment's tokens
    assert parse_token(good.value) is None
    use_token_key(QUEUE_TOKEN_KEY.encode())
    assert parse_reservation("2." + "f" * 32) == (2, "f" * 32)
    assert parse_reservation("2.7." + "f" * 32) is None


def test_iso_ms() -> None:
    assert iso_ms(1_795_599_043_569) == "2026-11-25T09:30:43.569Z"


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLD_TTL_SECONDS", "0.25")
    monkeypatch.setenv("ACTIVE_LIMIT", "3")
    s = Settings.from_env()
    assert (s.hold_ttl_seconds, s.active_limit, s.ms("hold_ttl_seconds")) == (0.25, 3, 250)
    monkeypatch.setenv("ACTIVE_LIMIT", "0")
    with pytest.raises(ValueError):
        Settings.from_env()


def test_every_code_has_one_exception() -> None:
    assert isinstance(errors.BY_CODE[errors.Code.SEAT_TAKEN](), errors.SeatTaken)
    with pytest.raises(errors.SeatTaken):
        errors.raise_for([6])
    with pytest.raises(RuntimeError):
        errors.raise_for([99])
    assert errors.raise_for([0, 1]) == [0, 1]


def test_free_views_is_the_seats_whose_bit_is_clear() -> None:
    """catalog.free_views against a seat-by-seat filter, over ranges that start and end
    anywhere in a byte and bitmaps of free, taken and mixed bytes."""
    from engine.catalog import free_views

    rnd = random.Random(7)
    views = [b"%d" % i for i in range(300)]
    for _ in range(2000):
        offset = rnd.randrange(0, 100)
        start, count = rnd.randrange(0, 64), rnd.randrange(1, 150)
        first = start >> 3
        bits = bytes(rnd.choice((0, 0xFF, rnd.randrange(256)))
                     for _ in range(((start + count + 7) >> 3) - first))
        expected = [views[offset + i - start] for i in range(start, start + count)
                    if not bits[(i >> 3) - first] & (0x80 >> (i & 7))]
        assert free_views(views, offset, start, count, bits) == expected
