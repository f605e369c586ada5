"""Concurrency claims, proven with real concurrent HTTP requests against a real server:
one winner per seat, one payment per reservation, charges that sum to the cent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import orjson
import pytest
import redis

from devstack.api_server import Server
from engine.keys import CustomerKeys
from tests.conftest import OPTION, seat_id
from tests.http import fire

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

SEAT = seat_id(OPTION, 2)
HOST = "127.0.0.1"


def issue_tokens(server: Server, customers: range) -> dict[int, str]:
    batches = [[("POST", "/api/token/issue", {"customerId": c, "concertId": 2}, {})]
               for c in customers]
    tokens = {}
    for c, [(status, body)] in zip(customers, fire(HOST, server.port, batches),
                                   strict=True):
        assert status == 200 and body["status"] == "ACTIVE", body
        tokens[c] = body["tokenValue"]
    return tokens


def test_one_winner_among_60_concurrent_reserves(live_server: Callable[..., Server]) -> None:
    server = live_server()
    tokens = issue_tokens(server, range(1, 61))
    batches = [[("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": SEAT},
                 {"Authorization": t})] for t in tokens.values()]
    results = [res[0] for res in fire(HOST, server.port, batches)]
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 1, 409: 59}, statuses
    assert all(body["code"] == "SEAT_TAKEN" for status, body in results if status == 409)


def test_one_payment_among_20_concurrent_pays(
    live_server: Callable[..., Server], catalog: redis.Redis
) -> None:
    server = live_server()
    token = issue_tokens(server, range(7, 8))[7]
    [[(status, held)]] = fire(HOST, server.port, [[
        ("POST", "/api/reserve", {"concertOptionId": OPTION, "seatId": SEAT},
         {"Authorization": token})]])
    assert status == 200
    before = int(catalog.get(CustomerKeys(7).balance))
    batches = [[("POST", "/api/pay", {"reservationId": held["reservationId"]},
                 {"Authorization": token})] for _ in range(20)]
    results = [res[0] for res in fire(HOST, server.port, batches)]
    statuses = Counter(status for status, _ in results)
    # One payment. A pay that comes after it answers that same payment (200, the same body);
    # one that comes while it runs is refused with 409 PAYMENT_IN_PROGRESS.
    assert set(statuses) <= {200, 409} and statuses[200] >= 1, statuses
    assert all(body["code"] == "PAYMENT_IN_PROGRESS" for status, body in results
               if status == 409)
    paid = {orjson.dumps(body) for status, body in results if status == 200}
    assert len(paid) == 1, paid
    assert orjson.loads(paid.pop())["balance"] * 100 == before - 100_000
    assert int(catalog.get(CustomerKeys(7).balance)) == before - 100_000
    assert catalog.llen(CustomerKeys(7).history) == 1


def test_1200_concurrent_charges_sum_to_the_cent(
    live_server: Callable[..., Server], catalog: redis.Redis
) -> None:
    server = live_server()
    customer, clients, each = 4242, 40, 30  # 1,200 charges, 40 connections at once
    amounts = [0.01, 0.10, 1.99, 5000.00, 12.34]
    batches = [[("PATCH", "/api/point/charge",
                 {"customerId": customer, "amount": amounts[(i + j) % len(amounts)]}, {})
                for j in range(each)] for i in range(clients)]
    results = [r for batch in fire(HOST, server.port, batches) for r in batch]
    assert all(status == 200 for status, _ in results)
    expected_minor = sum(round(amounts[(i + j) % len(amounts)] * 100)
                         for i in range(clients) for j in range(each))
    assert int(catalog.get(CustomerKeys(customer).balance)) == expected_minor
    # Every answer was a balance that really existed: all distinct, the largest is the total.
    balances = [body["balance"] for _, body in results]
    assert len(set(balances)) == len(balances)
    assert round(max(balances) * 100) == expected_minor
