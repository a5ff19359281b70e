"""The push-action endpoint: authenticated by the alert's token, idempotent, exactly-once freeze."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts.store.models import AccountRow, AlertRow, OutboxRow, Ticket
from tests.delivery.kit import T0, account, alert, channels
from vigil.bootstrap import App
from vigil.web import push_actions
from vigil.web.app import create_app


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    api = create_app(app)  # mounts the push-action route
    with TestClient(api) as c:
        yield c


@pytest.fixture
def pushed(app: App, deliverer_factory: Any) -> dict[str, Any]:
    """A push alert delivered: the token is what the app received in the data message."""
    with app.sessions.begin() as s:
        account(s)
        a = alert(s, channels=["push", "email"])
    chans = channels()
    deliverer_factory(chans).run_once(T0)
    (msg,) = chans["push"].sent
    (mail,) = chans["email"].sent
    return {"alert": a.id, "token": msg.data["token"], "mail_link": mail.data.get("confirm_url") or ""}


def _status(app: App, aid: str) -> str:
    with app.sessions() as s:
        row = s.get(AlertRow, aid)
        assert row is not None
        return row.status


def _count(app: App, model: Any, *where: Any) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_deny_freezes_once_however_often_the_app_retries(client: TestClient, app: App, pushed: dict) -> None:
    body = {"token": pushed["token"], "action": "deny", "alert_id": pushed["alert"]}
    r = client.post(push_actions.PATH, json=body)
    assert r.status_code == 200
    assert r.json() == {"applied": True, "status": "denied", "message": "ok", "outcome": "deny"}
    assert r.headers["cache-control"] == "no-store"
    for _ in range(2):  # the app never saw the answer and retries
        again = client.post(push_actions.PATH, json=body)
        assert again.status_code == 200 and again.json()["applied"] is False
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]
    assert _count(app, Ticket, Ticket.priority == "P1") == 1
    assert _count(app, OutboxRow, OutboxRow.channel == "freeze_hook") == 1


def test_confirm_then_deny_with_the_same_token_still_freezes(client: TestClient, app: App, pushed: dict) -> None:
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "confirm"})
    assert r.json()["status"] == "confirmed" and r.json()["outcome"] == "confirm"
    again = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "confirm"})
    assert again.status_code == 200 and again.json()["applied"] is False  # the app retrying
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "deny"})
    assert r.status_code == 200 and r.json()["status"] == "denied"  # "not me" always wins
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "confirm"})
    assert r.status_code == 410 and _status(app, pushed["alert"]) == "denied"


@pytest.mark.parametrize("body", [
    {"token": "x" * 32, "action": "deny"},                                  # unknown token
    {"token": "TOKEN", "action": "deny", "alert_id": "a_someone_else"},     # another alert
])
def test_unknown_or_mismatched_token_is_404(client: TestClient, app: App, pushed: dict, body: dict) -> None:
    body = {k: (pushed["token"] if v == "TOKEN" else v) for k, v in body.items()}
    assert client.post(push_actions.PATH, json=body).status_code == 404
    assert _status(app, pushed["alert"]) == "notified"


@pytest.mark.parametrize("body", [
    {"token": "short", "action": "deny"},
    {"token": "x" * 32, "action": "release_hold"},
    {"token": "x" * 32, "action": "deny", "extra": 1},
])
def test_malformed_requests_are_422(client: TestClient, body: dict) -> None:
    assert client.post(push_actions.PATH, json=body).status_code == 422


def test_after_the_alert_expired_only_deny_is_heard_until_the_token_expires(
        client: TestClient, app: App, clock: Any, pushed: dict) -> None:
    clock.now = T0 + timedelta(hours=2)  # alert window 30 min, "not me" heard 6 h longer
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "confirm"})
    assert r.status_code == 200 and r.json()["outcome"] == "late" and r.json()["applied"] is False
    assert _status(app, pushed["alert"]) == "notified"
    clock.now = T0 + timedelta(hours=6, minutes=31)  # past the token's expiry
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "deny"})
    assert r.status_code == 410
    assert _status(app, pushed["alert"]) == "notified"


def test_deny_after_expiry_within_the_grace_freezes(client: TestClient, app: App, clock: Any,
                                                    pushed: dict) -> None:
    clock.now = T0 + timedelta(hours=5)
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "deny"})
    assert r.status_code == 200 and r.json()["status"] == "denied"
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]


def test_deny_by_push_after_deny_elsewhere_is_a_harmless_repeat(client: TestClient, app: App,
                                                                 pushed: dict) -> None:
    from alerts.answers import answer

    with app.sessions.begin() as s:
        answer(s, pushed["alert"], "deny", channel="sms", now=T0)
    r = client.post(push_actions.PATH, json={"token": pushed["token"], "action": "deny"})
    assert r.status_code == 200 and r.json()["status"] == "denied"
    assert _count(app, Ticket) == 1
