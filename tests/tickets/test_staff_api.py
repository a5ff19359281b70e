"""The staff JSON API (FastAPI router) on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.helpers import Clock, make_app
from tickets.core import open_or_attach
from vigil.bootstrap import App
from vigil.web.staff import staff_router

LEE, KIM = "lee-" + "l" * 40, "kim-" + "k" * 40
AUTH = {"Authorization": f"Bearer {LEE}"}
AS_KIM = {"Authorization": f"Bearer {KIM}"}


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[TestClient, App, Clock]]:
    clock = Clock()
    app = make_app(db_url, clock)
    with app.sessions.begin() as s:
        for i, (cat, prio) in enumerate([("account_security", "P1"), ("trading", "P4"), ("api", "P3")]):
            open_or_attach(s, account_id=f"A{i}", category=cat, priority=prio, now=clock(), subject=f"t{i}",
                           kind="alert", ref_id=f"r{i}")
    web = FastAPI()
    web.include_router(staff_router(app, tokens={"lee": LEE, "kim": KIM}))
    with TestClient(web) as client:
        yield client, app, clock
    app.close()


def test_the_api_needs_the_bearer_token(api: tuple[TestClient, App, Clock]) -> None:
    client, app, _ = api
    assert client.get("/staff/api/tickets").status_code == 401
    r = client.get("/staff/api/tickets", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    closed = FastAPI()
    closed.include_router(staff_router(app))  # no token in settings: disabled, not open
    with TestClient(closed) as c:
        r = c.get("/staff/api/tickets", headers=AUTH)
    assert r.status_code == 503 and "web.staff_tokens" in r.json()["detail"]
    with pytest.raises(ValueError, match="at least 32 characters"):
        staff_router(app, token="short-token")


def test_list_filters_and_paginates(api: tuple[TestClient, App, Clock]) -> None:
    client, _, _ = api
    r = client.get("/staff/api/tickets", params={"per_page": 2}, headers=AUTH).json()
    assert (r["total"], r["pages"], r["next_page"]) == (3, 2, 2)
    assert [t["priority"] for t in r["items"]] == ["P1", "P3"]
    r = client.get("/staff/api/tickets", params=[("queue", "trading"), ("queue", "api")], headers=AUTH).json()
    assert sorted(t["queue"] for t in r["items"]) == ["api", "trading"]
    q = {"priority": "P1", "sla": "ok", "status": "new"}
    r = client.get("/staff/api/tickets", params=q, headers=AUTH)
    assert [t["category"] for t in r.json()["items"]] == ["account_security"]
    bad = client.get("/staff/api/tickets", params={"sla": "late"}, headers=AUTH)
    assert bad.status_code == 422 and "sla: unknown value(s) 'late'" in bad.json()["detail"]
    assert client.get("/staff/api/tickets", params={"per_page": 500}, headers=AUTH).status_code == 422


def test_assign_resolve_and_the_timeline(api: tuple[TestClient, App, Clock]) -> None:
    client, _, clock = api
    tid = client.get("/staff/api/tickets", params={"priority": "P1"}, headers=AUTH).json()["items"][0]["id"]
    clock.advance(minutes=3)
    forged = client.post(f"/staff/api/tickets/{tid}/assign", json={"assignee": "kim", "actor": "boss"}, headers=AUTH)
    assert forged.status_code == 422  # the actor is the token's name, never the body's claim
    r = client.post(f"/staff/api/tickets/{tid}/assign", json={"assignee": "kim"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "open" and r.json()["assignee"] == "kim"
    assert r.json()["first_response_at"] == clock.now.isoformat()
    r = client.post(f"/staff/api/tickets/{tid}/resolve", json={"code": "maybe"}, headers=AUTH)
    assert r.status_code == 422
    r = client.post(f"/staff/api/tickets/{tid}/resolve", json={"code": "false_positive", "note": "travel"},
                    headers=AS_KIM)
    assert r.status_code == 200 and r.json()["resolution_code"] == "false_positive"
    again = client.post(f"/staff/api/tickets/{tid}/assign", json={"assignee": "lee"}, headers=AUTH)
    assert again.status_code == 409 and "reopen it" in again.json()["detail"]
    shown = client.get(f"/staff/api/tickets/{tid}", headers=AUTH).json()
    kinds = [(e["kind"], e["actor"]) for e in shown["timeline"]]
    assert ("assigned", "staff:lee") in kinds and ("resolved", "staff:kim") in kinds
    assert client.get("/staff/api/tickets/t_nope", headers=AUTH).status_code == 404
    assert client.post("/staff/api/tickets/t_nope/resolve", json={"code": "valuable"},
                       headers=AUTH).status_code == 404
    r = client.post(f"/staff/api/tickets/{tid}/move", json={"event": "close"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "closed"
