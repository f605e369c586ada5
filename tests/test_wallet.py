"""Points: exact amounts, the balance cap, Idempotency-Key, history."""

from __future__ import annotations

import pytest
import redis
from starlette.testclient import TestClient

from engine.keys import CustomerKeys

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)


def charge(client: TestClient, customer: int, amount: object, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.patch("/api/point/charge", json={"customerId": customer, "amount": amount},
                        headers=headers)


def test_unknown_customer_has_zero_and_charges_are_exact(
    client: TestClient, catalog: redis.Redis
) -> None:
    assert client.get("/api/point", params={"customerId": 9999}).json() == {
        "customerId": 9999, "balance": 0}
    assert charge(client, 9999, 0.1).json()["balance"] == 0.1
    assert charge(client, 9999, 0.2).json()["balance"] == 0.3  # not 0.30000000000000004
    assert charge(client, 9999, 5000.00).json()["balance"] == 5000.3
    assert catalog.get(CustomerKeys(9999).balance) == b"500030"  # minor units in Redis
    assert charge(client, 9999, 10_000_000).status_code == 200  # the per-charge maximum


def test_balance_never_exceeds_its_limit(client: TestClient, catalog: redis.Redis) -> None:
    catalog.set(CustomerKeys(1).balance, 10**14 - 100)  # 10^12 points less one
    assert charge(client, 1, 1).json()["balance"] == 10**12
    resp = charge(client, 1, 0.01)
    assert resp.status_code == 409 and resp.json()["code"] == "BALANCE_LIMIT"
    assert int(catalog.get(CustomerKeys(1).balance)) == 10**14


def test_idempotency_key_charges_once(client: TestClient, catalog: redis.Redis) -> None:
    first = charge(client, 1, 250.5, key="order-17")
    again = charge(client, 1, 250.5, key="order-17")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert client.get("/api/point", params={"customerId": 1}).json()["balance"] == first.json()[
        "balance"]
    reused = charge(client, 1, 99, key="order-17")
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # Scoped to the customer: another customer's same key is a new charge.
    assert charge(client, 2, 99, key="order-17").json()["balance"] == 10_000 + 99
    # The key never becomes part of a Redis key name as typed.
    assert not list(catalog.scan_iter(match="*order-17*"))
    assert len(list(catalog.scan_iter(match="tk:{u:1}:idem:*"))) == 1
    for bad in ["", "a" * 256, "spaced key", "ключ"]:
        resp = client.patch("/api/point/charge", json={"customerId": 1, "amount": 1},
                            headers={"Idempotency-Key": bad.encode()})
        assert resp.status_code == 400, bad


def test_an_idempotency_key_keeps_its_first_answer_even_a_refusal(
    client: TestClient, catalog: redis.Redis
) -> None:
    """A refused charge used to leave no record under its key, so the same retry could
    succeed later: a key must always return its first answer."""
    from engine.money import MAX_BALANCE

    catalog.set(CustomerKeys(9).balance, MAX_BALANCE - 100)  # room for 1 point only
    refused = charge(client, 9, 5, key="late-5")
    assert refused.status_code == 409 and refused.json()["code"] == "BALANCE_LIMIT"
    catalog.decrby(CustomerKeys(9).balance, 10_000)  # room again (a payment, say)
    again = charge(client, 9, 5, key="late-5")
    assert again.status_code == 409 and again.json() == refused.json()
    assert int(catalog.get(CustomerKeys(9).balance)) == MAX_BALANCE - 10_100
    assert charge(client, 9, 5, key="late-6").status_code == 200  # a new key is a new charge
    assert charge(client, 9, 6, key="late-5").status_code == 422  # another body: reused


def test_history_newest_first_and_bounded(make_client, catalog: redis.Redis) -> None:
    client = make_client(history_limit=5)
    for amount in range(1, 31):
        assert charge(client, 3, amount).status_code == 200
    entries = client.get("/api/point/history", params={"customerId": 3, "limit": 50}).json()[
        "entries"]
    assert [e["amount"] for e in entries] == [30, 29, 28, 27, 26]
    assert entries[0]["type"] == "CHARGE" and entries[0]["balance"] == 10_000 + 465
    assert 5 <= catalog.llen(CustomerKeys(3).history) <= 5 + 10  # trimmed in steps of 10
    two = client.get("/api/point/history", params={"customerId": 3, "limit": 2}).json()
    assert len(two["entries"]) == 2


def test_a_balance_at_its_exact_limit_reads_and_replays(client: TestClient,
                                                        catalog: redis.Redis) -> None:
    """Found in review: Lua printed 10^14 minor units as 1e+14 in the history entry and the
    idempotency record (history 500, replay 422)."""
    catalog.set(CustomerKeys(1).balance, 10**14 - 10**9)
    first = charge(client, 1, 10_000_000, key="to-the-top")
    assert first.json()["balance"] == 10**12
    assert charge(client, 1, 10_000_000, key="to-the-top").json() == first.json()
    entries = client.get("/api/point/history", params={"customerId": 1}).json()["entries"]
    assert entries[0]["balance"] == 10**12 and entries[0]["amount"] == 10_000_000
