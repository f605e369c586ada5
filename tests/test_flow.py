"""The report's flow end to end over HTTP: issue -> status -> dates -> seats -> reserve -> pay."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import CONCERT, OPTION, OTHER_OPTION, auth, seat_id

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)


def test_full_booking_flow(client: TestClient) -> None:
    issued = client.post("/api/token/issue", json={"customerId": 7, "concertId": CONCERT})
    assert issued.status_code == 200
    body = issued.json()
    assert body["status"] == "ACTIVE" and body["position"] == 0
    token = body["tokenValue"]

    status = client.get("/api/token/status", headers={"Authorization": token})  # bare value
    assert status.json()["status"] == "ACTIVE"
    assert status.json()["tokenValue"] == token

    dates = client.get(f"/api/{CONCERT}/available-dates", headers=auth(token)).json()
    assert dates["concertId"] == CONCERT
    assert [d["concertOptionId"] for d in dates["dates"]] == [OTHER_OPTION, OPTION]  # by date
    assert all(d["availableSeats"] == 4 for d in dates["dates"])

    seats = client.get(f"/api/{OPTION}/available-seats", headers=auth(token)).json()
    assert seats["concertOptionId"] == OPTION
    assert [s["number"] for s in seats["seats"]] == [1, 2, 3, 4]
    first = seats["seats"][0]
    assert first == {"id": seat_id(OPTION, 1), "number": 1, "price": 1000, "section": "A",
                     "row": "1"}

    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": OPTION, "seatId": first["id"]})
    assert held.status_code == 200, held.text
    hold = held.json()
    assert hold["status"] == "HELD" and hold["price"] == 1000 and hold["seatId"] == first["id"]
    assert hold["expiresAt"].endswith("Z")

    # The held seat is gone from the seat list and from the free count.
    seats = client.get(f"/api/{OPTION}/available-seats", headers=auth(token)).json()
    assert first["id"] not in [s["id"] for s in seats["seats"]]
    dates = client.get(f"/api/{CONCERT}/available-dates", headers=auth(token)).json()
    assert {d["concertOptionId"]: d["availableSeats"] for d in dates["dates"]}[OPTION] == 3

    before = client.get("/api/point", params={"customerId": 7}).json()["balance"]
    paid = client.post("/api/pay", headers=auth(token),
                       json={"reservationId": hold["reservationId"]})
    assert paid.status_code == 200, paid.text
    assert paid.json() == {"reservationId": hold["reservationId"], "status": "PAID",
                           "amount": 1000, "balance": before - 1000}
    assert client.get("/api/point", params={"customerId": 7}).json()["balance"] == before - 1000

    # The pay finished the token (no other hold under it); the seat stays sold.
    assert client.get("/api/token/status", headers=auth(token)).status_code == 401
    token2 = client.post("/api/token/issue", json={"customerId": 8, "concertId": CONCERT}).json()
    seats = client.get(f"/api/{OPTION}/available-seats", headers=auth(token2["tokenValue"])).json()
    assert first["id"] not in [s["id"] for s in seats["seats"]]

    history = client.get("/api/point/history", params={"customerId": 7}).json()["entries"]
    assert history[0]["type"] == "PAYMENT" and history[0]["amount"] == 1000
    assert history[0]["reservationId"] == hold["reservationId"]


def test_prices_with_cents_are_exact_json_numbers(client: TestClient) -> None:
    token = client.post("/api/token/issue", json={"customerId": 9, "concertId": CONCERT}).json()[
        "tokenValue"]
    seats = client.get(f"/api/{OTHER_OPTION}/available-seats", headers=auth(token)).json()
    prices = {s["number"]: s["price"] for s in seats["seats"]}
    assert prices == {1: 1000, 2: 1000, 3: 1234.5, 4: 1234.56}
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": OTHER_OPTION, "seatId": seat_id(OTHER_OPTION, 4)})
    assert held.json()["price"] == 1234.56
    paid = client.post("/api/pay", headers=auth(token),
                       json={"reservationId": held.json()["reservationId"]}).json()
    assert paid["amount"] == 1234.56 and paid["balance"] == 10_000 - 1234.56
