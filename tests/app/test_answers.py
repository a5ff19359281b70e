"""Answers act exactly once, whatever the channel and however often they arrive."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from alerts.answers import answer
from alerts.lifecycle import LifecycleError, apply
from alerts.store.models import AccountRow, AlertRow, OutboxRow, Ticket, TicketEvent
from tests.app.helpers import make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir


@pytest.fixture
def scanned(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    yield app
    app.close()


def _alert(app, rule: str) -> AlertRow:  # type: ignore[no-untyped-def]
    with app.sessions() as s:
        return s.scalars(select(AlertRow).where(AlertRow.rule_id == rule)).one()


def test_deny_twice_by_two_channels_freezes_once_and_opens_one_p1_ticket(scanned) -> None:  # type: ignore[no-untyped-def]
    app = scanned
    alert = _alert(app, "login-new-country")
    now = app.clock()
    with app.sessions.begin() as s:
        first = answer(s, alert.id, "deny", channel="link:email", now=now)
    with app.sessions.begin() as s:
        second = answer(s, alert.id, "deny", channel="sms", now=now)
    assert first.applied and first.status == "denied"
    assert not second.applied and second.message == "already denied"
    with app.sessions() as s:
        acct = s.get(AccountRow, "A1")
        assert acct is not None and acct.status == "frozen"
        p1 = s.scalars(select(Ticket).where(Ticket.account_id == "A1", Ticket.category == "account_security")).all()
        assert len(p1) == 1 and p1[0].priority == "P1"
        assert p1[0].first_response_due is not None
        hooks = s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.channel == "freeze_hook"))
        assert hooks == 1
        guidance = s.scalars(select(OutboxRow).where(OutboxRow.purpose == "guidance")).all()
        assert {g.channel for g in guidance} == {"push", "sms", "email"}
        timeline = {e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == p1[0].id))}
        assert {"opened", "alert_denied", "user_deny"} <= timeline


def test_confirm_closes_and_a_later_deny_still_wins(scanned) -> None:  # type: ignore[no-untyped-def]
    app = scanned
    alert = _alert(app, "login-new-country")
    now = app.clock()
    with app.sessions.begin() as s:
        assert answer(s, alert.id, "confirm", channel="link:push", now=now).status == "confirmed"
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "active"  # type: ignore[union-attr]
    with app.sessions.begin() as s:
        assert answer(s, alert.id, "deny", channel="sms", now=now).status == "denied"
    with app.sessions.begin() as s:  # "it was me" never undoes a denial
        res = answer(s, alert.id, "confirm", channel="push", now=now)
        assert not res.applied and res.status == "denied"
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]


def test_lifecycle_refuses_illegal_moves() -> None:
    assert apply("new", "notify") == "notified"
    assert apply("notified", "deny") == "denied"
    with pytest.raises(LifecycleError, match="'denied' cannot take event 'confirm'"):
        apply("denied", "confirm")
    with pytest.raises(LifecycleError):
        apply("shadow", "notify")
