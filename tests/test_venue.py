"""Catalogue documents (engine/venue.py): strict validation that names the bad field, loading
as create-what-is-missing, reloads that never reset a hold or a sale, repricing of free seats
only, and a 100,000-seat performance served by section."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from devstack import REPO
from engine.venue import DocumentError, id_span, load_sync, parse
from tests.conftest import active_token, auth

pytestmark = pytest.mark.both_modes  # single node and cluster (tests/conftest.py)

STADIUM = {"concertId": 7, "name": "Stadium night", "options": [
    {"concertOptionId": 70001, "date": "2027-03-01T19:00:00+09:00", "sections": [
        {"name": "A", "price": 150000, "rows": [
            {"name": "1", "seats": 40}, {"name": "2", "seats": 40, "price": 120000}]},
        {"name": "B", "price": 90000.5, "rows": [{"name": "1", "seats": 20}]}]}]}


def doc(**changes: object) -> dict:
    d = copy.deepcopy(STADIUM)
    d.update(changes)
    return d


def bad(path: str, mutate: Callable[[dict], object]) -> tuple[str, dict]:
    d = copy.deepcopy(STADIUM)
    mutate(d)
    return path, d


def _o(d: dict) -> dict:
    return d["options"][0]


BAD = [
    bad("x", lambda d: d.clear() or d.update({"x": 1}) or None),
    bad("extra", lambda d: d.update(extra=1)),
    bad("concertId", lambda d: d.update(concertId="7")),
    bad("concertId", lambda d: d.update(concertId=0)),
    bad("name", lambda d: d.update(name="")),
    bad("name", lambda d: d.update(name=" padded ")),
    bad("options", lambda d: d.update(options=[])),
    bad("options[0].date", lambda d: _o(d).update(date="2027-03-01 19:00")),
    bad("options[0].date", lambda d: _o(d).update(date="2027-03-01T19:00:00")),  # no offset
    bad("options[1].concertOptionId", lambda d: d["options"].append(copy.deepcopy(_o(d)))),
    bad("options[0].sections[1].name",
        lambda d: _o(d)["sections"][1].update(name="A")),
    bad("options[0].sections[0].rows[1].name",
        lambda d: _o(d)["sections"][0]["rows"][1].update(name="1")),
    bad("options[0].sections[0].rows[1].seats",
        lambda d: _o(d)["sections"][0]["rows"][1].update(seats=-3)),
    bad("options[0].sections[0].rows[1].seats",
        lambda d: _o(d)["sections"][0]["rows"][1].update(seats=2.5)),
    bad("options[0].sections[0].rows[1].price",
        lambda d: _o(d)["sections"][0]["rows"][1].update(price=1.234)),
    bad("options[0].sections[0].price", lambda d: _o(d)["sections"][0].update(price=0)),
    bad("options[0].sections[0].price", lambda d: _o(d)["sections"][0].update(price="100")),
    bad("options[0].sections[0].rows[0].color",
        lambda d: _o(d)["sections"][0]["rows"][0].update(color="red")),
    bad("options[0].sections", lambda d: _o(d).update(sections=[
        {"name": "X", "price": 1, "rows": [{"name": str(i), "seats": 10_000}
                                           for i in range(11)]}])),  # 110,000 seats
]


@pytest.mark.parametrize(("path", "document"), BAD, ids=[p for p, _ in BAD])
def test_a_bad_document_names_its_bad_field(path: str, document: dict) -> None:
    with pytest.raises(DocumentError) as e:
        parse(document)
    assert e.value.path == path, e.value


def test_a_document_must_be_an_object() -> None:
    for document in ([], "x", None, 7):
        with pytest.raises(DocumentError) as e:
            parse(document)
        assert e.value.path == "(document)"


def test_seat_ids_count_in_listing_order() -> None:
    v = parse(STADIUM)
    seats = v.options[0].seats
    assert id_span(100) == 1000 and id_span(50) == 100 and id_span(100_000) == 1_000_000
    assert [s.id for s in seats[:2]] == [70001001, 70001002] and seats[-1].id == 70001100
    assert (seats[40].section, seats[40].row, seats[40].number, seats[40].price) == (
        "A", "2", 1, 12_000_000)
    assert seats[-1].price == 9_000_050


def test_load_reload_and_a_change_under_a_sale(r: redis.Redis, make_client) -> None:
    first = load_sync(r, parse(STADIUM))
    assert first["created"] == [70001] and first["seats"] == 100
    state = {k: r.dump(k) for k in r.keys("tk:{c:7}:*")}
    assert load_sync(r, parse(STADIUM))["created"] == []  # a reload changes nothing
    assert {k: r.dump(k) for k in r.keys("tk:{c:7}:*")} == state

    client = make_client()
    token = active_token(client, 1, concert=7)
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": 70001, "seatId": 70001001})
    assert held.status_code == 200
    repriced = doc()
    repriced["options"][0]["sections"][0]["price"] = 160000  # row 1, seat 1 is held
    with pytest.raises(DocumentError, match="70001001"):
        load_sync(r, parse(repriced))
    assert r.hget("tk:{c:7}:seats:70001", "70001002").split(b":")[1] == b"15000000"
    # A free seat's new price is taken; the seat list shows it at once.
    cheaper = doc()
    cheaper["options"][0]["sections"][1]["price"] = 80000
    assert load_sync(r, parse(cheaper))["repriced"] == 20
    seats = client.get("/api/70001/available-seats?section=B",
                       headers=auth(token)).json()["seats"]
    assert {s["price"] for s in seats} == {80000} and len(seats) == 20
    # A changed seat map, or a performance's date, refuses the whole document.
    more = doc()
    more["options"][0]["sections"][1]["rows"].append({"name": "2", "seats": 5})
    with pytest.raises(DocumentError, match="seat map"):
        load_sync(r, parse(more))
    later = doc()
    later["options"][0]["date"] = "2027-03-02T19:00:00+09:00"
    with pytest.raises(DocumentError, match="date"):
        load_sync(r, parse(later))


def test_a_100000_seat_performance_is_served_by_section(r: redis.Redis,
                                                        make_client) -> None:
    sections = [{"name": f"S{s}", "price": 1000 + s, "rows": [
        {"name": str(n), "seats": 50} for n in range(1, 101)]} for s in range(20)]
    big = {"concertId": 8, "name": "Big", "options": [
        {"concertOptionId": 80001, "date": "2027-04-01T19:00:00+09:00", "sections": sections}]}
    t0 = time.monotonic()
    report = load_sync(r, parse(big))
    took = time.monotonic() - t0
    assert report["seats"] == 100_000
    client = make_client()
    token = active_token(client, 3, concert=8)
    whole = client.get("/api/80001/available-seats", headers=auth(token)).json()["seats"]
    assert len(whole) == 100_000 and whole[0]["id"] == 80001000001
    held = client.post("/api/reserve", headers=auth(token),
                       json={"concertOptionId": 80001, "seatId": 80001050001})  # S10's first
    assert held.status_code == 200
    one = client.get("/api/80001/available-seats", params={"section": "S10"},
                     headers=auth(token)).json()["seats"]
    assert len(one) == 4999 and {s["section"] for s in one} == {"S10"}
    assert one[0]["id"] == 80001050002
    missing = client.get("/api/80001/available-seats", params={"section": "Z"},
                         headers=auth(token))
    assert missing.status_code == 404 and missing.json()["code"] == "SECTION_NOT_FOUND"
    print(f"\n100,000 seats loaded in {took:.1f} s")


def test_catalog_load_over_http_and_the_cli_twin(r: redis.Redis, make_client, tmp_path,
                                                 redis_url: str) -> None:
    client: TestClient = make_client(admin_token="s3cret")
    h = {"Authorization": "Bearer s3cret"}
    put = client.put("/admin/concerts/7", headers=h, json=STADIUM)
    assert put.status_code == 200 and put.json()["created"] == [70001]
    wrong = client.put("/admin/concerts/8", headers=h, json=STADIUM)
    assert wrong.status_code == 400 and wrong.json()["code"] == "INVALID_DOCUMENT"
    assert "concertId" in wrong.json()["detail"]
    broken = doc()
    broken["options"][0]["sections"][0]["rows"][0]["seats"] = "40"
    resp = client.put("/admin/concerts/7", headers=h, json=broken)
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("options[0].sections[0].rows[0].seats")
    path = tmp_path / "venue.json"
    path.write_text(json.dumps({**STADIUM, "concertId": 9}))
    out = subprocess.run([sys.executable, "-m", "engine", "catalog", "load", str(path)],
                         cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "REDIS_URL": redis_url})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["created"] == [70001]
    path.write_text(json.dumps({**STADIUM, "name": ""}))
    out = subprocess.run([sys.executable, "-m", "engine", "catalog", "load", str(path)],
                         cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "REDIS_URL": redis_url})
    assert out.returncode == 2 and "name:" in out.stderr
