"""The issue's check, end to end on SQLite and PostgreSQL.

A scan over data with several alerts on one account opens one ticket per category with every alert
on its timeline; a denial opens a P1 account-security ticket with an SLA deadline; letting the
clock pass the deadline escalates it; resolving tickets with codes changes the per-rule precision
that ``vigil report`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from alerts.answers import answer
from alerts.store.models import AlertRow, OutboxRow, Ticket, TicketEvent
from tests.app.helpers import Clock, make_app
from tests.tickets.helpers import RULES, busy_account_dir
from tickets.core import resolve
from tickets.escalation import sla_tick
from tickets.queries import show_ticket
from vigil.bootstrap import App
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir

CATEGORY_OF_RULE = {"login-new-country": "account_security", "withdrawal-large": "deposit_withdrawal",
                    "leverage-margin": "trading"}


@pytest.fixture
def scanned(db_url: str, tmp_path: Path) -> Iterator[tuple[App, Clock]]:
    clock = Clock()
    app = make_app(db_url, clock, rules_path=str(RULES))
    import_dir(app.engine, busy_account_dir(tmp_path / "data"))
    assert scan_until_caught_up(app)["caught_up"]
    yield app, clock
    app.close()


def _alerts(app: App, account: str, rule: str | None = None) -> list[AlertRow]:
    with app.sessions() as s:
        q = select(AlertRow).where(AlertRow.account_id == account)
        if rule:
            q = q.where(AlertRow.rule_id == rule)
        return list(s.scalars(q.order_by(AlertRow.ts)))


def _ticket(app: App, account: str, category: str) -> Ticket:
    with app.sessions() as s:
        q = select(Ticket).where(Ticket.account_id == account, Ticket.category == category)
        return s.scalars(q).one()


def test_scan_opens_one_ticket_per_category_with_every_alert_on_its_timeline(scanned: tuple[App, Clock]
                                                                             ) -> None:
    app, _ = scanned
    alerts = _alerts(app, "B1")
    by_category: dict[str, set[str]] = {}
    for a in alerts:
        by_category.setdefault(CATEGORY_OF_RULE[a.rule_id], set()).add(a.id)
    assert {c: len(ids) for c, ids in by_category.items()} == {
        "account_security": 2, "deposit_withdrawal": 3, "trading": 2}
    with app.sessions() as s:
        tickets = list(s.scalars(select(Ticket).where(Ticket.account_id == "B1")))
        assert sorted(t.category for t in tickets) == ["account_security", "deposit_withdrawal", "trading"]
        for t in tickets:
            on_timeline = {e.ref_id for e in s.scalars(select(TicketEvent).where(
                TicketEvent.ticket_id == t.id, TicketEvent.kind == "alert"))}
            assert on_timeline == by_category[t.category], t.category
            assert t.status == "new" and t.open_key == f"B1:{t.category}"
            assert t.first_response_due is not None and t.resolve_due is not None
        assert {a.ticket_id for a in alerts} == {t.id for t in tickets}
        queues = {t.category: t.queue for t in tickets}
    # routed by the shipped policy: category first, account tier for security
    assert queues == {"account_security": "security", "deposit_withdrawal": "payments", "trading": "trading"}
    assert _ticket(app, "B2", "account_security").queue == "security-vip"


def test_denial_opens_p1_with_deadline_and_the_clock_escalates_it(scanned: tuple[App, Clock]) -> None:
    app, clock = scanned
    login = _alerts(app, "B1", "login-new-country")[0]
    denied_at = clock.now
    with app.sessions.begin() as s:
        assert answer(s, login.id, "deny", channel="sms", now=denied_at).applied
    t = _ticket(app, "B1", "account_security")
    assert t.priority == "P1"
    due = t.first_response_due.replace(tzinfo=denied_at.tzinfo)  # SQLite returns naive UTC
    assert due == denied_at + timedelta(minutes=15)
    assert t.resolve_due.replace(tzinfo=denied_at.tzinfo) == denied_at + timedelta(hours=4)

    def tick() -> dict[str, int]:
        with app.sessions.begin() as s:
            return sla_tick(s, clock()).as_dict()

    def escalations() -> list[OutboxRow]:
        with app.sessions() as s:
            return list(s.scalars(select(OutboxRow).where(OutboxRow.channel == "escalate")
                                  .order_by(OutboxRow.created_at, OutboxRow.id)))

    clock.advance(minutes=5)
    assert tick()["warned"] == 0 and _ticket(app, "B1", "account_security").sla_state == "ok"
    clock.advance(minutes=8)  # 13 of 15 minutes: inside the warning window (last 20%)
    assert tick()["warned"] == 1
    assert _ticket(app, "B1", "account_security").sla_state == "warning"
    assert [(o.purpose, o.payload["target"]) for o in escalations()] == [("sla_warning", "security-staff")]

    clock.advance(minutes=3)  # 16 minutes: the first-response deadline has passed
    rep = tick()
    assert rep["breached"] == 1 and rep["escalation_steps"] == 1
    t = _ticket(app, "B1", "account_security")
    assert t.sla_state == "breached" and t.queue == "security"
    assert [(o.purpose, o.payload["target"]) for o in escalations()][-1] == ("sla_breach", "security-staff")
    assert tick()["escalation_steps"] == 0 and len(escalations()) == 2  # nothing twice

    clock.advance(minutes=30)  # 30 minutes after the breach: the chain's second step hands it to the leads
    assert tick()["escalation_steps"] == 1
    t = _ticket(app, "B1", "account_security")
    assert t.queue == "security-leads" and t.assignee is None and t.sla_state == "breached"
    assert escalations()[-1].payload["target"] == "security-leads"
    with app.sessions() as s:
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                           .order_by(TicketEvent.at, TicketEvent.id))]
    assert {"alert", "priority_raised", "alert_denied", "user_deny", "sla_warning", "sla_breached",
            "sla_escalated"} <= set(kinds)
    assert kinds.count("sla_escalated") == 2

    # the timeline staff see also holds what was sent, its delivery receipts and the freeze
    deliver_once(app)
    with app.sessions() as s:
        shown = show_ticket(s, t.id)
    assert shown is not None
    story = {(e["kind"], e["ref_id"]) for e in shown["timeline"]}
    assert ("message_queued", login.id) in story and ("delivery", login.id) in story
    freeze = [e for e in shown["timeline"]
              if e["kind"] == "alert_actions" and e["detail"]["trigger"] == "denied"]
    assert freeze and "freeze" in freeze[0]["detail"]["done"]
    guidance = [e for e in shown["timeline"]
                if e["kind"] == "message_queued" and e["detail"]["purpose"] == "guidance"]
    assert guidance


def _report(db_url: str, rules: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, object]]:
    from vigil.cli import main

    monkeypatch.setenv("VIGIL_DATABASE_URL", db_url)
    monkeypatch.setenv("VIGIL_RULES_PATH", str(rules))
    res = CliRunner().invoke(main, ["report", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = CliRunner().invoke(main, ["report"], catch_exceptions=False)
    assert "login-new-country" in text.output and "precision" in text.output
    return {r["rule_id"]: r for r in json.loads(res.output)}


def test_resolution_codes_change_the_precision_vigil_report_prints(
        scanned: tuple[App, Clock], db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app, clock = scanned
    b1_login = _alerts(app, "B1", "login-new-country")[0]
    b2_login = _alerts(app, "B2", "login-new-country")[0]
    with app.sessions.begin() as s:
        answer(s, b1_login.id, "deny", channel="link:email", now=clock())
        answer(s, b2_login.id, "confirm", channel="push", now=clock())
    before = _report(db_url, RULES, monkeypatch)
    assert before["login-new-country"]["labelled"] == 2 and before["login-new-country"]["precision"] == 0.5
    assert before["withdrawal-large"]["labelled"] == 0 and before["withdrawal-large"]["precision"] is None

    # staff find B2's "it was me" was a takeover after all, and B1's withdrawals were the user's own
    with app.sessions.begin() as s:
        b2, b1 = _ticket(app, "B2", "account_security").id, _ticket(app, "B1", "deposit_withdrawal").id
        resolve(s, b2, "risk_confirmed", now=clock(), actor="staff:kim")
        resolve(s, b1, "false_positive", now=clock(), actor="staff:kim")
    after = _report(db_url, RULES, monkeypatch)
    login = after["login-new-country"]
    assert login["precision"] == 1.0 and login["risk_confirmed"] == 1
    assert after["withdrawal-large"]["labelled"] == 3 and after["withdrawal-large"]["precision"] == 0.0
    assert after["leverage-margin"]["labelled"] == 0
