"""The seat map's API (engine/seat_map.py, engine/on_sale.py): a performance's layout once
(sections; one section's rows as runs), cacheable by ETag, its taken seats as bits in place,
and the concerts on sale, public."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from engine import on_sale
from engine.seed import fund_customers
from engine.venue import load_sync, parse
from tests.conftest import active_token, auth

STADIUM = {"concertId": 7, "name": "Stadium night", "options": [
    {"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00", "sections": [
        {"name": "A", "price": 150000, "rows": [
            {"name": "1", "seats": 40}, {"name": "2", "seats": 40, "price": 120000}]},
        {"name": "B", "price": 90000.5, "rows": [{"name": "1", "seats": 20}]}]},
    {"concertOptionId": 70002, "date": "2027-03-02T19:00:00+09:00", "sections": [
        {"name": "A", "price": 1000, "rows": [{"name": "1", "seats": 4}]}]}]}


def seats_of(layout: dict) -> list[dict]:
    """Every seat of a section answer, from its runs, as available-seats lists them."""
    out = []
    for section in layout["sections"]:
        for row in section["rows"]:
            for run in row["runs"]:
                out += [{"id": run["id"] + i, "number": run["number"] + i, "price": run["price"],
                         "section": section["name"], "row": row["name"], "place": run["place"] + i}
                        for i in range(run["count"])]
    return out


def taken_places(answer: dict) -> list[int]:
    bits = int.from_bytes(base64.b64decode(answer["taken"]), "big")
    width = len(base64.b64decode(answer["taken"])) * 8
    return [answer["place"] + i for i in range(answer["count"])
            if bits >> (width - 1 - i) & 1]


@pytest.fixture
def stadium(r: redis.Redis, make_client: Callable[..., TestClient]) -> tuple[TestClient, str]:
    load_sync(r, parse(STADIUM))
    fund_customers(r, 1, 3, 10**6 * 100)
    client = make_client()
    return client, active_token(client, 1, concert=7)


@pytest.mark.both_modes
def test_the_layout_is_the_seats_in_place(stadium: tuple[TestClient, str]) -> None:
    client, token = stadium
    overview = client.get("/api/70001/seat-map", headers=auth(token))
    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert body["seats"] == 100 and body["prices"] == [150000, 120000, 90000.5]
    assert body["sections"] == [
        {"name": "A", "place": 0, "count": 80, "rowCount": 2, "prices": [150000, 120000]},
        {"name": "B", "place": 80, "count": 20, "rowCount": 1, "prices": [90000.5]}]
    # One section: its rows as runs, seat for seat what available-seats lists, in place.
    listed = client.get("/api/70001/available-seats", headers=auth(token)).json()["seats"]
    drawn = []
    for name in ("A", "B"):
        section = client.get("/api/70001/seat-map", params={"section": name},
                             headers=auth(token)).json()
        assert [s["name"] for s in section["sections"]] == [name]
        drawn += seats_of(section)
    assert [d.pop("place") for d in drawn] == list(range(100))
    assert drawn == listed
    a = client.get("/api/70001/seat-map?section=A", headers=auth(token)).json()["sections"][0]
    assert [(r["name"], len(r["runs"])) for r in a["rows"]] == [("1", 1), ("2", 1)]


@pytest.mark.both_modes
def test_taken_seats_are_bits_in_place(stadium: tuple[TestClient, str]) -> None:
    client, token = stadium
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": 70001, "quantity": 2, "section": "B"})
    assert held.status_code == 200, held.text
    paid = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": 70001, "seatId": 70001042})  # A, row 2, seat 2
    assert client.post("/api/pay", headers=auth(token),
                       json={"reservationId": paid.json()["reservationId"]}).status_code == 200
    whole = client.get("/api/70001/taken-seats", headers=auth(token)).json()
    assert (whole["place"], whole["count"], whole["free"]) == (0, 100, 97)
    assert taken_places(whole) == [41, 80, 81]  # the sold seat and the two held together
    assert whole["sections"] == [{"name": "A", "free": 79}, {"name": "B", "free": 18}]
    assert len(base64.b64decode(whole["taken"])) == 13  # 100 bits
    b = client.get("/api/70001/taken-seats?section=B", headers=auth(token)).json()
    assert (b["place"], b["count"], b["free"]) == (80, 20, 18)
    assert taken_places(b) == [80, 81] and b["sections"] == [{"name": "B", "free": 18}]
    assert b["version"] == whole["version"]
    dates = client.get("/api/7/available-dates", headers=auth(token)).json()["dates"]
    assert dates[0]["availableSeats"] == whole["free"]
    # The released hold is free again, in place.
    for rid in held.json()["reservationIds"]:
        assert client.delete(f"/api/reserve/{rid}", headers=auth(token)).status_code == 200
    assert taken_places(client.get("/api/70001/taken-seats", headers=auth(token)).json()) == [41]


def test_the_layout_is_kept_until_a_reprice(r: redis.Redis,
                                            stadium: tuple[TestClient, str]) -> None:
    client, token = stadium
    first = client.get("/api/70001/seat-map?section=B", headers=auth(token))
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = client.get("/api/70001/seat-map?section=B",
                       headers={**auth(token), "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert client.get("/api/70001/seat-map?section=B", headers={
        **auth(token), "If-None-Match": f'W/"x", {tag}'}).status_code == 304
    # A reload that reprices free seats: a new version, so a new ETag and the new price.
    cheaper = copy.deepcopy(STADIUM)
    cheaper["options"][0]["sections"][1]["price"] = 80000
    assert load_sync(r, parse(cheaper))["repriced"] == 20
    after = client.get("/api/70001/seat-map?section=B",
                       headers={**auth(token), "If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
    assert {s["price"] for s in seats_of(after.json())} == {80000}
    assert client.get("/api/70001/taken-seats", headers=auth(token)).json()["version"] == \
        after.json()["version"] != first.json()["version"]
    # The token is checked even when the client has the layout.
    assert client.get("/api/70001/seat-map", headers={
        "If-None-Match": after.headers["etag"]}).status_code == 401


def test_who_may_see_a_seat_map(stadium: tuple[TestClient, str], make_client) -> None:
    client, token = stadium
    for path in ("/api/70001/seat-map", "/api/70001/taken-seats"):
        assert client.get(path).json()["code"] == "TOKEN_UNKNOWN"
        assert client.get(path.replace("70001", "41150"),
                          headers=auth(token)).json()["code"] == "OPTION_NOT_FOUND"
        missing = client.get(path, params={"section": "Z"}, headers=auth(token))
        assert missing.status_code == 404 and missing.json()["code"] == "SECTION_NOT_FOUND"
    waiting = make_client(active_limit=1)
    other = waiting.post("/api/token/issue", json={"customerId": 2, "concertId": 7}).json()
    assert other["status"] == "WAITING"
    assert waiting.get("/api/70001/seat-map", headers=auth(other["tokenValue"])).json()[
        "code"] == "TOKEN_WAITING"


@pytest.mark.both_modes
def test_the_concerts_on_sale_are_public(r: redis.Redis, stadium: tuple[TestClient, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = stadium
    past = copy.deepcopy(STADIUM)
    past.update(concertId=9, name="Last year")
    past["options"] = [{**past["options"][1], "concertOptionId": 90001,
                        "date": "2020-03-02T19:00:00+09:00"}]
    load_sync(r, parse(past))
    listed = client.get("/api/concerts").json()["concerts"]
    assert listed == [{"concertId": 7, "name": "Stadium night",
                       "nextDate": "2027-03-01T19:00:00+09:00",
                       "lastDate": "2027-03-02T19:00:00+09:00", "performances": 2,
                       "freeSeats": 104, "paused": False, "opensAt": None}]
    card = client.get("/api/concerts/7").json()
    assert card["dates"] == [{"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00"},
                             {"concertOptionId": 70002, "date": "2027-03-02T19:00:00+09:00"}]
    assert client.get("/api/concerts/9").json()["name"] == "Last year"  # still a concert
    assert client.get("/api/concerts/12345").json()["code"] == "CONCERT_NOT_FOUND"
    # Kept a moment: a crowd opening the page reads each concert once a worker a moment.
    r.hset("tk:{c:7}:concert", "name", "Renamed")
    assert client.get("/api/concerts").json()["concerts"][0]["name"] == "Stadium night"
    monkeypatch.setattr(on_sale, "KEEP_SECONDS", 0.0)
    time.sleep(0.01)
    assert client.get("/api/concerts").json()["concerts"][0]["name"] == "Renamed"


def test_a_100000_seat_performance_draws_without_its_seats(
        r: redis.Redis, make_client: Callable[..., TestClient]) -> None:
    """The overview and one section are a few KB, the taken seats 12.5 KB of bits: against
    the 7 MB of the whole seat list."""
    sections = [{"name": f"S{s}", "price": 1000 + s, "rows": [
        {"name": str(n), "seats": 50} for n in range(1, 101)]} for s in range(20)]
    load_sync(r, parse({"concertId": 8, "name": "Big", "options": [
        {"concertOptionId": 80001, "date": "2027-04-01T19:00:00+09:00",
         "sections": sections}]}))
    client = make_client()
    token = active_token(client, 3, concert=8)
    assert client.post("/api/reserve", headers=auth(token), json={
        "concertOptionId": 80001, "seatId": 80001050001}).status_code == 200  # S10's first
    overview = client.get("/api/80001/seat-map", headers=auth(token))
    one = client.get("/api/80001/seat-map?section=S10", headers=auth(token))
    taken = client.get("/api/80001/taken-seats", headers=auth(token))
    section_bits = client.get("/api/80001/taken-seats?section=S10", headers=auth(token))
    assert len(overview.content) < 4_000 and len(one.content) < 12_000
    assert len(taken.content) < 20_000 and len(section_bits.content) < 1_500
    assert taken.json()["free"] == 99_999 and taken_places(taken.json()) == [50_000]
    assert taken.json()["sections"][10] == {"name": "S10", "free": 4_999}
    assert taken_places(section_bits.json()) == [50_000]
    print(f"\n100,000 seats: overview {len(overview.content)} B, one section "
          f"{len(one.content)} B, taken seats {len(taken.content)} B (one section "
          f"{len(section_bits.content)} B)")
