"""An account's overview and unfreezing: audited on the account, the alert and its tickets, and
told to the exchange through the freeze hook (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.accounts import AccountError, overview, summaries, unfreeze_account
from alerts.answers import answer
from alerts.store.models import AccountEvent, AccountRow, AlertEvent, AlertRow, OutboxRow, Ticket, TicketEvent
from tests.app.helpers import make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir


@pytest.fixture
def denied(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two accounts scanned; A1 answered "not me" to its new-country alert (frozen)."""
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=2))
    scan_until_caught_up(app)
    with app.sessions() as s:
        alert = s.scalars(select(AlertRow).where(AlertRow.rule_id == "login-new-country",
                                                 AlertRow.account_id == "A1")).one()
    with app.sessions.begin() as s:
        answer(s, alert.id, "deny", channel="link:email", now=app.clock())
    yield app, alert.id
    app.close()


def test_overview_says_what_froze_the_account_and_when(denied) -> None:  # type: ignore[no-untyped-def]
    app, alert_id = denied
    with app.sessions() as s:
        v = overview(s, "A1")
        other = overview(s, "A2")
        nobody = overview(s, "nobody")
    assert v.known and v.status == "frozen"
    assert v.freeze is not None and v.freeze.alert_id == alert_id and v.freeze.actor == "user"
    assert v.freeze.reason == f"denied on alert {alert_id}" and v.freeze.at is not None
    assert alert_id not in {a["id"] for a in v.open_alerts}  # answered: no longer open
    assert v.open_alerts and all(a["status"] in ("new", "notified", "expired", "escalated") for a in v.open_alerts)
    assert any(t["priority"] == "P1" and t["open"] for t in v.tickets)
    assert [e["event"] for e in v.trail] == ["frozen"]
    assert v.contact["locale"] == "ko" and v.contact["email"] is True
    assert other.status == "active" and other.freeze is None and other.trail == []
    assert not nobody.known and nobody.open_alerts == [] and nobody.tickets == []


def test_unfreeze_is_audited_on_account_alert_and_tickets_and_tells_the_hook(denied) -> None:  # type: ignore[no-untyped-def]
    app, alert_id = denied
    later = app.clock() + timedelta(minutes=5)
    with app.sessions.begin() as s:
        lifted = unfreeze_account(s, "A1", now=later, actor="staff:kim", reason="  holder verified by video call ")
    assert lifted.alert_id == alert_id and lifted.actor == "user"
    with app.sessions() as s:
        acct = s.get(AccountRow, "A1")
        assert acct is not None and acct.status == "active" and acct.frozen_at is None
        trail = s.scalars(select(AccountEvent).where(AccountEvent.account_id == "A1").order_by(AccountEvent.id)).all()
        assert [(e.event, e.actor) for e in trail] == [("frozen", "user"), ("unfrozen", "staff:kim")]
        assert trail[1].reason == "holder verified by video call" and trail[1].alert_id == alert_id
        assert trail[1].detail["frozen_reason"] == f"denied on alert {alert_id}"
        on_alert = s.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id,
                                                      AlertEvent.event == "account_unfrozen")).one()
        assert on_alert.actor == "staff:kim" and on_alert.detail["reason"] == "holder verified by video call"
        open_tickets = set(s.scalars(select(Ticket.id).where(Ticket.account_id == "A1", Ticket.open_key.is_not(None))))
        on_ticket = s.scalars(select(TicketEvent).where(TicketEvent.kind == "account_unfrozen")).all()
        assert len(open_tickets) >= 2  # the P1 "not me" ticket and the ticket of another rule
        assert {e.ticket_id for e in on_ticket} == open_tickets and len(on_ticket) == len(open_tickets)
        assert {e.actor for e in on_ticket} == {"staff:kim"}
        hooks = s.scalars(select(OutboxRow).where(OutboxRow.channel == "freeze_hook")
                          .order_by(OutboxRow.created_at)).all()
        assert [h.payload["action"] for h in hooks] == ["freeze", "unfreeze"]
        assert hooks[1].payload["actor"] == "staff:kim" and hooks[1].purpose == "unfreeze"
        v = overview(s, "A1")
    assert v.status == "active" and v.freeze is None
    assert [e["event"] for e in v.trail] == ["unfrozen", "frozen"]


def test_unfreeze_refuses_without_a_reason_or_a_freeze(denied) -> None:  # type: ignore[no-untyped-def]
    app, _ = denied
    with app.sessions.begin() as s, pytest.raises(AccountError, match="needs a reason"):
        unfreeze_account(s, "A1", now=app.clock(), actor="staff:kim", reason="   ")
    with app.sessions.begin() as s, pytest.raises(AccountError, match=r"'A2' is not frozen \(status active\)"):
        unfreeze_account(s, "A2", now=app.clock(), actor="staff:kim", reason="x")
    with app.sessions.begin() as s, pytest.raises(AccountError, match="'nobody' is unknown to Vigil"):
        unfreeze_account(s, "nobody", now=app.clock(), actor="staff:kim", reason="x")
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").status == "frozen"  # type: ignore[union-attr]


def test_a_second_freeze_after_an_unfreeze_is_reported_as_the_current_one(denied) -> None:  # type: ignore[no-untyped-def]
    from alerts.actions import freeze_account

    app, _ = denied
    t1 = app.clock() + timedelta(minutes=1)
    with app.sessions.begin() as s:
        unfreeze_account(s, "A1", now=t1, actor="staff:kim", reason="verified")
    with app.sessions.begin() as s:
        assert freeze_account(s, "A1", now=t1 + timedelta(minutes=1), reason="manual hold", actor="staff:lee")
    with app.sessions() as s:
        v = overview(s, "A1")
        listed = summaries(s)
        frozen_only = summaries(s, frozen_only=True)
    assert v.freeze is not None and (v.freeze.actor, v.freeze.reason, v.freeze.alert_id) == (
        "staff:lee", "manual hold", None)
    assert [r["account_id"] for r in frozen_only] == ["A1"]
    assert listed[0]["account_id"] == "A1" and {r["account_id"] for r in listed} == {"A1", "A2"}
